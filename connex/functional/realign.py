"""Rigid realignment of a BOLD series to one of its volumes (six parameters per volume).

Gauss-Newton least squares on smoothed images with a global intensity scale (the SPM approach).
``python -m connex.benchmarks realign`` measures it against known motion (drift, sudden steps,
spin-history dips; RAS and LAS grids) beside ``ants.motion_correction``, a tuned
``ants.registration`` Rigid and dipy's ``imaffine`` rigid registration: none of them matched its
median and max error, and each took 2-21 times as long per volume, so it stays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from connex.anat.coreg import rigid_matrix
from connex.functional.series import BoldSeries

log = logging.getLogger(__name__)

#: A progress line in the log after every this many volumes.
PROGRESS_EVERY = 50

# ------------------------------------------------------------------------------- realignment

@dataclass(frozen=True)
class RealignParams:
    """Gauss-Newton settings of :func:`realign`."""

    smoothing_fwhm_mm: float = 5.0
    max_iterations: int = 30
    tolerance_mm: float = 1e-3
    #: Every ``sample_step``-th voxel where there is signal enters the fit (1: all of them).
    sample_step: int = 2


def realign(series: BoldSeries, *, reference_index: int | None = None, params: RealignParams = RealignParams(),
            progress_every: int = PROGRESS_EVERY) -> tuple[BoldSeries, np.ndarray, np.ndarray]:
    """Register every volume rigidly to a reference volume and resample it there.

    Parameters
    ----------
    series : BoldSeries
    reference_index : int, optional
        The reference volume; the middle one when omitted.
    params : RealignParams
    progress_every : int
        A progress line in the log after every this many volumes (and after the last).

    Returns
    -------
    realigned : BoldSeries
        Volumes resampled (cubic spline) onto the reference.
    motion : ndarray (T, 6)
        ``trans_x/y/z`` (mm) and ``rot_x/y/z`` (radians) per volume, in world (RAS) axes:
        the rigid transform (about ``centre_mm``) taking reference positions to the volume's.
    centre_mm : ndarray (3,)
        The rotation centre: the intensity centre of the reference volume.
    """
    n_volumes = series.n_volumes
    reference_index = n_volumes // 2 if reference_index is None else reference_index
    affine = series.affine
    voxel_mm = np.sqrt((affine[:3, :3] ** 2).sum(0))
    sigma = params.smoothing_fwhm_mm / 2.3548 / voxel_mm
    reference = ndimage.gaussian_filter(series.data[..., reference_index], sigma)
    # Sample where there is signal (head and its edge), where the image constrains motion; every
    # other voxel is as accurate on smoothed images (python -m connex.benchmarks realign) and halves the time.
    points = np.argwhere(reference > 0.1 * np.percentile(reference, 99))[::params.sample_step].astype(float)
    target = reference[tuple(points.T.astype(int))]
    centre_mm = (affine[:3, :3] @ points.mean(0)) + affine[:3, 3]
    homogeneous = np.c_[points, np.ones(len(points))].T  # (4, N) voxel coordinates
    inverse_affine = np.linalg.inv(affine)

    motion = np.zeros((n_volumes, 6))
    realigned = np.empty_like(series.data)
    order = list(range(reference_index, n_volumes)) + list(range(reference_index - 1, -1, -1))
    start_time = time.perf_counter()
    for done, index in enumerate(order, 1):
        neighbour = index - 1 if index > reference_index else index + 1
        start = motion[neighbour] if index != reference_index else np.zeros(6)
        moving = ndimage.gaussian_filter(series.data[..., index], sigma)
        motion[index] = _gauss_newton(moving, target, homogeneous, affine, inverse_affine, centre_mm, start, params)
        to_volume = inverse_affine @ rigid_matrix(motion[index], centre_mm) @ affine
        realigned[..., index] = ndimage.affine_transform(series.data[..., index], to_volume[:3, :3], to_volume[:3, 3],
                                                         order=3, mode="nearest")
        if done % progress_every == 0 or done == n_volumes:
            seconds = time.perf_counter() - start_time
            log.info("Realignment: %d/%d volumes, %.0f s (about %.0f s left)", done, n_volumes, seconds,
                     seconds / done * (n_volumes - done))
    return replace(series, data=realigned), motion, centre_mm


def _gauss_newton(moving: np.ndarray, target: np.ndarray, homogeneous: np.ndarray, affine: np.ndarray,
                  inverse_affine: np.ndarray, centre_mm: np.ndarray, start: np.ndarray, params: RealignParams
                  ) -> np.ndarray:
    """Rigid parameters (6,) minimising sum (scale * moving(T x) - target(x))^2 over the sample points."""
    gradients = np.gradient(moving)
    current = start.astype(float).copy()
    scale = 1.0
    steps = np.r_[np.full(3, 1e-3), np.full(3, 1e-5)]
    for _ in range(params.max_iterations):
        to_volume = inverse_affine @ rigid_matrix(current, centre_mm) @ affine
        coords = (to_volume @ homogeneous)[:3]
        values = ndimage.map_coordinates(moving, coords, order=1, mode="nearest")
        grad = np.stack([ndimage.map_coordinates(g, coords, order=1, mode="nearest") for g in gradients])
        jacobian = np.empty((len(target), 7))
        for k in range(6):
            shifted = current.copy()
            shifted[k] += steps[k]
            moved = (inverse_affine @ rigid_matrix(shifted, centre_mm) @ affine @ homogeneous)[:3]
            jacobian[:, k] = scale * ((moved - coords) / steps[k] * grad).sum(0)
        jacobian[:, 6] = values
        residual = scale * values - target
        update = np.linalg.lstsq(jacobian, -residual, rcond=None)[0]
        current += update[:6]
        scale += update[6]
        if np.abs(update[:3]).max() < params.tolerance_mm and np.abs(update[3:6]).max() * 50 < params.tolerance_mm:
            break
    return current
