"""QC-FC: how much head motion is left in the functional connectomes of a cohort.

For every edge, the partial correlation across participants between its FC value and the
participant's mean framewise displacement, with age and sex held fixed where participants.tsv
has them (Power et al. 2012; Ciric et al. 2017, NeuroImage 154:174; Parkes et al. 2018,
NeuroImage 171:415). A denoising strategy that leaves motion in the data gives many edges a
QC-FC correlation far from zero, and a distance dependence: short-range edges gain from motion
and long-range ones lose, so QC-FC falls with the distance between the two regions. The
summary is the benchmark's: the median absolute QC-FC, the share of edges whose QC-FC is
significant (p < 0.05, uncorrected and after Benjamini-Hochberg), and the Spearman correlation
of QC-FC with the distance between region centroids.

This is the check a user runs on their own data to choose a confound strategy (``fc.strategy``):
the synthetic cohorts know the true FC, real data only these statistics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from connex.errors import ConnectomeError

if TYPE_CHECKING:
    from connex.anat.atlases import Atlas

log = logging.getLogger(__name__)

#: Fewer participants than this give no QC-FC. Any cohort below about 30 gives noisy figures
#: (the report says so); the demo's 6 still show what the check looks like.
MIN_PARTICIPANTS = 5
#: Covariates held fixed where participants.tsv has them (as in Ciric et al. 2017).
COVARIATES = ("age", "sex")
#: Below this many participants the summary carries a warning that the figures are noise-limited.
FEW_PARTICIPANTS = 30


@dataclass(frozen=True)
class QCFC:
    """Per-edge QC-FC of a cohort (upper triangle; NaN where an edge lacks a value in any participant)."""

    #: (E,) partial correlation of each edge with mean FD.
    r: np.ndarray
    #: (E,) two-sided p-value of ``r`` (t with n - 2 - k degrees of freedom).
    p: np.ndarray
    #: Participants and covariates used.
    n_participants: int
    covariates: tuple[str, ...]

    @property
    def dof(self) -> int:
        """Residual degrees of freedom of each partial correlation."""
        return self.n_participants - 2 - len(self.covariates)


def qc_fc(edges: np.ndarray, mean_fd: np.ndarray, covariates: np.ndarray | None = None,
          covariate_names: tuple[str, ...] = ()) -> QCFC:
    """QC-FC partial correlations.

    Parameters
    ----------
    edges : ndarray (S, E)
        One row of edge values per participant (Fisher z of the correlations; any FC measure).
    mean_fd : ndarray (S,)
        Mean framewise displacement of each participant (mm).
    covariates : ndarray (S, k), optional
        Held fixed (an intercept is always included).
    """
    edges = np.asarray(edges, dtype=np.float64)
    mean_fd = np.asarray(mean_fd, dtype=np.float64)
    n = len(mean_fd)
    design = np.column_stack([np.ones(n), np.zeros((n, 0)) if covariates is None else covariates])
    dof = n - design.shape[1] - 1
    if dof < 1:
        raise ValueError(f"QC-FC needs more participants than covariates + 2 (have {n} participants, "
                         f"{design.shape[1] - 1} covariates)")

    def residual(values: np.ndarray) -> np.ndarray:
        return values - design @ np.linalg.lstsq(design, values, rcond=None)[0]

    complete = ~np.isnan(edges).any(axis=0)
    fd = residual(mean_fd[:, None])[:, 0]
    values = residual(np.where(complete, edges, 0.0))
    norm = np.linalg.norm(values, axis=0) * np.linalg.norm(fd)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip((fd @ values) / norm, -1.0, 1.0)
        t = r * np.sqrt(dof / np.maximum(1.0 - r ** 2, 1e-12))
    p = 2 * stats.t.sf(np.abs(t), dof)
    r[~complete | (norm == 0)] = np.nan
    p[np.isnan(r)] = np.nan
    return QCFC(r=r, p=p, n_participants=n, covariates=tuple(covariate_names))


def null_median_absolute_r(dof: int) -> float:
    """Median |r| of a partial correlation with ``dof`` residual degrees of freedom when there is
    no effect (the value median |QC-FC| is to be compared with: 0.50 at 2, 0.12 at 30, 0.034 at 400)."""
    t = stats.t.ppf(0.75, dof)
    return float(t / np.sqrt(dof + t ** 2))


def region_centroids(atlas: Atlas) -> np.ndarray:
    """(N, 3) centre of mass of each atlas region in world mm, in atlas-table order (NaN for a
    region with no voxels)."""
    labels = np.asarray(atlas.labels, dtype=np.int64)
    indices = atlas.table["index"].to_numpy()
    voxels = np.array(ndimage.center_of_mass(np.ones(labels.shape), labels, indices), dtype=float).reshape(-1, 3)
    return voxels @ atlas.affine[:3, :3].T + atlas.affine[:3, 3]


def qc_fc_summary(result: QCFC, distance_mm: np.ndarray) -> dict:
    """The benchmark's figures of one QC-FC (``distance_mm``: (E,) centroid distances of the edges)."""
    valid = ~np.isnan(result.r)
    r, p = result.r[valid], result.p[valid]
    fdr = stats.false_discovery_control(p, method="bh") if len(p) else p
    usable = valid & ~np.isnan(distance_mm)
    varies = usable.sum() > 2 and np.ptp(distance_mm[usable]) > 0 and np.ptp(result.r[usable]) > 0
    rho = stats.spearmanr(result.r[usable], distance_mm[usable]).statistic if varies else np.nan
    return {
        "Participants": result.n_participants,
        "Covariates": list(result.covariates),
        "Edges": int(valid.sum()),
        "EdgesWithoutValue": int((~valid).sum()),
        "MedianAbsoluteQCFC": round(float(np.median(np.abs(r))), 4) if len(r) else None,
        "MedianAbsoluteQCFCWithoutMotionEffect": round(null_median_absolute_r(result.dof), 4),
        "MeanQCFC": round(float(np.mean(r)), 4) if len(r) else None,
        "FractionSignificant": round(float(np.mean(p < 0.05)), 4) if len(p) else None,
        "FractionSignificantFDR": round(float(np.mean(fdr < 0.05)), 4) if len(p) else None,
        "DistanceDependence": None if np.isnan(rho) else round(float(rho), 4),
    }


