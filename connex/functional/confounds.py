"""BOLD confounds in fMRIPrep's column names: head motion and its expansions, framewise
displacement, global/WM/CSF signals, aCompCor components from tissue masks in BOLD space and the
cosine high-pass basis they were computed after; the JSON sidecar has fMRIPrep's per-component
metadata, so that nilearn's ``load_confounds`` reads this file as it reads fMRIPrep's."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from connex.errors import BIDSError
from connex.functional.series import BoldSeries

log = logging.getLogger(__name__)

MOTION_COLUMNS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
#: Radius (mm) turning rotations into displacements for framewise displacement (Power 2012).
FD_HEAD_RADIUS_MM = 50.0


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


#: Grey-matter probability (on the BOLD grid) above which a voxel is kept out of the WM and CSF
#: noise masks, as fMRIPrep does: a noise signal that touches cortex regresses out neural signal.
GM_EXCLUSION = 0.05


def tissue_masks(brain: np.ndarray, probability: dict[str, np.ndarray], *, thresholds=(0.9, 0.7, 0.5),
                 min_voxels: int = 10, gm_exclusion: float = GM_EXCLUSION) -> TissueMasks:
    """Noise masks for the tissue signals and CompCor, inside the brain and away from grey matter
    (GM probability below ``gm_exclusion``): white matter above the first of ``thresholds`` that
    leaves ``min_voxels`` after one erosion (uneroded if none does), CSF above the first that gives
    ``min_voxels`` (coarse BOLD grids blur the thin CSF spaces, so a strict threshold can leave
    nothing). Where no threshold leaves ``min_voxels`` away from grey matter (blurred tissue maps,
    such as the template's priors), the grey-matter exclusion is dropped for that tissue, logged.

    Parameters
    ----------
    brain : ndarray (X, Y, Z) bool
    probability : dict of ndarray (X, Y, Z)
        GM, WM and CSF probabilities on the BOLD grid.
    """
    near_gm = probability["GM"] >= gm_exclusion

    def first_with_enough(tissue: str, erode: bool, allowed: np.ndarray) -> np.ndarray | None:
        mask = None
        for threshold in thresholds:
            mask = (probability[tissue] >= threshold) & brain & allowed
            candidate = ndimage.binary_erosion(mask) if erode else mask
            if candidate.sum() >= min_voxels:
                return candidate
        return mask if mask is not None and mask.sum() >= min_voxels else None

    def noise_mask(tissue: str, erode: bool) -> np.ndarray:
        mask = first_with_enough(tissue, erode, ~near_gm)
        if mask is None:
            log.warning("%s noise mask: fewer than %d voxels with GM probability below %.2f; grey matter is not "
                        "excluded from it (blurred tissue maps?).", tissue, min_voxels, gm_exclusion)
            mask = first_with_enough(tissue, erode, np.ones_like(brain))
        return mask if mask is not None else (probability[tissue] >= thresholds[-1]) & brain

    return TissueMasks(brain=brain, white_matter=noise_mask("WM", erode=True), csf=noise_mask("CSF", erode=False))


def combined_compcor(series: BoldSeries, noise: np.ndarray, n_compcor: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """aCompCor on one combined noise mask, as fMRIPrep computes and names it.

    nipype's CompCor after a discrete cosine high-pass (128 s): the voxel time series are
    filtered, variance-normalised and decomposed; the first ``n_compcor`` components are kept
    (fewer if the mask or the run is too small).

    Returns
    -------
    components : DataFrame (T, k)
        ``a_comp_cor_00``...
    cosine : DataFrame (T, c)
        The high-pass basis ``cosine_00``... (none for a run shorter than 128 s).
    metadata : dict
        fMRIPrep's JSON entries: ``Method`` aCompCor, ``Mask`` combined, ``SingularValue``,
        ``VarianceExplained``, ``CumulativeVarianceExplained``, ``Retained``; the components not
        kept as ``dropped_N``.
    """
    from nipype.algorithms.confounds import compute_noise_components

    n_components = int(min(n_compcor, series.n_volumes - 2, noise.sum()))
    components, basis, variance = compute_noise_components(
        series.data, [nib.Nifti1Image(noise.astype(np.uint8), series.affine)], components_criterion=n_components,
        filter_type="cosine", period_cut=128, repetition_time=series.repetition_time, mask_names=["combined"])
    names = [f"a_comp_cor_{k:02d}" if kept else f"dropped_{k - n_components}"
             for k, kept in enumerate(variance["retained"])]
    metadata = {name: {"Method": "aCompCor", "Mask": mask, "Retained": bool(kept),
                       "SingularValue": round(float(singular), 6), "VarianceExplained": round(float(explained), 6),
                       "CumulativeVarianceExplained": round(float(cumulative), 6)}
                for name, mask, kept, singular, explained, cumulative in zip(
                    names, variance["mask"], variance["retained"], variance["singular_value"],
                    variance["variance_explained"], variance["cumulative_variance_explained"])}
    basis = basis.reshape(series.n_volumes, -1)
    cosine = pd.DataFrame(basis, columns=[f"cosine_{k:02d}" for k in range(basis.shape[1])])
    return pd.DataFrame(components, columns=names[:components.shape[1]]), cosine, metadata


def compute_confounds(series: BoldSeries, motion: np.ndarray, masks: TissueMasks, *, n_compcor: int = 10
                      ) -> tuple[pd.DataFrame, dict]:
    """The confounds table (T rows, fMRIPrep column names) and its JSON metadata, which nilearn's
    ``load_confounds`` reads as it reads fMRIPrep's (:func:`combined_compcor`).

    Parameters
    ----------
    series : BoldSeries
        The realigned run.
    motion : ndarray (T, 6)
    masks : TissueMasks
    n_compcor : int
        aCompCor components to keep, from the combined mask: eroded white matter plus CSF
        (fewer if the mask or the run is too small).
    """
    from nipype.algorithms.confounds import compute_dvars

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
    compcor, cosine, metadata = combined_compcor(series, masks.white_matter | masks.csf, n_compcor)
    table = pd.concat([expand(signals), pd.DataFrame({"dvars": np.r_[np.nan, dvars],
                                                      "std_dvars": np.r_[np.nan, std_dvars],
                                                      "framewise_displacement": framewise_displacement(motion)}),
                       expand(motion_table), compcor, cosine], axis=1)
    table.loc[0, "framewise_displacement"] = np.nan  # fMRIPrep's convention: undefined for the first volume
    return table, metadata
