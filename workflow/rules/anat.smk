# Anatomy stage: T1w bias correction, brain extraction, registration to MNI152, tissue maps
# (the T1w's own segmentation, or the warped template priors), and every atlas in each subject's
# T1w space.
from connex.anat.templates import MNI_SPACE


include: "functions/anat.smk"


rule preprocess_anat:
    """N4, brain mask, dipy affine + SyN registration to MNI152, GM/WM/CSF maps in T1w space
    (Atropos with the warped priors, or the priors: anat.tissues) and their hard labels."""
    input:
        t1w=subject_t1w,
    output:
        **{tissue: deriv(VISIT, "anat", "probseg", ".nii.gz", label=tissue) for tissue in TISSUES},
        **{
            f"sidecar_{tissue}": json_beside(deriv(VISIT, "anat", "probseg", ".nii.gz", label=tissue))
            for tissue in TISSUES
        },
        dseg=deriv(VISIT, "anat", "dseg", ".nii.gz"),
        sidecar_dseg=json_beside(deriv(VISIT, "anat", "dseg", ".nii.gz")),
        dseg_table=deriv(VISIT, "anat", "dseg", ".tsv"),
        preproc=deriv(VISIT, "anat", "T1w", ".nii.gz", desc="preproc"),
        mask=deriv(VISIT, "anat", "mask", ".nii.gz", desc="brain"),
        affine=deriv(VISIT, "anat", "xfm", ".txt", from_="T1w", to=MNI_SPACE, mode="image", desc="affine"),
        warp=deriv(VISIT, "anat", "xfm", ".nii.gz", from_="T1w", to=MNI_SPACE, mode="image", desc="warp"),
        inverse_warp=deriv(VISIT, "anat", "xfm", ".nii.gz", from_=MNI_SPACE, to="T1w", mode="image", desc="warp"),
        metrics=deriv(VISIT, "anat", "qc", ".json", desc="registration"),
    log:
        log_path("preprocess_anat", "subject"),
    benchmark:
        benchmark_path("preprocess_anat", "subject")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        tissues=config["anat"]["tissues"],
    script:
        "../scripts/preprocess_anat.py"


rule composite_transforms:
    """Each direction of the T1w <-> MNI registration as one ITK composite .h5 (fMRIPrep's form),
    from the three transform files (a job of its own: upgraded output folders rerun nothing)."""
    input:
        mask=rules.preprocess_anat.output.mask,
        affine=rules.preprocess_anat.output.affine,
        warp=rules.preprocess_anat.output.warp,
        inverse_warp=rules.preprocess_anat.output.inverse_warp,
    output:
        composite=deriv(VISIT, "anat", "xfm", ".h5", from_="T1w", to=MNI_SPACE, mode="image"),
        inverse_composite=deriv(VISIT, "anat", "xfm", ".h5", from_=MNI_SPACE, to="T1w", mode="image"),
    log:
        log_path("composite_transforms", "subject"),
    benchmark:
        benchmark_path("composite_transforms", "subject")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/composite_transforms.py"


rule atlas_to_t1w:
    """One atlas in one subject's T1w space, its region report, and the registration QC figure."""
    input:
        preproc=rules.preprocess_anat.output.preproc,
        mask=rules.preprocess_anat.output.mask,
        affine=rules.preprocess_anat.output.affine,
        warp=rules.preprocess_anat.output.warp,
        inverse_warp=rules.preprocess_anat.output.inverse_warp,
        atlas_files=atlas_input_files,
    output:
        dseg=deriv(VISIT, "anat", "dseg", ".nii.gz", space="T1w", atlas="{atlas}"),
        sidecar=deriv(VISIT, "anat", "dseg", ".json", space="T1w", atlas="{atlas}"),
        table=deriv(VISIT, "anat", "dseg", ".tsv", space="T1w", atlas="{atlas}"),
        figure=deriv(VISIT, "figures", "qc", ".png", atlas="{atlas}", desc="registration"),
    log:
        log_path("atlas_to_t1w", "subject", "atlas"),
    benchmark:
        benchmark_path("atlas_to_t1w", "subject", "atlas")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        atlas=atlas_params,
        title=VISIT.label,
    script:
        "../scripts/atlas_to_t1w.py"


rule atlas_table:
    """The region table of one atlas (region order of every matrix made with it)."""
    input:
        atlas_files=atlas_input_files,
    output:
        table=group("atlas-{atlas}_dseg.tsv"),
        description=group("atlas-{atlas}_dseg.json"),
    log:
        log_path("atlas_table", "atlas"),
    benchmark:
        benchmark_path("atlas_table", "atlas")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        atlas=atlas_params,
    script:
        "../scripts/atlas_table.py"


rule anat:
    """Named target: the anatomy stage for every subject with a usable T1w, every atlas."""
    input:
        all_anat_outputs,
