# Shared paths and helpers. Every output path is built by connex.paths (one helper).
from pathlib import Path

from connex.inputs.bids import read_inventory
from connex.inputs.paths import bids_path, group_path, sidecar_path

OUTPUT_DIR = Path(config["output_dir"])
DERIVATIVES = OUTPUT_DIR / "connex"
LOGS = OUTPUT_DIR / "logs"
BENCHMARKS = OUTPUT_DIR / "benchmarks"
IS_DEMO = config["bids_dir"] == "demo"
BIDS_DIR = OUTPUT_DIR / "demo" / "bids" if IS_DEMO else Path(config["bids_dir"])


def existing_subjects():
    """Participant labels of the BIDS folders that exist now (for wildcard constraints)."""
    if not BIDS_DIR.is_dir():
        return []
    return sorted(p.name[4:] for p in BIDS_DIR.glob("sub-*") if p.is_dir())


wildcard_constraints:
    subject="|".join(existing_subjects()) or "[a-zA-Z0-9]+",


def deriv(subject, datatype, suffix, extension, **entities):
    """Path of a per-subject derivative (a Snakemake pattern when subject is "{subject}")."""
    return str(bids_path(DERIVATIVES, subject, datatype, suffix, extension, **entities))


def json_beside(path):
    """The JSON sidecar written beside a data file (declared as an output of the same job)."""
    return str(sidecar_path(path))


def group(name):
    """Path of a cohort-level derivative."""
    return str(group_path(DERIVATIVES, name))


def bids_dataset_input():
    """What the inventory reads: the demo cohort (made by a rule) or the user's participants.tsv."""
    if IS_DEMO:
        return rules.synthesize_demo.output.bids
    return str(BIDS_DIR / "participants.tsv")


def bids_root(wildcards, input):
    """The BIDS folder, from the inventory's input (the folder itself, or its participants.tsv)."""
    return input.bids if IS_DEMO else str(Path(input.bids).parent)


def inventory():
    """The availability table (after the bids_inventory checkpoint has run)."""
    return read_inventory(checkpoints.bids_inventory.get().output.table)


def subjects_with(column):
    """Participant labels (without "sub-") whose availability column is true."""
    table = inventory()
    return sorted({pid[4:] for pid in table.loc[table[column], "participant_id"]})


def subject_inventory_row(wildcards):
    """The availability-table row of one participant (first session)."""
    table = inventory()
    rows = table[table["participant_id"] == f"sub-{wildcards.subject}"]
    return rows.iloc[0]


def subject_raw_files(wildcards):
    """The raw files the input QC of one participant reads."""
    row = subject_inventory_row(wildcards)
    files = []
    for column in ("t1w", "dwi", "bold"):
        if isinstance(row[column], str):
            files += [str(BIDS_DIR / f) for f in row[column].split(";")]
    return files


def subject_qc_params(wildcards):
    """Relative paths of a participant's inputs, as in the availability table."""
    row = subject_inventory_row(wildcards)
    return {c: (row[c] if isinstance(row[c], str) else None) for c in ("t1w", "dwi", "bold", "reason")}


def all_input_qc_figures(wildcards):
    return [deriv(s, "figures", "qc", ".png", desc="inputs") for s in subjects_with("use_anat")]


# ------------------------------------------------------------------------- anatomy / atlases
from connex.anat.templates import MNI_SPACE

ATLASES = config["atlases"]


wildcard_constraints:
    atlas="|".join(ATLASES),


def subject_t1w(wildcards):
    """The T1w the inventory chose for one participant."""
    return str(BIDS_DIR / subject_inventory_row(wildcards)["t1w"])


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
        return [rules.synthesize_demo.output.bids] if IS_DEMO else [str(BIDS_DIR / "derivatives" / "groundtruth" / "atlas-synth_dseg.tsv")]
    return []


def outputs_of(rule, subjects):
    """Every output of a per-subject rule for these participants. Stage targets name all of them,
    not only the last file of the chain: an intermediate lost to a killed job (a tractogram, a
    preprocessed DWI) is then made again instead of being silently missing."""
    return [path.format(subject=s) for s in subjects for path in rule.output]


def all_anat_outputs(wildcards):
    subjects = subjects_with("use_anat")
    return (outputs_of(rules.preprocess_anat, subjects)
            + [deriv(s, "anat", "dseg", ".nii.gz", space="T1w", atlas=a) for s in subjects for a in ATLASES]
            + [group(f"atlas-{a}_dseg.tsv") for a in ATLASES])


