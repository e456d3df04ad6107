"""Find and validate a subject's BIDS inputs; write the per-subject availability table.

Dataset-level mistakes (no participants.tsv, no label column, duplicate participants, a label
outside the declared classes) raise :class:`BIDSError` at once. A problem with one file (a
missing b-vector file, a 3-D BOLD...) leaves that subject out of the stages that need the
file, with the reason in the availability table and the log; ``strict=True`` raises instead.
The BIDS folder is only ever read.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.errors import BIDSError

log = logging.getLogger(__name__)

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
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


# --------------------------------------------------------------------------------- NIfTI

def check_nifti(path: str | Path, *, ndim: int | tuple[int, ...] | None = None) -> nib.Nifti1Image:
    """Load a NIfTI header and check the file is whole, without reading the voxels.

    A ``.nii.gz`` must be gzip (magic bytes) and its gzip trailer must give the uncompressed
    size the header implies, which catches truncated copies cheaply; a ``.nii`` must be at
    least as long as its header says.

    Raises
    ------
    BIDSError
        Not a NIfTI file, a truncated file, or ``ndim`` different from the expected one(s).
    """
    path = Path(path)
    if not path.is_file():
        raise BIDSError(f"{path}: not found.")
    name = path.name
    if not name.endswith(NIFTI_EXTENSIONS):
        raise BIDSError(f"{path}: expected a NIfTI file ending in .nii or .nii.gz.")
    if name.endswith(".gz"):
        with open(path, "rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise BIDSError(f"{path}: not a gzipped file, but the name ends in .nii.gz; expected gzipped NIfTI.")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises several types for a bad header
        raise BIDSError(f"{path}: not a valid NIfTI image ({type(error).__name__}: {error}).") from error
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise BIDSError(f"{path}: expected a NIfTI-1 or NIfTI-2 image; got {type(image).__name__}.")
    expected = int(image.header.get_data_offset()) + int(
        np.prod(image.shape) * image.header.get_data_dtype().itemsize)
    actual = _uncompressed_size(path) if name.endswith(".gz") else path.stat().st_size
    if actual is not None and actual < expected % (2 ** 32 if name.endswith(".gz") else 2 ** 63):
        raise BIDSError(f"{path}: truncated or corrupt; the header implies {expected} bytes of "
                        f"image, the file holds {actual}.")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if image.ndim not in allowed:
            raise BIDSError(f"{path}: expected a {' or '.join(f'{n}-D' for n in allowed)} image; "
                            f"got {image.ndim}-D with shape {image.shape}.")
    return image


def _uncompressed_size(path: Path) -> int | None:
    """Uncompressed size modulo 2**32 from the gzip trailer; None for multi-member files."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, 2)
            size = struct.unpack("<I", handle.read(4))[0]
        with gzip.open(path, "rb") as handle:  # the first bytes must decompress too
            handle.read(348)
    except (OSError, EOFError, struct.error) as error:
        raise BIDSError(f"{path}: not a valid gzipped NIfTI ({error}).") from error
    return size


# ------------------------------------------------------------------------------- sidecars

def read_sidecar(path: str | Path, bids_dir: str | Path) -> dict:
    """The JSON metadata of a BIDS file, following the inheritance principle.

    JSON files from the dataset root down to the file's folder whose entities are a subset of
    the file's and whose suffix matches are merged; the nearest one wins.
    """
    path, bids_dir = Path(path), Path(bids_dir)
    stem = _strip_extension(path.name)
    entities, suffix = _entities(stem)
    folders = [bids_dir]
    for part in path.parent.relative_to(bids_dir).parts:
        folders.append(folders[-1] / part)
    metadata: dict = {}
    for folder in folders:
        for candidate in sorted(folder.glob(f"*{suffix}.json")):
            cand_entities, cand_suffix = _entities(candidate.name[:-5])
            if cand_suffix == suffix and cand_entities.items() <= entities.items():
                try:
                    metadata.update(json.loads(candidate.read_text()))
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    raise BIDSError(f"{candidate}: not valid JSON ({error}).") from error
    return metadata


def _strip_extension(name: str) -> str:
    for extension in NIFTI_EXTENSIONS + (".json", ".bval", ".bvec", ".tsv"):
        if name.endswith(extension):
            return name[: -len(extension)]
    return name


def _entities(stem: str) -> tuple[dict[str, str], str]:
    *pairs, suffix = stem.split("_")
    entities = dict(pair.split("-", 1) for pair in pairs if "-" in pair)
    return entities, suffix


# ------------------------------------------------------------------------ modality checks

