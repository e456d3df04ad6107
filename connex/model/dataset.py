"""The connectome dataset: each subject's SC and FC matrices paired with label, site, age, sex.

Shape letters: ``s`` subjects, ``n`` regions.

Connectomes are read from a derivatives folder in the layout the pipeline writes (and that
users of other tools can reproduce)::

    <root>/participants.tsv                      participant_id, <label column>, site, age, sex
    <root>/sub-<label>/dwi/sub-<label>_atlas-<atlas>_stat-<weight>_relmat.tsv
    <root>/sub-<label>/func/sub-<label>_task-<task>_atlas-<atlas>_stat-<measure>_relmat.tsv

Other tools' names are read too (:func:`find_relmat` matches BIDS entities, not text): the atlas
under ``atlas-`` or ``seg-`` (XCP-D 0.8+), the measure under ``meas-``, ``stat-`` or ``measure-``
(``stat-pearsoncorrelation`` is ``correlation``), or, when none of these is present, a ``desc-``
that names a measure. Other entities (``ses-``, ``space-``, ``desc-``, ``run-``...) may appear:
``model.select`` picks among files that differ only in them (the first session by default).
``participants.tsv`` may instead be in the raw BIDS dataset (``bids_dir``).

A relmat TSV is an ``n x n`` tab-separated matrix in atlas order, with or without a header
row of region names, with or without an index column of region names (XCP-D's ``Node``);
``n/a`` cells are NaN (``model.missing_edges`` decides).

SC may instead come from QSIRecon (1.x, ``sub-<label>/[ses-<label>/]dwi/*_connectivity.mat``) or
QSIPrep's reconstruction (0.x, ``*_<...>connectome.mat``): one ``.mat`` holds every atlas and measure,
and the atlas and ``sc_weight`` choose a matrix in it (:mod:`connex.model.qsirecon`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from connex.errors import ConfigError, ConnectomeError, check_choice
from connex.inputs.bids import read_participants
from connex.inputs.checks import bids_entities
from connex.inputs.io import atomic_path, write_tsv
from connex.model.qsirecon import describe_mat, is_connectivity_mat, mat_atlases, read_connectivity_mat
from connex.model.timeseries import dataset_covariances
from connex.registry import (
    FC_MEASURES,
    FC_TIMESERIES_CHOICES,
    MISSING_EDGE_POLICIES,
    MISSING_POLICIES,
    MODALITIES,
    SC_WEIGHTS,
)

log = logging.getLogger(__name__)

#: Modality -> BIDS datatype folder of its connectomes.
MODALITY_DATATYPE = {"sc": "dwi", "fc": "func"}

_SYMMETRY_TOLERANCE = 1e-6

#: The entity keys that name a relmat's atlas (XCP-D writes ``seg-`` since its 2024 BIDS renaming).
ATLAS_ENTITIES = ("atlas", "seg")

#: The entity keys that name a relmat's measure, in the order they are looked for (XCP-D writes
#: ``stat-``, some older tools ``measure-``); with none of them, a ``desc-`` that names a measure.
MEASURE_ENTITIES = ("meas", "stat", "measure")

#: Other tools' names of a measure (any case) -> this pipeline's (:data:`FC_MEASURES`,
#: :data:`SC_WEIGHTS`); a name not listed is compared as it is, in lower case.
MEASURE_ALIASES = {
    "pearsoncorrelation": "correlation",  # XCP-D's stat-pearsoncorrelation
    "pearson": "correlation",
    "partialcorrelation": "partialcorrelation",
    "covariance": "covariance",
}

#: model.select keys that are not the entity's own key in a file name.
SELECT_ENTITIES = {"session": "ses"}

#: Entities model.select cannot set: other keys choose them (subject, atlas, measure, bold_task).
_NOT_SELECTABLE = ("sub", "task", *ATLAS_ENTITIES, *MEASURE_ENTITIES)

#: How many of a subject's relmat names a "missing" message lists.
_LISTED = 8


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
    fc_covariance : ndarray (s, n, n), optional
        Ledoit-Wolf covariances of the region time series, where every subject has them
        (:mod:`connex.model.timeseries`): what the tangent-space baseline embeds.
    """

    participants: pd.DataFrame
    classes: list[str]
    regions: list[str]
    sc: np.ndarray
    fc: np.ndarray
    metadata: dict = field(default_factory=dict)
    modalities: tuple[str, ...] = MODALITIES
    fc_covariance: np.ndarray | None = None

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
                                    metadata=repr(self.metadata), modalities=np.array(self.modalities),
                                    **({} if self.fc_covariance is None else {"fc_covariance": self.fc_covariance}))
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
                       regions=data["regions"].tolist(), sc=data["sc"], fc=data["fc"], modalities=modalities,
                       fc_covariance=data["fc_covariance"] if "fc_covariance" in data else None)


