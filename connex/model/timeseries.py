"""Region time series beside the FC matrices, for the tangent-space baseline.

Dadi et al. (2019, NeuroImage 192:115) found the tangent space of Ledoit-Wolf covariances, estimated
from the region time series, the best FC representation; a correlation matrix written by another
tool has lost the time points that the shrinkage needs (and, with fewer volumes than regions, is
rank deficient). Where every FC subject of a cohort has its time series, the dataset stage adds
one covariance per subject (:func:`fc_covariance`), and the tangent baseline uses it.

Files read: the ``*_timeseries.tsv`` beside each FC matrix with its entities but for the run and
the statistic (one per run; as this pipeline, XCP-D and the dev-cohort layout write them), e.g.

    sub-01_task-rest_atlas-power264_meas-correlation_relmat.tsv
    sub-01_task-rest_run-1_atlas-power264_timeseries.tsv, sub-01_task-rest_run-2_atlas-power264_timeseries.tsv

each a tab-separated table, one row per kept volume, one column per region (header: region names, atlas
order). XCP-D writes ``seg-`` for the atlas and ``n/a`` for a region without signal (read as a
constant, dead region).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from connex.errors import ConnectomeError
from connex.inputs.checks import bids_entities

log = logging.getLogger(__name__)


#: Entities in which a time series may differ from its FC matrix: the statistic (XCP-D writes
#: ``stat-mean`` time series, ``stat-pearsoncorrelation`` matrices); the run too when the matrix has
#: none (a matrix of all runs).
_FREE_ENTITIES = ("stat", "meas", "measure")


def timeseries_files(fc_file: str | Path) -> list[Path]:
    """The ``*_timeseries.tsv`` runs beside an FC matrix that belong to it, sorted by name (run
    order): same folder, and the same BIDS entities (subject, session, task, space, atlas or seg,
    desc, and the run of a one-run matrix) but for the statistic."""
    fc_file = Path(fc_file)
    free = _FREE_ENTITIES if "run" in bids_entities(fc_file.name.removesuffix(".tsv"))[0] else (*_FREE_ENTITIES, "run")

    def key(path: Path) -> dict[str, str]:
        entities, _ = bids_entities(path.name.removesuffix(".tsv"))
        return {k: v for k, v in entities.items() if k not in free}

    wanted = key(fc_file)
    return [path for path in sorted(fc_file.parent.glob("*_timeseries.tsv")) if key(path) == wanted]


def atlas_timeseries(root: str | Path, atlas: str) -> list[Path]:
    """Every ``*_timeseries.tsv`` of ``atlas`` (``atlas-`` or ``seg-``) under ``root/sub-*``, sorted
    (inputs of the dataset stage, so that a changed file reruns it)."""
    def atlas_of(path: Path) -> str | None:
        entities, _ = bids_entities(path.name.removesuffix(".tsv"))
        return entities.get("atlas", entities.get("seg"))

    return sorted(path for path in Path(root).glob("sub-*/**/func/*_timeseries.tsv") if atlas_of(path) == atlas)


def read_timeseries(path: str | Path, regions: list[str] | None = None, n_regions: int | None = None
                    ) -> np.ndarray:
    """One run's region time series ``(T, n)`` float64; ``n/a`` cells (a region without signal) are 0.

    Raises
    ------
    ConnectomeError
        Naming the file: unreadable, non-numeric, columns other than ``regions`` (when given) or
        other than ``n_regions`` of them.
    """
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except (OSError, ValueError) as error:
        raise ConnectomeError(f"{path}: cannot be read as a time-series TSV ({error}).") from error
    if regions is not None and list(table.columns) != list(regions):
        raise ConnectomeError(f"{path}: {table.shape[1]} columns ({list(table.columns)[:3]}...) but the connectomes "
                              f"have {len(regions)} regions ({list(regions)[:3]}...); the time series must list "
                              "the regions of the matrices, in the same order.")
    if n_regions is not None and table.shape[1] != n_regions:
        raise ConnectomeError(f"{path}: {table.shape[1]} columns but the connectomes have {n_regions} regions; the "
                              "time series must have one column per region of the matrices.")
    try:
        values = table.to_numpy(dtype=np.float64)
    except ValueError as error:
        raise ConnectomeError(f"{path}: non-numeric cells ({error}).") from error
    if np.isinf(values).any():
        raise ConnectomeError(f"{path}: {int(np.isinf(values).sum())} infinite values.")
    return np.nan_to_num(values, nan=0.0)


def fc_covariance(runs: list[np.ndarray]) -> np.ndarray:
    """Ledoit-Wolf covariance ``(n, n)`` of one subject's runs ``[(T_i, n)]``: each run's regions
    z-scored (a constant region, without signal, stays 0: uncoupled, with the shrinkage's variance
    only), the runs concatenated. On z-scored runs it is a shrunk correlation matrix."""
    from sklearn.covariance import LedoitWolf

    standardised = []
    for run in runs:
        sd = run.std(axis=0)
        standardised.append(np.where(sd > 0, (run - run.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0))
    return LedoitWolf(assume_centered=True).fit(np.concatenate(standardised)).covariance_


def subject_covariance(paths: list[Path], regions: list[str] | None, subject: str, n_regions: int | None = None
                       ) -> np.ndarray:
    """:func:`fc_covariance` of the runs in ``paths``; a run shorter than 3 volumes is refused."""
    runs = [read_timeseries(path, regions, n_regions) for path in paths]
    short = [str(path) for path, run in zip(paths, runs) if len(run) < 3]
    if short:
        raise ConnectomeError(f"{subject}: time series with fewer than 3 volumes: {short}.")
    return fc_covariance(runs)


def dataset_covariances(fc_files: list[str | Path], participant_ids: list[str], regions: list[str] | None,
                        n_regions: int | None = None) -> tuple[np.ndarray | None, str]:
    """One :func:`fc_covariance` per subject ``(s, n, n)`` from the time series beside each FC
    matrix (:func:`timeseries_files`), or ``None`` unless every subject has readable ones that
    match the matrices (a bad file is a warning naming it, not an error: they serve one baseline);
    with the source in words (for the log and the dataset's metadata).

    Parameters
    ----------
    fc_files : list of path
        Each subject's FC matrix, in dataset order (``participant_ids`` names them).
    regions : list of str, optional
        The matrices' region names, which the time series' columns must repeat (``None``: matrices
        without names: only the number of columns, ``n_regions``, is checked).
    """
    runs = [timeseries_files(path) for path in fc_files]
    for participant_id, path, found in zip(participant_ids, fc_files, runs):
        if not found:
            return None, (f"the FC matrices ({participant_id} has no region time series beside {Path(path).name}, "
                          "so none are used)")
    try:
        covariances = np.stack([subject_covariance(found, regions, p, n_regions)
                                for p, found in zip(participant_ids, runs)])
    except ConnectomeError as error:  # the time series only serve one baseline: a bad one does not stop the run
        log.warning("Region time series not used (the tangent baseline uses the FC matrices): %s", error)
        return None, f"the FC matrices (the time series were not used: {error})"
    counts = "/".join(str(n) for n in sorted({len(found) for found in runs}))
    return covariances, (f"Ledoit-Wolf covariances of the region time series of all {len(participant_ids)} "
                         f"subjects ({counts} run(s) each, z-scored and concatenated)")
