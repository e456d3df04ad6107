"""Resting-state BOLD: loading and checking a run, preprocessing, confounds.

Preprocessing of one run (:func:`preprocess_bold`), in this order:

1. The run is loaded and checked (:func:`load_bold`): 4-D, finite, no all-zero volume, a
   ``RepetitionTime`` in the sidecar that agrees with the header, enough volumes.
2. The first ``dummy_scans`` volumes (non-steady-state) are discarded; every later output
   (confounds, time series) starts after them.
3. Optional slice-timing correction from the sidecar's ``SliceTiming`` (cubic-spline
   interpolation in time of every slice to the middle of the acquisition window, as
   fMRIPrep's default reference of 0.5).
4. Head-motion realignment (:func:`realign`): every volume registered rigidly to the
   reference volume (the middle one, FSL MCFLIRT's default) by Gauss-Newton least squares
   on smoothed images (the SPM realign approach), with a global intensity scale; six
   parameters per volume (``trans_*`` in mm, ``rot_*`` in radians, rotations about the centre
   of the head).
5. The mean realigned BOLD is registered rigidly (mutual information) to the skull-stripped
   T1w; the brain mask, tissue maps and atlases of the anatomy stage come into BOLD space.
   Susceptibility distortion is not corrected (no field map is used).
6. Confounds (:func:`compute_confounds`), with fMRIPrep's column names: motion parameters
   with derivatives and squares, ``framewise_displacement`` (Power), ``dvars`` and
   ``std_dvars`` (nipype), ``white_matter``, ``csf``, ``global_signal`` with their expansions,
   and ``a_comp_cor_NN`` (nipype's CompCor on the eroded white matter plus CSF mask).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.interpolate import CubicSpline

from connex.coreg import register_to_t1w, rigid_matrix, t1w_to_epi
from connex.errors import BIDSError

log = logging.getLogger(__name__)

MOTION_COLUMNS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
#: Radius (mm) turning rotations into displacements for framewise displacement (Power 2012).
FD_HEAD_RADIUS_MM = 50.0
#: Tolerance (s) between the sidecar's and the header's repetition time.
TR_TOLERANCE_S = 1e-3


@dataclass
class BoldSeries:
    """A BOLD run.

    Attributes
    ----------
    data : ndarray (X, Y, Z, T) float32
    affine : ndarray (4, 4)
    repetition_time : float
        Seconds.
    slice_timing : ndarray (n_slices,) or None
        Acquisition time of each slice (s) along ``slice_axis``, in voxel order.
    slice_axis : int
        Voxel axis the slices are stacked along.
    source : str
        The file it was read from (for messages).
    """

    data: np.ndarray
    affine: np.ndarray
    repetition_time: float
    slice_timing: np.ndarray | None
    slice_axis: int
    source: str

    @property
    def n_volumes(self) -> int:
        return self.data.shape[3]


def load_bold(path: str | Path, metadata: dict, *, dummy_scans: int = 0, min_volumes: int = 10) -> BoldSeries:
    """Load and check a BOLD run; the first ``dummy_scans`` volumes are dropped.

    Parameters
    ----------
    path : str or Path
    metadata : dict
        Its JSON sidecar (with inheritance applied): ``RepetitionTime`` (s) is required;
        ``SliceTiming`` and ``SliceEncodingDirection`` are used when present.
    dummy_scans : int
        Non-steady-state volumes at the start of the run to discard.
    min_volumes : int
        Volumes that must remain after the dummy scans.

    Raises
    ------
    BIDSError
        Naming the file: not 4-D, too few volumes, non-finite values, all-zero volumes, no or
        disagreeing repetition time, a SliceTiming that does not fit the image.
    """
    image = nib.load(str(path))
    if image.ndim != 4:
        raise BIDSError(f"{path}: BOLD must be a 4-D time series; got a {image.ndim}-D image of shape {image.shape}.")
    n_volumes = image.shape[3]
    if n_volumes < dummy_scans + min_volumes:
        raise BIDSError(f"{path}: {n_volumes} volumes; at least {dummy_scans + min_volumes} are needed "
                        f"({dummy_scans} dummy scans to discard plus a minimum of {min_volumes}).")
    repetition_time = _repetition_time(image, metadata, path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(-1, n_volumes).all(0))
        raise BIDSError(f"{path}: {int((~finite).sum())} NaN or infinite values, in volume(s) {bad.tolist()[:10]}; "
                        "BOLD values must be finite.")
    zero = np.flatnonzero(np.abs(data).reshape(-1, n_volumes).max(0) == 0)
    if len(zero):
        raise BIDSError(f"{path}: volume(s) {zero.tolist()[:10]} are all zero (a failed or padded acquisition); "
                        "remove them or mark them as dummy scans if they are at the start.")
    slice_axis, slice_timing = _slice_timing(metadata, image.shape, repetition_time, path)
    series = BoldSeries(data=data, affine=image.affine, repetition_time=repetition_time, slice_timing=slice_timing,
                        slice_axis=slice_axis, source=str(path))
    return replace(series, data=series.data[..., dummy_scans:]) if dummy_scans else series


def _repetition_time(image: nib.Nifti1Image, metadata: dict, path) -> float:
    """The sidecar's RepetitionTime, checked against the header's (when the header has one)."""
    repetition_time = metadata.get("RepetitionTime")
    if not isinstance(repetition_time, (int, float)) or repetition_time <= 0:
        raise BIDSError(f"{path}: no valid 'RepetitionTime' (seconds) in its JSON sidecar; got {repetition_time!r}.")
    header_tr = float(image.header.get_zooms()[3])
    unit = image.header.get_xyzt_units()[1]
    header_tr *= {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)
    if header_tr > 0 and abs(header_tr - repetition_time) > TR_TOLERANCE_S:
        raise BIDSError(f"{path}: RepetitionTime {repetition_time} s in the sidecar disagrees with the NIfTI "
                        f"header's {header_tr:g} s; fix whichever is wrong (BIDS requires them to match).")
    return float(repetition_time)


def _slice_timing(metadata: dict, shape: tuple, repetition_time: float, path) -> tuple[int, np.ndarray | None]:
    direction = metadata.get("SliceEncodingDirection", "k")
    if direction not in ("i", "j", "k", "i-", "j-", "k-"):
        raise BIDSError(f"{path}: SliceEncodingDirection must be one of i, j, k, i-, j-, k-; got {direction!r}.")
    axis = "ijk".index(direction[0])
    times = metadata.get("SliceTiming")
    if times is None:
        return axis, None
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) != shape[axis]:
        raise BIDSError(f"{path}: SliceTiming has {times.size} entries but the image has {shape[axis]} slices "
                        f"along {direction}.")
    if times.min() < 0 or times.max() >= repetition_time:
        raise BIDSError(f"{path}: SliceTiming values must lie in [0, RepetitionTime={repetition_time}); "
                        f"got {times.min():g} to {times.max():g}.")
    return axis, times[::-1].copy() if direction.endswith("-") else times


# ----------------------------------------------------------------------------- slice timing

def correct_slice_timing(series: BoldSeries) -> BoldSeries:
    """Every slice interpolated in time (cubic spline) to the middle of the slice acquisition
    window, so that all voxels of a volume share one sampling time.

    The first and last volumes are held at the edge (no extrapolation).
    """
    if series.slice_timing is None:
        raise ValueError(f"{series.source}: no SliceTiming in the sidecar; slice-timing correction is impossible.")
    times = series.slice_timing
    reference = (times.min() + times.max()) / 2
    n_volumes = series.n_volumes
    samples = np.arange(n_volumes, dtype=float)
    data = np.moveaxis(series.data, series.slice_axis, 0).copy()
    for index, acquired in enumerate(times):
        # Sample n of this slice was taken at n*TR + acquired; we want it at n*TR + reference.
        wanted = np.clip(samples + (reference - acquired) / series.repetition_time, 0, n_volumes - 1)
        spline = CubicSpline(samples, data[index], axis=-1)
        data[index] = spline(wanted)
    return replace(series, data=np.moveaxis(data, 0, series.slice_axis).astype(np.float32))


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


# ------------------------------------------------------------------------------- confounds

def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power's framewise displacement (T,): the sum of absolute backward differences of the
    translations (mm) and of the rotations as arcs on a 50 mm sphere; 0 for the first volume."""
    difference = np.abs(np.diff(motion, axis=0))
    displacement = difference[:, :3].sum(1) + FD_HEAD_RADIUS_MM * difference[:, 3:].sum(1)
    return np.r_[0.0, displacement]


