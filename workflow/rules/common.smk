# What every stage shares, included first: the constants read from the config; the path helpers
# (every path is built by connex.inputs.paths); the log and benchmark paths of a job; the
# inventory. A stage's own input functions are in workflow/rules/functions/<stage>.smk (a file
# of functions only, as `snakemake --lint` asks), and the policies they apply in the package.
from pathlib import Path

from connex import registry
from connex.functional.stage import cleaning_params
from connex.inputs.bids import read_inventory
from connex.inputs.paths import Visit, bids_path, group_path, sidecar_path
from connex.model.dataset import detect_atlas

# ---------------------------------------------------------------------------- from the config
OUTPUT_DIR = Path(config["output_dir"])
DERIVATIVES = OUTPUT_DIR / "connex"
LOGS = OUTPUT_DIR / "logs"
BENCHMARKS = OUTPUT_DIR / "benchmarks"
IS_DEMO = config["bids_dir"] == "demo"
BIDS_DIR = OUTPUT_DIR / "demo" / "bids" if IS_DEMO else Path(config["bids_dir"])
ATLASES = config["atlases"]
TASK = config["bold_task"]
BOLD_TASK = f"{TASK}{{bold_run}}"  # the task entity of a per-run BOLD output (bold_run: "" or "_run-<label>")
SC_WEIGHTS = list(registry.SC_WEIGHTS)
TISSUES = list(registry.TISSUES)
FC_MEASURES = config["fc"]["measures"]
CLEANING = cleaning_params(config["fc"]).as_dict()
FMRIPREP_DIR = config["fc"]["fmriprep_dir"]
MODEL = config["model"]
CONNECTOMES_DIR = config["connectomes_dir"]
if MODEL["atlas"]:
    MODEL_ATLAS = MODEL["atlas"]
elif CONNECTOMES_DIR:
    MODEL_ATLAS = detect_atlas(CONNECTOMES_DIR)
else:
    MODEL_ATLAS = ATLASES[0]
MODEL_MODALITIES = MODEL["modalities"]
# the models of model.compare the cohort's modalities allow (model stages' rules and functions)
MODELS_RUN, MODELS_LEFT_OUT = registry.usable_models(MODEL["compare"], MODEL_MODALITIES)
GRAPH_MODELS = [m for m in MODELS_RUN if m in registry.GRAPH_MODELS]
# graph models whose weights each split saves (model.cv.checkpoints)
CHECKPOINT_MODELS = GRAPH_MODELS if MODEL["cv"]["checkpoints"] else []
# model.cv as the model jobs' parameter: without checkpoints (an output choice; switching it reruns nothing)
CV_PARAMS = {k: v for k, v in MODEL["cv"].items() if k != "checkpoints"}


def existing_subjects():
    """Participant labels of the BIDS folders that exist now (for wildcard constraints)."""
    if not BIDS_DIR.is_dir():
        return []
    return sorted(p.name[4:] for p in BIDS_DIR.glob("sub-*") if p.is_dir())


def existing_sessions():
    """Session labels of the BIDS folders that exist now (none in a dataset without ses- folders,
    and in the demo, which is made later and has no sessions)."""
    if not BIDS_DIR.is_dir():
        return []
    return sorted({p.name[4:] for p in BIDS_DIR.glob("sub-*/ses-*") if p.is_dir()})


# A dataset with sessions is processed per visit (participant and session): every per-subject
# path and job carries the session (sub-01/ses-1/...); without sessions, paths are as before.
SESSIONS = existing_sessions()
HAS_SESSIONS = bool(SESSIONS)
VISIT = Visit("{subject}", "{session}" if HAS_SESSIONS else None)  # the pattern of per-subject rules


wildcard_constraints:
    subject="|".join(existing_subjects()) or "[a-zA-Z0-9]+",
    session="|".join(SESSIONS) or "[a-zA-Z0-9]+",
    bold_run="(_run-[a-zA-Z0-9]+)?",
    atlas="|".join(ATLASES),


# ------------------------------------------------------------------------------------ paths
def deriv(visit, datatype, suffix, extension, **entities):
    """Path of a per-visit derivative (a Snakemake pattern for VISIT)."""
    return str(
        bids_path(
            DERIVATIVES,
            subject=visit.subject,
            session=visit.session,
            datatype=datatype,
            suffix=suffix,
            extension=extension,
            **entities,
        )
    )


def json_beside(path):
    """The JSON sidecar written beside a data file (declared as an output of the same job)."""
    return str(sidecar_path(path))


def group(name):
    """Path of a cohort-level derivative."""
    return str(group_path(DERIVATIVES, name))


def outputs_of(rule, visits):
    """Every output of a per-visit rule for these visits. Stage targets name all of them, not
    only the last file of the chain: an intermediate lost to a killed job (a tractogram, a
    preprocessed DWI) is then made again instead of being silently missing."""
    return [path.format(**v.wildcards) for v in visits for path in rule.output]


def job_name(*wildcards):
    """A job's file name from its rule's wildcards, BIDS-style: ("subject", "atlas") ->
    "sub-{subject}_atlas-{atlas}" ("sub-{subject}_ses-{session}_atlas-{atlas}" in a dataset with
    sessions); a BOLD run's jobs "sub-{subject}_task-rest{bold_run}"; "group" for a cohort-level
    rule (no wildcard)."""
    if HAS_SESSIONS and "subject" in wildcards:
        wildcards = tuple(w for s in wildcards for w in (("subject", "session") if s == "subject" else (s,)))
    names = {"subject": "sub-{subject}", "session": "ses-{session}", "bold_run": f"task-{BOLD_TASK}"}
    return "_".join(names.get(w, f"{w}-{{{w}}}") for w in wildcards) or "group"


def log_path(rule, *wildcards):
    """The log of a rule's jobs: logs/<rule>/<job_name>.log, or logs/<rule>.log for a
    cohort-level rule."""
    return str(LOGS / rule / f"{job_name(*wildcards)}.log" if wildcards else LOGS / f"{rule}.log")


def benchmark_path(rule, *wildcards):
    """The benchmark of a rule's jobs: benchmarks/<rule>/<job_name>.tsv."""
    return str(BENCHMARKS / rule / f"{job_name(*wildcards)}.tsv")


# -------------------------------------------------------------------------------- inventory
def inventory():
    """The availability table (after the bids_inventory checkpoint has run)."""
    return read_inventory(checkpoints.bids_inventory.get().output.table)


def table_visit(row):
    """The Visit of an availability-table row."""
    session = row["session"]
    return Visit(row["participant_id"][4:], session if isinstance(session, str) else None)


def visits_with(column):
    """The visits (participant and session) whose availability column is true, in table order."""
    table = inventory()
    return [table_visit(row) for _, row in table[table[column]].iterrows()]


def wildcards_visit(wildcards):
    """The Visit a per-visit job's wildcards name."""
    return Visit(wildcards.subject, wildcards.session if HAS_SESSIONS else None)


def visit_inventory_row(wildcards):
    """The availability-table row of the visit a job's wildcards name."""
    return inventory_row(wildcards_visit(wildcards))


def inventory_row(visit):
    """The availability-table row of one visit."""
    table = inventory()
    same = table["participant_id"] == f"sub-{visit.subject}"
    same &= table["session"] == visit.session if visit.session is not None else table["session"].isna()
    return table[same].iloc[0]
