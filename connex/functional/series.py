"""A BOLD run in memory: loading and checking it (4-D, finite, a repetition time that agrees with
the header, enough volumes), dummy scans, and slice-timing correction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.interpolate import CubicSpline

from connex.errors import BIDSError

log = logging.getLogger(__name__)

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
