"""Render a synthetic subject's T1w, DWI and BOLD images from its true networks.

All three images share one head position: a per-subject affine ``subject_to_mni`` maps the
subject's scanner coordinates (mm) to MNI coordinates, so a registration must undo it. Each
image has its own grid (voxel size, orientation, field of view) in scanner space.

Shapes: ``g`` gradient directions, ``t`` volumes, ``n`` regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from connex.anat.coreg import rigid_matrix, rotation_matrix
from connex.anat.templates import MNITemplate
from connex.synth.atlas import Parcellation
from connex.synth.networks import SubjectNetworks

# Relative T2-weighted (b=0 / EPI) brightness of each tissue.
T2_BRIGHTNESS = {"gm": 1.1, "wm": 0.9, "csf": 1.8}
BOLD_BRIGHTNESS = {"gm": 1.0, "wm": 0.8, "csf": 1.3}


@dataclass(frozen=True)
class Grid:
    """An image grid in scanner space: ``shape`` (X, Y, Z) and voxel-to-mm ``affine`` (4, 4)."""

    shape: tuple[int, int, int]
    affine: np.ndarray


def random_misalignment(rng: np.random.Generator, centre_mm: np.ndarray, *, rotation_deg: float,
                        translation_mm: float, scaling: float) -> np.ndarray:
    """Return a random ``subject_to_mni`` affine (4, 4): rotation about ``centre_mm``, translation
    and anisotropic scaling, each drawn uniformly within the given bounds per axis."""
    angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, 3))
    rotation = rotation_matrix(angles)
    scale = np.diag(1.0 + rng.uniform(-scaling, scaling, 3))
    linear = rotation @ scale
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = centre_mm - linear @ centre_mm + rng.uniform(-translation_mm, translation_mm, 3)
    return affine


def grid_around(mask: np.ndarray, mask_affine: np.ndarray, subject_to_mni: np.ndarray, *,
                voxel_mm: float, margin_mm: float, orientation: str) -> Grid:
    """A grid in scanner space that covers ``mask`` (given in MNI space) with a margin.

    ``orientation`` is ``"RAS"`` or ``"LAS"`` (the usual dcm2niix/FSL layout, negative
    determinant, in which FSL-convention b-vectors are plain voxel-axis vectors).
    """
    mni_mm = apply_affine(mask_affine, np.argwhere(mask).astype(float))
    subject_mm = apply_affine(np.linalg.inv(subject_to_mni), mni_mm)
    low = subject_mm.min(0) - margin_mm
    high = subject_mm.max(0) + margin_mm
    shape = tuple(int(np.ceil(s)) + 1 for s in (high - low) / voxel_mm)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = low
    if orientation == "LAS":
        affine[0, 0] = -voxel_mm
        affine[0, 3] = high[0]
    elif orientation != "RAS":
        raise ValueError(f"'orientation' must be 'RAS' or 'LAS'; {orientation!r} was provided.")
    return Grid(shape=shape, affine=affine)


def sample_mni(volume: np.ndarray, volume_affine: np.ndarray, grid: Grid,
               subject_to_mni: np.ndarray, *, order: int = 1) -> np.ndarray:
    """Resample an MNI-space ``volume`` onto a scanner-space ``grid`` (order 0: nearest)."""
    to_volume = np.linalg.inv(volume_affine) @ subject_to_mni @ grid.affine
    return ndimage.affine_transform(volume, to_volume[:3, :3], to_volume[:3, 3],
                                    output_shape=grid.shape, order=order, mode="constant", cval=0.0)


def sample_tissues(template: MNITemplate, grid: Grid, subject_to_mni: np.ndarray) -> dict[str, np.ndarray]:
    """GM, WM and CSF probabilities of the template seen on a scanner-space ``grid``."""
    return {name: sample_mni(getattr(template, name), template.affine, grid, subject_to_mni)
            for name in ("gm", "wm", "csf")}


# --------------------------------------------------------------------------------------- T1w

def render_t1w(head: np.ndarray, template: MNITemplate, grid: Grid, subject_to_mni: np.ndarray,
               rng: np.random.Generator, *, intensity_scale: float, noise_sd: float,
               bias_strength: float = 0.15) -> np.ndarray:
    """A T1w volume (X, Y, Z) int16: the head model seen through ``subject_to_mni``, times a
    smooth multiplicative bias field, plus Rician noise of ``noise_sd`` (fraction of white matter)."""
    image = sample_mni(head, template.affine, grid, subject_to_mni, order=1)
    image *= smooth_bias_field(grid.shape, rng, bias_strength)
    noisy = np.hypot(image + rng.normal(0, noise_sd, image.shape), rng.normal(0, noise_sd, image.shape))
    return np.round(noisy * 1000.0 * intensity_scale).astype(np.int16)


def smooth_bias_field(shape: tuple[int, ...], rng: np.random.Generator, strength: float) -> np.ndarray:
    """exp of a random quadratic polynomial over the field of view, spanning about +-``strength``."""
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    terms = list(axes) + [a * b for i, a in enumerate(axes) for b in axes[i:]]
    coefficients = rng.normal(0, 1, len(terms))
    log_field = sum(c * term for c, term in zip(coefficients, terms))
    log_field *= strength / (np.abs(log_field).max() + 1e-9)
    return np.exp(log_field).astype(np.float32)


# -------------------------------------------------------------------------------------- BOLD

@dataclass(frozen=True)
class BoldNoise:
    """Amplitudes (fractions of baseline) of the BOLD signal components."""

    neural: float = 0.012
    physiological: float = 0.008
    thermal_snr: float = 90.0
    drift: float = 0.02
    motion_mm: float = 0.6
    spike_drop: float = 0.03
    #: Spin-history-like dips after a sudden movement: alternate slices (third voxel axis) lose this
    #: fraction of their signal in the volume after the jump and half of it in the next (0: none).
    spin_history: float = 0.0


def motion_parameters(rng: np.random.Generator, n_volumes: int, *, scale_mm: float
                      ) -> np.ndarray:
    """Head motion (t, 6): ``trans_x/y/z`` in mm then ``rot_x/y/z`` in radians.

    A slow random-walk drift plus a few sudden, lasting jumps whose number and size grow with
    ``scale_mm`` (the typical jump in mm); 1 mm of rotation is taken at 50 mm from the centre.
    """
    steps = rng.normal(0, 0.03 * scale_mm, (n_volumes, 6))
    drift = ndimage.gaussian_filter1d(np.cumsum(steps, axis=0), 3.0, axis=0)
    jumps = np.zeros((n_volumes, 6))
    n_jumps = rng.poisson(1.0 + 2.0 * scale_mm)
    for when in rng.choice(np.arange(5, n_volumes - 1), size=min(n_jumps, n_volumes - 6), replace=False):
        jumps[when:] += rng.normal(0, scale_mm, 6)
    motion = drift + jumps
    motion -= motion[0]
    motion[:, 3:] /= 50.0  # mm of arc at 50 mm -> radians
    return motion


def render_bold(template: MNITemplate, parcellation: Parcellation, grid: Grid,
                subject_to_mni: np.ndarray, networks: SubjectNetworks, motion: np.ndarray,
                rng: np.random.Generator, *, intensity_scale: float, noise: BoldNoise,
                repetition_time: float) -> np.ndarray:
    """A BOLD series (X, Y, Z, t) int16.

    Grey-matter voxels carry their region's neural time course; every tissue carries
    physiological noise that is mostly white-matter and CSF signal (so WM/CSF regressors
    explain it); a slow drift; thermal noise; and head motion: each volume is the static
    image moved rigidly by ``motion[t]``, with a brief intensity drop where the head jumps.
    """
    n_volumes = networks.timeseries.shape[0]
    tissues = sample_tissues(template, grid, subject_to_mni)
    total = sum(tissues.values())
    in_brain = total > 0.3
    baseline = sum(BOLD_BRIGHTNESS[k] * v for k, v in tissues.items()) * 1000.0 * intensity_scale
    labels = sample_mni(parcellation.labels, parcellation.affine, grid, subject_to_mni, order=0)

    gm, wm, csf = (tissues[k][in_brain] for k in ("gm", "wm", "csf"))
    region = labels[in_brain].astype(int) - 1
    neural = np.zeros((n_volumes, in_brain.sum()))
    labelled = region >= 0
    neural[:, labelled] = networks.timeseries[:, region[labelled]] * gm[labelled]

    smooth = _slow_noise(rng, n_volumes, 2, repetition_time)
    wm_noise, csf_noise = smooth[:, 0], smooth[:, 1]
    physiological = (np.outer(wm_noise, wm + 0.5 * gm) + np.outer(csf_noise, 2.0 * csf + 0.5 * gm))
    t = np.linspace(-1, 1, n_volumes)[:, None]
    drift = rng.normal(0, 1, 2) @ np.vstack([t.T, (t ** 2 - 1 / 3).T])
    relative = (noise.neural * neural + noise.physiological * physiological
                + noise.drift * drift[:, None] / 2)
    base = baseline[in_brain]
    series = base * (1.0 + relative)
    series += rng.normal(0, 1000.0 * intensity_scale / noise.thermal_snr, series.shape)

    # Built volume-first (t, X, Y, Z) so that each volume is contiguous for the resampling below
    # (twice as fast as slicing the last axis); the values are the same either way.
    volume = np.zeros((n_volumes,) + grid.shape, dtype=np.float32)
    volume[:, in_brain] = series
    air = ~in_brain
    volume[:, air] = np.abs(rng.normal(0, 1000.0 * intensity_scale / noise.thermal_snr,
                                       (air.sum(), n_volumes))).T
    centre_mm = apply_affine(grid.affine, np.argwhere(in_brain).mean(0, keepdims=True))[0]
    jump = np.r_[0.0, np.abs(np.diff(motion[:, :3], axis=0)).sum(1)
                 + 50 * np.abs(np.diff(motion[:, 3:], axis=0)).sum(1)]
    for index in range(n_volumes):
        moved = rigid_matrix(motion[index], centre_mm)
        to_static = np.linalg.inv(grid.affine) @ np.linalg.inv(moved) @ grid.affine
        volume[index] = ndimage.affine_transform(volume[index], to_static[:3, :3], to_static[:3, 3], order=1,
                                                 mode="nearest")
        if jump[index] > 0.5:  # spin-history-like signal drop after a sudden movement
            volume[index] *= 1.0 - noise.spike_drop
    if noise.spin_history > 0:
        for index in np.flatnonzero(jump > 0.5):
            for lag, depth in ((0, noise.spin_history), (1, noise.spin_history / 2)):
                if index + lag < n_volumes:
                    volume[index + lag, :, :, ::2] *= 1.0 - depth
    return np.moveaxis(np.round(volume).astype(np.int16), 0, -1)


def _slow_noise(rng: np.random.Generator, n_volumes: int, n_series: int, repetition_time: float
                ) -> np.ndarray:
    """Unit-variance smooth noise (t, k) (cardiac/respiratory aliasing and vascular drifts)."""
    raw = ndimage.gaussian_filter1d(rng.standard_normal((n_volumes, n_series)),
                                    sigma=3.0 / repetition_time, axis=0)
    return (raw - raw.mean(0)) / raw.std(0)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to points (n, 3)."""
    return points @ affine[:3, :3].T + affine[:3, 3]