def read_relmat(path: str | Path, *, subject: str = "", symmetric: bool = True, allow_nan: bool = False
                ) -> tuple[np.ndarray, list[str] | None]:
    """Read one connectivity matrix TSV, with or without a header row of region names, with or
    without a first column of region names (XCP-D's ``Node`` column: its header cell is ``Node``
    or empty, or its cells are text; its names must be the header's, in the same order).

    ``allow_nan``: return NaN cells (``n/a``, ``nan``: an edge of a region without signal, such as
    XCP-D's low-coverage parcels) as NaN for the caller's policy, instead of raising. Inf is always
    an error.

    Returns
    -------
    matrix : ndarray (n, n)
    regions : list of str or None
        The header's region names, or the index column's (``None`` when the file has neither).

    Raises
    ------
    ConnectomeError
        Unreadable, not square, non-numeric cells, NaN (unless ``allow_nan``) or Inf, index column
        names unlike the header's, or (``symmetric``) not symmetric; the message names the subject and
        the file.
    """
    path = Path(path)
    who = f"{subject}: " if subject else ""
    try:
        lines = [line.rstrip("\n").rstrip("\r") for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ConnectomeError(f"{who}{path}: cannot read the connectivity matrix ({error}).") from error
    if not lines:
        raise ConnectomeError(f"{who}{path}: empty file; expected an n x n tab-separated matrix.")
    cells, row_names = _index_column([line.split("\t") for line in lines])
    first = cells[0]
    if len(cells) == len(first) + 1:  # n names above n rows (even numeric names)
        regions = [name.strip() for name in first]
    elif len(cells) == len(first):
        regions = None
    else:  # malformed: guess, so the error below names the real problem
        regions = None if all(_is_number(cell) or _is_missing(cell) for cell in first) else first
    rows = cells[1:] if regions is not None else cells
    try:
        matrix = np.array([[_number(cell) for cell in row] for row in rows], dtype=np.float64)
    except ValueError as error:
        raise ConnectomeError(f"{who}{path}: non-numeric cell ({error}); expected an n x n tab-separated "
                              "matrix of numbers, optionally below one header row of region names.") from error
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        shape = matrix.shape if matrix.ndim == 2 else f"rows of unequal length ({len(rows)} rows)"
        raise ConnectomeError(f"{who}{path}: the matrix is not square ({shape}); expected n x n in atlas order.")
    if regions is not None and len(regions) != matrix.shape[0]:
        raise ConnectomeError(f"{who}{path}: {len(regions)} region names in the header for a "
                              f"{matrix.shape[0]} x {matrix.shape[1]} matrix.")
    if row_names is not None and regions is not None and row_names != regions:
        diff = next(i for i, (a, b) in enumerate(zip(row_names, regions)) if a != b)  # both n long
        raise ConnectomeError(f"{who}{path}: the index column names region {diff + 1} '{row_names[diff]}' where "
                              f"the header has '{regions[diff]}'; rows and columns must list the regions in the "
                              "same order.")
    regions = regions if regions is not None else row_names
    check_values(matrix, where=f"{who}{path}", symmetric=symmetric, allow_nan=allow_nan)
    return matrix, regions


def check_values(matrix: np.ndarray, *, where: str, symmetric: bool = True, allow_nan: bool = False) -> None:
    """The checks of every connectome read, ``(n, n)``: finite (NaN allowed with ``allow_nan``, Inf
    never) and, with ``symmetric``, symmetric within a relative 1e-6.

    Raises
    ------
    ConnectomeError
        Naming ``where`` (the subject and the file) and the first bad cell.
    """
    bad = np.isinf(matrix) if allow_nan else ~np.isfinite(matrix)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConnectomeError(f"{where}: {bad.sum()} NaN or Inf value(s) (first at row {i + 1}, "
                              f"column {j + 1}); a connectome must be finite.")
    if symmetric:
        scale = max(np.nanmax(np.abs(matrix)) if not np.isnan(matrix).all() else 0.0, 1e-12)
        asym = np.nanmax(np.abs(matrix - matrix.T)) if not np.isnan(matrix).all() else 0.0
        if asym > _SYMMETRY_TOLERANCE * scale:
            i, j = np.unravel_index(np.argmax(np.abs(matrix - matrix.T)), matrix.shape)
            raise ConnectomeError(f"{where}: the matrix is not symmetric (row {i + 1}, column {j + 1}: "
                                  f"{matrix[i, j]:g} vs {matrix[j, i]:g}); SC and FC must be undirected.")


def read_connectome(path: str | Path, *, atlas: str, measure: str, subject: str = "", allow_nan: bool = False
                    ) -> tuple[np.ndarray, list[str] | None]:
    """Read one subject's connectome file: a relmat TSV (:func:`read_relmat`), or the ``atlas``
    matrix of ``measure`` in a QSIRecon/QSIPrep connectivity ``.mat``
    (:func:`connex.model.qsirecon.read_connectivity_mat`), with the same checks (:func:`check_values`).

    Returns
    -------
    matrix : ndarray (n, n)
    regions : list of str or None
    """
    if not is_connectivity_mat(path):
        return read_relmat(path, subject=subject, allow_nan=allow_nan)
    matrix, regions = read_connectivity_mat(path, atlas=atlas, measure=measure, subject=subject)
    check_values(matrix, where=f"{subject + ': ' if subject else ''}{path}", allow_nan=allow_nan)
    return matrix, regions


def _number(cell: str) -> float:
    """A cell's value; empty and n/a cells are NaN (reported as such, not as text)."""
    return np.nan if _is_missing(cell) else float(cell)


def _is_missing(cell: str) -> bool:
    """An empty or n/a cell (XCP-D writes ``n/a`` for the edges of a low-coverage parcel)."""
    return cell.strip().lower() in ("", "n/a", "na")


def _index_column(cells: list[list[str]]) -> tuple[list[list[str]], list[str] | None]:
    """Split off a first column of region names: ``(the other cells, its names)``, or ``(cells, None)``
    when there is none. It is one when every row below the first starts with text (not a number
    nor n/a), or when the header's first cell is ``Node`` (XCP-D) and every row has as many cells;
    a file without a header row whose every row starts with a name keeps them all as rows."""
    if len(cells) < 2 or any(len(row) < 2 for row in cells):
        return cells, None

    def text(cell: str) -> bool:
        return not _is_number(cell) and not _is_missing(cell)

    named = all(text(row[0]) for row in cells[1:])
    if named and text(cells[0][0]) and all(not text(cell) for cell in cells[0][1:]):  # no header row
        return [row[1:] for row in cells], [row[0].strip() for row in cells]
    if named or (cells[0][0].strip().lower() == "node" and all(len(row) == len(cells[0]) for row in cells)):
        return [row[1:] for row in cells], [row[0].strip() for row in cells[1:]]
    return cells, None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def relmat_entities(path: str | Path) -> dict[str, str]:
    """The BIDS entities of a relmat's (or a QSIRecon ``.mat``'s) name, key -> value (``_``-separated
    ``key-value`` pairs; the first of a repeated key), with ``ses`` from the folder (``sub-*/ses-*/func``)
    when the name has none."""
    path = Path(path)
    entities, _ = bids_entities(path.name.removesuffix(".tsv").removesuffix(".mat"))
    if "ses" not in entities and path.parent.parent.name.startswith("ses-"):
        entities["ses"] = path.parent.parent.name[len("ses-"):]
    return entities


def canonical_measure(name: str) -> str:
    """This pipeline's name of a measure written by another tool (:data:`MEASURE_ALIASES`; any case)."""
    return MEASURE_ALIASES.get(name.lower(), name.lower())


def relmat_atlas(entities: dict[str, str]) -> str | None:
    """A relmat's atlas: its ``atlas-`` or, without one, ``seg-`` entity."""
    return next((entities[key] for key in ATLAS_ENTITIES if key in entities), None)


def relmat_measure(entities: dict[str, str]) -> tuple[str | None, str | None]:
    """``(measure, key)``: a relmat's measure (:func:`canonical_measure`) and the entity that named it;
    a ``desc-`` names it only when no ``meas-``/``stat-``/``measure-`` does and it is a known measure."""
    for key in MEASURE_ENTITIES:
        if key in entities:
            return canonical_measure(entities[key]), key
    if "desc" in entities and canonical_measure(entities["desc"]) in (*FC_MEASURES, *SC_WEIGHTS):
        return canonical_measure(entities["desc"]), "desc"
    return None, None


def is_connectome_file(path: str | Path, modality: str) -> bool:
    """A connectome file of a modality by its name: a ``*_relmat.tsv``, or (SC) a QSIRecon/QSIPrep
    connectivity ``.mat`` (:func:`connex.model.qsirecon.is_connectivity_mat`)."""
    return Path(path).name.endswith("_relmat.tsv") or (modality == "sc" and is_connectivity_mat(path))


def connectome_contents(path: str | Path) -> dict[str, list[str]]:
    """Atlas -> the measures a connectome file holds: a relmat's one atlas and measure (its name's
    entities, :func:`relmat_measure`; no measure: ``[]``), a QSIRecon ``.mat``'s every atlas and
    measure (as written)."""
    if is_connectivity_mat(path):
        return {name: list(atlas.matrices) for name, atlas in mat_atlases(path).items()}
    entities = relmat_entities(path)
    atlas, (measure, _) = relmat_atlas(entities), relmat_measure(entities)
    return {} if atlas is None else {atlas: [measure] if measure else []}


def relmat_files(root: str | Path, subject: str, modality: str) -> list[Path]:
    """Every connectome file (:func:`is_connectome_file`) of ``subject`` (label without ``sub-``) for
    a modality: in ``sub-<subject>/<datatype>/`` then ``sub-<subject>/ses-*/<datatype>/``, sorted."""
    folder = Path(root) / f"sub-{subject}"
    datatype = MODALITY_DATATYPE[modality]
    return [path for pattern in (f"{datatype}/*", f"ses-*/{datatype}/*")
            for path in sorted(folder.glob(pattern)) if is_connectome_file(path, modality)]


def _all_connectome_files(root: str | Path) -> list[Path]:
    """Every connectome file under ``root/sub-*``: the relmats anywhere, the ``.mat`` files in ``dwi``."""
    return sorted(path for path in Path(root).glob("sub-*/**/*")
                  if path.name.endswith("_relmat.tsv") or (path.parent.name == "dwi" and is_connectivity_mat(path)))


def atlas_relmats(root: str | Path, atlas: str) -> list[Path]:
    """Every connectome file of ``atlas`` (``atlas-`` or ``seg-``; a ``.mat`` that holds it) under
    ``root/sub-*``, sorted (the model stage's inputs, so that a changed matrix reruns it)."""
    return [path for path in _all_connectome_files(root) if atlas in connectome_contents(path)]


def selection(select: dict | None) -> dict[str, str | None]:
    """``model.select`` as entity key -> wanted value (``session`` is ``ses``; a ``key-`` prefix of
    the value is dropped, so ``ses-01`` and ``01`` are the same; ``""``: the file without it).

    Raises
    ------
    ConfigError
        A key that other settings choose (subject, atlas, measure, task), or a value that is not text.
    """
    wanted = {}
    for name, value in (select or {}).items():
        key = SELECT_ENTITIES.get(name, name)
        if key in _NOT_SELECTABLE:
            raise ConfigError(f"'model.select.{name}': the {key}- entity is not chosen here (model.atlas, "
                              "model.sc_weight, model.fc_measure and bold_task choose atlas, measure and task); "
                              f"model.select takes other entities, e.g. session, space, desc, run.")
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"'model.select.{name}': {value!r} is not text; quote it (e.g. '01'), or write "
                              f"it with its key ({key}-{value}).")
        wanted[key] = None if value is None else value.removeprefix(f"{key}-")
    return wanted


