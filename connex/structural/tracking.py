"""Fibre orientation models, tractography and structural connectome matrices (dipy).

Choices (``sc`` in the config), with the defaults of the demo:

- model: ``csd`` (constrained spherical deconvolution, response estimated automatically from
  high-FA voxels; Tournier 2007) or ``csa`` (constant solid angle q-ball; Aganj 2010). The
  spherical-harmonic order is the highest the number of directions supports (at most 8).
- algorithm: ``deterministic`` (the fODF's maximum) or ``probabilistic`` (direction drawn from
  the fODF), both within ``max_angle`` of the previous step, seeds tracked in batches with a
  progress line after each. Deterministic tracking with FA stopping (the default) runs dipy's
  algorithm vectorised over the streamlines (:mod:`connex.structural.batch_tracking`: the same
  streamlines, 3.7x faster on bids-xa30); the other combinations run dipy's compiled, threaded trackers
  (``dipy.tracking.tracker``).
- seeding: ``seeds_per_voxel`` random points in every white-matter voxel, white matter being
  the brain-mask voxels with FA >= ``seed_fa_threshold`` (the template tissue priors are too
  coarse to seed from: thin bundles run through voxels they call grey matter), drawn from
  ``random_seed``.
- stopping: ``fa`` (FA below ``fa_threshold``) or ``cmc`` (continuous map criterion, Girard
  2014, from the anatomy stage's tissue maps: streamlines that stop in CSF or leave the brain
  are discarded, those that reach GM are kept).
- streamlines shorter than ``min_length_mm`` or longer than ``max_length_mm`` are discarded.

Connectome: each streamline end is assigned the atlas region it lies in, or, when it ends in
unlabelled tissue (white matter next to cortex), the nearest region within
``assignment_radius_mm`` (as MRtrix3's ``tck2connectome -assignment_radial_search``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from connex.errors import check_choice
from connex.registry import FODF_MODELS, STOPPING_CRITERIA, TRACKING_ALGORITHMS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingParams:
    """Tractography settings (see the module docstring)."""

    model: str = "csd"
    algorithm: str = "deterministic"
    stopping: str = "fa"
    seeds_per_voxel: int = 8
    seed_fa_threshold: float = 0.2
    fa_threshold: float = 0.15
    step_mm: float = 1.0
    max_angle: float = 35.0
    min_length_mm: float = 20.0
    max_length_mm: float = 250.0
    random_seed: int = 0

    def __post_init__(self):
        check_choice("model", self.model, FODF_MODELS)
        check_choice("algorithm", self.algorithm, TRACKING_ALGORITHMS)
        check_choice("stopping", self.stopping, STOPPING_CRITERIA)

    def as_dict(self) -> dict:
        return asdict(self)


def sh_order_for(n_directions: int, maximum: int = 8) -> int:
    """The highest even spherical-harmonic order with fewer coefficients than directions."""
    order = 2
    while order + 2 <= maximum and (order + 3) * (order + 4) // 2 <= n_directions:
        order += 2
    return order


def fit_fodf(data: np.ndarray, gtab, mask: np.ndarray, model: str) -> tuple[np.ndarray, dict]:
    """Fit the fibre orientation model; returns SH coefficients (X, Y, Z, C) float32 and details."""
    n_directions = int((~gtab.b0s_mask).sum())
    order = sh_order_for(n_directions)
    details: dict = {"model": model, "sh_order": order}
    if model == "csd":
        from dipy.reconst.csdeconv import (
            ConstrainedSphericalDeconvModel,
            auto_response_ssst,
        )

        response, ratio = auto_response_ssst(gtab, data, roi_radii=10, fa_thr=0.7)
        details["response_eigenvalues"] = [float(v) for v in response[0]]
        details["response_ratio"] = float(ratio)
        fit = ConstrainedSphericalDeconvModel(gtab, response, sh_order_max=order).fit(data, mask=mask)
    else:
        from dipy.reconst.shm import CsaOdfModel

        fit = CsaOdfModel(gtab, sh_order_max=order).fit(data, mask=mask)
    # float32: what the batch tracker keeps (half dipy's float64; the same streamlines on bids-xa30 and the demo)
    shm = np.asarray(fit.shm_coeff, dtype=np.float32)
    if shm.ndim != 4:  # seen when the response was implausible and no voxel could be fitted
        raise ValueError(f"The {model.upper()} fit gave no spherical-harmonic coefficients (shape {shm.shape}); "
                         f"details: {details}. Check the preprocessed DWI and its b-values.")
    return shm, details


def sample_seeds(seed_mask: np.ndarray, affine: np.ndarray, per_voxel: int, rng: np.random.Generator) -> np.ndarray:
    """``per_voxel`` uniform random points in every voxel of ``seed_mask``, world mm (N, 3)."""
    voxels = np.repeat(np.argwhere(seed_mask), per_voxel, axis=0).astype(np.float64)
    points = voxels + rng.uniform(-0.5, 0.5, voxels.shape)
    return points @ affine[:3, :3].T + affine[:3, 3]


#: Seeds per tracking batch: a progress line after each, and one batch of float64 streamlines in memory.
SEED_BATCH = 25_000


def track_batches(shm_coeff: np.ndarray, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                  params: TrackingParams, tissues: dict[str, np.ndarray] | None = None, *, threads: int = 1,
                  seed_batch: int = SEED_BATCH, vectorised: bool = True) -> Iterator[tuple[list[np.ndarray], dict]]:
    """Run tractography ``seed_batch`` seeds at a time; yields each batch's kept streamlines (world
    mm, float32 (n_i, 3)) with the figures so far (the last ones are the run's).

    Deterministic tracking with FA stopping runs :class:`~connex.structural.batch_tracking.
    DeterministicTracker` (dipy's algorithm, many streamlines at a step), anything else dipy's
    compiled trackers (``dipy.tracking.tracker.deterministic_tracking`` /
    ``probabilistic_tracking``), over ``threads`` threads, with a progress line in the log after
    each batch. Each seed's random stream is drawn from ``params.random_seed`` and the seed's
    position, so the result does not depend on the number of threads or the batch size. Consumed
    by :func:`save_tractogram`, about one batch is in memory at a time. ``tracking_seconds`` in the
    figures is the trackers' time, not the consumer's between batches (the log lines' times and
    rates are wall time).

    Parameters
    ----------
    shm_coeff : ndarray (X, Y, Z, C)
        fODF spherical-harmonic coefficients (:func:`fit_fodf`, dipy's default basis).
    fa, mask : ndarray (X, Y, Z)
        FA map and brain mask on the DWI grid; ``affine`` (4, 4) its grid.
    tissues : dict of ndarray (X, Y, Z)
        GM, WM, CSF probability maps on the DWI grid (needed for ``cmc``).
    threads : int
        Tracking threads (the job's cores).
    vectorised : bool
        False runs dipy's compiled tracker for deterministic FA-stopped tracking too (the
        benchmark's reference; the streamlines are the same).
    """
    from dipy.tracking.streamline import length

    track_seeds = _seed_tracker(shm_coeff, fa, mask, affine, params, tissues, threads=threads, vectorised=vectorised)
    seed_mask = mask & (fa >= params.seed_fa_threshold)
    seeds = sample_seeds(seed_mask, affine, params.seeds_per_voxel, np.random.default_rng(params.random_seed))
    start = time.perf_counter()
    tracking_seconds = 0.0  # the tracker's own time, not the consumer's (writing the file) between batches
    n_kept, n_generated = 0, 0
    figures = {"seeds": len(seeds), "seed_voxels": int(seed_mask.sum()), "threads": threads}
    n_batches = max(1, int(np.ceil(len(seeds) / seed_batch)))
    for batch in range(n_batches):
        batch_start = time.perf_counter()
        streamlines = [s for s in track_seeds(seeds[batch * seed_batch:(batch + 1) * seed_batch]) if len(s) >= 2]
        n_generated += len(streamlines)
        kept = []
        if streamlines:
            lengths = np.asarray(length(streamlines))
            good = (lengths >= params.min_length_mm) & (lengths <= params.max_length_mm)
            kept = [streamlines[i].astype(np.float32) for i in np.flatnonzero(good)]
        del streamlines
        n_kept += len(kept)
        tracking_seconds += time.perf_counter() - batch_start
        seconds = time.perf_counter() - start
        done = min((batch + 1) * seed_batch, len(seeds))
        log.info("Tracking: %d/%d seeds, %d streamlines kept, %.0f s (%.0f seeds/s, about %.0f s left)", done,
                 len(seeds), n_kept, seconds, done / max(seconds, 1e-9),
                 (len(seeds) - done) * seconds / max(done, 1))
        figures.update({"streamlines_generated": n_generated, "streamlines_kept": n_kept,
                        "tracking_seconds": round(tracking_seconds, 2),
                        "streamlines_per_second": round(n_generated / max(tracking_seconds, 1e-9), 1)})
        yield kept, dict(figures)
        del kept  # the consumer has it: hold one batch, not two, while the next is tracked


def _seed_tracker(shm_coeff: np.ndarray, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                  params: TrackingParams, tissues: dict[str, np.ndarray] | None, *, threads: int,
                  vectorised: bool) -> Callable[[np.ndarray], Iterable[np.ndarray]]:
    """The tracker :func:`track_batches` runs: a function from seeds (N, 3 world mm) to their
    streamlines (world mm, (n_i, 3)), before the length bounds."""
    from dipy.data import default_sphere
    from dipy.tracking.tracker import deterministic_tracking, probabilistic_tracking

    from connex.structural.batch_tracking import DeterministicTracker

    voxel_size = np.sqrt((affine[:3, :3] ** 2).sum(axis=0)).astype(np.float64)
    if vectorised and params.algorithm == "deterministic" and params.stopping == "fa":
        # dipy's algorithm with many streamlines per step: the same streamlines, 3.7x faster on bids-xa30.
        tracker = DeterministicTracker(shm_coeff, np.where(mask, fa, 0.0), params.fa_threshold, default_sphere,
                                       voxel_size, step_size=params.step_mm, max_angle=params.max_angle,
                                       max_nbr_pts=int((params.max_length_mm + params.step_mm) / params.step_mm))
        world_to_voxel = np.linalg.inv(affine)

        def batch_tracking(seeds: np.ndarray) -> Iterable[np.ndarray]:
            voxel_seeds = seeds @ world_to_voxel[:3, :3].T + world_to_voxel[:3, 3]
            return (s @ affine[:3, :3].T + affine[:3, 3] for s in tracker.track(voxel_seeds, threads=threads))

        return batch_tracking
    dipy_tracker = deterministic_tracking if params.algorithm == "deterministic" else probabilistic_tracking
    stopping = stopping_criterion(fa, mask, affine, params, tissues)
    shm = np.ascontiguousarray(shm_coeff, dtype=np.float64)

    def dipy_tracking(seeds: np.ndarray) -> Iterable[np.ndarray]:
        # dipy's lengths are one step short of the bounds it is given: track_batches applies the exact bounds.
        return dipy_tracker(seeds, stopping, affine, sh=shm,
                            min_len=max(params.min_length_mm - 2 * params.step_mm, 0.0),
                            max_len=params.max_length_mm + params.step_mm, step_size=params.step_mm,
                            voxel_size=voxel_size, max_angle=params.max_angle, sphere=default_sphere,
                            nbr_threads=threads, random_seed=params.random_seed + 1,  # 0 would be unseeded
                            return_all=params.stopping != "cmc")

    return dipy_tracking


def track(shm_coeff: np.ndarray, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray, params: TrackingParams,
          tissues: dict[str, np.ndarray] | None = None, *, threads: int = 1,
          seed_batch: int = SEED_BATCH) -> tuple[list[np.ndarray], dict]:
    """:func:`track_batches` collected: all kept streamlines (world mm, float32 (n_i, 3)) and the
    run's figures. For a whole brain, stream the batches into :func:`save_tractogram` instead."""
    streamlines, figures = [], {}
    for kept, progress in track_batches(shm_coeff, fa, mask, affine, params, tissues, threads=threads,
                                        seed_batch=seed_batch):
        streamlines.extend(kept)
        figures = progress
    return streamlines, figures


def fodf_region(fa: np.ndarray, mask: np.ndarray, params: TrackingParams) -> np.ndarray:
    """Voxels (X, Y, Z) bool whose fODF tracking can read: with FA stopping, the voxels at or
    above the stopping (or seeding) FA and their 26 neighbours (every point a streamline reaches
    has interpolated FA above the threshold, so the 8 voxels around it are within one voxel of
    one that is); the whole mask otherwise. Fitting only these gives the same tractogram in a
    fraction of the time (white matter is a third of a brain mask)."""
    if params.stopping != "fa":
        return mask
    from scipy import ndimage

    above = mask & (fa >= min(params.fa_threshold, params.seed_fa_threshold))
    return mask & ndimage.binary_dilation(above, structure=np.ones((3, 3, 3), dtype=bool))


def stopping_criterion(fa: np.ndarray, mask: np.ndarray, affine: np.ndarray, params: TrackingParams,
                       tissues: dict[str, np.ndarray] | None):
    """The tracking stopping criterion of ``params.stopping`` (module docstring); arrays (X, Y, Z)."""
    from dipy.tracking.stopping_criterion import CmcStoppingCriterion, ThresholdStoppingCriterion

    if params.stopping == "cmc":
        if tissues is None:
            raise ValueError("CMC stopping needs tissue maps (GM, WM, CSF) in DWI space.")
        voxel_mm = float(np.abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
        outside = np.clip(tissues["CSF"] + (1.0 - mask), 0.0, 1.0)  # leaving the brain is like entering CSF
        return CmcStoppingCriterion.from_pve(np.asarray(tissues["WM"], dtype=np.float64),
                                             np.asarray(tissues["GM"], dtype=np.float64), outside,
                                             step_size=params.step_mm, average_voxel_size=voxel_mm)
    return ThresholdStoppingCriterion(np.where(mask, fa, 0).astype(np.float64), params.fa_threshold)


def save_tractogram(streamlines: Iterable[np.ndarray], reference, target) -> int:
    """Write streamlines (world mm, (n_i, 3) each) as a TrackVis .trk file on ``reference``'s grid,
    atomically; returns how many were written.

    Written as the iterable is consumed (nibabel's ``LazyTractogram``), so a generator such as
    :func:`track_batches`'s never holds the whole tractogram in memory (on bids-xa30, 140k
    streamlines are 170 MB as float32 arrays, and building a ``StatefulTractogram`` copied them
    twice more). The file is the one dipy's ``save_tractogram`` writes (tested byte for byte).
    """
    from dipy.io.utils import create_tractogram_header, get_reference_info
    from nibabel.streamlines import LazyTractogram, TrkFile

    from connex.inputs.io import atomic_path

    written = 0

    def counted():
        nonlocal written
        for streamline in streamlines:
            written += 1
            yield streamline

    header = create_tractogram_header(TrkFile, *get_reference_info(reference))
    with atomic_path(target) as tmp:
        TrkFile(LazyTractogram(counted, affine_to_rasmm=np.eye(4)), header=header).save(str(tmp))
    return written


def tractogram_size(path) -> int:
    """The number of streamlines a .trk file holds (its header; nothing else is read)."""
    from nibabel.streamlines import TrkFile

    return int(TrkFile.load(str(path), lazy_load=True).header["nb_streamlines"])


def iter_tractogram(path) -> Iterator[np.ndarray]:
    """The streamlines (world mm, float32 (n_i, 3)) of a .trk file written by
    :func:`save_tractogram`, read as they are consumed (nibabel's lazy loading): a whole-brain
    tractogram is never all in memory. The points are those dipy's ``load_tractogram`` gives
    (bit for bit on an axial grid, within float32 rounding on an oblique one)."""
    from nibabel.streamlines import TrkFile

    for streamline in TrkFile.load(str(path), lazy_load=True).tractogram.streamlines:
        yield np.asarray(streamline, dtype=np.float32)


def load_tractogram(path) -> list[np.ndarray]:
    """All streamlines of a .trk file (:func:`iter_tractogram`) as a list."""
    return list(iter_tractogram(path))
