# Input functions of the functional connectome stage's rules (workflow/rules/func.smk).
import json
from pathlib import Path

from snakemake.logging import logger

from connex.functional.stage import find_fmriprep_run, fmriprep_run_keys
from connex.inputs.bids import bold_run_key


def visit_bold_runs(visit):
    """bold_run key -> raw BOLD file (relative to BIDS_DIR) of the task's runs the inventory
    found for a visit, in run order."""
    files = inventory_row(visit)["bold"]
    return {bold_run_key(f): f for f in files.split(";")} if isinstance(files, str) else {}


def subject_bold(wildcards):
    """The raw BOLD run a preprocess_bold job's wildcards name."""
    return str(BIDS_DIR / visit_bold_runs(wildcards_visit(wildcards))[wildcards.bold_run])


def fmriprep_run(visit, bold_run):
    """One visit's fMRIPrep run of the task (raises BIDSError when there is none)."""
    return find_fmriprep_run(
        FMRIPREP_DIR,
        visit.subject,
        session=visit.session,
        task=TASK,
        space=config["fc"]["fmriprep_space"],
        run=bold_run.removeprefix("_run-") or None,
    )


def preprocessed_bold(wildcards):
    """The preprocessed run, its brain mask, confounds and sidecar: ConneX's, or fMRIPrep's."""
    if FMRIPREP_DIR:
        found = fmriprep_run(wildcards_visit(wildcards), wildcards.bold_run)
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


def fc_timeseries(visit, atlas, task):
    """Path of one run's region time series (task: TASK plus the run's bold_run key)."""
    return deriv(visit, "func", "timeseries", ".tsv", task=task, atlas=atlas)


def fc_matrix(visit, atlas, measure):
    """Path of one functional connectome."""
    return deriv(visit, "func", "relmat", ".tsv", task=TASK, atlas=atlas, stat=measure)


def fc_candidates():
    """(visit, bold_run) of every BOLD run that goes into the FC stage: the raw runs the inventory
    found, or in fMRIPrep mode every run of the task fMRIPrep wrote for a visit of the inventory
    (whatever the raw BOLD; a visit without one is logged)."""
    if not FMRIPREP_DIR:
        return [(v, key) for v in visits_with("use_fc") for key in visit_bold_runs(v)]
    found = []
    for _, row in inventory().iterrows():
        visit = table_visit(row)
        keys = fmriprep_run_keys(
            FMRIPREP_DIR, visit.subject, session=visit.session, task=TASK, space=config["fc"]["fmriprep_space"]
        )
        if not keys:
            logger.warning(f"{visit.label}: left out of the FC stage: no fMRIPrep run of task {TASK} in {FMRIPREP_DIR}")
        found += [(visit, key) for key in keys]
    return found


def fc_kept_runs():
    """visit -> the bold_run keys of its runs that passed scrubbing (reads each bold_censoring
    checkpoint); visits without a kept run are absent."""
    kept = {}
    for visit, key in fc_candidates():
        decision = checkpoints.bold_censoring.get(**visit.wildcards, bold_run=key).output.sidecar
        if json.loads(Path(decision).read_text())["Included"]:
            kept.setdefault(visit, []).append(key)
    return kept


def fc_kept_visits():
    """Visits with at least one run kept after scrubbing: those that get a functional connectome."""
    return list(fc_kept_runs())


def kept_run_timeseries(wildcards):
    """The region time series of a visit's kept runs, one atlas (the functional_connectome job's input)."""
    visit = wildcards_visit(wildcards)
    keys = fc_kept_runs().get(visit, [])
    return [fc_timeseries(visit, wildcards.atlas, f"{TASK}{key}") for key in keys]


def all_fc_decisions(wildcards):
    """Every candidate run's scrubbing decision (and, without fMRIPrep, its preprocessed run),
    named up front so that all BOLD jobs run in parallel (asked only through the checkpoint, they
    would come one run at a time)."""
    runs = fc_candidates()
    preprocessed = [
        path.format(**v.wildcards, bold_run=key) for v, key in runs for path in rules.preprocess_bold.output
    ]
    decisions = [deriv(v, "func", "outliers", ".json", task=f"{TASK}{key}") for v, key in runs]
    return ([] if FMRIPREP_DIR else preprocessed) + decisions


def all_fc_outputs(wildcards):
    """Every functional connectome of the visits with a run kept after scrubbing, and the time
    series of each kept run."""
    kept = fc_kept_runs()
    matrices = [fc_matrix(v, a, m) for v in kept for a in ATLASES for m in FC_MEASURES]
    series = [fc_timeseries(v, a, f"{TASK}{key}") for v, keys in kept.items() for key in keys for a in ATLASES]
    return matrices + series


def all_fc_figures(wildcards):
    """The FC QC figure of every run kept after scrubbing, every atlas."""
    return [
        deriv(v, "figures", "qc", ".png", task=f"{TASK}{key}", atlas=a, desc="fc")
        for v, keys in fc_kept_runs().items()
        for key in keys
        for a in ATLASES
    ]
