"""Transform files in ITK's formats, the ones ANTs, fMRIPrep, XCP-D and nitransforms read.

ITK (and so ANTs' ``antsApplyTransforms -r REFERENCE -i MOVING -t ...``) stores the map that
takes a point of the reference (fixed) image to the matching point of the moving image, in LPS
world millimetres; a transform file named ``from-A_to-B`` is the one that resamples an image of
A onto B's grid, so it maps B's points to A's. Here every matrix and field is kept in nibabel's
RAS world millimetres; the LPS flip happens only in these readers and writers.

- Affine: ITK's text format (``#Insight Transform File V1.0``, ``AffineTransform_double_3_3``,
  rotation centre 0), 17 significant digits. Reading also takes ITK's ``MatrixOffsetTransformBase``
  and ``float`` variants with any centre.
- Displacement field: ITK's NIfTI layout (5-D ``(X, Y, Z, 1, 3)``, intent vector, LPS
  components), the point ``x`` of the field's grid mapped to ``x + d(x)``. Reading also takes
  the 4-D RAS fields this project wrote before.
- Composite: ITK's HDF5 layout (``.h5``, as ``antsRegistration --write-composite-transform`` and
  fMRIPrep write it): group 0 a ``CompositeTransform``, then one group per transform, the one a
  reference point meets last first (so an affine + warp registration reads affine, then field).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from connex.errors import ConnexError
from connex.inputs.io import atomic_path, save_nifti

#: RAS <-> LPS (its own inverse).
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
ITK_HEADER = "#Insight Transform File V1.0"
_ITK_MAGIC = "#Insight Transform File"  # the header without its version
_AFFINE_TYPES = ("AffineTransform_double_3_3", "AffineTransform_float_3_3",
                 "MatrixOffsetTransformBase_double_3_3", "MatrixOffsetTransformBase_float_3_3")


def save_itk_affine(reference_to_moving: np.ndarray, target: str | Path) -> Path:
    """Write a 4x4 RAS matrix (reference-space point -> moving-space point, mm) as an ITK text
    transform (atomically)."""
    lps = LPS @ np.asarray(reference_to_moving, dtype=np.float64) @ LPS
    numbers = [*lps[:3, :3].ravel(), *lps[:3, 3]]
    text = "\n".join([ITK_HEADER, "#Transform 0", "Transform: AffineTransform_double_3_3",
                      "Parameters: " + " ".join(f"{v:.17g}" for v in numbers), "FixedParameters: 0 0 0", ""])
    with atomic_path(target) as tmp:
        Path(tmp).write_text(text)
    return Path(target)


def _text(path: str | Path) -> str:
    """A transform file's text without a byte-order mark or leading blank lines."""
    return Path(path).read_text(encoding="utf-8-sig").lstrip()


def is_itk_text(path: str | Path) -> bool:
    """Whether a ``.txt`` transform is in ITK's text format (earlier versions of this project
    wrote plain 4x4 RAS matrices under the same names; their readers tell the two apart)."""
    return _text(path).startswith(_ITK_MAGIC)


def load_plain_affine(path: str | Path) -> np.ndarray:
    """A plain 4x4 text matrix (the format earlier versions of this project wrote)."""
    try:
        matrix = np.loadtxt(path, ndmin=2)
    except ValueError as error:
        raise ConnexError(f"{path}: expected an ITK text transform or a plain 4x4 matrix ({error}).") from None
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise ConnexError(f"{path}: expected an ITK text transform or a plain 4x4 affine matrix (last row 0 0 0 1); "
                          f"found a {matrix.shape[0]}x{matrix.shape[1]} matrix.")
    return matrix


