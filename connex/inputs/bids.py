"""Find and validate a subject's BIDS inputs; write the per-subject availability table.

Dataset-level mistakes (no participants.tsv, no label column, duplicate participants, a label
outside the declared classes) raise :class:`BIDSError` at once. A problem with one file (a
missing b-vector file, a 3-D BOLD...) leaves that subject out of the stages that need the
file, with the reason in the availability table and the log; ``strict=True`` raises instead.
The BIDS folder is only ever read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.errors import BIDSError, ConfigError, check_choice
from connex.inputs.checks import NIFTI_EXTENSIONS, bids_entities, check_bold, check_dwi, check_t1w
from connex.registry import PARTIAL_DWI_POLICIES

#: A BIDS participant label: ``sub-`` and letters and digits only (no path separators or dots).
PARTICIPANT_LABEL = re.compile(r"sub-[A-Za-z0-9]+")

log = logging.getLogger(__name__)

MISSING_LABELS = {"", "n/a", "na", "nan"}


# ------------------------------------------------------------------------- participants.tsv

def read_participants(bids_dir: str | Path, *, label_column: str = "diagnosis",
                      classes: tuple[str, ...] = ("HC", "SZ"), site_column: str | None = "site"
                      ) -> pd.DataFrame:
    """Read and check ``participants.tsv``.

    Returns the table indexed by ``participant_id`` with a ``label`` column holding the class
    (``None`` where the label is ``n/a``: such a participant is processed but not modelled).

    Raises
    ------
    BIDSError
        No participants.tsv; no ``participant_id`` or ``label_column`` column; duplicate
        participants; a participant_id without the ``sub-`` prefix; a label outside ``classes``.
    """
    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        raise BIDSError(f"{path}: not found; expected a tab-separated participants.tsv with columns "
                        f"'participant_id' and '{label_column}'.")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise BIDSError(f"{path}: not a readable tab-separated table ({error}).") from error
    for column in ("participant_id", label_column):
        if column not in table.columns:
            raise BIDSError(f"{path}: no '{column}' column; expected columns 'participant_id' and "
                            f"'{label_column}' (the label column is set by 'label_column' in the config); "
                            f"found {list(table.columns)}.")
    if site_column and site_column not in table.columns:
        log.warning("%s: no site column '%s'; every participant is taken as one site.", path, site_column)
    ids = table["participant_id"].str.strip()
    bad_prefix = sorted(ids[~ids.str.startswith("sub-")])
    if bad_prefix:
        raise BIDSError(f"{path}: participant_id values must start with 'sub-'; got {bad_prefix}.")
    invalid = sorted(i for i in ids if not PARTICIPANT_LABEL.fullmatch(i))
    if invalid:  # checked before any path is built from a label
        raise BIDSError(f"{path}: participant_id values must be BIDS labels, 'sub-' followed by letters and digits "
                        f"only; got {invalid[:10]}.")
    duplicated = sorted(ids[ids.duplicated()].unique())
    if duplicated:
        raise BIDSError(f"{path}: duplicate participant_id {duplicated}; each participant must appear once.")
    labels = table[label_column].str.strip()
    missing = labels.str.lower().isin(MISSING_LABELS)
    unknown = labels[~missing & ~labels.isin(classes)]
    if len(unknown):
        offenders = ", ".join(f"{ids[i]}={labels[i]!r}" for i in unknown.index)
        raise BIDSError(f"{path}: column '{label_column}' has labels outside the declared classes "
                        f"{list(classes)}: {offenders}. Fix the file or set 'classes' in the config.")
    if missing.any():
        log.warning("%s: %d participant(s) with no '%s' (n/a): %s; they are processed but left out "
                    "of the model.", path, missing.sum(), label_column, sorted(ids[missing]))
    table = table.assign(participant_id=ids, label=labels.where(~missing, None))
    if site_column and site_column in table.columns:
        table["site"] = table[site_column].str.strip().replace({"n/a": None, "": None})
    else:
        table["site"] = None
    return table.set_index("participant_id")


# ------------------------------------------------------------------------------ discovery

@dataclass
class SubjectInputs:
    """What was found for one participant (and session), and why parts are left out."""

    participant_id: str
    session: str | None
    t1w: Path | None = None
    dwi: list[Path] = field(default_factory=list)
    bold: list[Path] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=lambda: {"anat": [], "dwi": [], "func": []})


def find_inputs(bids_dir: str | Path, participant_id: str, session: str | None, *, task: str,
                strict: bool = False, partial_dwi: str = "exclude", dwi_acquisition: str | None = None,
                t1w_session: str | None = None) -> SubjectInputs:
    """Find and check the T1w, DWI runs and BOLD runs of ``task`` for one participant.

    ``t1w_session``: a session whose T1w stands in when this session has none (longitudinal
    datasets often scan the T1w once); the atlas then reaches this session's DWI and BOLD through
    that T1w (each run is registered to it).

    ``partial_dwi`` (:data:`connex.registry.PARTIAL_DWI_POLICIES`): when some DWI runs fail the
    check and others pass, ``exclude`` keeps none (SC is left out), ``use_remaining`` keeps those
    that pass. The DWI runs kept are those of one acquisition (:func:`one_acquisition`)."""
    check_choice("partial_dwi", partial_dwi, PARTIAL_DWI_POLICIES)
    bids_dir = Path(bids_dir)
    folder = bids_dir / participant_id / (f"ses-{session}" if session else "")
    found = SubjectInputs(participant_id, session)

    def problem(modality: str, message: str) -> None:
        if strict:
            raise BIDSError(message)
        log.warning("%s: %s", participant_id, message)
        found.problems[modality].append(message)

    t1w_files = _nifti_files(folder / "anat", "T1w")
    if not t1w_files and t1w_session is not None:
        t1w_files = _nifti_files(bids_dir / participant_id / f"ses-{t1w_session}" / "anat", "T1w")
        log.info("%s ses-%s: no T1w in this session; using ses-%s's", participant_id, session, t1w_session)
    if not t1w_files:
        problem("anat", f"no T1w image in {folder / 'anat'} (expected *_T1w.nii[.gz])")
    t1w_passing = _passing(t1w_files, check_t1w, "anat", problem)
    found.t1w = t1w_passing[0] if t1w_passing else None
    for candidate in t1w_passing[1:]:
        log.info("%s: several T1w images; using %s, not %s", participant_id, found.t1w.name, candidate.name)

    found.dwi = _find_dwi(folder, participant_id, problem, partial_dwi=partial_dwi, dwi_acquisition=dwi_acquisition)

    bold_files = [f for f in _nifti_files(folder / "func", "bold") if f"_task-{task}_" in f.name]
    if not bold_files:
        other_tasks = sorted({m.group(1) for f in _nifti_files(folder / "func", "bold")
                              if (m := re.search(r"_task-([a-zA-Z0-9]+)_", f.name))})
        hint = f" (found task {', '.join(other_tasks)}; set 'bold_task' in the config)" if other_tasks else ""
        problem("func", f"no BOLD series of task '{task}' in {folder / 'func'}{hint}")
    found.bold = _one_file_per_run(_passing(bold_files, lambda path: check_bold(path, bids_dir), "func", problem),
                                   participant_id)
    return found


def bold_run_key(path: str | Path) -> str:
    """How a BOLD run of a visit is told apart: ``"_run-<label>"``, or ``""`` for a file without
    ``run-`` (a visit's only run). Appended to the task entity of every per-run derivative name,
    so a run keeps its raw name (``task-rest_run-2``, or ``task-rest``)."""
    run = bids_entities(Path(path).name.split(".")[0])[0].get("run")
    return f"_run-{run}" if run is not None else ""


def _one_file_per_run(runs: list[Path], participant_id: str) -> list[Path]:
    """The first file (sorted) of each ``run-`` label: files of one run that differ in another
    entity (acq-, dir-, echo-...) are not runs to combine; the others are named in the log."""
    kept: dict[str, Path] = {}
    for path in runs:
        key = bold_run_key(path)
        if key in kept:
            log.warning("%s: %s and %s are the same run of the task; using %s (runs are told apart by run-)",
                        participant_id, kept[key].name, path.name, kept[key].name)
            continue
        kept[key] = path
    return list(kept.values())


def _passing(files: list[Path], check, modality: str, problem) -> list[Path]:
    """The ``files`` that pass ``check`` (which raises :class:`BIDSError`), in order; each failure
    goes to ``problem(modality, message)``."""
    passing = []
    for candidate in files:
        try:
            check(candidate)
        except BIDSError as error:
            problem(modality, str(error))
            continue
        passing.append(candidate)
    return passing


def _find_dwi(folder: Path, participant_id: str, problem, *, partial_dwi: str, dwi_acquisition: str | None
              ) -> list[Path]:
    """The checked DWI runs of one participant's (session's) folder that SC is built from
    (:func:`find_inputs`): those of one acquisition (:func:`one_acquisition`, among the runs that
    pass the check), with ``partial_dwi`` applied to that acquisition's runs;
    ``problem(modality, message)`` reports what is left out."""
    dwi_files = _nifti_files(folder / "dwi", "dwi")
    if not dwi_files:
        problem("dwi", f"no DWI series in {folder / 'dwi'} (expected *_dwi.nii[.gz] with .bval/.bvec)")
    runs = _passing(dwi_files, check_dwi, "dwi", problem)
    if not runs:
        return []
    runs, message = one_acquisition(runs, dwi_acquisition)
    if not runs:
        problem("dwi", message)
        return []
    if message:
        log.warning("%s: %s", participant_id, message)
    # partial_dwi looks at the chosen acquisition only: a bad run of another one does not matter
    chosen = _acquisition(runs[0])
    dropped = [f.name for f in dwi_files if f not in runs and _acquisition(f) == chosen]
    if dropped and partial_dwi == "exclude":
        problem("dwi", f"DWI run(s) {', '.join(dropped)} failed the check, so SC is left out (partial_dwi: "
                       f"exclude; use_remaining would build it from {', '.join(f.name for f in runs)})")
        return []
    if dropped:
        log.warning("%s: SC from %s only; %s dropped (partial_dwi: use_remaining)", participant_id,
                    ", ".join(f.name for f in runs), ", ".join(dropped))
    return runs


def _acquisition(run: Path) -> str:
    """A DWI run's ``acq-`` label ("" without one)."""
    return bids_entities(run.name.split(".")[0])[0].get("acq", "")