def all_anat_figures(wildcards):
    subjects = subjects_with("use_anat")
    return [deriv(s, "figures", "qc", ".png", atlas=a, desc="registration") for s in subjects for a in ATLASES]


# ------------------------------------------------------------------------ structural connectomes
SC_WEIGHTS = ["count", "countvolnorm", "length", "fa"]


def subject_dwi_runs(wildcards):
    """The DWI runs the inventory found for one participant (bval/bvec beside each)."""
    runs = [str(BIDS_DIR / f) for f in subject_inventory_row(wildcards)["dwi"].split(";")]
    stems = [r[: -len(".nii.gz")] if r.endswith(".nii.gz") else r[: -len(".nii")] for r in runs]
    return {"dwi": runs, "bval": [f"{s}.bval" for s in stems], "bvec": [f"{s}.bvec" for s in stems]}


def sc_matrix(subject, atlas, weight):
    return deriv(subject, "dwi", "relmat", ".tsv", atlas=atlas, meas=weight)


def all_sc_outputs(wildcards):
    subjects = subjects_with("use_sc")
    return (outputs_of(rules.preprocess_dwi, subjects) + outputs_of(rules.tractography, subjects)
            + [sc_matrix(s, a, w) for s in subjects for a in ATLASES for w in SC_WEIGHTS])


def all_sc_figures(wildcards):
    return [deriv(s, "figures", "qc", ".png", atlas=a, desc="sc") for s in subjects_with("use_sc") for a in ATLASES]


# ------------------------------------------------------------------------ functional connectomes
import json

from snakemake.logging import logger

from connex.errors import BIDSError
from connex.functional.stage import cleaning_params, find_fmriprep_run

TASK = config["bold_task"]
FC_MEASURES = config["fc"]["measures"]
CLEANING = cleaning_params(config["fc"]).as_dict()
FMRIPREP_DIR = config["fc"]["fmriprep_dir"]


def subject_bold(wildcards):
    """The first BOLD run of the task the inventory found for one participant."""
    return str(BIDS_DIR / subject_inventory_row(wildcards)["bold"].split(";")[0])


def preprocessed_bold(wildcards):
    """The preprocessed run, its brain mask, confounds and sidecar: ConneX's, or fMRIPrep's."""
    if FMRIPREP_DIR:
        found = find_fmriprep_run(FMRIPREP_DIR, wildcards.subject, task=TASK, space=config["fc"]["fmriprep_space"])
        return {k: found[k] for k in ("bold", "mask", "confounds", "sidecar")}
    outputs = rules.preprocess_bold.output
    return {"bold": outputs.bold, "mask": outputs.mask, "confounds": outputs.confounds, "sidecar": outputs.sidecar}


def fc_atlas_inputs(wildcards):
    """The atlas in T1w space and the T1w -> BOLD transform (none for fMRIPrep's MNI-space runs)."""
    if FMRIPREP_DIR:
        return {}
    return {"atlas_t1w": deriv(wildcards.subject, "anat", "dseg", ".nii.gz", space="T1w", atlas=wildcards.atlas),
            "xfm": rules.preprocess_bold.output.xfm}


def fc_timeseries(subject, atlas):
    return deriv(subject, "func", "timeseries", ".tsv", task=TASK, atlas=atlas)


def fc_matrix(subject, atlas, measure):
    return deriv(subject, "func", "relmat", ".tsv", task=TASK, atlas=atlas, meas=measure)


def fc_candidates():
    """Participants whose BOLD goes into the FC stage (fMRIPrep mode: every listed participant
    with an fMRIPrep run; the others are logged)."""
    if not FMRIPREP_DIR:
        return subjects_with("use_fc")
    found = []
    for pid in inventory()["participant_id"].unique():
        try:
            find_fmriprep_run(FMRIPREP_DIR, pid[4:], task=TASK, space=config["fc"]["fmriprep_space"])
            found.append(pid[4:])
        except BIDSError as error:
            logger.warning(f"{pid}: left out of the FC stage: {error}")
    return sorted(found)


def fc_kept_subjects():
    """Participants whose run passed scrubbing (reads each bold_censoring checkpoint)."""
    kept = []
    for subject in fc_candidates():
        decision = checkpoints.bold_censoring.get(subject=subject).output.sidecar
        if json.loads(Path(decision).read_text())["Included"]:
            kept.append(subject)
    return kept


