"""Structural connectomes written by QSIRecon (1.x) and by QSIPrep's reconstruction (0.x): the
MATLAB ``.mat`` files that bundle every atlas and every edge weight of one DWI series.

Shape letters: ``n`` regions.

The files, in a subject's ``dwi`` folder (``sub-<label>/[ses-<label>/]dwi/``):

- QSIRecon 1.x, under ``derivatives/qsirecon-<suffix>/``: ``<source entities>_connectivity.mat``
  (``ReconDerivativesDataSink(suffix="connectivity")`` in ``qsirecon/workflows/recon/mrtrix.py``);
- QSIPrep 0.x, under ``qsirecon/``: ``<source entities>_<output_suffix>.mat``, the recon spec's
  suffix of its connectivity node: ``msmtconnectome``, ``dhollanderconnectome``, ``globalconnectome``,
  ``gqinetwork``... (``qsiprep/data/pipelines/*.json``); read when it ends with ``connectome`` or
  ``network``.

Their variables (``BuildConnectome`` and ``DSIStudioConnectivityMatrix`` in
``qsirecon/interfaces/{mrtrix,dsi_studio}.py``, the same without ``atlas_`` in QSIPrep)::

    atlas_<atlas>_region_ids                 (1, n) the atlas's region ids, in matrix order
    atlas_<atlas>_region_labels              (1, n) their names (a cell array; QSIPrep: char rows)
    atlas_<atlas>_<measure>_connectivity     (n, n) e.g. sift_invnodevol_radius2_count, radius2_count,
                                                    radius2_meanlength (MRtrix3), count_pass (DSI Studio)

and others (``command``, DSI Studio's network measures), which are not read. ``<atlas>`` is the name
``model.atlas`` takes (``4S156Parcels``, ``schaefer100x7``), ``<measure>`` the one
``model.sc_weight`` takes (any case).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from connex.errors import ConnectomeError
from connex.inputs.checks import bids_entities

#: The BIDS suffix of QSIRecon 1.x's file, and the endings of QSIPrep 0.x's (its recon specs' names).
MAT_SUFFIX = "connectivity"
QSIPREP_SUFFIX_ENDINGS = ("connectome", "network")

#: QSIRecon 1.x's prefix of every atlas variable (QSIPrep 0.x has none).
ATLAS_PREFIX = "atlas_"

_IDS = "_region_ids"
_LABELS = "_region_labels"
_MATRIX = "_connectivity"

#: MATLAB classes of a numeric matrix (``scipy.io.whosmat`` names).
_NUMERIC = {"double", "single", "logical", *(f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64))}


@dataclass(frozen=True)
class MatAtlas:
    """One atlas of a connectivity ``.mat``.

    Attributes
    ----------
    name : str
        The atlas as ``model.atlas`` names it (without QSIRecon's ``atlas_``).
    prefix : str
        Its variables' prefix: ``atlas_<name>`` (QSIRecon 1.x) or ``<name>`` (QSIPrep 0.x).
    matrices : dict
        Measure (as written) -> the variable name of its ``(n, n)`` matrix, in sorted order.
    """

    name: str
    prefix: str
    matrices: dict[str, str]


def is_connectivity_mat(path: str | Path) -> bool:
    """Whether a file name is a QSIRecon/QSIPrep connectivity ``.mat`` (its suffix ``connectivity``,
    or ending with ``connectome`` or ``network``); a transform or other ``.mat`` is not."""
    name = Path(path).name
    if not name.endswith(".mat"):
        return False
    _, suffix = bids_entities(name.removesuffix(".mat"))
    return suffix == MAT_SUFFIX or suffix.endswith(QSIPREP_SUFFIX_ENDINGS)


def parse_variables(variables: Mapping[str, tuple[tuple[int, ...], str]]) -> dict[str, MatAtlas]:
    """The atlases of a ``.mat`` from its variables' names, shapes and MATLAB classes (``whosmat``).

    An atlas is a prefix ``P`` with a ``P_region_ids`` variable; its measures are the square numeric
    ``P_<measure>_connectivity`` variables. A matrix goes to the longest such prefix that leaves a
    measure, so that ``schaefer100_tianS1`` is not read as ``schaefer100`` with a measure
    ``tianS1_...``, nor DSI Studio's ``atlas_X_count_pass_region_ids`` (a network measure) as an atlas.
    Atlases without a matrix are left out.

    Returns
    -------
    dict
        Atlas name -> :class:`MatAtlas`, in sorted order.

    Raises
    ------
    ConnectomeError
        Two prefixes name the same atlas (``atlas_X_...`` and ``X_...`` in one file).
    """
    prefixes = sorted((name[: -len(_IDS)] for name in variables if name.endswith(_IDS) and len(name) > len(_IDS)),
                      key=len, reverse=True)
    found: dict[str, dict[str, str]] = {prefix: {} for prefix in prefixes}
    for name, (shape, kind) in variables.items():
        if not name.endswith(_MATRIX) or len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2 \
                or kind not in _NUMERIC:
            continue
        end = len(name) - len(_MATRIX)
        prefix = next((p for p in prefixes if name.startswith(p + "_") and end > len(p) + 1), None)
        if prefix is not None:
            found[prefix][name[len(prefix) + 1: end]] = name
    atlases: dict[str, MatAtlas] = {}
    for prefix, matrices in sorted(found.items()):
        if not matrices:
            continue
        name = prefix.removeprefix(ATLAS_PREFIX) or prefix
        if name in atlases:
            raise ConnectomeError(f"variables of atlas '{name}' under two prefixes ('{atlases[name].prefix}' and "
                                  f"'{prefix}'); keep one.")
        atlases[name] = MatAtlas(name=name, prefix=prefix, matrices=dict(sorted(matrices.items())))
    return dict(sorted(atlases.items()))


def mat_atlases(path: str | Path) -> dict[str, MatAtlas]:
    """The atlases and measures of a connectivity ``.mat`` (:func:`parse_variables`), read from its
    variable headers (``scipy.io.whosmat``, no matrix loaded); cached while the file is unchanged.

    Raises
    ------
    ConnectomeError
        Not a readable MATLAB 5 file (QSIRecon and QSIPrep write those, with ``scipy.io.savemat``).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise ConnectomeError(f"{path}: cannot read the connectivity .mat ({error}).") from error
    return _mat_atlases(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1024)
def _mat_atlases(path: str, mtime_ns: int, size: int) -> dict[str, MatAtlas]:
    from scipy.io import whosmat
    from scipy.io.matlab import MatReadError

    try:
        variables = {name: (tuple(shape), kind) for name, shape, kind in whosmat(path)}
    except (MatReadError, ValueError, NotImplementedError, OSError) as error:  # NotImplementedError: v7.3 (HDF5)
        raise ConnectomeError(f"{path}: cannot read the connectivity .mat ({type(error).__name__}: {error}); "
                              "expected a MATLAB 5 file as QSIRecon and QSIPrep write.") from error
    try:
        return parse_variables(variables)
    except ConnectomeError as error:
        raise ConnectomeError(f"{path}: {error}") from error


def describe_mat(path: str | Path) -> str:
    """What a connectivity ``.mat`` holds, for a message: ``"<name> (atlas A: m1, m2; atlas B: m1)"``."""
    atlases = mat_atlases(path)
    if not atlases:
        return (f"{Path(path).name} (no atlas: no <atlas>_region_ids with square <atlas>_<measure>{_MATRIX} "
                "matrices)")
    held = "; ".join(f"atlas {name}: {', '.join(atlas.matrices)}" for name, atlas in atlases.items())
    return f"{Path(path).name} ({held})"


def read_connectivity_mat(path: str | Path, *, atlas: str, measure: str, subject: str = ""
                          ) -> tuple[np.ndarray, list[str]]:
    """Read one atlas's matrix of one measure from a connectivity ``.mat``, rows and columns in the
    order of the file's region ids.

    Parameters
    ----------
    atlas : str
        The atlas (``model.atlas``), as :func:`mat_atlases` names it (exact).
    measure : str
        The measure (``model.sc_weight``), any case: ``sift_invnodevol_radius2_count``.
    subject : str
        For messages.

    Returns
    -------
    matrix : ndarray (n, n)
        As stored (float64); NaN, Inf and symmetry are the caller's checks.
    regions : list of str
        The region labels (the ids, as text, when the file has no labels), ``n`` long.

    Raises
    ------
    ConnectomeError
        No such atlas or measure (the message lists the atlases and measures the file holds), two
        matrices of the measure (names differing in case), region ids or labels that are not ``n``.
    """
    path = Path(path)
    who = f"{subject}: " if subject else ""
    atlases = mat_atlases(path)
    if atlas not in atlases:
        raise ConnectomeError(f"{who}{path}: no atlas '{atlas}'; the file holds {_held(atlases)}. Set model.atlas to "
                              "one of them (README, 'Connectomes from elsewhere').")
    entry = atlases[atlas]
    keys = [key for name, key in entry.matrices.items() if name.lower() == measure.lower()]
    if len(keys) != 1:
        what = "no" if not keys else f"{len(keys)} ({', '.join(keys)})"
        raise ConnectomeError(f"{who}{path}: {what} '{measure}' matrix of atlas '{atlas}'; its measures are "
                              f"{list(entry.matrices)}. Set model.sc_weight to one of them (README, 'Connectomes "
                              "from elsewhere').")
    from scipy.io import loadmat

    ids_key, labels_key = entry.prefix + _IDS, entry.prefix + _LABELS
    data = loadmat(str(path), variable_names=[keys[0], ids_key, labels_key])
    matrix = np.asarray(data[keys[0]], dtype=np.float64)
    ids, labels = _texts(data.get(ids_key)), _texts(data.get(labels_key))
    n = matrix.shape[0]
    if len(ids) != n:
        raise ConnectomeError(f"{who}{path}: {len(ids)} region ids ({ids_key}) for the {n} x {n} matrix {keys[0]}; "
                              "they must list the matrix's regions in order.")
    if labels and len(labels) != n:
        raise ConnectomeError(f"{who}{path}: {len(labels)} region labels ({labels_key}) for {n} region ids.")
    return matrix, labels or ids


def _held(atlases: Mapping[str, MatAtlas]) -> str:
    if not atlases:
        return "no atlas (no <atlas>_region_ids with <atlas>_<measure>_connectivity matrices)"
    return "; ".join(f"atlas '{name}' (measures {list(atlas.matrices)})" for name, atlas in atlases.items())


def _texts(value) -> list[str]:
    """The items of a MATLAB vector as text: a cell array of strings (each a 1-element array), a char
    matrix (rows padded with spaces), or numbers (``1.0`` -> ``"1"``); ``[]`` for ``None``."""
    if value is None:
        return []
    texts = []
    for item in np.asarray(value, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size else ""
        if isinstance(item, float | np.floating) and float(item).is_integer():
            item = int(item)
        texts.append(str(item).strip())
    return texts