def one_acquisition(runs: list[Path], wanted: str | None) -> tuple[list[Path], str]:
    """The DWI runs of one acquisition (the ``acq-`` entity; runs without one form the group
    ``""``), which are combined into one series; runs of other acquisitions (another protocol:
    a different shell scheme, resolution or sequence) are not mixed in.

    ``wanted`` (``dwi_acquisition``): that acquisition's runs (none: SC is left out, with the
    acquisitions found); ``None``: the acquisition with the most diffusion volumes (ties: the first
    label in sorted order). Returns the runs and a message for the log ("" when there was one
    acquisition)."""
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(_acquisition(run), []).append(run)
    described = ", ".join(f"acq-{label}: {len(files)} run(s)" if label else f"no acq-: {len(files)} run(s)"
                          for label, files in sorted(groups.items()))
    if wanted is not None:
        chosen = wanted.removeprefix("acq-")
        if chosen not in groups:
            return [], f"no DWI run of acquisition acq-{chosen} (dwi_acquisition); found {described}"
    else:
        def volumes(label: str) -> int:
            return sum(int(np.prod(nib.load(f).shape[3:])) for f in groups[label])
        chosen = max(sorted(groups), key=volumes)
    if len(groups) == 1:
        return runs, ""
    dropped = [f.name for label, files in groups.items() if label != chosen for f in files]
    how = "dwi_acquisition" if wanted is not None else "the most volumes; set dwi_acquisition to choose"
    return groups[chosen], (f"DWI runs of {len(groups)} acquisitions ({described}): SC from "
                            f"{'acq-' + chosen if chosen else 'the runs without acq-'} ({how}); not used: "
                            f"{', '.join(dropped)}")