def find_relmat(root: str | Path, subject: str, modality: str, *, atlas: str, meas: str,
                task: str | None = None, select: dict | None = None) -> Path | None:
    """The one relmat of ``subject`` (label without ``sub-``) for a modality, or ``None``.

    Looks at the :func:`relmat_files` and matches their BIDS entities (:func:`relmat_entities`):

    - the atlas: ``atlas-<atlas>`` or ``seg-<atlas>``;
    - the measure: ``meas-``, ``stat-`` or ``measure-`` (or a ``desc-`` naming a measure) equal to
      ``meas`` after :func:`canonical_measure` (XCP-D's ``stat-pearsoncorrelation`` is ``correlation``);
    - a QSIRecon ``.mat`` (SC) instead: it holds a matrix of that atlas and measure
      (:func:`connectome_contents`);
    - FC, when ``task`` is given: ``task-<task>``;
    - ``select`` (``model.select``), entity -> value: a value keeps the files with that value, ``""``
      the files without the entity, ``None`` sets nothing.

    With ``session`` unset and matches in several sessions, the first session in sorted order is taken
    (a file without a session first), and logged.

    Raises
    ------
    ConnectomeError
        More than one file still matches: the message lists them and the entities that tell them apart.
    ConfigError
        A bad ``select`` (:func:`selection`).
    """
    wanted = selection(select)
    measure = canonical_measure(meas)
    matches, measure_keys = [], {}
    for path in relmat_files(root, subject, modality):
        if measure not in {canonical_measure(name) for name in connectome_contents(path).get(atlas, [])}:
            continue
        entities = relmat_entities(path)
        _, key = relmat_measure(entities)
        if task and modality == "fc" and entities.get("task") != task:
            continue
        others = {k: v for k, v in entities.items() if k not in (*_NOT_SELECTABLE, key)}
        if all(value is None or others.get(k) == (value or None) for k, value in wanted.items()):
            matches.append((path, others))
            measure_keys[path] = key
    matches = _prefer_stat_naming(matches, measure_keys)
    what = (f"{modality.upper()} connectomes match atlas '{atlas}' and measure '{meas}'"
            + (f" (task '{task}')" if task and modality == "fc" else ""))
    sessions = sorted({others.get("ses") for _, others in matches}, key=lambda ses: (ses is not None, ses or ""))
    if wanted.get("ses") is None and len(sessions) > 1:
        matches = [(path, others) for path, others in matches if others.get("ses") == sessions[0]]
        log.info("sub-%s: %s in sessions %s; reading session %s, the first (model.select.session: null; set it "
                 "to choose).", subject, what, [ses or "(none)" for ses in sessions], sessions[0] or "(none)")
    if len(matches) > 1:
        keys = sorted({k for _, others in matches for k in others})
        differ = {k: sorted({others.get(k) for _, others in matches}, key=lambda v: (v is not None, v or ""))
                  for k in keys}
        differ = {k: values for k, values in differ.items() if len(values) > 1}
        names = {k: next((name for name, entity in SELECT_ENTITIES.items() if entity == k), k) for k in differ}
        how = ("; they differ in " + " and ".join(f"{k} ({', '.join(repr(v) for v in values)})"
                                                  for k, values in differ.items())
               + "; choose one with " + ", ".join(f"model.select.{names[k]}" for k in differ)
               + " ('' for the file without the entity)") if differ else "; keep one per subject"
        raise ConnectomeError(f"sub-{subject}: {len(matches)} {what}: {[str(path) for path, _ in matches]}{how} "
                              "(README, 'Connectomes from elsewhere').")
    return matches[0][0] if matches else None


