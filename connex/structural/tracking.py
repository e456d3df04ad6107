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


@dataclass(frozen=True)
class FODF:
    """fODF spherical-harmonic coefficients (dipy's default basis) of the voxels of a region.

    Only the region's voxels are stored: on bids-xa30 that is a quarter of the grid, and on a
    1.25 mm grid a dense float32 volume of order-8 coefficients would be 660 MB.

    Attributes
    ----------
    coefficients : ndarray (n, C) float32
        One row per voxel of ``region``, in C order (``np.flatnonzero(region)``).
    region : ndarray (X, Y, Z) bool
        The voxels that have coefficients (elsewhere the fODF is zero).
    """

    coefficients: np.ndarray
    region: np.ndarray

    @classmethod
    def from_dense(cls, shm_coeff: np.ndarray, region: np.ndarray | None = None) -> FODF:
        """From coefficients (X, Y, Z, C) on the whole grid, kept in ``region`` (default: every voxel)."""
        if region is None:
            region = np.ones(shm_coeff.shape[:3], dtype=bool)
        return cls(np.asarray(shm_coeff[region], dtype=np.float32), np.asarray(region, dtype=bool))

    def dense(self, dtype=np.float32) -> np.ndarray:
        """The coefficients on the whole grid (X, Y, Z, C), zero outside the region."""
        out = np.zeros(self.region.shape + self.coefficients.shape[1:], dtype=dtype)
        out[self.region] = self.coefficients
        return out


#: Half-width (voxels) of the central box the single-fibre response is estimated in (dipy's default),
#: and the FA above which a voxel of it counts as single-fibre.
RESPONSE_ROI_RADIUS = 10
RESPONSE_FA_THRESHOLD = 0.7


def single_fibre_response(gtab, data: np.ndarray) -> tuple[tuple[np.ndarray, float], float]:
    """dipy's ``auto_response_ssst`` (response and ratio): a tensor fit of the central box of
    ``data`` (X, Y, Z, G), its voxels above ``RESPONSE_FA_THRESHOLD`` averaged. The same figures,
    with dipy's tensor fitted ``TENSOR_FIT_CHUNK`` voxels at a time (in one piece it held 94 MB for
    the 9,261 voxels of the box on bids-xa30). Where the box does not fit in the volume (dipy
    then shrinks it), dipy's function as it is."""
    from dipy.reconst.csdeconv import auto_response_ssst, response_from_mask_ssst
    from dipy.reconst.dti import TensorModel, fractional_anisotropy

    from connex.structural.preprocess import TENSOR_FIT_CHUNK

    shape = np.array(data.shape[:3])
    low, high = shape // 2 - RESPONSE_ROI_RADIUS, shape // 2 + RESPONSE_ROI_RADIUS
    if (low < 0).any() or (high >= shape).any():
        return auto_response_ssst(gtab, data, roi_radii=RESPONSE_ROI_RADIUS, fa_thr=RESPONSE_FA_THRESHOLD)
    box = data[low[0]:high[0] + 1, low[1]:high[1] + 1, low[2]:high[2] + 1]
    fa = np.nan_to_num(fractional_anisotropy(TensorModel(gtab, step=TENSOR_FIT_CHUNK).fit(box).evals))
    return response_from_mask_ssst(gtab, box, (fa > RESPONSE_FA_THRESHOLD).astype(np.int64))


#: Voxels fitted at a time: dipy's CSD keeps a Python fit object per voxel and float64 coefficients;
#: chunks keep that to a few MB.
FIT_CHUNK = 4000


def fodf_model(gtab, data: np.ndarray, model: str) -> tuple[object, dict]:
    """The fibre orientation model of ``model`` for the DWI series ``data`` (X, Y, Z, G) and its
    gradient table (CSD: with the single-fibre response estimated from the series), and details."""
    n_directions = int((~gtab.b0s_mask).sum())
    order = sh_order_for(n_directions)
    details: dict = {"model": model, "sh_order": order}
    if model == "csd":
        from dipy.reconst.csdeconv import ConstrainedSphericalDeconvModel

        response, ratio = single_fibre_response(gtab, data)
        details["response_eigenvalues"] = [float(v) for v in response[0]]
        details["response_ratio"] = float(ratio)
        return ConstrainedSphericalDeconvModel(gtab, response, sh_order_max=order), details
    from dipy.reconst.shm import CsaOdfModel

    return CsaOdfModel(gtab, sh_order_max=order), details


