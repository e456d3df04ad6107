# Functional connectome stage: per BOLD run of the task, preprocessing and confounds (or
# fMRIPrep's), scrubbing (a checkpoint: a run without enough clean data is left out) and per atlas
# the parcellated, cleaned time series; then per visit and atlas one matrix per measure from the
# kept runs (concatenated). The {bold_run} wildcard is "" or "_run-<label>" (bold_run_key),
# appended to the task entity, so a run's outputs keep its raw name (task-rest, task-rest_run-2).


include: "functions/func.smk"


rule preprocess_bold:
    """Dummy scans, slice timing, realignment, BOLD -> T1w registration, masks and tissue maps in
    BOLD space, confounds (fMRIPrep column names)."""
    input:
        **{tissue: rules.preprocess_anat.output[tissue] for tissue in TISSUES},
        bold=subject_bold,
        preproc=rules.preprocess_anat.output.preproc,
        mask=rules.preprocess_anat.output.mask,
    output:
        **{
            tissue: deriv(VISIT, "func", "probseg", ".nii.gz", task=BOLD_TASK, space="bold", label=tissue)
            for tissue in TISSUES
        },
        bold=deriv(VISIT, "func", "bold", ".nii.gz", task=BOLD_TASK, space="bold", desc="preproc"),
        sidecar=deriv(VISIT, "func", "bold", ".json", task=BOLD_TASK, space="bold", desc="preproc"),
        mask=deriv(VISIT, "func", "mask", ".nii.gz", task=BOLD_TASK, space="bold", desc="brain"),
        xfm=deriv(VISIT, "func", "xfm", ".txt", task=BOLD_TASK, from_="T1w", to="bold", mode="image"),
        confounds=deriv(VISIT, "func", "timeseries", ".tsv", task=BOLD_TASK, desc="confounds"),
        confounds_json=deriv(VISIT, "func", "timeseries", ".json", task=BOLD_TASK, desc="confounds"),
    log:
        log_path("preprocess_bold", "subject", "bold_run"),
    benchmark:
        benchmark_path("preprocess_bold", "subject", "bold_run")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **{k: config["fc"][k] for k in ("dummy_scans", "min_volumes", "slice_timing", "n_compcor")},
        bids_dir=str(BIDS_DIR),
    script:
        "../scripts/preprocess_bold.py"


checkpoint bold_censoring:
    """Scrubbing by framewise displacement; the JSON says whether the run is kept, and why not."""
    input:
        unpack(preprocessed_bold),
    output:
        outliers=deriv(VISIT, "func", "outliers", ".tsv", task=BOLD_TASK),
        sidecar=deriv(VISIT, "func", "outliers", ".json", task=BOLD_TASK),
    log:
        log_path("bold_censoring", "subject", "bold_run"),
    benchmark:
        benchmark_path("bold_censoring", "subject", "bold_run")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        cleaning=CLEANING,
    script:
        "../scripts/bold_censoring.py"


rule region_timeseries:
    """One atlas on a run's BOLD grid: the cleaned region time series and the run's QC figure."""
    input:
        unpack(preprocessed_bold),
        unpack(fc_atlas_inputs),
        outliers=rules.bold_censoring.output.outliers,
        decision=rules.bold_censoring.output.sidecar,
        atlas_files=atlas_input_files,
    output:
        timeseries=fc_timeseries(VISIT, "{atlas}", BOLD_TASK),
        sidecar=json_beside(fc_timeseries(VISIT, "{atlas}", BOLD_TASK)),
        figure=deriv(VISIT, "figures", "qc", ".png", task=BOLD_TASK, atlas="{atlas}", desc="fc"),
    log:
        log_path("region_timeseries", "subject", "bold_run", "atlas"),
    benchmark:
        benchmark_path("region_timeseries", "subject", "bold_run", "atlas")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        atlas=atlas_params,
        title=f"{VISIT.label}_task-{BOLD_TASK}",
        cleaning=CLEANING,
    script:
        "../scripts/region_timeseries.py"


rule functional_connectome:
    """One matrix per measure from the time series of a visit's kept runs (concatenated)."""
    input:
        timeseries=kept_run_timeseries,
    output:
        **{f"meas_{m}": fc_matrix(VISIT, "{atlas}", m) for m in FC_MEASURES},
        **{f"sidecar_{m}": json_beside(fc_matrix(VISIT, "{atlas}", m)) for m in FC_MEASURES},
    log:
        log_path("functional_connectome", "subject", "atlas"),
    benchmark:
        benchmark_path("functional_connectome", "subject", "atlas")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        measures=FC_MEASURES,
        fisher_z=config["fc"]["fisher_z"],
        estimator=config["fc"]["covariance_estimator"],
    script:
        "../scripts/functional_connectome.py"


rule fc:
    """Target: every functional connectome of the runs kept after scrubbing."""
    input:
        all_fc_decisions,
        all_fc_outputs,
        all_fc_figures,