def _nifti_files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir()
                  if f.name.endswith(tuple(f"_{suffix}{ext}" for ext in NIFTI_EXTENSIONS)))


def build_inventory(bids_dir: str | Path, *, task: str = "rest", label_column: str = "diagnosis",
                    classes: tuple[str, ...] = ("HC", "SZ"), site_column: str | None = "site",
                    include: list[str] | None = None, exclude: list[str] | None = None,
                    strict: bool = False, partial_dwi: str = "exclude",
                    dwi_acquisition: str | dict[str, str | None] | None = None) -> pd.DataFrame:
    """The availability table: one row per participant, or per participant and session in a
    dataset with ``ses-`` folders (each session is processed on its own; a session without a T1w
    uses the participant's first session with one).

    Columns: ``participant_id``, ``session``, ``label``, ``site``, ``t1w``, ``dwi``, ``bold``
    (paths relative to ``bids_dir``, ``;``-separated for several runs), ``use_anat``,
    ``use_sc``, ``use_fc``, ``use_model`` (booleans) and ``reason`` (why anything is left out).
    ``include``/``exclude`` take participant labels with or without ``sub-``.
    ``dwi_acquisition``: one acquisition label for everyone (:func:`one_acquisition`), or a
    mapping participant label -> label (``null``: the most volumes), with an optional ``default``
    entry for the participants it does not name.
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise BIDSError(f"{bids_dir}: BIDS folder not found.")
    if not (bids_dir / "dataset_description.json").is_file():
        log.warning("%s: no dataset_description.json; is this a BIDS dataset?", bids_dir)
    participants = read_participants(bids_dir, label_column=label_column, classes=classes,
                                     site_column=site_column)
    folders = sorted(p.name for p in bids_dir.glob("sub-*") if p.is_dir())
    wanted = _normalise_ids(include) if include else None
    unwanted = _normalise_ids(exclude or [])
    unknown = (set(wanted or []) | unwanted) - set(folders) - set(participants.index)
    if unknown:
        log.warning("Participants named in include/exclude but absent from %s: %s", bids_dir, sorted(unknown))
    acquisitions = _acquisition_choices(dwi_acquisition, set(folders) | set(participants.index), bids_dir)

    dataset_has_sessions = any(p.is_dir() for p in bids_dir.glob("sub-*/ses-*"))
    rows = []
    for participant_id in sorted(set(folders) | set(participants.index)):
        if (wanted is not None and participant_id not in wanted) or participant_id in unwanted:
            continue
        in_table = participant_id in participants.index
        label = _value(participants, participant_id, "label")
        site = _value(participants, participant_id, "site")
        if not PARTICIPANT_LABEL.fullmatch(participant_id):
            reason = (f"folder {participant_id!r} of {bids_dir} is not a valid BIDS participant label (expected "
                      "'sub-' followed by letters and digits only)")
            if strict:
                raise BIDSError(f"{bids_dir}: {reason}.")
            log.warning("%s", reason)
            rows.append(_row(participant_id, None, label, site, None, reason))
            continue
        if participant_id not in folders:
            reason = f"listed in participants.tsv but there is no folder {bids_dir / participant_id}"
            log.warning("%s: %s", participant_id, reason)
            rows.append(_row(participant_id, None, label, site, None, reason))
            continue
        sessions = sorted(p.name[4:] for p in (bids_dir / participant_id).glob("ses-*") if p.is_dir())
        if not sessions and dataset_has_sessions:
            reason = (f"{bids_dir / participant_id} has no ses- folder, while other participants have sessions "
                      "(BIDS: every participant's files in ses- folders, or none)")
            if strict:
                raise BIDSError(f"{reason}.")
            log.warning("%s: %s", participant_id, reason)
            rows.append(_row(participant_id, None, label, site, None, reason))
            continue
        # the first session with a T1w lends it to the sessions that have none
        t1w_session = next((ses for ses in sessions
                            if _nifti_files(bids_dir / participant_id / f"ses-{ses}" / "anat", "T1w")), None)
        for session in sessions or [None]:
            found = find_inputs(bids_dir, participant_id, session, task=task, strict=strict,
                                partial_dwi=partial_dwi, dwi_acquisition=acquisitions(participant_id),
                                t1w_session=t1w_session)
            reasons = [m for messages in found.problems.values() for m in messages]
            if not in_table:
                message = f"folder {participant_id} is not in participants.tsv (no label: not modelled)"
                log.warning("%s: %s", participant_id, message)
                reasons.append(message)
            elif label is None:
                reasons.append("label is n/a (not modelled)")
            rows.append(_row(participant_id, session, label, site, found, "; ".join(reasons), bids_dir))
    table = pd.DataFrame(rows, columns=INVENTORY_COLUMNS)
    if table.empty:
        raise BIDSError(f"{bids_dir}: no participants left to process (check include/exclude in the config).")
    log.info("%s: %d participant row(s); %d with a T1w, %d with SC inputs, %d with FC inputs, %d to model.",
             bids_dir, len(table), table["use_anat"].sum(), table["use_sc"].sum(), table["use_fc"].sum(),
             table["use_model"].sum())
    return table


INVENTORY_COLUMNS = ["participant_id", "session", "label", "site", "t1w", "dwi", "bold",
                     "use_anat", "use_sc", "use_fc", "use_model", "reason"]


def _row(participant_id, session, label, site, found: SubjectInputs | None, reason: str,
         bids_dir: Path | None = None) -> dict:
    def rel(paths):
        return ";".join(str(p.relative_to(bids_dir)) for p in paths) or None

    has_t1w = found is not None and found.t1w is not None
    use_sc = has_t1w and bool(found.dwi)
    use_fc = has_t1w and bool(found.bold)
    if found is not None and not has_t1w and (found.dwi or found.bold):
        reason = "; ".join(filter(None, [reason, "no usable T1w: DWI and BOLD need it for the atlas"]))
    return {
        "participant_id": participant_id, "session": session, "label": label, "site": site,
        "t1w": rel([found.t1w]) if has_t1w else None,
        "dwi": rel(found.dwi) if found else None,
        "bold": rel(found.bold) if found else None,
        "use_anat": has_t1w, "use_sc": use_sc, "use_fc": use_fc,
        "use_model": label is not None and (use_sc or use_fc),
        "reason": reason or None,
    }


def console_summary(table: pd.DataFrame) -> list[str]:
    """One line per participant (row) of the availability table with something left out: what
    it will not be used for, and why (the reasons name the files)."""
    lines = []
    for row in table.itertuples():
        if not isinstance(row.reason, str) or not row.reason:
            continue
        unused = [stage for stage, use in (("anat", row.use_anat), ("SC", row.use_sc), ("FC", row.use_fc),
                                            ("model", row.use_model)) if not use]
        where = f"{row.participant_id}{f' ses-{row.session}' if isinstance(row.session, str) else ''}"
        lines.append(f"ConneX input check: {where}: {'not used for ' + ', '.join(unused) if unused else 'note'}: "
                     f"{row.reason}")
    return lines


def _value(table: pd.DataFrame, participant_id: str, column: str) -> str | None:
    """A participants.tsv cell, or None where the participant or the value is missing."""
    if participant_id not in table.index:
        return None
    value = table.at[participant_id, column]
    return None if pd.isna(value) else str(value)


def _acquisition_choices(dwi_acquisition: str | dict[str, str | None] | None, participants: set[str],
                         bids_dir: Path):
    """participant_id -> the DWI acquisition label asked for it (None: the most volumes)."""
    if not isinstance(dwi_acquisition, dict):
        return lambda participant_id: dwi_acquisition
    choices = {}
    for key, value in dwi_acquisition.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str)):
            raise ConfigError(f"dwi_acquisition: {key!r}: {value!r}: keys are participant labels and values "
                              "acquisition labels or null, all strings (quote labels such as '01' in YAML).")
        name = "default" if key == "default" else next(iter(_normalise_ids([key])))
        if name in choices:
            raise ConfigError(f"dwi_acquisition names {name} twice (as {key!r} and another spelling).")
        choices[name] = value
    unknown = sorted(set(choices) - participants - {"default"})
    if unknown:  # a typo would otherwise silently give that participant the default acquisition
        raise ConfigError(f"dwi_acquisition names participants that {bids_dir} does not have: {unknown} "
                          f"(keys are participant labels, with or without sub-, and 'default').")
    return lambda participant_id: choices.get(participant_id, choices.get("default"))


def _normalise_ids(labels: list[str]) -> set[str]:
    return {label if label.startswith("sub-") else f"sub-{label}" for label in labels}


def read_inventory(path: str | Path) -> pd.DataFrame:
    """Read an availability table written by :func:`build_inventory`."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=["n/a"])
    for column in ("use_anat", "use_sc", "use_fc", "use_model"):
        table[column] = table[column].map({"True": True, "False": False})
    return table


