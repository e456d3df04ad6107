# Input functions of the functional connectome stage's rules (workflow/rules/func.smk).
import json
from pathlib import Path

from snakemake.logging import logger

from connex.errors import BIDSError
from connex.functional.stage import find_fmriprep_run


def subject_bold(wildcards):
    """The first BOLD run of the task the inventory found for one visit."""
    return str(BIDS_DIR / visit_inventory_row(wildcards)["bold"].split(";")[0])


def fmriprep_run(visit):
    """One visit's fMRIPrep run of the task (raises BIDSError when there is none)."""
    return find_fmriprep_run(
        FMRIPREP_DIR, visit.subject, session=visit.session, task=TASK, space=config["fc"]["fmriprep_space"]
    )


def preprocessed_bold(wildcards):
    """The preprocessed run, its brain mask, confounds and sidecar: ConneX's, or fMRIPrep's."""
    if FMRIPREP_DIR:
        found = fmriprep_run(wildcards_visit(wildcards))
        return {k: found[k] for k in ("bold", "mask", "confounds", "sidecar")}
    outputs = rules.preprocess_bold.output
    return {"bold": outputs.bold, "mask": outputs.mask, "confounds": outputs.confounds, "sidecar": outputs.sidecar}


def fc_atlas_inputs(wildcards):
    """The atlas in T1w space and the T1w -> BOLD transform (none for fMRIPrep's MNI-space runs)."""
    if FMRIPREP_DIR:
        return {}
    return {
        "atlas_t1w": deriv(wildcards_visit(wildcards), "anat", "dseg", ".nii.gz", space="T1w", atlas=wildcards.atlas),
        "xfm": rules.preprocess_bold.output.xfm,
    }


def fc_timeseries(visit, atlas):
    """Path of one visit's region time series."""
    return deriv(visit, "func", "timeseries", ".tsv", task=TASK, atlas=atlas)


def fc_matrix(visit, atlas, measure):
    """Path of one functional connectome."""
    return deriv(visit, "func", "relmat", ".tsv", task=TASK, atlas=atlas, meas=measure)


def fc_candidates():
    """Visits whose BOLD goes into the FC stage (fMRIPrep mode: every visit of the inventory with
    an fMRIPrep run; the others are logged)."""
    if not FMRIPREP_DIR:
        return visits_with("use_fc")
    found = []
    for _, row in inventory().iterrows():
        visit = table_visit(row)
        try:
            fmriprep_run(visit)
            found.append(visit)
        except BIDSError as error:
            logger.warning(f"{visit.label}: left out of the FC stage: {error}")
    return found


def fc_kept_visits():
    """Visits whose run passed scrubbing (reads each bold_censoring checkpoint)."""
    kept = []
    for visit in fc_candidates():
        decision = checkpoints.bold_censoring.get(**visit.wildcards).output.sidecar
        if json.loads(Path(decision).read_text())["Included"]:
            kept.append(visit)
    return kept


def all_fc_decisions(wildcards):
    """Every candidate's scrubbing decision (and, without fMRIPrep, its preprocessed run), named up
    front so that all BOLD jobs run in parallel (asked only through the checkpoint, they would
    come one visit at a time)."""
    visits = fc_candidates()
    preprocessed = [] if FMRIPREP_DIR else outputs_of(rules.preprocess_bold, visits)
    return preprocessed + [deriv(v, "func", "outliers", ".json", task=TASK) for v in visits]


def all_fc_outputs(wildcards):
    """Every functional connectome of the runs kept after scrubbing."""
    return [fc_matrix(v, a, m) for v in fc_kept_visits() for a in ATLASES for m in FC_MEASURES]


def all_fc_figures(wildcards):
    """The FC QC figure of every run kept after scrubbing, every atlas."""
    return [deriv(v, "figures", "qc", ".png", task=TASK, atlas=a, desc="fc") for v in fc_kept_visits() for a in ATLASES]
