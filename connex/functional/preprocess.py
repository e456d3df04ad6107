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
   ``a_comp_cor_NN`` (nipype's CompCor on the eroded white matter plus CSF mask) and the
   ``cosine_NN`` high-pass basis it was computed after; fMRIPrep's CompCor metadata in the JSON.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.anat.coreg import register_to_t1w, t1w_to_epi
from connex.functional.confounds import TissueMasks, compute_confounds, tissue_masks
from connex.functional.realign import realign
from connex.functional.series import BoldSeries, correct_slice_timing, load_bold
from connex.inputs.checks import bids_entities

log = logging.getLogger(__name__)

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
                    slice_timing: bool = True, n_compcor: int = 10) -> BoldPreprocResult:
    """Steps 1-6 of the module docstring for one run."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    series = load_bold(path, metadata, dummy_scans=dummy_scans, min_volumes=min_volumes)
    seconds["load"] = time.perf_counter() - start
    # BIDS keys where BIDS defines one (TaskName, RepetitionTime, SkullStripped, SliceTimingCorrected)
    task = metadata.get("TaskName") or bids_entities(Path(path).name.split(".")[0])[0].get("task")
    metrics: dict = {"TaskName": task, "RepetitionTime": series.repetition_time,
                     "SkullStripped": False, "SliceTimingCorrected": False, "dummy_scans": dummy_scans,
                     "n_volumes": series.n_volumes, "susceptibility_distortion_correction": False}
    if slice_timing:
        if series.slice_timing is None:
            log.warning("%s: slice-timing correction asked for but the sidecar has no SliceTiming; skipped.", path)
        else:
            start = time.perf_counter()
            series = correct_slice_timing(series)
            seconds["slice_timing"] = time.perf_counter() - start
            metrics["SliceTimingCorrected"] = True
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