def _prefer_stat_naming(matches: list[tuple[Path, dict]], measure_keys: dict[Path, str | None]
                        ) -> list[tuple[Path, dict]]:
    """Of files that differ only in how they name the measure (an output folder of ConneX 0.1.0,
    which wrote ``meas-``, rerun by a later version, which writes ``stat-``), the ``stat-`` one.
    ``measure_keys``: each file's measure entity (:func:`relmat_measure`)."""
    kept = []
    for path, others in matches:
        twins = [p for p, o in matches if o == others]
        current = [p for p in twins if measure_keys[p] == "stat"]
        if len(twins) == 1 or len(current) != 1 or path == current[0]:
            kept.append((path, others))
    return kept


def describe_relmats(root: str | Path, subject: str, modality: str) -> str:
    """What relmat files ``subject`` has for a modality (the names, the first few), for a "missing" message."""
    files = relmat_files(root, subject, modality)
    datatype = MODALITY_DATATYPE[modality]
    if not files:
        return f"no *_relmat.tsv in sub-{subject}/{datatype} or sub-{subject}/ses-*/{datatype}"
    more = f" and {len(files) - _LISTED} more" if len(files) > _LISTED else ""
    names = [describe_mat(path) if is_connectivity_mat(path) else path.name for path in files[:_LISTED]]
    return f"its {modality.upper()} relmats: {', '.join(names)}{more}"


