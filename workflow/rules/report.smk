# Report stage: the cohort QC table, one self-contained HTML page, and the targets of `all`.


include: "functions/report.smk"


rule cohort_qc:
    """The numbers a reviewer checks per participant (registration, streamlines, head motion,
    volumes kept, regions missing), with outliers flagged (group/qc.tsv)."""
    input:
        cohort_qc_inputs,
    output:
        table=group("qc.tsv"),
    log:
        log_path("cohort_qc"),
    benchmark:
        benchmark_path("cohort_qc")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        sidecars=cohort_qc_params,
    script:
        "../scripts/cohort_qc.py"


rule qc_fc:
    """QC-FC: every FC edge's partial correlation with mean FD across participants (age and sex
    held fixed where participants.tsv has them) and its distance dependence (group/)."""
    input:
        unpack(qc_fc_inputs),
    output:
        matrix=group("atlas-{atlas}_stat-qcfc_relmat.tsv"),
        summary=group("atlas-{atlas}_stat-qcfc_relmat.json"),
        figure=group("figures/atlas-{atlas}_desc-qcfc_qc.png"),
    log:
        log_path("qc_fc", "atlas"),
    benchmark:
        benchmark_path("qc_fc", "atlas")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        atlas=atlas_params,
        visits=qc_fc_visit_labels,
        fisher_z=config["fc"]["fisher_z"],
    script:
        "../scripts/qc_fc.py"


rule report:
    """The cohort report (group/report.html)."""
    input:
        unpack(report_model_inputs),
        unpack(report_qc_fc_inputs),
        table=rules.bids_inventory.output.table,
        qc=rules.cohort_qc.output.table,
        figures=all_input_qc_figures,
        anat_figures=all_anat_figures,
        sc_figures=all_sc_figures,
        fc_figures=all_fc_figures,
    output:
        html=group("report.html"),
    log:
        log_path("report"),
    benchmark:
        benchmark_path("report")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        dataset=str(BIDS_DIR),
    script:
        "../scripts/report.py"