def load_itk_affine(path: str | Path) -> np.ndarray:
    """The 4x4 RAS matrix (reference point -> moving point) of an ITK text affine."""
    text = _text(path)
    if not text.startswith(_ITK_MAGIC):
        raise ConnexError(f"{path}: expected an ITK text transform (first line '{ITK_HEADER}').")
    lines = [line for line in text.splitlines() if ":" in line and not line.startswith("#")]
    fields = {key.strip(): value for key, value in (line.split(":", 1) for line in lines)}
    if "Parameters" not in fields:
        raise ConnexError(f"{path}: an ITK transform needs a 'Parameters:' line; found {sorted(fields)}.")
    kinds = [line for line in lines if line.startswith("Transform:")]
    if len(kinds) != 1 or fields["Transform"].strip() not in _AFFINE_TYPES:
        raise ConnexError(f"{path}: expected one ITK affine transform ({', '.join(_AFFINE_TYPES)}), found {kinds}.")
    try:
        parameters = np.array(fields["Parameters"].split(), dtype=np.float64)
        centre = np.array(fields.get("FixedParameters", "0 0 0").split(), dtype=np.float64)
    except ValueError as error:
        raise ConnexError(f"{path}: non-numeric ITK transform parameters ({error}).") from None
    if parameters.shape != (12,) or centre.shape != (3,):
        raise ConnexError(f"{path}: an ITK affine has 12 parameters and 3 fixed ones; found "
                         f"{parameters.size} and {centre.size}.")
    matrix = parameters[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = parameters[9:] + centre - matrix @ centre  # ITK: M (x - c) + t + c
    return LPS @ lps @ LPS


def save_itk_displacements(field: np.ndarray, affine: np.ndarray, target: str | Path) -> Path:
    """Write a displacement field (X, Y, Z, 3), RAS mm on the grid ``affine``, in ITK's NIfTI
    layout (atomically)."""
    data = np.asarray(field, dtype=np.float32).copy()
    data[..., :2] *= -1  # RAS -> LPS components
    image = nib.Nifti1Image(data[:, :, :, None, :], affine)
    image.header.set_intent("vector")
    image.header.set_xyzt_units("mm")
    save_nifti(image, target)
    return Path(target)


def load_itk_displacements(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A displacement field (X, Y, Z, 3), RAS mm, and its grid's affine, from ITK's NIfTI layout
    or from this project's earlier 4-D RAS one."""
    image = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 5 and data.shape[3:] == (1, 3):
        data = data[:, :, :, 0, :].copy()
        data[..., :2] *= -1
    elif not (data.ndim == 4 and data.shape[3] == 3):
        raise ConnexError(f"{path}: expected a 3-D displacement field (X, Y, Z, 1, 3) in ITK's layout; "
                         f"found shape {data.shape}.")
    return data, image.affine


def _lps_grid(affine: np.ndarray, shape: tuple[int, ...]) -> list[float]:
    """ITK's fixed parameters of an image grid: size, origin, spacing, direction (row-major), LPS."""
    lps = LPS @ np.asarray(affine, dtype=np.float64)
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    return [*map(float, shape[:3]), *lps[:3, 3], *spacing, *(lps[:3, :3] / spacing).ravel()]


def save_itk_composite(steps: list[tuple], target: str | Path) -> Path:
    """Write transforms as one ITK composite HDF5 file (atomically).

    Parameters
    ----------
    steps : list of tuple
        In the order a reference-space point goes through them (``antsApplyTransforms``' ``-t``
        order, so the file replaces that list): ``("affine", M)`` with ``M`` (4, 4) RAS, reference
        point -> moving point; ``("field", d, grid)`` with ``d`` (X, Y, Z, 3) RAS mm displacements
        on the grid ``grid`` (4, 4).
    """
    import h5py  # only here: the other readers and writers do not need it

    groups = [("CompositeTransform_double_3_3", None, None)]
    for step in reversed(steps):  # ITK applies a composite's last transform to a point first
        if step[0] == "affine":
            lps = LPS @ np.asarray(step[1], dtype=np.float64) @ LPS
            groups.append(("AffineTransform_double_3_3", [*lps[:3, :3].ravel(), *lps[:3, 3]], [0.0, 0.0, 0.0]))
        elif step[0] == "field":
            field = np.asarray(step[1], dtype=np.float64) * np.array([-1.0, -1.0, 1.0])  # RAS -> LPS components
            # ITK's buffer runs x fastest, the three components of a voxel side by side
            groups.append(("DisplacementFieldTransform_double_3_3", field.transpose(2, 1, 0, 3).ravel(),
                           _lps_grid(step[2], field.shape)))
        else:
            raise ValueError(f"Unknown transform step {step[0]!r}; expected 'affine' or 'field'.")
    text = h5py.string_dtype(encoding="ascii")  # ITK reads ASCII variable-length strings only
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("ITKVersion", data=np.array([b"5.4"], dtype=object), dtype=text)
        for number, (kind, parameters, fixed) in enumerate(groups):
            group = handle.create_group(f"TransformGroup/{number}")
            group.create_dataset("TransformType", data=np.array([kind.encode()], dtype=object), dtype=text)
            if parameters is not None:
                # compressed (HDF5's deflate, which ITK reads): a 2 mm template-grid field is 22 MB raw
                group.create_dataset("TransformParameters", data=np.asarray(parameters, dtype=np.float64),
                                     compression="gzip", compression_opts=4, shuffle=True)
                group.create_dataset("TransformFixedParameters", data=np.asarray(fixed, dtype=np.float64))
    return Path(target)
