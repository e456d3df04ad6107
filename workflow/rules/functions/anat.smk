# Input functions of the anatomy stage's rules (workflow/rules/anat.smk).
def subject_t1w(wildcards):
    """The T1w the inventory chose for one visit."""
    return str(BIDS_DIR / visit_inventory_row(wildcards)["t1w"])


def atlas_params(wildcards):
    """How the atlas scripts load the atlas named by the wildcard."""
    return {
        "name": wildcards.atlas,
        "custom": config["custom_atlases"],
        # A synthetic cohort (the demo or one made by `connex synth`) carries its own atlas.
        "synth_dir": str(BIDS_DIR / "derivatives" / "groundtruth"),
    }


def atlas_input_files(wildcards):
    """Files an atlas is read from, so Snakemake waits for them (the demo's synth atlas is
    made with the cohort; a custom atlas is a user's file; built-in ones ship with packages)."""
    if wildcards.atlas in config["custom_atlases"]:
        spec = config["custom_atlases"][wildcards.atlas]
        return [spec["image"], spec["table"]]
    if wildcards.atlas == "synth":
        if IS_DEMO:
            return [rules.synthesize_demo.output.bids]
        return [str(BIDS_DIR / "derivatives" / "groundtruth" / "atlas-synth_dseg.tsv")]
    return []


def all_anat_outputs(wildcards):
    """The anatomy stage's outputs for every visit with a usable T1w, every atlas."""
    visits = visits_with("use_anat")
    return (
        outputs_of(rules.preprocess_anat, visits)
        + outputs_of(rules.composite_transforms, visits)
        + [deriv(v, "anat", "dseg", ".nii.gz", space="T1w", atlas=a) for v in visits for a in ATLASES]
        + [group(f"atlas-{a}_dseg.tsv") for a in ATLASES]
    )


def all_anat_figures(wildcards):
    """The registration QC figure of every visit with a usable T1w, every atlas."""
    visits = visits_with("use_anat")
    return [deriv(v, "figures", "qc", ".png", atlas=a, desc="registration") for v in visits for a in ATLASES]