def all_fc_decisions(wildcards):
    """Every candidate's scrubbing decision (and, without fMRIPrep, its preprocessed run), named up
    front so that all BOLD jobs run in parallel (asked only through the checkpoint, they would
    come one subject at a time)."""
    subjects = fc_candidates()
    preprocessed = [] if FMRIPREP_DIR else outputs_of(rules.preprocess_bold, subjects)
    return preprocessed + [deriv(s, "func", "outliers", ".json", task=TASK) for s in subjects]


def all_fc_outputs(wildcards):
    return [fc_matrix(s, a, m) for s in fc_kept_subjects() for a in ATLASES for m in FC_MEASURES]


def all_fc_figures(wildcards):
    return [deriv(s, "figures", "qc", ".png", task=TASK, atlas=a, desc="fc") for s in fc_kept_subjects() for a in ATLASES]


# ------------------------------------------------------------------------------- model stages
from connex.model.dataset import detect_atlas

MODEL = config["model"]
CONNECTOMES_DIR = config["connectomes_dir"]
if MODEL["atlas"]:
    MODEL_ATLAS = MODEL["atlas"]
elif CONNECTOMES_DIR:
    MODEL_ATLAS = detect_atlas(CONNECTOMES_DIR)
else:
    MODEL_ATLAS = ATLASES[0]
GRAPH_MODELS = [m for m in MODEL["compare"] if m in ("connex", "connex_sc", "connex_fc", "early_fusion")]


def model_weighting():
    """Edge weighting of each modality: SC log1p; FC Fisher z for correlations (unless the FC
    stage already wrote z values), covariance as is."""
    correlation = MODEL["fc_measure"] in ("correlation", "partialcorrelation")
    fisher = correlation and not (config["fc"]["fisher_z"] and not CONNECTOMES_DIR)
    return {"sc": "log1p", "fc": "fisher_z" if fisher else "none"}


def model_connectome_files(wildcards):
    """participant_id -> {"sc": path, "fc": path} of the connectomes this workflow makes for the
    labelled participants (empty with connectomes_dir: the dataset stage searches that folder)."""
    if CONNECTOMES_DIR:
        return {}
    table = inventory()
    labelled = set(table.loc[table["use_model"], "participant_id"])
    files = {}
    for subject in subjects_with("use_sc"):
        if f"sub-{subject}" in labelled:
            files.setdefault(f"sub-{subject}", {})["sc"] = sc_matrix(subject, MODEL_ATLAS, MODEL["sc_weight"])
    for subject in fc_kept_subjects():
        if f"sub-{subject}" in labelled:
            files.setdefault(f"sub-{subject}", {})["fc"] = fc_matrix(subject, MODEL_ATLAS, MODEL["fc_measure"])
    return files


def model_dataset_inputs(wildcards):
    """The connectome files (or, with connectomes_dir, its participants.tsv) the dataset reads."""
    if CONNECTOMES_DIR:  # every relmat of the atlas, so that a changed matrix reruns the model stages
        files = sorted(str(p) for p in Path(CONNECTOMES_DIR).glob(f"sub-*/**/*_atlas-{MODEL_ATLAS}_*relmat.tsv"))
        return {"participants": str(Path(CONNECTOMES_DIR) / "participants.tsv"), "connectomes": files}
    files = model_connectome_files(wildcards)
    return {"participants": str(BIDS_DIR / "participants.tsv") if not IS_DEMO else rules.synthesize_demo.output.bids,
            "connectomes": sorted(p for f in files.values() for p in f.values())}


def model_dataset_params(wildcards, input):
    """Where participants.tsv and the connectomes are, and which files to read."""
    if CONNECTOMES_DIR:
        return {"root": CONNECTOMES_DIR, "participants_dir": CONNECTOMES_DIR, "files": None}
    return {"root": str(DERIVATIVES), "participants_dir": str(BIDS_DIR), "files": model_connectome_files(wildcards)}


def model_splits():
    """Split names (after the cv_splits checkpoint has run)."""
    import pandas as pd

    table = pd.read_csv(checkpoints.cv_splits.get().output.splits, sep="\t", usecols=["split"])
    return sorted(table["split"].unique())


def fold_file(kind, extension=".tsv"):
    return group(f"folds/split-{{split}}_{kind}{extension}")


