# Input functions of the structural connectome stage's rules (workflow/rules/dwi.smk).
from dataclasses import fields

from connex.structural.tracking import TrackingParams


def subject_dwi_runs(wildcards):
    """The DWI runs the inventory found for one visit (bval/bvec beside each)."""
    runs = [str(BIDS_DIR / f) for f in visit_inventory_row(wildcards)["dwi"].split(";")]
    stems = [r[: -len(".nii.gz")] if r.endswith(".nii.gz") else r[: -len(".nii")] for r in runs]
    return {"dwi": runs, "bval": [f"{s}.bval" for s in stems], "bvec": [f"{s}.bvec" for s in stems]}


def sc_matrix(visit, atlas, weight):
    """Path of one structural connectome."""
    return deriv(visit, "dwi", "relmat", ".tsv", atlas=atlas, stat=weight)


def tracking_params():
    """The config's tracking settings: the fields of connex.structural.tracking.TrackingParams."""
    return {f.name: config["sc"][f.name] for f in fields(TrackingParams)}


def all_sc_outputs(wildcards):
    """The SC stage's outputs for every visit with usable DWI, every atlas and weight."""
    visits = visits_with("use_sc")
    return (
        outputs_of(rules.preprocess_dwi, visits)
        + outputs_of(rules.tractography, visits)
        + [sc_matrix(v, a, w) for v in visits for a in ATLASES for w in SC_WEIGHTS]
    )


def all_sc_figures(wildcards):
    """The SC QC figure of every visit with usable DWI, every atlas."""
    return [deriv(v, "figures", "qc", ".png", atlas=a, desc="sc") for v in visits_with("use_sc") for a in ATLASES]
