# Input functions of the model stages' rules (workflow/rules/model.smk).
from pathlib import Path

import pandas as pd
from snakemake.logging import logger

from connex.config import participants_folder
from connex.errors import ConfigError
from connex.evaluation.splits import can_cross_validate, min_subjects_per_class, trainings_per_split
from connex.model.dataset import atlas_relmats, selection
from connex.model.timeseries import atlas_timeseries
from connex.model.weighting import modality_weighting

if not MODELS_RUN:
    raise ConfigError(
        f"model.compare {MODEL['compare']}: none of these models can run on model.modalities "
        f"{MODEL_MODALITIES} (connex and early_fusion need sc and fc; connex_sc needs sc, connex_fc fc)."
    )
if MODELS_LEFT_OUT:
    logger.warning(
        f"Models left out: {MODELS_LEFT_OUT} need a modality model.modalities {MODEL_MODALITIES} "
        f"does not list; comparing {MODELS_RUN}."
    )


def model_weighting():
    """Edge weighting of each modality; the FC stage's matrices already hold Fisher z values when
    fc.fisher_z is on (a connectomes_dir's are read as they are)."""
    return modality_weighting(MODEL["fc_measure"], fc_is_fisher_z=config["fc"]["fisher_z"] and not CONNECTOMES_DIR)


def model_visits(visits):
    """participant label -> the visit whose connectome the model reads: model.select.session's
    (a participant without it is left out), or else the participant's first session in sorted
    order among these visits (those with the modality), as with connectomes_dir."""
    wanted = selection(MODEL["select"]).get("ses")
    chosen = {}
    for visit in sorted(visits, key=lambda v: (v.session is not None, v.session or "")):
        if wanted is None or visit.session == (wanted or None):
            chosen.setdefault(visit.subject, visit)
    return chosen


def model_modality_visits():
    """modality -> {participant_id: visit} of the labelled participants' connectomes this workflow
    makes (SC: usable DWI; FC: runs kept after scrubbing), one visit each (model_visits)."""
    table = inventory()
    labelled = set(table.loc[table["use_model"], "participant_id"])
    made = {
        "sc": visits_with("use_sc") if "sc" in MODEL_MODALITIES else [],
        "fc": fc_kept_visits() if "fc" in MODEL_MODALITIES else [],
    }
    if HAS_SESSIONS and not _SESSION_LOGGED:
        _SESSION_LOGGED.append(True)
        wanted = selection(MODEL["select"]).get("ses")
        logger.info(
            f"Model stages: each participant's connectomes of session {wanted} (model.select.session)"
            if wanted is not None
            else "Model stages: each participant's connectomes of its first session in sorted order "
            "(model.select.session: null; set it to choose)"
        )
    return {
        modality: {f"sub-{s}": v for s, v in model_visits(visits).items() if f"sub-{s}" in labelled}
        for modality, visits in made.items()
    }


def model_connectome_files(wildcards):
    """participant_id -> {"sc": path, "fc": path} of the connectomes the model reads (empty with
    connectomes_dir: the dataset stage searches that folder)."""
    if CONNECTOMES_DIR:
        return {}
    visits = model_modality_visits()
    files = {}
    for pid, visit in visits["sc"].items():
        files.setdefault(pid, {})["sc"] = sc_matrix(visit, MODEL_ATLAS, MODEL["sc_weight"])
    for pid, visit in visits["fc"].items():
        files.setdefault(pid, {})["fc"] = fc_matrix(visit, MODEL_ATLAS, MODEL["fc_measure"])
    return dict(sorted(files.items()))


_SESSION_LOGGED = []