def qc_fc_table(result: QCFC, regions: list[str]) -> pd.DataFrame:
    """The QC-FC correlations as a symmetric region x region table (zero diagonal)."""
    n = len(regions)
    matrix = np.zeros((n, n))
    iu = np.triu_indices(n, 1)
    matrix[iu] = result.r
    matrix = matrix + matrix.T
    return pd.DataFrame(matrix, columns=regions)


def upper_distances(centroids: np.ndarray) -> np.ndarray:
    """(E,) Euclidean distances (mm) between the centroids of every upper-triangle region pair."""
    iu = np.triu_indices(len(centroids), 1)
    return np.linalg.norm(centroids[iu[0]] - centroids[iu[1]], axis=1)


def plot_qc_fc(result: QCFC, distance_mm: np.ndarray, summary: dict, out_png: str | Path, *, title: str) -> Path:
    """Histogram of the QC-FC correlations and QC-FC against edge distance."""
    from connex.report.figures import _save, plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    valid = ~np.isnan(result.r)
    left.hist(result.r[valid], bins=40, color="0.4")
    left.axvline(0, color="k", lw=0.8)
    left.set_xlabel("QC-FC (partial r of edge with mean FD)")
    left.set_ylabel("edges")
    significant, fdr = (100 * (summary[key] or 0) for key in ("FractionSignificant", "FractionSignificantFDR"))
    left.set_title(f"median |QC-FC| {summary['MedianAbsoluteQCFC']} (noise alone "
                   f"{summary['MedianAbsoluteQCFCWithoutMotionEffect']}), p<0.05: {significant:.1f} % "
                   f"(FDR {fdr:.1f} %)", fontsize=8)
    keep = valid & ~np.isnan(distance_mm)
    right.scatter(distance_mm[keep], result.r[keep], s=2, alpha=0.3, color="0.3", rasterized=True)
    right.axhline(0, color="k", lw=0.8)
    right.set_xlabel("distance between region centroids (mm)")
    right.set_ylabel("QC-FC")
    right.set_title(f"distance dependence: Spearman rho {summary['DistanceDependence']}", fontsize=8)
    return _save(figure, out_png, title=title)