def train_fold_runtime(wildcards):
    """Minutes a split's job may run: an hour for the six models, times the permutations and
    the nested search's trainings (a cluster kills a job past its runtime)."""
    import math

    cv = MODEL["cv"]
    searches = math.prod(len(v) for v in cv["search"].values()) * cv["inner_folds"] if cv["search"] else 0
    return 60 * (1 + cv["permutations"]) * (1 + searches)


def checkpoint_folder(wildcards, output):
    """Folder of a split's model checkpoints (None when no graph model is compared)."""
    files = [output[f"checkpoint_{m}"] for m in GRAPH_MODELS]
    return str(Path(files[0]).parent) if files else None


def all_fold_files(kind):
    def files(wildcards):
        return [fold_file(kind).format(split=s) for s in model_splits()]

    return files


_MODEL_WARNED = []


def model_is_possible():
    """Whether the labelled participants of the inventory can fill the cross-validation. If not
    (an unlabelled or one-class dataset, such as a single volunteer), the model stages are left
    out of `all` and of the report with one warning, and the connectome stages still run."""
    if CONNECTOMES_DIR:
        return True
    table = inventory()
    counts = table.loc[table["use_model"], "label"].value_counts()
    needed = MODEL["cv"]["folds"] if MODEL["cv"]["scheme"] == "kfold" else 1
    possible = len(counts) >= 2 and counts.min() >= needed
    if not possible and not _MODEL_WARNED:
        _MODEL_WARNED.append(True)
        logger.warning(f"Model stages left out: the labelled participants are {counts.to_dict() or 'none'}; "
                       f"{MODEL['cv']['folds']}-fold cross-validation needs at least {needed} of each of "
                       f"{config['classes']}. `snakemake model` runs them anyway (and says why they fail).")
    return possible


def report_model_inputs(wildcards):
    """The model results the report shows (none when the model stages cannot run)."""
    if not model_is_possible():
        return {}
    out = rules.model_results.output
    return {"metrics": out.metrics, "model_figures": [out.roc, out.confusion, out.importance]}


def all_static_outputs(wildcards):
    """Targets known before any checkpoint: the report (metrics.tsv with connectomes_dir). Kept
    apart from the per-subject targets, so a dry run lists them."""
    if CONNECTOMES_DIR:
        return [rules.model_results.output.metrics]
    return [rules.report.output.html]


def all_subject_outputs(wildcards):
    """Every per-subject output and metrics.tsv (after the inventory checkpoint); none with
    connectomes_dir."""
    if CONNECTOMES_DIR:
        return []
    model = [rules.model_results.output.metrics] if model_is_possible() else []
    return [*all_anat_outputs(wildcards), *all_sc_outputs(wildcards), *all_fc_decisions(wildcards),
            *all_fc_outputs(wildcards), *model]


# ------------------------------------------------------------------------------- cohort QC
from connex.report.cohort_qc import qc_sidecars


def cohort_qc_params(wildcards):
    """participant_id -> {stage: JSON path} of the QC sidecars this run makes for each participant
    (only those: a stale file of a stage that no longer runs for a participant is never read)."""
    anat, sc = set(subjects_with("use_anat")), set(subjects_with("use_sc"))
    fc, fc_kept = set(fc_candidates()), set(fc_kept_subjects())
    # The matrices the model reads, where this run makes them.
    atlas = MODEL_ATLAS if MODEL_ATLAS in ATLASES else ATLASES[0]
    fc_measure = MODEL["fc_measure"] if MODEL["fc_measure"] in FC_MEASURES else FC_MEASURES[0]
    table = {}
    for pid in inventory()["participant_id"].unique():
        subject = pid[4:]
        files = qc_sidecars(DERIVATIVES, subject, atlas=atlas, task=TASK, sc_weight=MODEL["sc_weight"],
                            fc_measure=fc_measure)
        made = {"anat_registration": subject in anat, "anat_atlas": subject in anat,
                "dwi_preproc": subject in sc, "dwi_tractography": subject in sc, "dwi_connectome": subject in sc,
                "bold_preproc": subject in fc and not FMRIPREP_DIR, "bold_censoring": subject in fc,
                "bold_connectome": subject in fc_kept}
        table[pid] = {stage: str(path) for stage, path in files.items() if made[stage]}
    return table


def cohort_qc_inputs(wildcards):
    return sorted({path for files in cohort_qc_params(wildcards).values() for path in files.values()})