def expand(table: pd.DataFrame) -> pd.DataFrame:
    """fMRIPrep's expansions of every column: ``_derivative1`` (backward difference, n/a first),
    ``_power2``, ``_derivative1_power2``."""
    derivative = table.diff()
    parts = [table, derivative.add_suffix("_derivative1"), (table ** 2).add_suffix("_power2"),
             (derivative ** 2).add_suffix("_derivative1_power2")]
    return pd.concat(parts, axis=1)


@dataclass
class TissueMasks:
    """Masks (X, Y, Z) of bool on the BOLD grid."""

    brain: np.ndarray
    white_matter: np.ndarray
    csf: np.ndarray


def tissue_masks(brain: np.ndarray, probability: dict[str, np.ndarray], *, thresholds=(0.9, 0.7, 0.5),
                 min_voxels: int = 10) -> TissueMasks:
    """Noise masks for the tissue signals and CompCor, inside the brain: white matter above the
    first of ``thresholds`` that leaves ``min_voxels`` after one erosion (uneroded if none does),
    CSF above the first that gives ``min_voxels`` (coarse BOLD grids blur the thin CSF spaces, so a
    strict threshold can leave nothing)."""
    def first_with_enough(tissue: str, erode: bool) -> np.ndarray:
        mask = brain & False
        for threshold in thresholds:
            mask = (probability[tissue] >= threshold) & brain
            candidate = ndimage.binary_erosion(mask) if erode else mask
            if candidate.sum() >= min_voxels:
                return candidate
        return mask

    return TissueMasks(brain=brain, white_matter=first_with_enough("WM", erode=True),
                       csf=first_with_enough("CSF", erode=False))


