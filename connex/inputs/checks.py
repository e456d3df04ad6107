"""Read and check one input file: NIfTI integrity, JSON sidecars (BIDS inheritance), DWI gradients.

A problem with a file raises :class:`BIDSError` naming the file and what was expected."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from connex.errors import BIDSError

NIFTI_EXTENSIONS = (".nii.gz", ".nii")


# --------------------------------------------------------------------------------- NIfTI

def check_nifti(path: str | Path, *, ndim: int | tuple[int, ...] | None = None) -> nib.Nifti1Image:
    """Load a NIfTI header and check the file is whole, without reading the voxels.

    A ``.nii.gz`` must be gzip (magic bytes) and its gzip trailer must give the uncompressed
    size the header implies, which catches truncated copies cheaply; a ``.nii`` must be at
    least as long as its header says.

    Raises
    ------
    BIDSError
        Not a NIfTI file, a truncated file, or ``ndim`` different from the expected one(s).
    """
    path = Path(path)
    if not path.is_file():
        raise BIDSError(f"{path}: not found.")
    name = path.name
    if not name.endswith(NIFTI_EXTENSIONS):
        raise BIDSError(f"{path}: expected a NIfTI file ending in .nii or .nii.gz.")
    if name.endswith(".gz"):
        with open(path, "rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise BIDSError(f"{path}: not a gzipped file, but the name ends in .nii.gz; expected gzipped NIfTI.")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises several types for a bad header
        raise BIDSError(f"{path}: not a valid NIfTI image ({type(error).__name__}: {error}).") from error
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise BIDSError(f"{path}: expected a NIfTI-1 or NIfTI-2 image; got {type(image).__name__}.")
    expected = _data_offset(image) + int(
        np.prod(image.shape) * image.header.get_data_dtype().itemsize)
    actual = _uncompressed_size(path) if name.endswith(".gz") else path.stat().st_size
    if actual is not None and actual < expected % (2 ** 32 if name.endswith(".gz") else 2 ** 63):
        raise BIDSError(f"{path}: truncated or corrupt; the header implies {expected} bytes of "
                        f"image, the file holds {actual}.")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if image.ndim not in allowed:
            raise BIDSError(f"{path}: expected a {' or '.join(f'{n}-D' for n in allowed)} image; "
                            f"got {image.ndim}-D with shape {image.shape}.")
    return image


def _uncompressed_size(path: Path) -> int | None:
    """Uncompressed size modulo 2**32 from the gzip trailer; None for multi-member files."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, 2)
            size = struct.unpack("<I", handle.read(4))[0]
        with gzip.open(path, "rb") as handle:  # the first bytes must decompress too
            handle.read(348)
    except (OSError, EOFError, struct.error) as error:
        raise BIDSError(f"{path}: not a valid gzipped NIfTI ({error}).") from error
    return size


#: Volumes listed in a voxel-check message, at most.
_LISTED = 10


def check_voxels(path: str | Path, image: nib.Nifti1Image) -> None:
    """Read every voxel of a NIfTI file once, one 3-D volume at a time, and check it is usable.

    A ``.nii.gz`` is decompressed to its end, so the gzip stream's CRC-32 and length are verified
    (a truncated or corrupted copy fails, whatever its last bytes hold); then the image must not
    be constant (all zero included), and must hold no NaN or Inf voxel; a 4-D series must have no
    volume that is entirely NaN or constant (a dropped or blank volume). Memory: one volume.

    Raises
    ------
    BIDSError
        Naming the file and what was expected.
    """
    path = Path(path)
    shape = image.shape
    dtype = image.header.get_data_dtype()
    volume_voxels = int(np.prod(shape[:3]))
    n_volumes = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    volume_bytes = volume_voxels * dtype.itemsize
    opener = gzip.open if path.name.endswith(".gz") else open
    nonfinite, empty, constant = [], [], []
    low, high = np.inf, -np.inf
    try:
        with opener(path, "rb") as handle:
            _read_exactly(handle, _data_offset(image), path, "header")
            for index in range(n_volumes):
                values = np.frombuffer(_read_exactly(handle, volume_bytes, path, f"volume {index}"), dtype=dtype)
                if values.dtype.kind in "fc":
                    finite = np.isfinite(values)
                    if not finite.all():
                        nonfinite.append((index, int(values.size - finite.sum())))
                        if not finite.any():
                            empty.append(index)
                            continue
                        values = values[finite]
                v_low, v_high = values.min(), values.max()
                if v_low == v_high:
                    constant.append(index)
                low, high = min(low, float(v_low)), max(high, float(v_high))
            while handle.read(1 << 20):  # to the end: gzip checks its CRC and length there
                pass
    except (EOFError, OSError, zlib.error) as error:
        raise BIDSError(f"{path}: truncated or corrupt ({type(error).__name__}: {error}); "
                        f"expected a complete {'gzip stream' if opener is gzip.open else 'file'}.") from error
    if n_volumes > 1 and empty:
        raise BIDSError(f"{path}: {len(empty)} of {n_volumes} volumes are entirely NaN or Inf "
                        f"({_listed(empty)}); expected finite values in every volume.")
    if nonfinite:
        count = sum(n for _, n in nonfinite)
        where = f" in {len(nonfinite)} of {n_volumes} volumes ({_listed([i for i, _ in nonfinite])})" \
            if n_volumes > 1 else ""
        raise BIDSError(f"{path}: {count} NaN or Inf voxels{where}; expected finite values.")
    if low == high:
        raise BIDSError(f"{path}: every voxel{' of every volume' if n_volumes > 1 else ''} is {low:g}"
                        f"{' (an empty image)' if low == 0 else ''}; expected an image with contrast.")
    if n_volumes > 1 and constant:
        raise BIDSError(f"{path}: {len(constant)} of {n_volumes} volumes are constant ({_listed(constant)}: "
                        f"blank or dropped volumes); expected signal in every volume.")