def write_derivatives_description(*, target: str | Path, bids_dir: str | Path) -> Path:
    """The ``dataset_description.json`` of the ConneX derivatives, naming the source dataset."""
    from connex import __version__
    from connex.inputs.io import write_json

    source = Path(bids_dir).resolve().as_uri()
    return write_json({
        "Name": "ConneX derivatives", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "ConneX", "Version": __version__}],
        "SourceDatasets": [{"URL": source}], "DatasetLinks": {"raw": source},
    }, target)


#: What ConneX writes that the BIDS specification (1.10) does not define yet, for ``.bidsignore``:
#: connectivity matrices (BEP017), tractograms and diffusion model maps (BEP016), scrubbing tables,
#: QC values and figures, plain-text transforms, and the cohort-level folder.
BIDSIGNORE = ("*_relmat.tsv", "*_relmat.json", "*_tractography.*", "*_dwimap.*", "*_outliers.*", "*_qc.json",
              "*_motion.tsv", "*_xfm.txt", "*_xfm.nii.gz", "*_xfm.h5", "figures/", "group/")


def write_bidsignore(target: str | Path) -> Path:
    """The derivatives folder's ``.bidsignore``: :data:`BIDSIGNORE`, one pattern a line."""
    from connex.inputs.io import write_text

    header = "# Files ConneX writes that BIDS 1.10 does not define yet (see connex.inputs.bids.BIDSIGNORE)\n"
    return write_text(header + "\n".join(BIDSIGNORE) + "\n", target)