def read_gradients(dwi_path: str | Path, n_volumes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read the ``.bval``/``.bvec`` beside a DWI series and check them against it.

    Returns
    -------
    bvals : ndarray (g,)
    bvecs : ndarray (g, 3)

    Raises
    ------
    BIDSError
        A missing or unreadable file, a bvec that is not 3 rows, or counts that differ from
        ``n_volumes``.
    """
    dwi_path = Path(dwi_path)
    stem = _strip_extension(dwi_path.name)
    bval_path = dwi_path.with_name(stem + ".bval")
    bvec_path = dwi_path.with_name(stem + ".bvec")
    for sidecar in (bval_path, bvec_path):
        if not sidecar.is_file():
            raise BIDSError(f"{sidecar}: missing; every DWI series needs a {sidecar.suffix} file "
                            f"beside it ({dwi_path.name}).")
    try:
        bvals = np.loadtxt(bval_path, ndmin=1, dtype=float).ravel()
    except ValueError as error:
        raise BIDSError(f"{bval_path}: unreadable; expected one row of numbers ({error}).") from error
    try:
        bvecs = np.loadtxt(bvec_path, ndmin=2, dtype=float)
    except ValueError as error:
        raise BIDSError(f"{bvec_path}: unreadable; expected 3 rows of numbers ({error}).") from error
    if bvecs.shape[0] != 3:
        raise BIDSError(f"{bvec_path}: expected 3 rows (x, y, z) of {n_volumes} values; got shape {bvecs.shape}.")
    if not (np.isfinite(bvals).all() and np.isfinite(bvecs).all()):
        raise BIDSError(f"{bval_path.name}/{bvec_path.name} in {dwi_path.parent}: non-finite values.")
    if len(bvals) != n_volumes or bvecs.shape[1] != n_volumes:
        raise BIDSError(f"{dwi_path}: {n_volumes} volumes, but {bval_path.name} has {len(bvals)} values "
                        f"and {bvec_path.name} has {bvecs.shape[1]} columns; expected one per volume.")
    return bvals, bvecs.T


#: A b-vector (of a diffusion-weighted volume) may differ from unit length by this much.
BVEC_NORM_TOLERANCE = 0.05


def check_gradients(bvals: np.ndarray, bvecs: np.ndarray, source: str, *, b0_threshold: float) -> None:
    """Check a gradient table: non-negative b-values, unit b-vectors for weighted volumes, at
    least one b=0 and one weighted volume.

    Raises
    ------
    BIDSError naming ``source`` and what was expected.
    """
    if (bvals < 0).any():
        raise BIDSError(f"{source}: negative b-values in the .bval file: {sorted(set(bvals[bvals < 0]))}.")
    weighted = bvals > b0_threshold
    if not (~weighted).any():
        raise BIDSError(f"{source}: no b=0 volume (no b-value <= {b0_threshold}); a b=0 reference is needed.")
    if not weighted.any():
        raise BIDSError(f"{source}: only b=0 volumes (every b-value <= {b0_threshold}); no diffusion weighting "
                        "to model.")
    norms = np.linalg.norm(bvecs[weighted], axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > BVEC_NORM_TOLERANCE)
    if len(bad):
        volumes = np.flatnonzero(weighted)[bad]
        raise BIDSError(f"{source}: the .bvec vectors of diffusion-weighted volumes must have unit length "
                        f"(tolerance {BVEC_NORM_TOLERANCE}); volumes {volumes[:10].tolist()} have lengths "
                        f"{np.round(norms[bad][:10], 3).tolist()}.")


def check_dwi(path: str | Path, *, b0_threshold: float = 50.0) -> dict:
    """Check a DWI series and its gradients; returns ``{"n_volumes", "shape"}``."""
    image = check_nifti(path, ndim=4)
    bvals, bvecs = read_gradients(path, image.shape[3])
    check_gradients(bvals, bvecs, str(path), b0_threshold=b0_threshold)
    return {"n_volumes": image.shape[3], "shape": image.shape}


def check_bold(path: str | Path, bids_dir: str | Path) -> dict:
    """Check a BOLD series is 4-D and has a RepetitionTime; returns ``{"n_volumes", "repetition_time"}``."""
    image = check_nifti(path, ndim=(3, 4))
    if image.ndim == 3:
        raise BIDSError(f"{path}: BOLD must be a 4-D time series; got a 3-D image of shape {image.shape}.")
    metadata = read_sidecar(path, bids_dir)
    repetition_time = metadata.get("RepetitionTime")
    if not isinstance(repetition_time, (int, float)) or repetition_time <= 0:
        raise BIDSError(f"{path}: no valid 'RepetitionTime' (seconds) in its JSON sidecar "
                        f"({_strip_extension(Path(path).name)}.json or an inherited one); got {repetition_time!r}.")
    return {"n_volumes": image.shape[3], "repetition_time": float(repetition_time)}


def check_t1w(path: str | Path) -> dict:
    """Check a T1w image is 3-D; returns ``{"shape"}``."""
    image = check_nifti(path, ndim=3)
    return {"shape": image.shape}


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
                strict: bool = False) -> SubjectInputs:
    """Find and check the T1w, DWI runs and BOLD runs of ``task`` for one participant."""
    bids_dir = Path(bids_dir)
    folder = bids_dir / participant_id / (f"ses-{session}" if session else "")
    found = SubjectInputs(participant_id, session)

    def problem(modality: str, message: str) -> None:
        if strict:
            raise BIDSError(message)
        log.warning("%s: %s", participant_id, message)
        found.problems[modality].append(message)

    t1w_files = _nifti_files(folder / "anat", "T1w")
    if not t1w_files:
        problem("anat", f"no T1w image in {folder / 'anat'} (expected *_T1w.nii[.gz])")
    for candidate in t1w_files:
        try:
            check_t1w(candidate)
        except BIDSError as error:
            problem("anat", str(error))
            continue
        if found.t1w is None:
            found.t1w = candidate
        else:
            log.info("%s: several T1w images; using %s, not %s", participant_id, found.t1w.name, candidate.name)

    dwi_files = _nifti_files(folder / "dwi", "dwi")
    if not dwi_files:
        problem("dwi", f"no DWI series in {folder / 'dwi'} (expected *_dwi.nii[.gz] with .bval/.bvec)")
    for candidate in dwi_files:
        try:
            check_dwi(candidate)
            found.dwi.append(candidate)
        except BIDSError as error:
            problem("dwi", str(error))

    bold_files = [f for f in _nifti_files(folder / "func", "bold") if f"_task-{task}_" in f.name]
    if not bold_files:
        other_tasks = sorted({m.group(1) for f in _nifti_files(folder / "func", "bold")
                              if (m := re.search(r"_task-([a-zA-Z0-9]+)_", f.name))})
        hint = f" (found task {', '.join(other_tasks)}; set 'bold_task' in the config)" if other_tasks else ""
        problem("func", f"no BOLD series of task '{task}' in {folder / 'func'}{hint}")
    for candidate in bold_files:
        try:
            check_bold(candidate, bids_dir)
            found.bold.append(candidate)
        except BIDSError as error:
            problem("func", str(error))
    return found


def _nifti_files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir()
                  if f.name.endswith(tuple(f"_{suffix}{ext}" for ext in NIFTI_EXTENSIONS)))


def build_inventory(bids_dir: str | Path, *, task: str = "rest", label_column: str = "diagnosis",
                    classes: tuple[str, ...] = ("HC", "SZ"), site_column: str | None = "site",
                    include: list[str] | None = None, exclude: list[str] | None = None,
                    strict: bool = False) -> pd.DataFrame:
    """The availability table: one row per participant (and session).

    Columns: ``participant_id``, ``session``, ``label``, ``site``, ``t1w``, ``dwi``, ``bold``
    (paths relative to ``bids_dir``, ``;``-separated for several runs), ``use_anat``,
    ``use_sc``, ``use_fc``, ``use_model`` (booleans) and ``reason`` (why anything is left out).
    ``include``/``exclude`` take participant labels with or without ``sub-``.
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

    rows = []
    for participant_id in sorted(set(folders) | set(participants.index)):
        if (wanted is not None and participant_id not in wanted) or participant_id in unwanted:
            continue
        in_table = participant_id in participants.index
        label = _value(participants, participant_id, "label")
        site = _value(participants, participant_id, "site")
        if participant_id not in folders:
            reason = f"listed in participants.tsv but there is no folder {bids_dir / participant_id}"
            log.warning("%s: %s", participant_id, reason)
            rows.append(_row(participant_id, None, label, site, None, reason))
            continue
        sessions = sorted(p.name[4:] for p in (bids_dir / participant_id).glob("ses-*") if p.is_dir())
        for session in sessions or [None]:
            found = find_inputs(bids_dir, participant_id, session, task=task, strict=strict)
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


def _value(table: pd.DataFrame, participant_id: str, column: str) -> str | None:
    """A participants.tsv cell, or None where the participant or the value is missing."""
    if participant_id not in table.index:
        return None
    value = table.at[participant_id, column]
    return None if pd.isna(value) else str(value)


def _normalise_ids(labels: list[str]) -> set[str]:
    return {label if label.startswith("sub-") else f"sub-{label}" for label in labels}


def read_inventory(path: str | Path) -> pd.DataFrame:
    """Read an availability table written by :func:`build_inventory`."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=["n/a"])
    for column in ("use_anat", "use_sc", "use_fc", "use_model"):
        table[column] = table[column].map({"True": True, "False": False})
    return table


def write_derivatives_description(target: str | Path, bids_dir: str | Path) -> Path:
    """The ``dataset_description.json`` of the ConneX derivatives, naming the source dataset."""
    from connex import __version__
    from connex.io import write_json

    return write_json({
        "Name": "ConneX derivatives", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "ConneX", "Version": __version__}],
        "SourceDatasets": [{"URL": Path(bids_dir).resolve().as_uri()}],
    }, target)