def cohort_qc_fc(connectomes: list[str | Path], visits: list[str], *, qc_tsv: str | Path, participants_tsv: str | Path,
                 atlas: Atlas, fisher_z_done: bool = False) -> tuple[QCFC, np.ndarray, dict]:
    """QC-FC of a cohort from the workflow's files.

    Parameters
    ----------
    connectomes : list of path
        Each visit's FC correlation relmat (atlas order).
    visits : list of str
        Their visit labels (``sub-01``, ``sub-01_ses-1``): rows of the cohort QC table, whose
        ``mean_fd_mm`` is the visit's mean FD over its runs.
    participants_tsv : path
        ``age`` and ``sex`` are held fixed where it has them.
    fisher_z_done : bool
        The matrices already hold Fisher z values (``fc.fisher_z``); otherwise they are transformed.

    Returns
    -------
    result : QCFC
    distance_mm : ndarray (E,)
    summary : dict
    """
    # imported here: the workflow reads MIN_PARTICIPANTS at parse time, and connex.model loads torch
    from connex.evaluation.harmonise import covariate_matrix
    from connex.model.dataset import read_relmat

    qc = pd.read_csv(qc_tsv, sep="\t", dtype={"participant_id": str, "session": str}, na_values=["n/a"])
    if "session" in qc:  # a dataset with sessions: one row per visit, the label split in two columns
        has_session = qc["session"].notna()
        qc.loc[has_session, "participant_id"] = qc["participant_id"] + "_ses-" + qc["session"]
    mean_fd = qc.set_index("participant_id")["mean_fd_mm"].reindex(visits).to_numpy(float)
    edges = []
    iu = np.triu_indices(atlas.n_regions, 1)
    for path, visit in zip(connectomes, visits):
        matrix, _ = read_relmat(path, subject=visit, allow_nan=True)
        if matrix.shape != (atlas.n_regions, atlas.n_regions):
            raise ConnectomeError(f"{path}: a {matrix.shape[0]}-region matrix; expected the {atlas.n_regions} "
                                  f"regions of atlas {atlas.name}")
        values = matrix[iu]
        edges.append(values if fisher_z_done else np.arctanh(np.clip(values, -0.999999, 0.999999)))
    edges = np.array(edges)
    has_fd = ~np.isnan(mean_fd)
    if not has_fd.all():
        log.warning("QC-FC: no mean FD for %s; left out.", [v for v, ok in zip(visits, has_fd) if not ok])
    edges, mean_fd, visits = edges[has_fd], mean_fd[has_fd], [v for v, ok in zip(visits, has_fd) if ok]
    if len(visits) < MIN_PARTICIPANTS:
        raise ConnectomeError(f"{qc_tsv}: {len(visits)} of the participants with an FC matrix have a mean FD "
                              f"(mean_fd_mm); QC-FC needs at least {MIN_PARTICIPANTS}.")

    participants = pd.read_csv(participants_tsv, sep="\t", dtype=str).set_index("participant_id")
    rows = participants.reindex([visit.split("_")[0] for visit in visits]).reset_index()
    covariates, used = covariate_matrix(rows, list(COVARIATES), np.arange(len(rows)))
    if len(visits) - 2 - len(used) < 2:  # too few participants to hold the covariates fixed
        log.warning("QC-FC: %d participants are too few to hold %s fixed; plain correlations.", len(visits), used)
        covariates, used = None, []
    result = qc_fc(edges, mean_fd, covariates, tuple(used))
    distance = upper_distances(region_centroids(atlas))
    summary = qc_fc_summary(result, distance)
    summary["MeanFramewiseDisplacementMM"] = {"median": round(float(np.median(mean_fd)), 4),
                                              "max": round(float(np.max(mean_fd)), 4)}
    if len(visits) < FEW_PARTICIPANTS:
        summary["Warning"] = (f"{len(visits)} participants: QC-FC's figures are noise-limited below about "
                              f"{FEW_PARTICIPANTS} (with no motion effect at all about 5 % of edges reach p < 0.05).")
    log.info("QC-FC of %d participants (covariates %s): median |QC-FC| %s, %s of edges p < 0.05 (FDR %s), "
             "distance dependence %s", len(visits), used or "none", summary["MedianAbsoluteQCFC"],
             summary["FractionSignificant"], summary["FractionSignificantFDR"], summary["DistanceDependence"])
    return result, distance, summary