def fodf_coefficients(fitted_model, signals: np.ndarray, details: dict) -> np.ndarray:
    """SH coefficients (n, C) float32 of the voxels' signals (n, G), ``FIT_CHUNK`` voxels at a
    time (each voxel's fit is independent: the coefficients are those of one fit of them all; on
    bids-xa30 dipy's whole-mask fit held about 100 MB more than the result)."""
    order = details["sh_order"]
    out = np.zeros((len(signals), (order + 1) * (order + 2) // 2), dtype=np.float32)
    for start in range(0, len(signals), FIT_CHUNK):
        coefficients = np.asarray(fitted_model.fit(signals[start:start + FIT_CHUNK]).shm_coeff)
        if coefficients.shape != (len(signals[start:start + FIT_CHUNK]), out.shape[1]):
            # seen when the response was implausible and no voxel could be fitted
            raise ValueError(f"The {details['model'].upper()} fit gave no spherical-harmonic coefficients (shape "
                             f"{coefficients.shape}); details: {details}. Check the preprocessed DWI and its "
                             "b-values.")
        # float32: what the batch tracker keeps (half dipy's float64; the same streamlines on bids-xa30 and the demo)
        out[start:start + FIT_CHUNK] = coefficients
    return out


def fit_fodf(data: np.ndarray, gtab, mask: np.ndarray, model: str) -> tuple[FODF, dict]:
    """Fit the fibre orientation model (:func:`fodf_model`) in the voxels of ``mask`` (X, Y, Z)
    bool of the series ``data`` (X, Y, Z, G); returns the :class:`FODF` and details. (The
    tractography job calls the two steps itself, to free the series before the fit.)"""
    fitted_model, details = fodf_model(gtab, data, model)
    return FODF(fodf_coefficients(fitted_model, data[mask], details), np.asarray(mask, dtype=bool)), details


def sample_seeds(seed_mask: np.ndarray, affine: np.ndarray, per_voxel: int, rng: np.random.Generator) -> np.ndarray:
    """``per_voxel`` uniform random points in every voxel of ``seed_mask``, world mm (N, 3)."""
    voxels = np.repeat(np.argwhere(seed_mask), per_voxel, axis=0).astype(np.float64)
    points = voxels + rng.uniform(-0.5, 0.5, voxels.shape)
    return points @ affine[:3, :3].T + affine[:3, 3]


#: Seeds per tracking batch: a progress line after each, and one batch's kept streamlines in memory
#: (on bids-xa30 the job peaked at 253 MB with 25,000, 218 MB with this; the same tractogram).
SEED_BATCH = 10_000


def track_batches(fodf: FODF, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray,
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
    fodf : FODF
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

    track_seeds = _seed_tracker(fodf, fa, mask, affine, params, tissues, threads=threads, vectorised=vectorised)
    seed_mask = mask & (fa >= params.seed_fa_threshold)
    seeds = sample_seeds(seed_mask, affine, params.seeds_per_voxel, np.random.default_rng(params.random_seed))
    start = time.perf_counter()
    tracking_seconds = 0.0  # the tracker's own time, not the consumer's (writing the file) between batches
    n_kept, n_generated = 0, 0
    figures = {"seeds": len(seeds), "seed_voxels": int(seed_mask.sum()), "threads": threads}
    n_batches = max(1, int(np.ceil(len(seeds) / seed_batch)))
    for batch in range(n_batches):
        batch_start = time.perf_counter()
        kept = []
        # one streamline at a time: the batch's kept float32 streamlines are held, not all it generated
        for streamline in track_seeds(seeds[batch * seed_batch:(batch + 1) * seed_batch]):
            if len(streamline) < 2:
                continue
            n_generated += 1
            if params.min_length_mm <= length(streamline) <= params.max_length_mm:
                kept.append(streamline.astype(np.float32))
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


def _seed_tracker(fodf: FODF, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray,
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
        tracker = DeterministicTracker(fodf, np.where(mask, fa, 0.0), params.fa_threshold, default_sphere,
                                       voxel_size, step_size=params.step_mm, max_angle=params.max_angle,
                                       max_nbr_pts=int((params.max_length_mm + params.step_mm) / params.step_mm))
        world_to_voxel = np.linalg.inv(affine)

        def batch_tracking(seeds: np.ndarray) -> Iterable[np.ndarray]:
            voxel_seeds = seeds @ world_to_voxel[:3, :3].T + world_to_voxel[:3, 3]
            return (s @ affine[:3, :3].T + affine[:3, 3] for s in tracker.iter_track(voxel_seeds, threads=threads))

        return batch_tracking
    dipy_tracker = deterministic_tracking if params.algorithm == "deterministic" else probabilistic_tracking
    stopping = stopping_criterion(fa, mask, affine, params, tissues)
    shm = fodf.dense(np.float64)  # dipy's trackers read a float64 grid

    def dipy_tracking(seeds: np.ndarray) -> Iterable[np.ndarray]:
        # dipy's lengths are one step short of the bounds it is given: track_batches applies the exact bounds.
        return dipy_tracker(seeds, stopping, affine, sh=shm,
                            min_len=max(params.min_length_mm - 2 * params.step_mm, 0.0),
                            max_len=params.max_length_mm + params.step_mm, step_size=params.step_mm,
                            voxel_size=voxel_size, max_angle=params.max_angle, sphere=default_sphere,
                            nbr_threads=threads, random_seed=params.random_seed + 1,  # 0 would be unseeded
                            return_all=params.stopping != "cmc")

    return dipy_tracking


def track(fodf: FODF, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray, params: TrackingParams,
          tissues: dict[str, np.ndarray] | None = None, *, threads: int = 1,
          seed_batch: int = SEED_BATCH) -> tuple[list[np.ndarray], dict]:
    """:func:`track_batches` collected: all kept streamlines (world mm, float32 (n_i, 3)) and the
    run's figures. For a whole brain, stream the batches into :func:`save_tractogram` instead."""
    streamlines, figures = [], {}
    for kept, progress in track_batches(fodf, fa, mask, affine, params, tissues, threads=threads,
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
