"""The functional-connectome stage, step by step as the workflow runs it: each function reads its
inputs, calls :mod:`connex.functional.preprocess` and :mod:`connex.functional.connectivity`, and
writes whole outputs.

Two starts: ConneX's own BOLD preprocessing (:func:`run_bold_preprocessing`), or a user's
fMRIPrep derivatives (:func:`find_fmriprep_run`: preprocessed BOLD in MNI space, its brain mask
and confounds TSV), after which censoring and connectomes are the same: nilearn's
``load_confounds`` selects each strategy's regressors from either confounds file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.anat.atlases import Atlas, atlas_positions
from connex.anat.coreg import load_t1w_to_epi, save_t1w_to_epi, t1w_to_epi
from connex.errors import BIDSError
from connex.functional.connectivity import (
    STABLE_CLEAN_SECONDS,
    Censoring,
    CleaningParams,
    censor,
    connectivity,
    load_strategy_confounds,
    parcellate,
)
from connex.functional.preprocess import preprocess_bold
from connex.inputs.checks import bids_entities
from connex.inputs.io import save_nifti, write_array, write_json, write_tsv
from connex.inputs.paths import sidecar_path
from connex.registry import FC_MEASURE_DESCRIPTIONS, TISSUES
from connex.report.figures import plot_functional_connectome

log = logging.getLogger(__name__)


def run_bold_preprocessing(*, bold: str, metadata: dict, t1w_preproc: str, t1w_mask: str,
                           tissue_maps: dict[str, str], out: dict[str, str], dummy_scans: int, min_volumes: int,
                           slice_timing: bool, n_compcor: int) -> dict:
    """Preprocess one BOLD run and write it with its brain mask, tissue maps, T1w->BOLD transform
    and confounds.

    ``out`` keys: bold, sidecar, mask, xfm, confounds, confounds_json, and GM/WM/CSF.
    """
    result = preprocess_bold(bold, metadata, nib.load(t1w_preproc), nib.load(t1w_mask),
                             {name: nib.load(tissue_maps[name]) for name in TISSUES}, dummy_scans=dummy_scans,
                             min_volumes=min_volumes, slice_timing=slice_timing, n_compcor=n_compcor)
    series = result.series
    image = nib.Nifti1Image(series.data, series.affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header["pixdim"][4] = series.repetition_time
    save_nifti(image, out["bold"])
    save_nifti(nib.Nifti1Image(result.masks.brain.astype(np.uint8), series.affine), out["mask"])
    for name in TISSUES:
        save_nifti(nib.Nifti1Image(result.tissue_probability[name].astype(np.float32), series.affine), out[name])
    save_t1w_to_epi(result.t1w_to_bold, out["xfm"])
    write_tsv(result.confounds, out["confounds"])
    write_json(result.confounds_metadata, out["confounds_json"])
    metrics = {**result.metrics, "Sources": [bold, t1w_preproc, t1w_mask],
               "Transforms": {"T1w_to_bold": Path(out["xfm"]).name,
                              "Format": "ITK affine (ANTs): resamples T1w images onto the BOLD grid "
                                        "(antsApplyTransforms -r BOLD -i T1w -t <file>)"}}
    write_json(metrics, out["sidecar"])
    if series.n_volumes * series.repetition_time < STABLE_CLEAN_SECONDS:
        log.warning("%s: %d volumes at TR %g s (%g s) is too short for a stable connectome (at least %g s of "
                    "clean data is advisable).", bold, series.n_volumes, series.repetition_time,
                    series.n_volumes * series.repetition_time, STABLE_CLEAN_SECONDS)
    return metrics


# ------------------------------------------------------------------------- fMRIPrep derivatives

def fmriprep_run_keys(fmriprep_dir: str | Path, subject: str, *, task: str, space: str,
                      session: str | None = None) -> list[str]:
    """The runs of ``task`` in ``space`` an fMRIPrep folder holds for one participant (and
    session), as :func:`connex.inputs.bids.bold_run_key` keys (``"_run-<label>"``, or ``""`` for a
    run without ``run-``), sorted; empty when there is none."""
    from connex.inputs.bids import bold_run_key

    return sorted({bold_run_key(path) for path in _fmriprep_bold(fmriprep_dir, subject, task, space, session)[2]})


def _fmriprep_bold(fmriprep_dir: str | Path, subject: str, task: str, space: str, session: str | None
                   ) -> tuple[Path, str, list[Path]]:
    """The visit's folder in an fMRIPrep output, the pattern searched, and the preprocessed BOLD
    runs of ``task`` in ``space`` it holds (sorted)."""
    folder = Path(fmriprep_dir) / f"sub-{subject}" / (f"ses-{session}" if session is not None else "")
    visit = f"sub-{subject}" + (f"_ses-{session}" if session is not None else "")
    pattern = f"{visit}_*task-{task}_*space-{space}_*desc-preproc_bold.nii*"
    return folder, pattern, sorted(folder.glob(f"**/func/{pattern}"))


def find_fmriprep_run(fmriprep_dir: str | Path, subject: str, *, task: str, space: str,
                      session: str | None = None, run: str | None = None) -> dict[str, str]:
    """The preprocessed BOLD, brain mask, confounds TSV and sidecar of a participant's run of
    ``task`` in ``space`` in an fMRIPrep output folder (of one session, when ``session`` is given):
    the run labelled ``run``, or with ``run`` None the first in sorted order (the only one, for a
    visit whose raw run has no ``run-``).

    Raises
    ------
    BIDSError
        Naming the folder and the pattern searched when a file is missing.
    """
    folder, pattern, runs = _fmriprep_bold(fmriprep_dir, subject, task, space, session)
    if run is not None:
        pattern = pattern.replace(f"task-{task}_*", f"task-{task}_*run-{run}_*")
        runs = [path for path in runs if bids_entities(path.name.split(".")[0])[0].get("run") == run]
    if not runs:
        raise BIDSError(f"{folder}: no fMRIPrep BOLD matching {pattern}; check fc.fmriprep_dir, "
                        "fc.fmriprep_space and bold_task.")
    bold = runs[0]
    if len(runs) > 1:
        log.warning("%s: %d fMRIPrep runs of task %s; using the first, %s.", folder, len(runs), task, bold.name)
    stem = bold.name.split("_space-")[0]
    found = {"bold": bold,
             "mask": bold.with_name(bold.name.replace("desc-preproc_bold", "desc-brain_mask")),
             "confounds": bold.with_name(f"{stem}_desc-confounds_timeseries.tsv"),
             "sidecar": sidecar_path(bold)}
    for key, path in found.items():
        if not path.exists():
            raise BIDSError(f"{bold}: fMRIPrep's {key} file {path.name} is missing beside it.")
    return {key: str(path) for key, path in found.items()}


def repetition_time_of(sidecar: str | Path, bold: str | Path) -> float:
    """RepetitionTime from a preprocessed run's sidecar (ours or fMRIPrep's), else its header."""
    metadata = json.loads(Path(sidecar).read_text())
    value = metadata.get("RepetitionTime")
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    header_tr = float(nib.load(str(bold)).header.get_zooms()[3])
    if header_tr <= 0:
        raise BIDSError(f"{sidecar}: no RepetitionTime, and {bold} has none in its header either.")
    return header_tr


# ------------------------------------------------------------------------------ censoring

def run_censoring(*, confounds: str, sidecar: str, bold: str, out_tsv: str, out_json: str,
                  params: CleaningParams) -> Censoring:
    """Scrub by framewise displacement and decide whether the run is usable.

    Writes XCP-D's outliers table (``framewise_displacement`` 1 where a volume is censored) and a
    JSON with ``Included`` and, when excluded, the ``Reason`` (the workflow leaves the run out).
    """
    table = pd.read_csv(confounds, sep="\t")
    if "framewise_displacement" not in table.columns and params.fd_threshold is not None:
        raise BIDSError(f"{confounds}: no framewise_displacement column, which scrubbing needs "
                        f"(fd_threshold {params.fd_threshold} mm).")
    selected = load_strategy_confounds(confounds, params)  # a missing confound is an error here, before any work
    repetition_time = repetition_time_of(sidecar, bold)
    fd = table.get("framewise_displacement", pd.Series(np.zeros(len(table)))).to_numpy(dtype=float)
    n_regressors = 0 if selected is None else selected.shape[1]
    result = censor(fd, repetition_time, params, n_regressors=n_regressors)
    write_tsv(pd.DataFrame({"framewise_displacement": (~result.keep).astype(int)}), out_tsv)
    short = result.clean_seconds < STABLE_CLEAN_SECONDS
    write_json({"Included": result.included, "Reason": result.reason, "VolumesTotal": len(fd),
                "VolumesKept": result.n_kept, "CleanSeconds": result.clean_seconds,
                "MeanFramewiseDisplacement": round(float(np.nanmean(fd[1:])) if len(fd) > 1 else 0.0, 4),
                "TooShortForStableConnectome": short, "Cleaning": params.as_dict(),
                "Sources": [confounds]}, out_json)
    if not result.included:
        log.warning("%s: run excluded from the functional connectomes: %s.", bold, result.reason)
    elif short:
        log.warning("%s: only %g s of clean data; a connectome from under %g s is not stable (expect noisy "
                    "matrices).", bold, result.clean_seconds, STABLE_CLEAN_SECONDS)
    return result


# ------------------------------------------------------------------------------ connectomes

def atlas_on_bold(atlas: Atlas, reference: nib.Nifti1Image, *, atlas_t1w: str | None = None,
                  xfm: str | None = None) -> np.ndarray:
    """The atlas as positions 1..n (atlas order) on the BOLD grid: from the T1w-space atlas through
    the T1w->BOLD transform, or (fMRIPrep's MNI-space runs) straight from the MNI atlas."""
    if atlas_t1w is not None:
        labels = t1w_to_epi(nib.load(atlas_t1w), load_t1w_to_epi(xfm), reference.shape, reference.affine,
                            interpolation="nearest")
        return atlas_positions(labels, atlas)
    labels = t1w_to_epi(nib.Nifti1Image(atlas.labels.astype(np.int32), atlas.affine), np.eye(4), reference.shape,
                        reference.affine, interpolation="nearest")
    positions = atlas_positions(labels, atlas)
    if not positions.any():
        raise BIDSError(f"Atlas {atlas.name} has no overlap with the BOLD grid of {reference.get_filename()}; "
                        f"is the run in {atlas.space}-like MNI space?")
    return positions


def run_region_timeseries(*, bold: str, mask: str, confounds: str, outliers: str, sidecar: str, atlas: Atlas,
                          out_timeseries: str, out_figure: str, params: CleaningParams, title: str,
                          atlas_t1w: str | None = None, xfm: str | None = None) -> np.ndarray:
    """One run's parcellated, cleaned time series (kept volumes x all atlas regions, atlas order)
    with its JSON sidecar, and the run's QC figure (FD trace, carpet plot, the run's own
    correlation matrix). Returns the time series."""
    decision = json.loads(sidecar_path(outliers).read_text())
    if not decision["Included"]:
        raise BIDSError(f"{bold}: this run was excluded ({decision['Reason']}); no time series is made for it.")
    image = nib.load(bold)
    if image.ndim != 4:
        raise BIDSError(f"{bold}: preprocessed BOLD must be 4-D; got shape {image.shape}.")
    # Decompress once: the masker, the region check and the figure all read the data.
    data = np.asarray(image.dataobj, dtype=np.float32)
    image = nib.Nifti1Image(data, image.affine, image.header)
    brain = np.asarray(nib.load(mask).dataobj) > 0
    labels = atlas_on_bold(atlas, image, atlas_t1w=atlas_t1w, xfm=xfm)
    table = pd.read_csv(confounds, sep="\t")
    if len(table) != image.shape[3]:
        raise BIDSError(f"{confounds}: {len(table)} rows but {bold} has {image.shape[3]} volumes.")
    selected = load_strategy_confounds(confounds, params)
    keep = pd.read_csv(outliers, sep="\t")["framewise_displacement"].to_numpy() == 0
    repetition_time = repetition_time_of(sidecar, bold)
    timeseries, without_signal = parcellate(image, labels, brain, atlas.n_regions, selected, keep, params,
                                            repetition_time)
    names = list(atlas.table["name"])
    missing = [names[p - 1] for p in without_signal]
    if missing:
        log.warning("Atlas %s: %d region(s) without signal in BOLD space (zero columns, zero rows and columns "
                    "in the matrices): %s", atlas.name, len(missing), ", ".join(missing))
    write_array(timeseries, names, out_timeseries)
    write_json({"Description": "mean cleaned signal of each atlas region, kept volumes only",
                "Atlas": atlas.name, "RegionsWithoutSignal": missing, "VolumesKept": int(keep.sum()),
                "VolumesTotal": int(len(keep)), "RepetitionTime": repetition_time,
                "MeanFramewiseDisplacement": decision.get("MeanFramewiseDisplacement"),
                "ConfoundStrategy": params.strategy, "GlobalSignalRegression": params.global_signal,
                "ConfoundColumns": [] if selected is None else list(selected.columns),
                "Cleaning": params.as_dict(), "Sources": [bold, confounds, outliers]},
               sidecar_path(out_timeseries))
    fd = table["framewise_displacement"].to_numpy(dtype=float) if "framewise_displacement" in table else None
    plot_functional_connectome(fd, params.fd_threshold, keep, data, labels, brain,
                               connectivity(timeseries, without_signal, "correlation"), out_figure,
                               title=f"{title}, atlas {atlas.name}: {int(keep.sum())}/{len(keep)} volumes kept, "
                                     f"strategy {params.strategy}{'+GSR' if params.global_signal else ''}")
    return timeseries


def run_functional_connectome(*, timeseries: list[str], out_matrices: dict[str, str], fisher_z: bool,
                              estimator: str) -> dict[str, np.ndarray]:
    """One matrix per measure from the cleaned time series of a visit's kept runs (one or more
    :func:`run_region_timeseries` files of one atlas), with JSON sidecars.

    Several runs are combined by concatenating their time series after removing each run's mean
    (the pooled within-run covariance; with the default z-scoring each run weighs by its kept
    volumes); a region without signal in any run is a zero row and column.
    """
    if not timeseries:
        raise BIDSError("no kept run to make a functional connectome from.")
    runs, sidecars, names = [], [], None
    for path in timeseries:
        table = pd.read_csv(path, sep="\t")
        if names is not None and list(table.columns) != names:
            raise BIDSError(f"{path}: regions {list(table.columns)[:3]}... differ from {timeseries[0]}'s.")
        names = list(table.columns)
        values = table.to_numpy(dtype=np.float64)
        runs.append(values - values.mean(axis=0))
        sidecars.append(json.loads(sidecar_path(path).read_text()))
    missing = sorted({name for sidecar in sidecars for name in sidecar["RegionsWithoutSignal"]}, key=names.index)
    without_signal = [names.index(name) + 1 for name in missing]
    combined = np.concatenate(runs)
    first = sidecars[0]
    kept, total = (sum(int(sc[key]) for sc in sidecars) for key in ("VolumesKept", "VolumesTotal"))
    if len(runs) > 1:
        log.info("%d runs combined (%d volumes kept of %d): %s", len(runs), kept, total,
                 ", ".join(Path(p).name for p in timeseries))
    common = {"Atlas": first["Atlas"], "RegionsWithoutSignal": missing, "VolumesKept": kept, "VolumesTotal": total,
              "Runs": len(runs), "RunCombination": "concatenated after removing each run's mean",
              "RepetitionTime": first["RepetitionTime"], "ConfoundStrategy": first["ConfoundStrategy"],
              "GlobalSignalRegression": first["GlobalSignalRegression"], "Cleaning": first["Cleaning"],
              "Sources": [str(p) for p in timeseries]}
    matrices = {}
    for measure, path in out_matrices.items():
        matrices[measure] = connectivity(combined, without_signal, measure, fisher_z=fisher_z, estimator=estimator)
        write_array(matrices[measure], names, path)
        write_json({**common, "Measure": measure, "Description": FC_MEASURE_DESCRIPTIONS[measure],
                    "FisherZ": fisher_z and measure == "correlation",
                    "CovarianceEstimator": "empirical" if measure == "correlation" else estimator},
                   sidecar_path(path))
    return matrices


def cleaning_params(config: dict) -> CleaningParams:
    """The :class:`CleaningParams` of the workflow's ``fc`` config section."""
    keys = CleaningParams.__dataclass_fields__
    return CleaningParams(**{k: config[k] for k in keys})
