"""The connectome dataset: each subject's SC and FC matrices paired with label, site, age, sex.

Shape letters: ``s`` subjects, ``n`` regions.

Connectomes are read from a derivatives folder in the layout the pipeline writes (and that
users of other tools can reproduce)::

    <root>/participants.tsv                      participant_id, <label column>, site, age, sex
    <root>/sub-<label>/dwi/sub-<label>_atlas-<atlas>_meas-<weight>_relmat.tsv
    <root>/sub-<label>/func/sub-<label>_task-<task>_atlas-<atlas>_meas-<measure>_relmat.tsv

A relmat TSV is an ``n x n`` tab-separated matrix in atlas order, with or without a header
row of region names. Other entities (``ses-``, ``space-``, ``desc-``...) may appear in the
name; exactly one file per subject and modality must match.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from connex.errors import ConfigError, ConnectomeError, check_choice
from connex.inputs.bids import read_participants
from connex.inputs.io import atomic_path, write_tsv
from connex.registry import MISSING_EDGE_POLICIES, MISSING_POLICIES, MODALITIES

log = logging.getLogger(__name__)

#: Modality -> BIDS datatype folder of its connectomes.
MODALITY_DATATYPE = {"sc": "dwi", "fc": "func"}

_SYMMETRY_TOLERANCE = 1e-6


@dataclass
class ConnectomeDataset:
    """Paired connectomes of the subjects that enter the model.

    Attributes
    ----------
    participants : DataFrame
        One row per subject in dataset order: ``participant_id``, ``label`` (class name),
        ``site``, ``age``, ``sex``, and the source file of each modality (``sc_file``, ``fc_file``).
    classes : list of str
        Class names; ``y`` indexes them (the second is the positive class, e.g. SZ).
    regions : list of str
        Region names in atlas order (``n``).
    sc, fc : ndarray (s, n, n)
        Raw matrices as read (the graph transform is fitted later, per training fold); ``(s, 0, 0)``
        for a modality the dataset does not have.
    modalities : tuple of str
        The modalities it has (``model.modalities``), in :data:`connex.registry.MODALITIES` order.
    """

    participants: pd.DataFrame
    classes: list[str]
    regions: list[str]
    sc: np.ndarray
    fc: np.ndarray
    metadata: dict = field(default_factory=dict)
    modalities: tuple[str, ...] = MODALITIES

    @property
    def y(self) -> np.ndarray:
        """Class index of each subject ``(s,)``."""
        return self.participants["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(int)

    @property
    def subjects(self) -> list[str]:
        return self.participants["participant_id"].tolist()

    def matrices(self, modality: str) -> np.ndarray:
        """The raw matrices of ``"sc"`` or ``"fc"``, ``(s, n, n)``."""
        check_choice("modality", modality, self.modalities)
        return {"sc": self.sc, "fc": self.fc}[modality]

    def save(self, target: str | Path) -> Path:
        """Write the dataset as one ``.npz`` (matrices, region names, classes, participants table)."""
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, sc=self.sc, fc=self.fc, regions=np.array(self.regions),
                                    classes=np.array(self.classes),
                                    participants=self.participants.to_csv(sep="\t", index=False),
                                    metadata=repr(self.metadata), modalities=np.array(self.modalities))
        return Path(target)

    @classmethod
    def load(cls, path: str | Path) -> ConnectomeDataset:
        """Read a dataset written by :meth:`save`."""
        from io import StringIO

        with np.load(path, allow_pickle=False) as data:
            participants = pd.read_csv(StringIO(str(data["participants"])), sep="\t", dtype={
                "participant_id": str, "label": str, "site": str, "sex": str})
            # datasets written before model.modalities existed hold both
            modalities = tuple(data["modalities"].tolist()) if "modalities" in data else MODALITIES
            return cls(participants=participants, classes=data["classes"].tolist(),
                       regions=data["regions"].tolist(), sc=data["sc"], fc=data["fc"], modalities=modalities)


def read_relmat(path: str | Path, *, subject: str = "", symmetric: bool = True, allow_nan: bool = False
                ) -> tuple[np.ndarray, list[str] | None]:
    """Read one connectivity matrix TSV, with or without a header row of region names.

    ``allow_nan``: return NaN cells (``n/a``, ``nan``: an edge of a region without signal, such as
    XCP-D's low-coverage parcels) as NaN for the caller's policy, instead of raising. Inf is always
    an error.

    Returns
    -------
    matrix : ndarray (n, n)
    regions : list of str or None
        The header's region names (``None`` when the file has no header row).

    Raises
    ------
    ConnectomeError
        Unreadable, not square, non-numeric cells, NaN (unless ``allow_nan``) or Inf, or (``symmetric``) not symmetric;
        the message names the subject and the file.
    """
    path = Path(path)
    who = f"{subject}: " if subject else ""
    try:
        lines = [line.rstrip("\n").rstrip("\r") for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ConnectomeError(f"{who}{path}: cannot read the connectivity matrix ({error}).") from error
    if not lines:
        raise ConnectomeError(f"{who}{path}: empty file; expected an n x n tab-separated matrix.")
    first = lines[0].split("\t")
    if len(lines) == len(first) + 1:  # n names above n rows (even numeric names)
        regions = first
    elif len(lines) == len(first):
        regions = None
    else:  # malformed: guess, so the error below names the real problem
        regions = (None if all(_is_number(cell) or cell.strip().lower() in ("", "n/a", "na") for cell in first)
                   else first)
    rows = lines[1:] if regions is not None else lines
    try:
        matrix = np.array([[_number(cell) for cell in row.split("\t")] for row in rows], dtype=np.float64)
    except ValueError as error:
        raise ConnectomeError(f"{who}{path}: non-numeric cell ({error}); expected an n x n tab-separated "
                              "matrix of numbers, optionally below one header row of region names.") from error
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        shape = matrix.shape if matrix.ndim == 2 else f"rows of unequal length ({len(rows)} rows)"
        raise ConnectomeError(f"{who}{path}: the matrix is not square ({shape}); expected n x n in atlas order.")
    if regions is not None and len(regions) != matrix.shape[0]:
        raise ConnectomeError(f"{who}{path}: {len(regions)} region names in the header for a "
                              f"{matrix.shape[0]} x {matrix.shape[1]} matrix.")
    bad = np.isinf(matrix) if allow_nan else ~np.isfinite(matrix)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConnectomeError(f"{who}{path}: {bad.sum()} NaN or Inf value(s) (first at row {i + 1}, "
                              f"column {j + 1}); a connectome must be finite.")
    if symmetric:
        scale = max(np.abs(matrix).max(), 1e-12)
        asym = np.nanmax(np.abs(matrix - matrix.T)) if not np.isnan(matrix).all() else 0.0
        if asym > _SYMMETRY_TOLERANCE * scale:
            i, j = np.unravel_index(np.argmax(np.abs(matrix - matrix.T)), matrix.shape)
            raise ConnectomeError(f"{who}{path}: the matrix is not symmetric (row {i + 1}, column {j + 1}: "
                                  f"{matrix[i, j]:g} vs {matrix[j, i]:g}); SC and FC must be undirected.")
    return matrix, regions


def _number(cell: str) -> float:
    """A cell's value; empty and n/a cells are NaN (reported as such, not as text)."""
    return np.nan if cell.strip().lower() in ("", "n/a", "na") else float(cell)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def find_relmat(root: str | Path, subject: str, modality: str, *, atlas: str, meas: str,
                task: str | None = None) -> Path | None:
    """The one relmat of ``subject`` (label without ``sub-``) for a modality, or ``None``.

    Looks in ``sub-<subject>/<datatype>/`` and ``sub-<subject>/ses-*/<datatype>/`` for a name
    with ``_atlas-<atlas>_``, ``_meas-<meas>_`` (and ``_task-<task>_`` for FC when given)
    ending in ``_relmat.tsv``.

    Raises
    ------
    ConnectomeError
        More than one file matches (the message lists them).
    """
    datatype = MODALITY_DATATYPE[modality]
    folder = Path(root) / f"sub-{subject}"
    candidates = sorted(folder.glob(f"{datatype}/*_relmat.tsv")) + sorted(folder.glob(f"ses-*/{datatype}/*_relmat.tsv"))
    wanted = [f"_atlas-{atlas}_", f"_meas-{meas}_"] + ([f"_task-{task}_"] if task and modality == "fc" else [])
    matches = [p for p in candidates if all(w in p.name.replace("_relmat.tsv", "_") for w in wanted)]
    if len(matches) > 1:
        raise ConnectomeError(f"sub-{subject}: {len(matches)} {modality.upper()} connectomes match atlas "
                              f"'{atlas}' and measure '{meas}': {[str(m) for m in matches]}; keep one per "
                              "subject (or use entities that tell them apart).")
    return matches[0] if matches else None


def detect_atlas(root: str | Path) -> str:
    """The one ``atlas-<name>`` entity of the relmats under ``root`` (for a connectomes folder
    whose atlas the user did not name).

    Raises
    ------
    ConnectomeError
        No relmat, or relmats of several atlases (the message lists them).
    """
    names = {part[len("atlas-"):] for path in Path(root).glob("sub-*/**/*_relmat.tsv")
             for part in path.name.split("_") if part.startswith("atlas-")}
    if len(names) != 1:
        found = f"atlases {sorted(names)}" if names else "no *_atlas-<name>_*_relmat.tsv file"
        raise ConnectomeError(f"{root}: found {found} in sub-*/dwi and sub-*/func; name the atlas to model "
                              "with model.atlas (README, 'Connectomes from elsewhere').")
    return names.pop()


def build_dataset(root: str | Path, *, atlas: str, sc_weight: str = "count", fc_measure: str = "correlation",
                  task: str | None = "rest", participants_dir: str | Path | None = None,
                  label_column: str = "diagnosis", classes: tuple[str, ...] = ("HC", "SZ"),
                  site_column: str | None = "site", missing_modality: str = "exclude",
                  subjects: list[str] | None = None, files: dict[str, dict[str, str]] | None = None,
                  modalities: tuple[str, ...] | list[str] = MODALITIES, missing_edges: str = "exclude"
                  ) -> tuple[ConnectomeDataset, pd.DataFrame]:
    """Pair every labelled participant's SC and FC matrices (or read the one modality of a
    one-modality cohort).

    Parameters
    ----------
    root : path
        Folder with ``sub-*/dwi`` and ``sub-*/func`` connectomes.
    atlas, sc_weight, fc_measure, task : str
        Which files to read (entities of the relmat names).
    participants_dir : path, optional
        Folder of ``participants.tsv`` (default: ``root``).
    label_column, classes, site_column
        As in :func:`connex.bids.read_participants`; ``age`` and ``sex`` columns are kept when present.
    missing_modality : {"exclude", "error"}
        A labelled subject without one of the ``modalities`` is left out (logged, with the
        reason in the returned table) or is an error.
    subjects : list of str, optional
        Restrict to these participant labels (without ``sub-``).
    files : dict, optional
        participant_id -> {"sc": path, "fc": path}: the exact files to read (the workflow passes
        the connectomes it made, so a stale file of an excluded run is never picked up); a
        participant or modality absent from it counts as missing. Default: search ``root``.
    missing_edges : {"exclude", "zero", "error"}
        A matrix with NaN cells (a region without signal in that subject): the subject is left out
        with the reason (``exclude``), the NaN edges are set to 0, no connection (``zero``), or the
        run stops (``error``).
    modalities : sequence of str
        The connectomes to read (``model.modalities``): both, or only ``"fc"`` or ``"sc"``; the
        other is neither searched for nor required.

    Returns
    -------
    dataset : ConnectomeDataset
        The included subjects.
    table : DataFrame
        Every participant with ``included`` and ``reason`` (the dataset's audit trail).

    Raises
    ------
    ConnectomeError
        Matrices of different sizes or region names, a bad matrix (see :func:`read_relmat`),
        a subject missing a modality under ``"error"``, fewer than two classes left.
    """
    modalities = _check_options(classes, missing_modality, modalities)
    check_choice("missing_edges", missing_edges, MISSING_EDGE_POLICIES)
    root = Path(root)
    participants = read_participants(participants_dir or root, label_column=label_column, classes=tuple(classes),
                                     site_column=site_column)
    rows, matrices = [], {"sc": [], "fc": []}
    reference: tuple[str, int, list[str] | None] | None = None  # file, n, region names
    measures = {"sc": sc_weight, "fc": fc_measure}
    for participant_id, info in participants.iterrows():
        subject = participant_id.removeprefix("sub-")
        row = {"participant_id": participant_id, "label": info["label"],
               "site": None if pd.isna(info["site"]) else info["site"],
               "age": pd.to_numeric(info.get("age"), errors="coerce"), "sex": info.get("sex"),
               "sc_file": None, "fc_file": None,
               "included": False, "reason": ""}
        rows.append(row)
        if subjects is not None and subject not in subjects:
            row["reason"] = "not selected"
            continue
        if pd.isna(info["label"]):
            row["reason"] = f"no {label_column} (n/a)"
            continue
        if files is None:
            found = {m: find_relmat(root, subject, m, atlas=atlas, meas=measures[m], task=task) for m in modalities}
        else:
            found = {m: files.get(participant_id, {}).get(m) for m in modalities}
        missing = [m.upper() for m, f in found.items() if f is None]
        if missing:
            wanted = ", ".join(f"{m.upper()} '{measures[m]}'" for m in modalities)
            message = (f"{participant_id}: no {' or '.join(missing)} connectome "
                       f"(atlas '{atlas}', {wanted}) under {root / participant_id}")
            if missing_modality == "error":
                raise ConnectomeError(message + "; set missing_modality: exclude to leave such subjects out.")
            row["reason"] = "missing " + " and ".join(missing)
            log.warning("%s: left out of the model.", message)
            continue
        read = {m: read_relmat(path, subject=participant_id, allow_nan=missing_edges != "error")
                for m, path in found.items()}
        read, row["reason"] = _missing_edges(read, found, missing_edges, participant_id)
        if read is None:
            continue
        for modality, path in found.items():
            matrix, regions = read[modality]
            if modality == "sc" and (matrix < 0).any():
                raise ConnectomeError(f"{participant_id}: {path} has negative values (min {matrix.min():g}); SC "
                                      "weights must be non-negative (counts, densities, lengths, FA).")
            if reference is None:
                reference = (str(path), matrix.shape[0], regions)
            elif matrix.shape[0] != reference[1]:
                raise ConnectomeError(f"{participant_id}: {path} is {matrix.shape[0]} x {matrix.shape[0]}, but "
                                      f"{reference[0]} is {reference[1]} x {reference[1]}; all connectomes must "
                                      "use the same atlas.")
            elif regions is not None and reference[2] is not None and regions != reference[2]:
                diff = next(i for i, (a, b) in enumerate(zip(regions, reference[2])) if a != b)
                raise ConnectomeError(f"{participant_id}: {path} names region {diff + 1} "
                                      f"'{regions[diff]}' where {reference[0]} has '{reference[2][diff]}'; "
                                      "all connectomes must list the regions in the same atlas order.")
            elif regions is not None and reference[2] is None:
                reference = (reference[0], reference[1], regions)
            matrices[modality].append(matrix)
            row[f"{modality}_file"] = str(path)
        row["included"] = True
    table = pd.DataFrame(rows)
    included = table[table["included"]].reset_index(drop=True)
    present = sorted(set(included["label"]))
    if len(present) < 2:
        counts = table.groupby("reason").size().to_dict() if len(table) else {}
        raise ConnectomeError(f"{participants_dir or root}/participants.tsv: the model needs subjects of at least two "
                              f"classes of {list(classes)}; the usable subjects have {present or 'none'} "
                              f"({len(included)} usable; left out: {counts}).")
    n = reference[1]
    regions = reference[2] or [f"region-{i + 1:03d}" for i in range(n)]
    dataset = ConnectomeDataset(
        participants=included.drop(columns=["included", "reason"]),
        classes=list(classes), regions=regions,
        sc=_stack(matrices["sc"], len(included)), fc=_stack(matrices["fc"], len(included)),
        metadata={"atlas": atlas, "sc_weight": sc_weight, "fc_measure": fc_measure, "task": task},
        modalities=modalities)
    log.info("Connectome dataset: %d subjects (%s), %d regions; %d left out.", len(included),
             included["label"].value_counts().to_dict(), n, int((~table["included"]).sum()))
    return dataset, table


def _check_options(classes, missing_modality: str, modalities) -> tuple[str, ...]:
    """Validate :func:`build_dataset`'s choices; the modalities in registry order."""
    if len(classes) != 2:
        raise ConfigError(f"ConneX is a binary classifier: 'classes' must name two labels (control first); "
                          f"{list(classes)} was provided.")
    check_choice("missing_modality", missing_modality, MISSING_POLICIES)
    for modality in modalities:
        check_choice("modalities", modality, MODALITIES)
    if not modalities:
        raise ConfigError(f"'modalities' must name at least one of {list(MODALITIES)}; [] was provided.")
    return tuple(m for m in MODALITIES if m in modalities)


def _missing_edges(read: dict, found: dict, policy: str, participant_id: str) -> tuple[dict | None, str]:
    """Apply ``model.missing_edges`` to one subject's matrices (modality -> (matrix, regions)):
    ``(read, "")`` as they are or with NaN set to 0, or ``(None, reason)`` when the subject is left out."""
    nan_cells = {m: int(np.isnan(matrix).sum()) for m, (matrix, _) in read.items()}
    if not any(nan_cells.values()):
        return read, ""
    described = ", ".join(f"{m.upper()} {found[m]}: {count} NaN cells" for m, count in nan_cells.items() if count)
    if policy == "exclude":
        log.warning("%s: left out of the model: NaN edges (%s; model.missing_edges: exclude).", participant_id,
                    described)
        return None, f"NaN edges ({described})"
    log.warning("%s: %s set to 0 (model.missing_edges: zero).", participant_id, described)
    return {m: (np.nan_to_num(matrix, nan=0.0), regions) for m, (matrix, regions) in read.items()}, ""


def _stack(matrices: list[np.ndarray], n_subjects: int) -> np.ndarray:
    """``(s, n, n)``; ``(s, 0, 0)`` for a modality that was not read."""
    return np.stack(matrices) if matrices else np.zeros((n_subjects, 0, 0))


def write_dataset(dataset: ConnectomeDataset, table: pd.DataFrame, *, out_npz: str | Path, out_tsv: str | Path) -> None:
    """Write the dataset (``.npz``) and its audit table (every participant, included or not, why)."""
    dataset.save(out_npz)
    write_tsv(table, out_tsv)
