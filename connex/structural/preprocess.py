"""Diffusion MRI: loading and checking a series, preprocessing, b=0 -> T1w registration, DTI.

Preprocessing of one subject (:func:`preprocess_dwi`), in this order:

1. Each run is loaded, checked (:func:`load_dwi`) and reoriented to RAS; b-vectors follow
   the voxel axes (BIDS/FSL convention in, the same convention out).
2. Denoising per run: MP-PCA (``mppca``, Veraart 2016; the default) or none. Patch2Self is
   not offered: in dipy 1.12 its default version scrambles the last volumes when b=0 volumes
   are interleaved (the demo's final b=0 came out anti-correlated with its input, r = -0.72),
   and version 1 changes the ratio of weighted to b=0 intensities (0.60 against 0.34 on the
   demo), which broke the fibre response estimate.
3. Optional Gibbs unringing per run (dipy's sub-voxel shift method, slice axis z).
4. Optional head-motion correction per run: every volume registered (rigid, mutual
   information) to the mean of the run's volumes of its shell (b=0 or weighted), b-vectors
   rotated with it. No eddy-current
   correction (no eddy-style model of the diffusion signal).
5. Several runs (bids-xa30 has two, with opposite phase encoding): each later run's mean
   b=0 is registered (rigid, mutual information) to the first run's; its volumes are resampled
   onto the first run's grid, b-vectors rotated, and the runs concatenated.
   Susceptibility distortion is NOT corrected (no TOPUP-style use of the reversed phase
   encoding and no field map): the runs keep their opposite distortions, which blurs regions
   near the sinuses and the temporal poles. Say so when you report results.
6. The mean b=0 is registered (rigid, mutual information) to the skull-stripped T1w; the
   brain mask, tissue maps and atlases of the anatomy stage come into DWI space through it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from connex.anat.coreg import register_to_t1w
from connex.errors import BIDSError, check_choice
from connex.inputs.checks import B0_THRESHOLD, check_gradients, read_gradients
from connex.registry import DENOISE_METHODS


@dataclass
class DWISeries:
    """A diffusion series in RAS voxel order.

    data : ndarray (X, Y, Z, G), float32
    affine : ndarray (4, 4)
    bvals : ndarray (G,)
    bvecs : ndarray (G, 3)
        Unit vectors in the image's voxel axes (zero for b=0 volumes).
    source : str
        The file it came from (for messages).
    """

    data: np.ndarray
    affine: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    source: str

    def is_b0(self, b0_threshold: float) -> np.ndarray:
        return self.bvals <= b0_threshold

    def mean_b0(self, b0_threshold: float) -> np.ndarray:
        return self.data[..., self.is_b0(b0_threshold)].mean(axis=3)

    def gradient_table(self, b0_threshold: float):
        from dipy.core.gradients import gradient_table

        return gradient_table(self.bvals, bvecs=self.bvecs, b0_threshold=b0_threshold)


def load_dwi(path: str | Path, *, b0_threshold: float = B0_THRESHOLD) -> DWISeries:
    """Load a DWI series with its .bval/.bvec, check it, and reorient it to RAS.

    BIDS b-vectors follow FSL: voxel axes, with x flipped when the affine has a positive
    determinant. They come out in the voxel axes of the RAS image.

    Raises
    ------
    BIDSError
        Not 4-D, NaN or infinite voxels, gradients that do not match the volumes or fail
        :func:`check_gradients`.
    """
    path = Path(path)
    image = nib.load(path)
    if image.ndim != 4:
        raise BIDSError(f"{path}: a DWI series must be 4-D; got shape {image.shape}.")
    bvals, bvecs = read_gradients(path, image.shape[3])
    check_gradients(bvals, bvecs, str(path), b0_threshold=b0_threshold)
    data = np.asarray(image.dataobj, dtype=np.float32)
    if not np.isfinite(data).all():
        raise BIDSError(f"{path}: {int((~np.isfinite(data)).sum())} NaN or infinite voxel values; "
                        "expected finite intensities.")
    voxel_bvecs = fsl_to_voxel_axes(bvecs, image.affine)
    ornt = orientations.io_orientation(image.affine)
    data = orientations.apply_orientation(data, ornt)
    affine = image.affine @ orientations.inv_ornt_aff(ornt, image.shape[:3])
    ras_bvecs = np.zeros_like(voxel_bvecs)
    for axis_in, (axis_out, flip) in enumerate(ornt):
        ras_bvecs[:, int(axis_out)] = voxel_bvecs[:, axis_in] * flip
    ras_bvecs[bvals <= b0_threshold] = 0.0
    weighted = bvals > b0_threshold
    ras_bvecs[weighted] /= np.linalg.norm(ras_bvecs[weighted], axis=1, keepdims=True)
    return DWISeries(data=np.ascontiguousarray(data), affine=affine, bvals=bvals, bvecs=ras_bvecs,
                     source=str(path))


def fsl_to_voxel_axes(bvecs: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """B-vectors (G, 3) between the BIDS/FSL convention and the voxel axes of an image with
    ``affine``: FSL flips x when the affine has a positive determinant (the flip is its own
    inverse, so this converts both ways)."""
    bvecs = np.array(bvecs, dtype=float)
    if np.linalg.det(affine[:3, :3]) > 0:
        bvecs[:, 0] *= -1
    return bvecs


def fsl_bvecs(series: DWISeries) -> np.ndarray:
    """The b-vectors (3, G) in the BIDS/FSL convention of the series' image."""
    return fsl_to_voxel_axes(series.bvecs, series.affine).T