def compute_confounds(series: BoldSeries, motion: np.ndarray, masks: TissueMasks, *, n_compcor: int = 10
                      ) -> tuple[pd.DataFrame, dict]:
    """The confounds table (T rows, fMRIPrep column names) and its metadata (CompCor variance).

    Parameters
    ----------
    series : BoldSeries
        The realigned run.
    motion : ndarray (T, 6)
    masks : TissueMasks
    n_compcor : int
        aCompCor components to keep (fewer if the noise mask or the run is too small).
    """
    from nipype.algorithms.confounds import compute_dvars, compute_noise_components

    source = series.source
    for name, mask in (("brain", masks.brain), ("white matter", masks.white_matter), ("CSF", masks.csf)):
        if mask.sum() == 0:
            raise BIDSError(f"{source}: the {name} mask is empty in BOLD space; check the coregistration "
                            "and the anatomy stage's tissue maps.")
    data = series.data
    motion_table = pd.DataFrame(motion, columns=MOTION_COLUMNS)
    signals = pd.DataFrame({"global_signal": data[masks.brain].mean(0),
                            "csf": data[masks.csf].mean(0),
                            "white_matter": data[masks.white_matter].mean(0)})
    image = nib.Nifti1Image(data, series.affine)
    with tempfile.TemporaryDirectory() as folder:
        bold_file, mask_file = Path(folder) / "bold.nii", Path(folder) / "mask.nii"  # uncompressed: faster
        nib.save(image, bold_file)
        nib.save(nib.Nifti1Image(masks.brain.astype(np.uint8), series.affine), mask_file)
        std_dvars, dvars, _ = compute_dvars(str(bold_file), str(mask_file))
    noise_mask = nib.Nifti1Image((masks.white_matter | masks.csf).astype(np.uint8), series.affine)
    n_components = int(min(n_compcor, series.n_volumes - 2, (masks.white_matter | masks.csf).sum()))
    components, _, variance = compute_noise_components(data, [noise_mask], components_criterion=n_components,
                                                       filter_type="cosine", period_cut=128,
                                                       repetition_time=series.repetition_time, mask_names=["combined"])
    compcor = pd.DataFrame(components, columns=[f"a_comp_cor_{k:02d}" for k in range(components.shape[1])])
    table = pd.concat([expand(signals), pd.DataFrame({"dvars": np.r_[np.nan, dvars], "std_dvars": np.r_[np.nan, std_dvars],
                                                      "framewise_displacement": framewise_displacement(motion)}),
                       expand(motion_table), compcor], axis=1)
    table.loc[0, "framewise_displacement"] = np.nan  # fMRIPrep's convention: undefined for the first volume
    metadata = {name: {"Method": "aCompCor", "Mask": "combined (eroded white matter + CSF)",
                       "VarianceExplained": round(float(variance["variance_explained"][k]), 6),
                       "CumulativeVarianceExplained": round(float(variance["cumulative_variance_explained"][k]), 6)}
                for k, name in enumerate(compcor.columns)}
    return table, metadata