def detect_atlas(root: str | Path) -> str:
    """The one atlas (``atlas-`` or ``seg-`` entity, or the atlases of QSIRecon ``.mat`` files) of
    the connectome files under ``root`` (for a connectomes folder whose atlas the user did not name).

    Raises
    ------
    ConnectomeError
        No relmat, or relmats of several atlases (the message lists them).
    """
    names = {atlas for path in _all_connectome_files(root) for atlas in connectome_contents(path)}
    if len(names) != 1:
        found = f"atlases {sorted(names)}" if names else ("no *_atlas-<name>_*_relmat.tsv (or *_seg-<name>_*) "
                                                          "file, nor a QSIRecon *_connectivity.mat with atlases")
        raise ConnectomeError(f"{root}: found {found} in sub-*/dwi and sub-*/func; name the atlas to model "
                              "with model.atlas (README, 'Connectomes from elsewhere').")
    return names.pop()


def build_dataset(root: str | Path, *, atlas: str, sc_weight: str = "count", fc_measure: str = "correlation",
                  task: str | None = "rest", participants_dir: str | Path | None = None,
                  label_column: str = "diagnosis", classes: tuple[str, ...] = ("HC", "SZ"),
                  site_column: str | None = "site", missing_modality: str = "exclude",
                  subjects: list[str] | None = None, files: dict[str, dict[str, str]] | None = None,
                  modalities: tuple[str, ...] | list[str] = MODALITIES, missing_edges: str = "exclude",
                  select: dict | None = None, fc_timeseries: str = "auto") -> tuple[ConnectomeDataset, pd.DataFrame]:
    """Pair every labelled participant's SC and FC matrices (or read the one modality of a
    one-modality cohort); with FC, the covariances of the region time series where every included
    subject has them (``fc_timeseries: auto``; ``matrices``: never).

    Parameters
    ----------
    root : path
        Folder with ``sub-*/dwi`` and ``sub-*/func`` connectomes.
    atlas, sc_weight, fc_measure, task : str
        Which files to read (entities of the relmat names), and which matrix of a QSIRecon ``.mat``.
    participants_dir : path, optional
        Folder of ``participants.tsv`` (default: ``root``; the workflow passes ``bids_dir`` when a
        ``connectomes_dir`` has none, :func:`connex.config.participants_folder`). The log names the file read.
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
        participant or modality absent from it counts as missing. Default: search ``root``
        (:func:`find_relmat`). The time series are those beside the FC matrices
        (:func:`connex.model.timeseries.timeseries_files`).
    select : dict, optional
        ``model.select``: entity -> value among the files that match (:func:`find_relmat`).
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
    check_choice("fc_timeseries", fc_timeseries, FC_TIMESERIES_CHOICES)
    root = Path(root)
    selection(select)  # a bad key stops the run before any subject
    participants = read_participants(participants_dir or root, label_column=label_column, classes=tuple(classes),
                                     site_column=site_column)
    _log_participants(root, Path(participants_dir or root), searched=files is None)
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
            found = {m: find_relmat(root, subject, m, atlas=atlas, meas=measures[m], task=task, select=select)
                     for m in modalities}
        else:
            found = {m: files.get(participant_id, {}).get(m) for m in modalities}
        missing = [m.upper() for m, f in found.items() if f is None]
        if missing:
            message = _missing_message(root, participant_id, missing, atlas=atlas,
                                       measures={m: measures[m] for m in modalities},
                                       select=select if files is None else None, searched=files is None)
            if missing_modality == "error":
                raise ConnectomeError(message + "; set missing_modality: exclude to leave such subjects out.")
            row["reason"] = "missing " + " and ".join(missing)
            log.warning("%s: left out of the model.", message)
            continue
        read = {m: read_connectome(path, atlas=atlas, measure=measures[m], subject=participant_id,
                                   allow_nan=missing_edges != "error") for m, path in found.items()}
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
        metadata={"atlas": atlas, "sc_weight": sc_weight, "fc_measure": fc_measure, "task": task,
                  "select": dict(select or {})},
        modalities=modalities)
    _add_covariances(dataset, included, fc_timeseries, reference[2])
    log.info("Connectome dataset: %d subjects (%s), %d regions; %d left out.", len(included),
             included["label"].value_counts().to_dict(), n, int((~table["included"]).sum()))
    return dataset, table


def _add_covariances(dataset: ConnectomeDataset, included: pd.DataFrame, policy: str, regions: list[str] | None
                     ) -> None:
    """With FC and ``fc_timeseries: auto`` (``matrices``: none), the time-series covariances of the tangent baseline
    (:func:`connex.model.timeseries.dataset_covariances`), and their source in the log and metadata."""
    if "fc" not in dataset.modalities or policy == "matrices":
        return
    dataset.fc_covariance, source = dataset_covariances(included["fc_file"].tolist(), dataset.subjects, regions,
                                                        dataset.fc.shape[-1])
    dataset.metadata["tangent_source"] = source
    log.info("Tangent-space baseline: %s.", source)


def _log_participants(root: Path, folder: Path, *, searched: bool) -> None:
    """Say which participants.tsv is read (with connectomes from elsewhere, whether it is bids_dir's)."""
    source = folder / "participants.tsv"
    if searched and folder.resolve() != root.resolve():
        own = ("its participants.tsv is not read" if (root / "participants.tsv").is_file()
               else "no participants.tsv there")
        log.info("Participants: %s (connectomes from %s: %s).", source, root, own)
    else:
        log.info("Participants: %s.", source)


def _missing_message(root: Path, participant_id: str, missing: list[str], *, atlas: str, measures: dict,
                     select: dict | None, searched: bool) -> str:
    """Why a subject has no connectome of some modality (``measures``: modality -> measure of those
    read); when ``root`` was searched, with the relmat names the subject has there, so that a naming
    mismatch is seen."""
    wanted = ", ".join(f"{m.upper()} '{measure}'" for m, measure in measures.items())
    chosen = {key: value for key, value in (select or {}).items() if value is not None}
    wanted += f", model.select {chosen}" if chosen else ""
    message = (f"{participant_id}: no {' or '.join(missing)} connectome (atlas '{atlas}', {wanted}) under "
               f"{root / participant_id}")
    if searched:
        subject = participant_id.removeprefix("sub-")
        message += "".join(f"; {describe_relmats(root, subject, m.lower())}" for m in missing)
    return message


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