def denoise(series: DWISeries, method: str, *, b0_threshold: float) -> DWISeries:
    """MP-PCA (Veraart 2016) or nothing (:data:`connex.registry.DENOISE_METHODS`)."""
    check_choice("denoise", method, DENOISE_METHODS)
    if method == "none":
        return series
    from dipy.denoise.localpca import mppca

    data = mppca(series.data, patch_radius=2, suppress_warning=True)
    return replace(series, data=np.asarray(data, dtype=np.float32))


def unring(series: DWISeries) -> DWISeries:
    """Gibbs ringing removal (Kellner 2016) along in-plane axes of axial slices."""
    from dipy.denoise.gibbs import gibbs_removal

    data = gibbs_removal(series.data.copy(), slice_axis=2, inplace=True, num_processes=1)
    return replace(series, data=np.asarray(data, dtype=np.float32))


def correct_motion(series: DWISeries, *, b0_threshold: float) -> tuple[DWISeries, np.ndarray]:
    """Rigid registration (mutual information) of every volume to a reference of like contrast,
    resampled (trilinear), with b-vectors rotated: b=0 volumes to the mean b=0, weighted volumes
    to the mean of their shell (a b=2500 volume shares too little contrast with a b=0 for a
    reliable match).

    The registration runs at 4x and 2x downsampling only: dipy's full-resolution pass costs
    several seconds a volume and changes the estimate by a fraction of a voxel.

    Returns the corrected series and the per-volume motion (G, 6): translations (mm) and
    rotation angles (rad) about x, y, z of the volume relative to the reference.
    """
    from dipy.align import affine_registration
    from dipy.align.imaffine import AffineMap

    shells = np.where(series.is_b0(b0_threshold), 0, np.round(series.bvals, -2))
    references = {shell: series.data[..., shells == shell].mean(axis=3) for shell in np.unique(shells)}
    shape = series.data.shape[:3]
    moved = np.empty_like(series.data)
    bvecs = series.bvecs.copy()
    motion = np.zeros((series.data.shape[3], 6))
    for volume in range(series.data.shape[3]):
        _, matrix = affine_registration(series.data[..., volume], references[shells[volume]],
                                        moving_affine=series.affine,
                                        static_affine=series.affine, pipeline=["rigid"], level_iters=[100, 30],
                                        sigmas=[2.0, 1.0], factors=[4, 2])
        mapping = AffineMap(matrix, domain_grid_shape=shape, domain_grid2world=series.affine,
                            codomain_grid_shape=shape, codomain_grid2world=series.affine)
        moved[..., volume] = mapping.transform(series.data[..., volume])
        bvecs[volume] = _rotate_bvecs(series.bvecs[volume:volume + 1], matrix, series.affine, series.affine)[0]
        motion[volume] = np.r_[matrix[:3, 3], _euler_angles(_rotation(matrix))]
    return replace(series, data=moved, bvecs=bvecs), motion


def combine_runs(runs: list[DWISeries], *, b0_threshold: float) -> tuple[DWISeries, list[np.ndarray]]:
    """Align every run to the first (rigid, mean b=0 to mean b=0, mutual information), resample
    it on the first run's grid and concatenate. Returns the series and each run's transform
    (first-run world -> run world)."""
    from dipy.align import rigid
    from dipy.align.imaffine import AffineMap

    first = runs[0]
    reference = first.mean_b0(b0_threshold)
    transforms = [np.eye(4)]
    data, bvals, bvecs = [first.data], [first.bvals], [first.bvecs]
    for run in runs[1:]:
        _, matrix = rigid(run.mean_b0(b0_threshold), reference, moving_affine=run.affine,
                          static_affine=first.affine, pipeline=["center_of_mass", "translation", "rigid"])
        mapping = AffineMap(matrix, domain_grid_shape=reference.shape, domain_grid2world=first.affine,
                            codomain_grid_shape=run.data.shape[:3], codomain_grid2world=run.affine)
        data.append(np.stack([mapping.transform(run.data[..., v]) for v in range(run.data.shape[3])], axis=3))
        bvecs.append(_rotate_bvecs(run.bvecs, matrix, run.affine, first.affine))
        bvals.append(run.bvals)
        transforms.append(matrix)
    combined = DWISeries(data=np.concatenate(data, axis=3).astype(np.float32), affine=first.affine,
                         bvals=np.concatenate(bvals), bvecs=np.concatenate(bvecs), source=first.source)
    return combined, transforms


