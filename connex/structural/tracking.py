"""Fibre orientation models, tractography and structural connectome matrices (dipy).

Choices (``sc`` in the config), with the defaults of the demo:

- model: ``csd`` (constrained spherical deconvolution, response estimated automatically from
  high-FA voxels; Tournier 2007) or ``csa`` (constant solid angle q-ball; Aganj 2010). The
  spherical-harmonic order is the highest the number of directions supports (at most 8).
- algorithm: ``deterministic`` (peak closest to the incoming direction) or ``probabilistic``
  (direction drawn from the fODF), both within ``max_angle`` of the previous step.
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

import time
from dataclasses import asdict, dataclass

import numpy as np

from connex.errors import check_choice
from connex.registry import FODF_MODELS, STOPPING_CRITERIA, TRACKING_ALGORITHMS


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
    """Fit the fibre orientation model; returns SH coefficients (X, Y, Z, C) and details."""
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
    shm = np.asarray(fit.shm_coeff, dtype=np.float64)
    if shm.ndim != 4:  # seen when the response was implausible and no voxel could be fitted
        raise ValueError(f"The {model.upper()} fit gave no spherical-harmonic coefficients (shape {shm.shape}); "
                         f"details: {details}. Check the preprocessed DWI and its b-values.")
    return shm, details


def sample_seeds(seed_mask: np.ndarray, affine: np.ndarray, per_voxel: int, rng: np.random.Generator) -> np.ndarray:
    """``per_voxel`` uniform random points in every voxel of ``seed_mask``, world mm (N, 3)."""
    voxels = np.repeat(np.argwhere(seed_mask), per_voxel, axis=0).astype(np.float64)
    points = voxels + rng.uniform(-0.5, 0.5, voxels.shape)
    return points @ affine[:3, :3].T + affine[:3, 3]


def track(shm_coeff: np.ndarray, fa: np.ndarray, mask: np.ndarray, affine: np.ndarray, params: TrackingParams,
          tissues: dict[str, np.ndarray] | None = None) -> tuple[list[np.ndarray], dict]:
    """Run tractography; returns the kept streamlines (world mm, float32 (n_i, 3)) and figures.

    Parameters
    ----------
    shm_coeff : ndarray (X, Y, Z, C)
        fODF spherical-harmonic coefficients (:func:`fit_fodf`).
    fa, mask : ndarray (X, Y, Z)
        FA map and brain mask on the DWI grid; ``affine`` (4, 4) its grid.
    tissues : dict of ndarray (X, Y, Z)
        GM, WM, CSF probability maps on the DWI grid (needed for ``cmc``).
    """
    from dipy.data import default_sphere
    from dipy.direction import (
        DeterministicMaximumDirectionGetter,
        ProbabilisticDirectionGetter,
    )
    from dipy.tracking.local_tracking import LocalTracking
    from dipy.tracking.stopping_criterion import (
        CmcStoppingCriterion,
        ThresholdStoppingCriterion,
    )

    getter = (DeterministicMaximumDirectionGetter if params.algorithm == "deterministic"
              else ProbabilisticDirectionGetter)
    directions = getter.from_shcoeff(shm_coeff, max_angle=params.max_angle, sphere=default_sphere)
    voxel_mm = float(np.abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    if params.stopping == "cmc":
        if tissues is None:
            raise ValueError("CMC stopping needs tissue maps (GM, WM, CSF) in DWI space.")
        outside = np.clip(tissues["CSF"] + (1.0 - mask), 0.0, 1.0)  # leaving the brain is like entering CSF
        stopping = CmcStoppingCriterion.from_pve(tissues["WM"], tissues["GM"], outside,
                                                 step_size=params.step_mm, average_voxel_size=voxel_mm)
    else:
        stopping = ThresholdStoppingCriterion(np.where(mask, fa, 0).astype(np.float64), params.fa_threshold)
    seed_mask = mask & (fa >= params.seed_fa_threshold)
    rng = np.random.default_rng(params.random_seed)
    seeds = sample_seeds(seed_mask, affine, params.seeds_per_voxel, rng)
    start = time.perf_counter()
    # maxlen counts steps in each direction from the seed.
    generator = LocalTracking(directions, stopping, seeds, affine, step_size=params.step_mm,
                              maxlen=int(np.ceil(params.max_length_mm / params.step_mm)) + 1,
                              return_all=params.stopping != "cmc", random_seed=params.random_seed)
    kept, n_generated = [], 0
    for streamline in generator:
        n_generated += 1
        if len(streamline) < 2:
            continue
        length = float(np.linalg.norm(np.diff(streamline, axis=0), axis=1).sum())
        if params.min_length_mm <= length <= params.max_length_mm:
            kept.append(streamline.astype(np.float32))
    seconds = time.perf_counter() - start
    figures = {"seeds": len(seeds), "seed_voxels": int(seed_mask.sum()), "streamlines_generated": n_generated,
               "streamlines_kept": len(kept), "tracking_seconds": round(seconds, 2),
               "streamlines_per_second": round(n_generated / max(seconds, 1e-9), 1)}
    return kept, figures


def save_tractogram(streamlines: list[np.ndarray], reference, target) -> None:
    """Write streamlines (world mm) as a TrackVis .trk file on ``reference``'s grid, atomically."""
    from dipy.io.stateful_tractogram import Space, StatefulTractogram
    from dipy.io.streamline import save_tractogram as dipy_save

    from connex.inputs.io import atomic_path

    tractogram = StatefulTractogram(streamlines, reference, Space.RASMM)
    with atomic_path(target) as tmp:
        dipy_save(tractogram, str(tmp), bbox_valid_check=False)


def load_tractogram(path, reference) -> list[np.ndarray]:
    """Streamlines (world mm, float32) of a .trk file written by :func:`save_tractogram`."""
    from dipy.io.stateful_tractogram import Space
    from dipy.io.streamline import load_tractogram as dipy_load

    tractogram = dipy_load(str(path), reference, bbox_valid_check=False)
    tractogram.to_space(Space.RASMM)
    return [np.asarray(s, dtype=np.float32) for s in tractogram.streamlines]
