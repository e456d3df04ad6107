# Structural connectome stage: DWI preprocessing and DTI, tractography, one matrix per weight
# and atlas. Each step is one job per subject (and atlas), so any of them reruns on its own.


include: "functions/dwi.smk"


rule preprocess_dwi:
    """Denoise, unring, motion-correct and combine the DWI runs; b=0 -> T1w registration; brain
    mask and tissue maps in DWI space; DTI (FA, MD)."""
    input:
        unpack(subject_dwi_runs),
        **{tissue: rules.preprocess_anat.output[tissue] for tissue in TISSUES},
        preproc=rules.preprocess_anat.output.preproc,
        mask=rules.preprocess_anat.output.mask,
    output:
        **{tissue: deriv(VISIT, "dwi", "probseg", ".nii.gz", space="dwi", label=tissue) for tissue in TISSUES},
        dwi=deriv(VISIT, "dwi", "dwi", ".nii.gz", space="dwi", desc="preproc"),
        bval=deriv(VISIT, "dwi", "dwi", ".bval", space="dwi", desc="preproc"),
        bvec=deriv(VISIT, "dwi", "dwi", ".bvec", space="dwi", desc="preproc"),
        sidecar=deriv(VISIT, "dwi", "dwi", ".json", space="dwi", desc="preproc"),
        mask=deriv(VISIT, "dwi", "mask", ".nii.gz", space="dwi", desc="brain"),
        xfm=deriv(VISIT, "dwi", "xfm", ".txt", from_="T1w", to="dwi", mode="image"),
        motion=deriv(VISIT, "dwi", "motion", ".tsv", space="dwi", desc="volumes"),
        fa=deriv(VISIT, "dwi", "dwimap", ".nii.gz", space="dwi", model="tensor", param="fa"),
        md=deriv(VISIT, "dwi", "dwimap", ".nii.gz", space="dwi", model="tensor", param="md"),
    log:
        log_path("preprocess_dwi", "subject"),
    benchmark:
        benchmark_path("preprocess_dwi", "subject")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        denoise=config["sc"]["denoise"],
        gibbs=config["sc"]["gibbs_unringing"],
        motion_correction=config["sc"]["motion_correction"],
        b0_threshold=config["sc"]["b0_threshold"],
    script:
        "../scripts/preprocess_dwi.py"


rule tractography:
    """fODF model (CSD or CSA) and deterministic or probabilistic tracking (a .trk tractogram)."""
    input:
        **{tissue: rules.preprocess_dwi.output[tissue] for tissue in TISSUES},
        dwi=rules.preprocess_dwi.output.dwi,
        bval=rules.preprocess_dwi.output.bval,
        bvec=rules.preprocess_dwi.output.bvec,
        mask=rules.preprocess_dwi.output.mask,
        fa=rules.preprocess_dwi.output.fa,
    output:
        tractogram=deriv(VISIT, "dwi", "tractography", ".trk", space="dwi"),
        sidecar=deriv(VISIT, "dwi", "tractography", ".json", space="dwi"),
    log:
        log_path("tractography", "subject"),
    benchmark:
        benchmark_path("tractography", "subject")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tracking=tracking_params(),
        b0_threshold=config["sc"]["b0_threshold"],
    script:
        "../scripts/tractography.py"


rule structural_connectome:
    """One atlas in DWI space and the SC matrices (count, count/volume, length, FA) with a QC figure."""
    input:
        tractogram=rules.tractography.output.tractogram,
        tracking=rules.tractography.output.sidecar,
        mask=rules.preprocess_dwi.output.mask,
        fa=rules.preprocess_dwi.output.fa,
        xfm=rules.preprocess_dwi.output.xfm,
        atlas_t1w=rules.atlas_to_t1w.output.dseg,
        atlas_table=rules.atlas_to_t1w.output.table,
    output:
        **{f"meas_{w}": sc_matrix(VISIT, "{atlas}", w) for w in SC_WEIGHTS},
        **{f"sidecar_{w}": json_beside(sc_matrix(VISIT, "{atlas}", w)) for w in SC_WEIGHTS},
        dseg=deriv(VISIT, "dwi", "dseg", ".nii.gz", space="dwi", atlas="{atlas}"),
        dseg_table=deriv(VISIT, "dwi", "dseg", ".tsv", space="dwi", atlas="{atlas}"),
        figure=deriv(VISIT, "figures", "qc", ".png", atlas="{atlas}", desc="sc"),
    log:
        log_path("structural_connectome", "subject", "atlas"),
    benchmark:
        benchmark_path("structural_connectome", "subject", "atlas")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        atlas=atlas_params,
        title=VISIT.label,
        weights=SC_WEIGHTS,
        assignment_radius_mm=config["sc"]["assignment_radius_mm"],
        self_loops=config["sc"]["self_loops"],
    script:
        "../scripts/structural_connectome.py"


rule sc:
    """Target: every structural connectome."""
    input:
        all_sc_outputs,
        all_sc_figures,