def _data_offset(image: nib.Nifti1Image) -> int:
    """Where the voxels start: nibabel's reader knows (a header ``vox_offset`` of 0, which some
    writers leave, means "right after the header" for a single-file NIfTI)."""
    offset = getattr(image.dataobj, "offset", None)
    return int(offset if offset is not None else image.header.get_data_offset())


def _read_exactly(handle, n_bytes: int, path: Path, what: str) -> bytes:
    data = handle.read(n_bytes)
    if len(data) < n_bytes:
        raise EOFError(f"the data end in {what}, {len(data)} of its {n_bytes} bytes read")
    return data


def _listed(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:_LISTED])
    return f"{shown}, ..." if len(indices) > _LISTED else shown


# ------------------------------------------------------------------------------- sidecars

def read_sidecar(path: str | Path, *, bids_dir: str | Path) -> dict:
    """The JSON metadata of a BIDS file, following the inheritance principle.

    JSON files from the dataset root down to the file's folder whose entities are a subset of
    the file's and whose suffix matches are merged; the nearest one wins.
    """
    path, bids_dir = Path(path), Path(bids_dir)
    stem = _strip_extension(path.name)
    entities, suffix = bids_entities(stem)
    folders = [bids_dir]
    for part in path.parent.relative_to(bids_dir).parts:
        folders.append(folders[-1] / part)
    metadata: dict = {}
    for folder in folders:
        for candidate in sorted(folder.glob(f"*{suffix}.json")):
            cand_entities, cand_suffix = bids_entities(candidate.name[:-5])
            if cand_suffix == suffix and cand_entities.items() <= entities.items():
                try:
                    metadata.update(json.loads(candidate.read_text()))
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    raise BIDSError(f"{candidate}: not valid JSON ({error}).") from error
    return metadata


def _strip_extension(name: str) -> str:
    for extension in NIFTI_EXTENSIONS + (".json", ".bval", ".bvec", ".tsv"):
        if name.endswith(extension):
            return name[: -len(extension)]
    return name


def bids_entities(stem: str) -> tuple[dict[str, str], str]:
    """The ``key-value`` entities (the first of a repeated key) and the suffix of a BIDS file name
    without its extension: ``sub-01_task-rest_bold`` -> ``({"sub": "01", "task": "rest"}, "bold")``."""
    *pairs, suffix = stem.split("_")
    entities: dict[str, str] = {}
    for pair in pairs:
        key, dash, value = pair.partition("-")
        if dash and key and value:
            entities.setdefault(key, value)
    return entities, suffix


# ------------------------------------------------------------------------ modality checks

