# Report stage: the cohort QC table and one self-contained HTML page.


rule cohort_qc:
    """The numbers a reviewer checks per participant (registration, streamlines, head motion,
    volumes kept, regions missing), with outliers flagged (group/qc.tsv)."""
    input:
        cohort_qc_inputs,
    output:
        table=group("qc.tsv"),
    params:
        sidecars=cohort_qc_params,
    conda:
        "../../environment.yml"
    log:
        str(LOGS / "cohort_qc.log"),
    benchmark:
        str(BENCHMARKS / "cohort_qc" / "group.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
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
    params:
        dataset=str(BIDS_DIR),
    conda:
        "../../environment.yml"
    log:
        str(LOGS / "report.log"),
    benchmark:
        str(BENCHMARKS / "report" / "group.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/report.py"