# ---------------------------------------------------------------------------- whole run

@dataclass
class BoldPreprocResult:
    """The preprocessed run and what the later steps need in BOLD space."""

    series: BoldSeries
    t1w_to_bold: np.ndarray  # (4, 4) T1w world -> BOLD world
    masks: TissueMasks
    tissue_probability: dict[str, np.ndarray]
    confounds: pd.DataFrame
    confounds_metadata: dict
    metrics: dict


def preprocess_bold(path: str | Path, metadata: dict, t1w_preproc: nib.Nifti1Image, t1w_mask: nib.Nifti1Image,
                    tissue_maps: dict[str, nib.Nifti1Image], *, dummy_scans: int = 0, min_volumes: int = 10,
                    slice_timing: bool = False, n_compcor: int = 10) -> BoldPreprocResult:
    """Steps 1-6 of the module docstring for one run."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    series = load_bold(path, metadata, dummy_scans=dummy_scans, min_volumes=min_volumes)
    seconds["load"] = time.perf_counter() - start
    metrics: dict = {"source": str(path), "RepetitionTime": series.repetition_time, "dummy_scans": dummy_scans,
                     "n_volumes": series.n_volumes, "slice_timing_corrected": False,
                     "susceptibility_distortion_correction": False}
    if slice_timing:
        if series.slice_timing is None:
            log.warning("%s: slice-timing correction asked for but the sidecar has no SliceTiming; skipped.", path)
        else:
            start = time.perf_counter()
            series = correct_slice_timing(series)
            seconds["slice_timing"] = time.perf_counter() - start
            metrics["slice_timing_corrected"] = True
    start = time.perf_counter()
    series, motion, centre = realign(series)
    seconds["realign"] = time.perf_counter() - start
    metrics["realignment"] = {"reference_volume": series.n_volumes // 2,
                              "rotation_centre_mm": np.round(centre, 2).tolist(), "method": "Gauss-Newton rigid"}

    start = time.perf_counter()
    brain_t1w = nib.Nifti1Image(np.asarray(t1w_preproc.dataobj, dtype=np.float32) * (np.asarray(t1w_mask.dataobj) > 0),
                                t1w_preproc.affine)
    matrix, correlation = register_to_t1w(series.data.mean(3), series.affine, brain_t1w)
    shape = series.data.shape[:3]
    brain = t1w_to_epi(t1w_mask, matrix, shape, series.affine, interpolation="linear") > 0.5
    probability = {name: np.clip(t1w_to_epi(image, matrix, shape, series.affine, interpolation="linear"), 0, 1) * brain
                   for name, image in tissue_maps.items()}
    seconds["coregistration"] = time.perf_counter() - start
    metrics["bold_t1w_correlation"] = round(correlation, 4)

    start = time.perf_counter()
    masks = tissue_masks(brain, probability)
    confounds, confounds_metadata = compute_confounds(series, motion, masks, n_compcor=n_compcor)
    seconds["confounds"] = time.perf_counter() - start
    fd = confounds["framewise_displacement"].fillna(0).to_numpy()
    voxel_ml = abs(np.linalg.det(series.affine[:3, :3])) / 1000
    metrics.update({"mean_framewise_displacement_mm": round(float(fd[1:].mean()), 4),
                    "max_framewise_displacement_mm": round(float(fd.max()), 4),
                    "max_translation_mm": round(float(np.abs(motion[:, :3]).max()), 3),
                    "max_rotation_deg": round(float(np.degrees(np.abs(motion[:, 3:]).max())), 3),
                    "brain_mask_ml": round(float(brain.sum() * voxel_ml), 1),
                    "white_matter_mask_voxels": int(masks.white_matter.sum()), "csf_mask_voxels": int(masks.csf.sum()),
                    "seconds": {k: round(v, 2) for k, v in seconds.items()}})
    return BoldPreprocResult(series=series, t1w_to_bold=matrix, masks=masks, tissue_probability=probability,
                             confounds=confounds, confounds_metadata=confounds_metadata, metrics=metrics)