@dataclass
class DWIPreprocResult:
    """The preprocessed series and what the later steps need in DWI space."""

    series: DWISeries
    t1w_to_dwi: np.ndarray
    motion: np.ndarray  # (G, 6) per volume, zeros where motion correction is off
    metrics: dict


def preprocess_dwi(paths: list[str | Path], t1w_preproc: nib.Nifti1Image, t1w_mask: nib.Nifti1Image, *,
                   denoise_method: str = "mppca", gibbs: bool = False, motion_correction: bool = False,
                   b0_threshold: float = B0_THRESHOLD) -> DWIPreprocResult:
    """Steps 1-6 of the module docstring for one subject's runs."""
    metrics: dict = {"runs": [str(p) for p in paths], "denoise": denoise_method, "gibbs_unringing": gibbs,
                     "motion_correction": motion_correction, "b0_threshold": b0_threshold,
                     "susceptibility_distortion_correction": False}
    runs, motions = [], []
    start = time.perf_counter()
    for path in paths:
        series = load_dwi(path, b0_threshold=b0_threshold)
        series = denoise(series, denoise_method, b0_threshold=b0_threshold)
        if gibbs:
            series = unring(series)
        if motion_correction:
            series, motion = correct_motion(series, b0_threshold=b0_threshold)
        else:
            motion = np.zeros((series.data.shape[3], 6))
        runs.append(series)
        motions.append(motion)
    metrics["per_run_seconds"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    series, run_transforms = combine_runs(runs, b0_threshold=b0_threshold) if len(runs) > 1 else (runs[0], [np.eye(4)])
    metrics["run_alignment"] = [np.round(m, 4).tolist() for m in run_transforms]
    brain = nib.Nifti1Image(np.asarray(t1w_preproc.dataobj, dtype=np.float32) * (np.asarray(t1w_mask.dataobj) > 0),
                            t1w_preproc.affine)
    matrix, correlation = register_to_t1w(series.mean_b0(b0_threshold), series.affine, brain)
    metrics["coregistration_seconds"] = round(time.perf_counter() - start, 2)
    metrics["b0_t1w_correlation"] = round(correlation, 4)
    motion = np.concatenate(motions)
    metrics["max_translation_mm"] = round(float(np.abs(motion[:, :3]).max()), 3)
    metrics["max_rotation_deg"] = round(float(np.degrees(np.abs(motion[:, 3:]).max())), 3)
    metrics["n_volumes"] = int(series.data.shape[3])
    metrics["shells"] = sorted({int(round(b, -2)) for b in series.bvals})
    return DWIPreprocResult(series=series, t1w_to_dwi=matrix, motion=motion, metrics=metrics)


#: Voxels per chunk of dipy's tensor fit: its WLS fit holds about 10 KB per voxel of a chunk (114 MB
#: at dipy's default of 10,000 on bids-xa30, 34 MB at this), in the same time and with the same maps.
TENSOR_FIT_CHUNK = 2000


def fit_tensor(series: DWISeries, mask: np.ndarray, *, b0_threshold: float) -> dict[str, np.ndarray]:
    """DTI fit: FA and MD maps (X, Y, Z) float32, zero outside ``mask``."""
    from dipy.reconst.dti import TensorModel

    fit = TensorModel(series.gradient_table(b0_threshold), step=TENSOR_FIT_CHUNK).fit(series.data, mask=mask)
    fa = np.nan_to_num(fit.fa).astype(np.float32)
    md = np.nan_to_num(fit.md).astype(np.float32)
    return {"FA": np.clip(fa, 0, 1) * mask, "MD": md * mask}


def _rotate_bvecs(bvecs: np.ndarray, reference_to_moving: np.ndarray, moving_affine: np.ndarray,
                  reference_affine: np.ndarray) -> np.ndarray:
    """B-vectors (G, 3) of a moving image, in its voxel axes, as seen in a reference image's
    voxel axes once the moving image is resampled onto the reference through
    ``reference_to_moving`` (world -> world): a world direction ``d`` becomes ``R^T d``."""
    rotation = _rotation(reference_to_moving)
    return bvecs @ _rotation(moving_affine).T @ rotation @ _rotation(reference_affine)


def _rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation part of an affine (scaling and shear removed by polar decomposition)."""
    u, _, vt = np.linalg.svd(matrix[:3, :3])
    return u @ vt


def _euler_angles(rotation: np.ndarray) -> np.ndarray:
    """Angles (rad) about x, y, z of a rotation R = Rz Ry Rx."""
    return np.array([np.arctan2(rotation[2, 1], rotation[2, 2]), -np.arcsin(np.clip(rotation[2, 0], -1, 1)),
                     np.arctan2(rotation[1, 0], rotation[0, 0])])
