# What every stage shares, included first: the constants read from the config; the path helpers
# (every path is built by connex.inputs.paths); the log and benchmark paths of a job; the
# inventory. A stage's own input functions are in workflow/rules/functions/<stage>.smk (a file
# of functions only, as `snakemake --lint` asks), and the policies they apply in the package.
from pathlib import Path

from connex import registry
from connex.functional.stage import cleaning_params
from connex.inputs.bids import read_inventory
from connex.inputs.paths import bids_path, group_path, sidecar_path
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


def existing_subjects():
    """Participant labels of the BIDS folders that exist now (for wildcard constraints)."""
    if not BIDS_DIR.is_dir():
        return []
    return sorted(p.name[4:] for p in BIDS_DIR.glob("sub-*") if p.is_dir())


wildcard_constraints:
    subject="|".join(existing_subjects()) or "[a-zA-Z0-9]+",
    atlas="|".join(ATLASES),


# ------------------------------------------------------------------------------------ paths
def deriv(subject, datatype, suffix, extension, **entities):
    """Path of a per-subject derivative (a Snakemake pattern when subject is "{subject}")."""
    return str(
        bids_path(DERIVATIVES, subject=subject, datatype=datatype, suffix=suffix, extension=extension, **entities)
    )


def json_beside(path):
    """The JSON sidecar written beside a data file (declared as an output of the same job)."""
    return str(sidecar_path(path))


def group(name):
    """Path of a cohort-level derivative."""
    return str(group_path(DERIVATIVES, name))


def outputs_of(rule, subjects):
    """Every output of a per-subject rule for these participants. Stage targets name all of them,
    not only the last file of the chain: an intermediate lost to a killed job (a tractogram, a
    preprocessed DWI) is then made again instead of being silently missing."""
    return [path.format(subject=s) for s in subjects for path in rule.output]


def job_name(*wildcards):
    """A job's file name from its rule's wildcards, BIDS-style: ("subject", "atlas") ->
    "sub-{subject}_atlas-{atlas}"; "group" for a cohort-level rule (no wildcard)."""
    return "_".join(f"{'sub' if w == 'subject' else w}-{{{w}}}" for w in wildcards) or "group"


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


def subjects_with(column):
    """Participant labels (without "sub-") whose availability column is true."""
    table = inventory()
    return sorted({pid[4:] for pid in table.loc[table[column], "participant_id"]})


def subject_inventory_row(wildcards):
    """The availability-table row of one participant (first session)."""
    table = inventory()
    rows = table[table["participant_id"] == f"sub-{wildcards.subject}"]
    return rows.iloc[0]
