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


rule report:
    """The cohort report (group/report.html)."""
    input:
        unpack(report_model_inputs),
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
