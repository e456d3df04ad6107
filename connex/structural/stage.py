"""The structural-connectome stage, step by step as the workflow runs it: each function reads
its inputs, calls :mod:`connex.structural.preprocess`, :mod:`connex.structural.tracking` and
:mod:`connex.structural.connectome`, and writes whole outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.anat.atlases import Atlas, AtlasRegions, atlas_positions
from connex.anat.coreg import load_t1w_to_epi, save_t1w_to_epi, t1w_to_epi
from connex.inputs.io import atomic_path, save_nifti, write_array, write_json, write_tsv
from connex.inputs.paths import sidecar_path
from connex.registry import SC_WEIGHT_DESCRIPTIONS, TISSUES
from connex.structural.connectome import connectome
from connex.structural.preprocess import DWISeries, fit_tensor, fsl_bvecs, fsl_to_voxel_axes, preprocess_dwi
from connex.structural.tracking import (
    FODF,
    SEED_BATCH,
    TrackingParams,
    fodf_coefficients,
    fodf_model,
    fodf_region,
    iter_tractogram,
    save_tractogram,
    track_batches,
    tractogram_size,
)

log = logging.getLogger(__name__)

#: Streamlines drawn on the SC QC figure (a random sample, seed 0).
QC_STREAMLINES = 2000


def run_preprocessing(*, dwi_paths: list[str], t1w_preproc: str, t1w_mask: str, tissue_maps: dict[str, str],
                      out: dict[str, str], denoise: str, gibbs: bool, motion_correction: bool,
                      b0_threshold: float) -> dict:
    """Preprocess one subject's DWI runs, bring the mask and tissue maps into DWI space, fit DTI.

    ``out`` keys: dwi, bval, bvec, sidecar, mask, xfm, motion, fa, md, and GM/WM/CSF.
    """
    t1w = nib.load(t1w_preproc)
    mask_t1w = nib.load(t1w_mask)
    result = preprocess_dwi(dwi_paths, t1w, mask_t1w, denoise_method=denoise, gibbs=gibbs,
                            motion_correction=motion_correction, b0_threshold=b0_threshold)
    series = result.series
    shape = series.data.shape[:3]
    mask = t1w_to_epi(mask_t1w, result.t1w_to_dwi, shape, series.affine, interpolation="linear") > 0.5
    save_nifti(nib.Nifti1Image(series.data, series.affine), out["dwi"])
    with atomic_path(out["bval"]) as tmp:
        np.savetxt(tmp, series.bvals[None], fmt="%g")
    with atomic_path(out["bvec"]) as tmp:
        np.savetxt(tmp, fsl_bvecs(series), fmt="%.6f")
    save_nifti(nib.Nifti1Image(mask.astype(np.uint8), series.affine), out["mask"])
    save_t1w_to_epi(result.t1w_to_dwi, out["xfm"])
    for name in TISSUES:
        probability = t1w_to_epi(nib.load(tissue_maps[name]), result.t1w_to_dwi, shape, series.affine,
                                 interpolation="linear")
        save_nifti(nib.Nifti1Image(np.clip(probability, 0, 1).astype(np.float32) * mask, series.affine), out[name])
    maps = fit_tensor(series, mask, b0_threshold=b0_threshold)
    save_nifti(nib.Nifti1Image(maps["FA"], series.affine), out["fa"])
    save_nifti(nib.Nifti1Image(maps["MD"], series.affine), out["md"])
    motion = pd.DataFrame(result.motion, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
    write_tsv(motion, out["motion"])
    metrics = {**result.metrics,
               "brain_mask_ml": round(float(mask.sum() * abs(np.linalg.det(series.affine[:3, :3])) / 1000), 1),
               "median_fa_in_mask": round(float(np.median(maps["FA"][mask])), 4),
               "Transforms": {"T1w_to_dwi": Path(out["xfm"]).name,
                              "Format": "ITK affine (ANTs): resamples T1w images onto the DWI grid "
                                        "(antsApplyTransforms -r DWI -i T1w -t <file>)"}}
    write_json(metrics, out["sidecar"])
    return metrics


def load_preprocessed(dwi: str, bval: str, bvec: str) -> DWISeries:
    """The preprocessed series written by :func:`run_preprocessing` (RAS; FSL b-vectors)."""
    image = nib.load(dwi)
    bvals = np.loadtxt(bval, ndmin=1)
    bvecs = fsl_to_voxel_axes(np.loadtxt(bvec, ndmin=2).T, image.affine)
    return DWISeries(data=np.asarray(image.dataobj, dtype=np.float32), affine=image.affine, bvals=bvals,
                     bvecs=bvecs, source=str(dwi))


def run_tractography(*, dwi: str, bval: str, bvec: str, mask: str, fa: str, tissue_maps: dict[str, str],
                     tractogram: str, sidecar: str, params: TrackingParams, b0_threshold: float,
                     threads: int = 1, seed_batch: int = SEED_BATCH, vectorised: bool = True) -> dict:
    """Fit the fODF model and track (over ``threads`` threads, ``seed_batch`` seeds at a time;
    ``vectorised``: :func:`~connex.structural.tracking.track_batches`); writes the tractogram
    (.trk), batch by batch, and its JSON sidecar."""
    series = load_preprocessed(dwi, bval, bvec)
    reference = nib.load(mask)
    mask_data = np.asarray(reference.dataobj) > 0
    fa_data = np.asarray(nib.load(fa).dataobj, dtype=np.float64)
    tissues = None  # only CMC stopping reads the tissue maps (three float64 volumes: memory)
    if params.stopping == "cmc":
        tissues = {name: np.asarray(nib.load(path).dataobj, dtype=np.float64) for name, path in tissue_maps.items()}
    region = fodf_region(fa_data, mask_data, params)
    log.info("Fitting the %s fODF model in %d voxels (of %d in the brain mask: those tracking can reach).",
             params.model.upper(), int(region.sum()), int(mask_data.sum()))
    fitted_model, details = fodf_model(series.gradient_table(b0_threshold), series.data, params.model)
    signals, affine = series.data[region], series.affine
    del series  # only the region's signals are fitted: free the series first (memory)
    fodf = FODF(fodf_coefficients(fitted_model, signals, details), region)
    del signals
    figures: dict = {}

    def kept_streamlines():
        nonlocal figures
        for kept, progress in track_batches(fodf, fa_data, mask_data, affine, params, tissues=tissues,
                                            threads=threads, seed_batch=seed_batch, vectorised=vectorised):
            figures = progress
            yield from kept
            del kept  # written: not held while the next batch is tracked
        if not figures["streamlines_kept"]:  # raised inside the writer, so no tractogram file appears
            raise RuntimeError(f"{dwi}: tractography kept no streamline (seed voxels: {figures['seed_voxels']}); "
                               "check the FA map and the seeding and stopping thresholds.")

    save_tractogram(kept_streamlines(), reference, tractogram)
    metrics = {**details, **figures, "parameters": params.as_dict(), "Sources": [dwi, mask, fa]}
    write_json(metrics, sidecar)
    log.info("Tractography: %d streamlines kept of %d generated (%.0f per second).", figures["streamlines_kept"],
             figures["streamlines_generated"], figures["streamlines_per_second"])
    return metrics


def run_connectome(*, tractogram: str, mask: str, fa: str, xfm: str, atlas: Atlas | AtlasRegions, atlas_t1w: str,
                   out_matrices: dict[str, str], out_dseg: str, out_dseg_table: str, out_figure: str,
                   assignment_radius_mm: float,
                   self_loops: bool, tracking: dict, title: str) -> tuple[dict[str, np.ndarray], dict]:
    """The atlas in DWI space, one connectome matrix per weight (``SC_WEIGHTS``), full atlas size in
    atlas order, with JSON sidecars, and the QC figure. ``atlas`` gives the region table only (the
    workflow passes :func:`~connex.anat.atlases.read_atlas_regions`); ``atlas_t1w`` is its image."""
    from connex.report.figures import plot_structural_connectome  # matplotlib: not in the tractography job (memory)

    reference = nib.load(mask)
    labels = t1w_to_epi(nib.load(atlas_t1w), load_t1w_to_epi(xfm), reference.shape, reference.affine,
                        interpolation="nearest")
    labels = labels * (np.asarray(reference.dataobj) > 0)
    labels = atlas_positions(labels, atlas)
    save_nifti(nib.Nifti1Image(labels.astype(np.int32), reference.affine), out_dseg)
    # the DWI-space image holds atlas positions (1..n, the matrices' order), not the atlas's indices
    write_tsv(pd.DataFrame({"index": np.arange(1, atlas.n_regions + 1), "name": atlas.table["name"].to_numpy(),
                            "atlas_index": atlas.table["index"].to_numpy()}), out_dseg_table)
    fa_data = np.asarray(nib.load(fa).dataobj, dtype=np.float64)
    # the tractogram is read as the connectome consumes it (memory); the QC figure's sample on the way
    n_streamlines = tractogram_size(tractogram)
    drawn = set(np.random.default_rng(0).choice(n_streamlines, min(QC_STREAMLINES, n_streamlines), replace=False))
    shown: list[np.ndarray] = []

    def reading():
        for number, streamline in enumerate(iter_tractogram(tractogram)):
            if number in drawn and len(streamline) >= 2:
                shown.append(streamline)
            yield streamline

    matrices, figures = connectome(reading(), labels, reference.affine, atlas.n_regions, fa_data,
                                   assignment_radius_mm=assignment_radius_mm, self_loops=self_loops)
    names = list(atlas.table["name"])
    missing = [names[r - 1] for r in figures["regions_without_voxels"]]
    if missing:
        log.warning("Atlas %s: %d region(s) have no voxel in DWI space (their rows and columns are zero): %s",
                    atlas.name, len(missing), ", ".join(missing))
    for weight, path in out_matrices.items():
        write_array(matrices[weight], names, path)
        write_json({"Atlas": atlas.name, "Weight": weight, "Description": SC_WEIGHT_DESCRIPTIONS[weight],
                    "RegionsWithoutVoxels": missing, "SelfLoops": self_loops,
                    "AssignmentRadiusMM": assignment_radius_mm, **figures, "Tractography": tracking,
                    "Sources": [tractogram, atlas_t1w]}, sidecar_path(path))
    plot_structural_connectome(fa, shown, matrices["count"], out_figure,
                               title=f"{title}, atlas {atlas.name}: {figures['streamlines']} streamlines, "
                                     f"{figures['fraction_assigned']:.0%} joining two regions, "
                                     f"{figures['edges_nonzero']} edges")
    return matrices, figures
