"""Rigid coregistration of a subject's EPI series (DWI, BOLD) to its T1w, and resampling of
T1w-space images (masks, tissue maps, atlases) onto the EPI grid.

The transform is a 4x4 RAS matrix ``M`` mapping T1w world points to EPI world points: it
resamples EPI images onto the T1w grid, and its inverse direction brings T1w-space images to the
EPI grid. On disk it is ITK's ``from-T1w_to-<epi>`` affine, ``M^-1`` (:func:`save_t1w_to_epi`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from connex.inputs.transforms import is_itk_text, load_itk_affine, load_plain_affine, save_itk_affine

#: Share of the T1w grid's voxels the EPI-to-T1w mutual information samples (dipy's jittered
#: regular grid; its jitter seeded by COREG_SAMPLING_SEED), as the anatomy stage's affine does.
COREG_SAMPLING_PROPORTION = 0.25
COREG_SAMPLING_SEED = 0


@contextlib.contextmanager
def seeded_numpy_global(seed: int) -> Iterator[None]:
    """numpy's global generator seeded inside the block and put back after it (dipy's sampled
    mutual information draws its jitter from it)."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def register_to_t1w(mean_epi: np.ndarray, epi_affine: np.ndarray, t1w_brain: nib.Nifti1Image
                    ) -> tuple[np.ndarray, float]:
    """Rigid registration (mutual information, dipy) of a mean EPI volume to the skull-stripped T1w.

    Parameters
    ----------
    mean_epi : ndarray (X, Y, Z)
        The mean b=0 of a DWI series or the mean BOLD volume.
    epi_affine : ndarray (4, 4)
    t1w_brain : Nifti1Image
        The T1w with zeros outside the brain.

    Returns
    -------
    matrix : ndarray (4, 4)
        T1w world -> EPI world.
    correlation : float
        Correlation of the resampled EPI with the T1w inside the brain: a rough quality figure
        (negative is expected for b=0 and T2*-weighted images: CSF is bright there, dark on T1w).
    """
    from dipy.align import rigid
    from dipy.align.reslice import reslice

    static = np.asarray(t1w_brain.dataobj, dtype=np.float32)
    static_affine = t1w_brain.affine
    # The EPI carries no detail finer than its voxels: matching on a T1w grid that fine is as
    # accurate and several times faster than on the full-resolution T1w. World coordinates (and so
    # the returned matrix) are unchanged by the resampling.
    epi_zooms = np.sqrt((np.asarray(epi_affine)[:3, :3] ** 2).sum(0))
    t1w_zooms = np.sqrt((static_affine[:3, :3] ** 2).sum(0))
    if t1w_zooms.max() < epi_zooms.min():
        static, static_affine = reslice(static, static_affine, tuple(t1w_zooms), (float(epi_zooms.min()),) * 3, order=1)
    with seeded_numpy_global(COREG_SAMPLING_SEED):
        warped, matrix = rigid(mean_epi, static, moving_affine=epi_affine, static_affine=static_affine,
                               pipeline=["center_of_mass", "translation", "rigid"],
                               sampling_proportion=COREG_SAMPLING_PROPORTION)
    inside = static > 0
    correlation = float(np.corrcoef(warped[inside], static[inside])[0, 1]) if inside.sum() > 10 else 0.0
    return matrix, correlation


def t1w_to_epi(image: nib.Nifti1Image, t1w_to_epi_world: np.ndarray, epi_shape: tuple, epi_affine: np.ndarray,
               *, interpolation: str) -> np.ndarray:
    """A T1w-space image resampled on the EPI grid (``"nearest"`` for labels); shape ``epi_shape[:3]``;
    points outside the T1w grid are 0."""
    if interpolation == "nearest":
        return nearest_on_grid(np.asarray(image.dataobj).astype(np.int32),
                               np.linalg.inv(image.affine) @ np.linalg.inv(t1w_to_epi_world) @ epi_affine,
                               tuple(epi_shape[:3]))
    from dipy.align.imaffine import AffineMap

    mapping = AffineMap(t1w_to_epi_world, domain_grid_shape=image.shape[:3], domain_grid2world=image.affine,
                        codomain_grid_shape=epi_shape[:3], codomain_grid2world=epi_affine)
    return np.asarray(mapping.transform_inverse(np.asarray(image.dataobj).astype(np.float32),
                                                interpolation=interpolation))


def nearest_on_grid(data: np.ndarray, target_to_source_voxel: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``data`` (3-D) read by nearest neighbour at every voxel of a grid of ``shape``, whose voxel
    ``v`` lies at ``data``'s voxel ``target_to_source_voxel @ v`` (4x4); outside ``data``: 0.

    dipy's ``AffineMap`` nearest neighbour, voxel for voxel (tested): a coordinate ``c`` reads voxel
    ``ceil(c - 0.5)`` (halves round down) and is outside unless ``0 <= c <= n - 1``; without
    importing dipy's registration module (70 MB in a small job), one target slice at a time."""
    rotation, shift = target_to_source_voxel[:3, :3], target_to_source_voxel[:3, 3]
    last = np.array(data.shape[:3])[:, None] - 1
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    out = np.zeros(shape, dtype=data.dtype)
    for k in range(shape[2]):
        grid = np.stack([i.ravel(), j.ravel(), np.full(i.size, k)]).astype(np.float64)
        coordinates = rotation @ grid + shift[:, None]
        inside = np.all((coordinates >= 0) & (coordinates <= last), axis=0)
        index = np.ceil(coordinates - 0.5).astype(np.int64)
        values = np.zeros(i.size, dtype=data.dtype)
        values[inside] = data[index[0, inside], index[1, inside], index[2, inside]]
        out[:, :, k] = values.reshape(shape[:2])
    return out


def save_t1w_to_epi(t1w_to_epi_world: np.ndarray, target: str | Path) -> Path:
    """Write the coregistration as ITK's ``from-T1w_to-<epi>`` affine: the transform that
    resamples T1w images onto the EPI grid, which maps EPI points to T1w points (``M^-1``);
    ``antsApplyTransforms -r EPI -i T1w -t <file>``."""
    return save_itk_affine(np.linalg.inv(t1w_to_epi_world), target)


def load_t1w_to_epi(path: str | Path) -> np.ndarray:
    """``M`` (4, 4), T1w world -> EPI world (RAS mm), from a file of :func:`save_t1w_to_epi`, or
    from the plain 4x4 text of ``M`` that earlier versions wrote under the same name."""
    return np.linalg.inv(load_itk_affine(path)) if is_itk_text(path) else load_plain_affine(path)


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """3x3 rotation about x, then y, then z (angles in radians)."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_matrix(parameters: np.ndarray, centre_mm: np.ndarray) -> np.ndarray:
    """4x4 rigid transform of 6 motion parameters (``trans_x/y/z`` in mm, ``rot_x/y/z`` in
    radians), rotating about ``centre_mm`` (world coordinates)."""
    rotation = rotation_matrix(parameters[3:])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre_mm - rotation @ centre_mm + parameters[:3]
    return matrix
