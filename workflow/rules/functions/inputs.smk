# Input functions of the input stage's rules (workflow/rules/inputs.smk).
from pathlib import Path


def bids_dataset_input():
    """What the inventory reads: the demo cohort (made by a rule) or the user's participants.tsv."""
    if IS_DEMO:
        return rules.synthesize_demo.output.bids
    return str(BIDS_DIR / "participants.tsv")


def bids_root(wildcards, input):
    """The BIDS folder, from the inventory's input (the folder itself, or its participants.tsv)."""
    return input.bids if IS_DEMO else str(Path(input.bids).parent)


def subject_raw_files(wildcards):
    """The raw files the input QC of one visit reads."""
    row = visit_inventory_row(wildcards)
    files = []
    for column in ("t1w", "dwi", "bold"):
        if isinstance(row[column], str):
            files += [str(BIDS_DIR / f) for f in row[column].split(";")]
    return files


def subject_qc_params(wildcards):
    """Relative paths of a participant's inputs, as in the availability table."""
    row = visit_inventory_row(wildcards)
    return {c: (row[c] if isinstance(row[c], str) else None) for c in ("t1w", "dwi", "bold", "reason")}


def all_input_qc_figures(wildcards):
    """The input QC figure of every visit with a usable T1w."""
    return [deriv(v, "figures", "qc", ".png", desc="inputs") for v in visits_with("use_anat")]