def read_gradients(dwi_path: str | Path, n_volumes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read the ``.bval``/``.bvec`` beside a DWI series and check them against it.

    Returns
    -------
    bvals : ndarray (g,)
    bvecs : ndarray (g, 3)

    Raises
    ------
    BIDSError
        A missing or unreadable file, a bvec that is not 3 rows, or counts that differ from
        ``n_volumes``.
    """
    dwi_path = Path(dwi_path)
    stem = _strip_extension(dwi_path.name)
    bval_path = dwi_path.with_name(stem + ".bval")
    bvec_path = dwi_path.with_name(stem + ".bvec")
    for sidecar in (bval_path, bvec_path):
        if not sidecar.is_file():
            raise BIDSError(f"{sidecar}: missing; every DWI series needs a {sidecar.suffix} file "
                            f"beside it ({dwi_path.name}).")
    try:
        bvals = np.loadtxt(bval_path, ndmin=1, dtype=float).ravel()
    except ValueError as error:
        raise BIDSError(f"{bval_path}: unreadable; expected one row of numbers ({error}).") from error
    try:
        bvecs = np.loadtxt(bvec_path, ndmin=2, dtype=float)
    except ValueError as error:
        raise BIDSError(f"{bvec_path}: unreadable; expected 3 rows of numbers ({error}).") from error
    if bvecs.shape[0] != 3:
        raise BIDSError(f"{bvec_path}: expected 3 rows (x, y, z) of {n_volumes} values; got shape {bvecs.shape}.")
    if not (np.isfinite(bvals).all() and np.isfinite(bvecs).all()):
        raise BIDSError(f"{bval_path.name}/{bvec_path.name} in {dwi_path.parent}: non-finite values.")
    if len(bvals) != n_volumes or bvecs.shape[1] != n_volumes:
        raise BIDSError(f"{dwi_path}: {n_volumes} volumes, but {bval_path.name} has {len(bvals)} values "
                        f"and {bvec_path.name} has {bvecs.shape[1]} columns; expected one per volume.")
    return bvals, bvecs.T


#: A b-vector (of a diffusion-weighted volume) may differ from unit length by this much.
BVEC_NORM_TOLERANCE = 0.05

#: Volumes with a b-value at or below this (s/mm2) are b=0 volumes: the default of every function
#: that takes ``b0_threshold`` (the config's ``sc.b0_threshold``, whose schema default it equals).
B0_THRESHOLD = 50.0


def check_gradients(bvals: np.ndarray, bvecs: np.ndarray, source: str, *, b0_threshold: float) -> None:
    """Check a gradient table: non-negative b-values, unit b-vectors for weighted volumes, at
    least one b=0 and one weighted volume.

    Raises
    ------
    BIDSError naming ``source`` and what was expected.
    """
    if (bvals < 0).any():
        raise BIDSError(f"{source}: negative b-values in the .bval file: {sorted(set(bvals[bvals < 0]))}.")
    weighted = bvals > b0_threshold
    if not (~weighted).any():
        raise BIDSError(f"{source}: no b=0 volume (no b-value <= {b0_threshold}); a b=0 reference is needed.")
    if not weighted.any():
        raise BIDSError(f"{source}: only b=0 volumes (every b-value <= {b0_threshold}); no diffusion weighting "
                        "to model.")
    norms = np.linalg.norm(bvecs[weighted], axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > BVEC_NORM_TOLERANCE)
    if len(bad):
        volumes = np.flatnonzero(weighted)[bad]
        raise BIDSError(f"{source}: the .bvec vectors of diffusion-weighted volumes must have unit length "
                        f"(tolerance {BVEC_NORM_TOLERANCE}); volumes {volumes[:10].tolist()} have lengths "
                        f"{np.round(norms[bad][:10], 3).tolist()}.")


def check_dwi(path: str | Path, *, b0_threshold: float = B0_THRESHOLD) -> dict:
    """Check a DWI series and its gradients; returns ``{"n_volumes", "shape"}``."""
    image = check_nifti(path, ndim=4)
    check_voxels(path, image)
    bvals, bvecs = read_gradients(path, image.shape[3])
    check_gradients(bvals, bvecs, str(path), b0_threshold=b0_threshold)
    return {"n_volumes": image.shape[3], "shape": image.shape}


def check_bold(path: str | Path, bids_dir: str | Path) -> dict:
    """Check a BOLD series is 4-D and has a RepetitionTime; returns ``{"n_volumes", "repetition_time"}``."""
    image = check_nifti(path, ndim=(3, 4))
    if image.ndim == 3:
        raise BIDSError(f"{path}: BOLD must be a 4-D time series; got a 3-D image of shape {image.shape}.")
    check_voxels(path, image)
    metadata = read_sidecar(path, bids_dir=bids_dir)
    repetition_time = metadata.get("RepetitionTime")
    if not isinstance(repetition_time, (int, float)) or repetition_time <= 0:
        raise BIDSError(f"{path}: no valid 'RepetitionTime' (seconds) in its JSON sidecar "
                        f"({_strip_extension(Path(path).name)}.json or an inherited one); got {repetition_time!r}.")
    return {"n_volumes": image.shape[3], "repetition_time": float(repetition_time)}


def check_t1w(path: str | Path) -> dict:
    """Check a T1w image is 3-D; returns ``{"shape"}``."""
    image = check_nifti(path, ndim=3)
    check_voxels(path, image)
    return {"shape": image.shape}