def model_dataset_inputs(wildcards):
    """The connectome files and the participants.tsv the dataset reads (with connectomes_dir: its
    own, or else bids_dir's)."""
    if CONNECTOMES_DIR:  # every relmat of the atlas (atlas- or seg-), so that a changed matrix reruns the model
        files = [str(p) for p in atlas_relmats(CONNECTOMES_DIR, MODEL_ATLAS)]
        if "fc" in MODEL_MODALITIES and MODEL["fc_timeseries"] == "auto":
            files += [str(p) for p in atlas_timeseries(CONNECTOMES_DIR, MODEL_ATLAS)]
        participants = participants_folder(CONNECTOMES_DIR, config["bids_dir"]) / "participants.tsv"
        return {"participants": str(participants), "connectomes": files}
    files = model_connectome_files(wildcards)
    connectomes = sorted(p for f in files.values() for p in f.values())
    if "fc" in MODEL_MODALITIES and MODEL["fc_timeseries"] == "auto":  # read by the tangent baseline
        kept = fc_kept_runs()
        connectomes += [
            fc_timeseries(v, MODEL_ATLAS, f"{TASK}{key}")
            for v in model_modality_visits()["fc"].values()
            for key in kept[v]
        ]
    return {
        "participants": rules.synthesize_demo.output.bids if IS_DEMO else str(BIDS_DIR / "participants.tsv"),
        "connectomes": connectomes,
    }


def model_dataset_params(wildcards, input):
    """Where participants.tsv and the connectomes are, and which files to read."""
    if CONNECTOMES_DIR:
        participants = str(participants_folder(CONNECTOMES_DIR, config["bids_dir"]))
        return {"root": CONNECTOMES_DIR, "participants_dir": participants, "files": None}
    return {"root": str(DERIVATIVES), "participants_dir": str(BIDS_DIR), "files": model_connectome_files(wildcards)}


def model_splits():
    """Split names (after the cv_splits checkpoint has run)."""
    table = pd.read_csv(checkpoints.cv_splits.get().output.splits, sep="\t", usecols=["split"])
    return sorted(table["split"].unique())


def fold_file(kind, extension=".tsv"):
    """Path pattern of one split's table (wildcard split)."""
    return group(f"folds/split-{{split}}_{kind}{extension}")


def all_fold_files(kind, extension=".tsv"):
    """An input function: one kind of table of every split."""

    def files(wildcards):
        return [fold_file(kind, extension).format(split=s) for s in model_splits()]

    return files


def train_fold_runtime(wildcards):
    """Minutes a split's job may run: an hour for the six models, times the trainings of each
    (permutations, or a nested search); a cluster kills a job past its runtime."""
    cv = MODEL["cv"]
    return 60 * trainings_per_split(search=cv["search"], inner_folds=cv["inner_folds"], permutations=cv["permutations"])


def checkpoint_folder(wildcards, output):
    """Folder of a split's model checkpoints (None when none are saved: model.cv.checkpoints off,
    or no graph model compared)."""
    files = [output[f"checkpoint_{m}"] for m in CHECKPOINT_MODELS]
    return str(Path(files[0]).parent) if files else None


_MODEL_WARNED = []


def model_is_possible():
    """Whether the labelled participants of the inventory can fill the cross-validation. If not
    (an unlabelled or one-class dataset, such as a single volunteer), the model stages are left
    out of `all` and of the report with one warning, and the connectome stages still run."""
    if CONNECTOMES_DIR:
        return True
    table = inventory().drop_duplicates("participant_id")  # one row per session
    counts = table.loc[table["use_model"], "label"].value_counts()
    cv = MODEL["cv"]
    possible = can_cross_validate(counts, scheme=cv["scheme"], n_folds=cv["folds"])
    if not possible and not _MODEL_WARNED:
        _MODEL_WARNED.append(True)
        needed = min_subjects_per_class(cv["scheme"], cv["folds"])
        logger.warning(
            f"Model stages left out: the labelled participants are {counts.to_dict() or 'none'}; "
            f"{cv['folds']}-fold cross-validation needs at least {needed} of each of "
            f"{config['classes']}. `snakemake model` runs them anyway (and says why they fail)."
        )
    return possible
