# Input stage: the synthetic demo cohort, the BIDS inventory, and per-subject input QC.


include: "functions/inputs.smk"


rule synthesize_demo:
    """Generate the synthetic demo cohort (only when bids_dir is "demo")."""
    output:
        bids=directory(str(BIDS_DIR)),
    log:
        log_path("synthesize_demo"),
    benchmark:
        benchmark_path("synthesize_demo")
    conda:
        "../../environment.yml"
    # Nothing else can run before the demo exists: its participants are rendered side by side.
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        subjects=config["demo"]["subjects"],
        seed=config["demo"]["seed"],
        sites=config["demo"]["sites"],
        regions=config["demo"]["regions"],
    script:
        "../scripts/synthesize_demo.py"


checkpoint bids_inventory:
    """Find and validate every participant's inputs; write the availability table."""
    input:
        bids=bids_dataset_input(),
    output:
        table=group("availability.tsv"),
        description=str(DERIVATIVES / "dataset_description.json"),
        bidsignore=str(DERIVATIVES / ".bidsignore"),
    log:
        log_path("bids_inventory"),
    benchmark:
        benchmark_path("bids_inventory")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        bids_dir=bids_root,
        task=config["bold_task"],
        label_column=config["label_column"],
        classes=config["classes"],
        site_column=config["site_column"],
        include=config["participants"]["include"],
        exclude=config["participants"]["exclude"],
        strict=config["strict_inputs"],
        partial_dwi=config["partial_dwi"],
        dwi_acquisition=config["dwi_acquisition"],
    script:
        "../scripts/bids_inventory.py"


rule input_qc:
    """A figure of one participant's raw T1w, DWI and BOLD."""
    input:
        table=rules.bids_inventory.output.table,
        images=subject_raw_files,
    output:
        figure=deriv(VISIT, "figures", "qc", ".png", desc="inputs"),
    log:
        log_path("input_qc", "subject"),
    benchmark:
        benchmark_path("input_qc", "subject")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        bids_dir=str(BIDS_DIR),
        participant_id=VISIT.label,
        files=subject_qc_params,
    script:
        "../scripts/input_qc.py"


rule inputs:
    """Named target: the inventory and every participant's input QC figure."""
    input:
        rules.bids_inventory.output.table,
        all_input_qc_figures,
