# Functional connectome stage: BOLD preprocessing and confounds (or fMRIPrep's), scrubbing (a
# checkpoint: a run without enough clean data is left out), then per atlas the parcellated time
# series and one matrix per measure. One job per subject (and atlas).


rule preprocess_bold:
    """Dummy scans, slice timing, realignment, BOLD -> T1w registration, masks and tissue maps in
    BOLD space, confounds (fMRIPrep column names)."""
    input:
        bold=subject_bold,
        preproc=rules.preprocess_anat.output.preproc,
        mask=rules.preprocess_anat.output.mask,
        gm=rules.preprocess_anat.output.gm,
        wm=rules.preprocess_anat.output.wm,
        csf=rules.preprocess_anat.output.csf,
    output:
        bold=deriv("{subject}", "func", "bold", ".nii.gz", task=TASK, space="bold", desc="preproc"),
        sidecar=deriv("{subject}", "func", "bold", ".json", task=TASK, space="bold", desc="preproc"),
        mask=deriv("{subject}", "func", "mask", ".nii.gz", task=TASK, space="bold", desc="brain"),
        xfm=deriv("{subject}", "func", "xfm", ".txt", task=TASK, from_="T1w", to="bold", mode="image"),
        confounds=deriv("{subject}", "func", "timeseries", ".tsv", task=TASK, desc="confounds"),
        confounds_json=deriv("{subject}", "func", "timeseries", ".json", task=TASK, desc="confounds"),
        GM=deriv("{subject}", "func", "probseg", ".nii.gz", task=TASK, space="bold", label="GM"),
        WM=deriv("{subject}", "func", "probseg", ".nii.gz", task=TASK, space="bold", label="WM"),
        CSF=deriv("{subject}", "func", "probseg", ".nii.gz", task=TASK, space="bold", label="CSF"),
    params:
        bids_dir=str(BIDS_DIR),
        **{k: config["fc"][k] for k in ("dummy_scans", "min_volumes", "slice_timing", "n_compcor")},
    conda:
        "../../environment.yml"
    log:
        str(LOGS / "preprocess_bold" / "sub-{subject}.log"),
    benchmark:
        str(BENCHMARKS / "preprocess_bold" / "sub-{subject}.tsv")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/preprocess_bold.py"


checkpoint bold_censoring:
    """Scrubbing by framewise displacement; the JSON says whether the run is kept, and why not."""
    input:
        unpack(preprocessed_bold),
    output:
        outliers=deriv("{subject}", "func", "outliers", ".tsv", task=TASK),
        sidecar=deriv("{subject}", "func", "outliers", ".json", task=TASK),
    params:
        cleaning=CLEANING,
    conda:
        "../../environment.yml"
    log:
        str(LOGS / "bold_censoring" / "sub-{subject}.log"),
    benchmark:
        str(BENCHMARKS / "bold_censoring" / "sub-{subject}.tsv")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/bold_censoring.py"


rule functional_connectome:
    """One atlas on the BOLD grid, cleaned region time series and one matrix per measure, QC figure."""
    input:
        unpack(preprocessed_bold),
        unpack(fc_atlas_inputs),
        outliers=rules.bold_censoring.output.outliers,
        decision=rules.bold_censoring.output.sidecar,
        atlas_files=atlas_input_files,
    output:
        timeseries=fc_timeseries("{subject}", "{atlas}"),
        **{f"meas_{m}": fc_matrix("{subject}", "{atlas}", m) for m in FC_MEASURES},
        **{f"sidecar_{m}": json_beside(fc_matrix("{subject}", "{atlas}", m)) for m in FC_MEASURES},
        timeseries_sidecar=json_beside(fc_timeseries("{subject}", "{atlas}")),
        figure=deriv("{subject}", "figures", "qc", ".png", task=TASK, atlas="{atlas}", desc="fc"),
    params:
        atlas=atlas_params,
        cleaning=CLEANING,
        measures=FC_MEASURES,
        fisher_z=config["fc"]["fisher_z"],
        estimator=config["fc"]["covariance_estimator"],
    conda:
        "../../environment.yml"
    log:
        str(LOGS / "functional_connectome" / "sub-{subject}_atlas-{atlas}.log"),
    benchmark:
        str(BENCHMARKS / "functional_connectome" / "sub-{subject}_atlas-{atlas}.tsv")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    script:
        "../scripts/functional_connectome.py"


rule fc:
    """Target: every functional connectome of the runs kept after scrubbing."""
    input:
        all_fc_decisions,
        all_fc_outputs,
        all_fc_figures,
