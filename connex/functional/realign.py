"""Rigid realignment of a BOLD series to one of its volumes (six parameters per volume)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from connex.anat.coreg import rigid_matrix
from connex.functional.series import BoldSeries

# ------------------------------------------------------------------------------- realignment

@dataclass(frozen=True)
class RealignParams:
    """Gauss-Newton settings of :func:`realign`."""

    smoothing_fwhm_mm: float = 5.0
    max_iterations: int = 30
    tolerance_mm: float = 1e-3


def realign(series: BoldSeries, *, reference_index: int | None = None, params: RealignParams = RealignParams()
            ) -> tuple[BoldSeries, np.ndarray, np.ndarray]:
    """Register every volume rigidly to a reference volume and resample it there.

    Parameters
    ----------
    series : BoldSeries
    reference_index : int, optional
        The reference volume; the middle one when omitted.

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
    # other voxel is enough on smoothed images and halves the time.
    points = np.argwhere(reference > 0.1 * np.percentile(reference, 99))[::2].astype(float)
    target = reference[tuple(points.T.astype(int))]
    centre_mm = (affine[:3, :3] @ points.mean(0)) + affine[:3, 3]
    homogeneous = np.c_[points, np.ones(len(points))].T  # (4, N) voxel coordinates
    inverse_affine = np.linalg.inv(affine)

    motion = np.zeros((n_volumes, 6))
    realigned = np.empty_like(series.data)
    order = list(range(reference_index, n_volumes)) + list(range(reference_index - 1, -1, -1))
    for index in order:
        neighbour = index - 1 if index > reference_index else index + 1
        start = motion[neighbour] if index != reference_index else np.zeros(6)
        moving = ndimage.gaussian_filter(series.data[..., index], sigma)
        motion[index] = _gauss_newton(moving, target, homogeneous, affine, inverse_affine, centre_mm, start, params)
        to_volume = inverse_affine @ rigid_matrix(motion[index], centre_mm) @ affine
        realigned[..., index] = ndimage.affine_transform(series.data[..., index], to_volume[:3, :3], to_volume[:3, 3],
                                                         order=3, mode="nearest")
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
