"""Benchmarks: commands that print figures (medians over repeats). Never run as tests.

    python -m connex.benchmarks synth [--repeats 3]
    python -m connex.benchmarks anat --bids results/demo/bids [--subjects 01 02 03] [--repeats 3]
                                     [--real ../shared/data/bids-xa30]
    python -m connex.benchmarks sc --bids results/demo/bids --derivatives results/connex
                                   [--real ../shared/data/bids-xa30 --real-derivatives OUT/connex]
    python -m connex.benchmarks fc --bids results/demo/bids --derivatives results/connex [--subjects ...]
    python -m connex.benchmarks model --connectomes DIR [--folds 5] [--jobs 2]
    python -m connex.benchmarks workflow [--cores 1 2] [--repeats 3] [--configfile X.yaml] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


def _time(function, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            function(Path(folder) / "out")
            seconds.append(time.perf_counter() - start)
    return seconds


def benchmark_synth(repeats: int = 3, subjects: int = 8, connectome_subjects: int = 300) -> None:
    """Time the demo-size image cohort and a large connectomes-only cohort."""
    from connex.synth import SynthConfig, generate_cohort, generate_connectomes

    config = SynthConfig(n_subjects=subjects)
    _time(lambda out: generate_connectomes(out, SynthConfig(n_subjects=2)), 1)  # warm caches/imports
    images = _time(lambda out: generate_cohort(out, config), repeats)
    matrices_config = SynthConfig(n_subjects=connectome_subjects, n_regions=100)
    matrices = _time(lambda out: generate_connectomes(out, matrices_config), repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(images)
    print(f"synthetic cohort with images, {subjects} subjects (demo size), {repeats} runs: "
          f"median {median:.1f} s (min {min(images):.1f}, max {max(images):.1f}); "
          f"{median / subjects:.2f} s per subject")
    print(f"connectomes only, {connectome_subjects} subjects x 100 regions, {repeats} runs: "
          f"median {statistics.median(matrices):.1f} s "
          f"({connectome_subjects / statistics.median(matrices):.0f} subjects/s)")
    print(f"ratio (images per subject / matrices per subject): "
          f"{(median / subjects) / (statistics.median(matrices) / connectome_subjects):.0f}")
    print(f"peak resident memory of this process: {peak_mb:.0f} MB")


def registration_accuracy(t1w_path: Path, truth_xfm: np.ndarray, atlas, transforms_to_subject, labels_in_t1w
                          ) -> dict:
    """Displacement error (mm) inside the MNI brain, and per-region Dice in T1w space.

    ``transforms_to_subject(points_mni (n, 3)) -> points_subject (n, 3)`` is the estimated
    MNI -> scanner mapping; the truth is ``inv(truth_xfm)``. ``labels_in_t1w`` is the atlas
    the pipeline put into T1w space; the true one is the atlas seen through the true transform.
    """
    from scipy import ndimage

    from connex.anat import load_t1w
    from connex.templates import load_mni_template

    template = load_mni_template(2)
    voxels = np.argwhere(template.brain_mask)[::10]
    mni = voxels @ template.affine[:3, :3].T + template.affine[:3, 3]
    inverse = np.linalg.inv(truth_xfm)
    error = np.linalg.norm(transforms_to_subject(mni) - (mni @ inverse[:3, :3].T + inverse[:3, 3]), axis=1)
    t1w = load_t1w(t1w_path)
    to_atlas = np.linalg.inv(atlas.affine) @ truth_xfm @ t1w.affine
    true_labels = ndimage.affine_transform(atlas.labels, to_atlas[:3, :3], to_atlas[:3, 3],
                                           output_shape=t1w.shape, order=0)
    dice = []
    for index in atlas.table["index"]:
        a, b = labels_in_t1w == index, true_labels == index
        if a.any() or b.any():
            dice.append(2 * (a & b).sum() / (a.sum() + b.sum()))
    return {"mean_error_mm": float(error.mean()), "p95_error_mm": float(np.percentile(error, 95)),
            "median_dice": float(np.median(dice)), "mean_dice": float(np.mean(dice))}


def ants_reference(t1w_path: Path, atlas) -> tuple[dict, np.ndarray, object]:
    """The same strategy with ANTsPy, for comparison: Mattes-MI affine of the whole head (neck
    cropped) to the head model, brain mask through it, then SyN of the masked T1w to the
    skull-stripped template from that affine. Returns seconds per step, the atlas in T1w space
    and the MNI -> T1w point mapping."""
    import ants

    from connex.anat import _crop_below_top_of_head, _n4, load_t1w
    from connex.templates import head_model, load_mni_template

    def to_ants(data, affine):
        return ants.from_nibabel_nifti(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine))

    template = load_mni_template(2)
    t1w = load_t1w(t1w_path)
    seconds = {}
    start = time.perf_counter()
    corrected, head_mask = _n4(t1w, 1)
    seconds["n4"] = time.perf_counter() - start
    start = time.perf_counter()
    cropped = _crop_below_top_of_head(corrected, head_mask)
    fixed_head = to_ants(head_model(template), template.affine)
    affine = ants.registration(fixed_head, ants.from_nibabel_nifti(cropped), type_of_transform="Affine",
                               aff_metric="mattes", random_seed=0)
    moving = ants.from_nibabel_nifti(corrected)
    template_mask = to_ants(template.brain_mask, template.affine)
    mask = ants.apply_transforms(moving, template_mask, affine["invtransforms"], whichtoinvert=[True]).numpy() > 0.5
    seconds["affine"] = time.perf_counter() - start
    start = time.perf_counter()
    brain = to_ants(corrected.get_fdata() * mask, corrected.affine)
    syn = ants.registration(to_ants(template.t1w, template.affine), brain, type_of_transform="SyNOnly",
                            initial_transform=affine["fwdtransforms"][0], random_seed=0)
    seconds["syn"] = time.perf_counter() - start
    labels = ants.apply_transforms(moving, to_ants(atlas.labels, atlas.affine), syn["invtransforms"],
                                   interpolator="genericLabel", whichtoinvert=[True, False]).numpy()
    flip = np.array([-1.0, -1.0, 1.0])  # ANTs points are LPS

    def points(mni):
        frame = pd.DataFrame(mni * flip, columns=["x", "y", "z"])
        return ants.apply_transforms_to_points(3, frame, syn["fwdtransforms"]).to_numpy() * flip
    return seconds, np.round(labels).astype(int) * mask, points


def benchmark_anat(bids_dir: Path, subjects: list[str], repeats: int = 3, real: Path | None = None) -> None:
    """Time and accuracy of the anatomy stage (dipy) on synthetic subjects against their ground
    truth, beside an ANTsPy reference with the same strategy, and its time on a real T1w."""
    from connex.anat import atlas_to_t1w, load_t1w, register_t1w
    from connex.atlases import load_synth_atlas
    from connex.paths import bids_path
    from connex.templates import MNI_SPACE

    truth_dir = bids_dir / "derivatives" / "groundtruth"
    atlas = load_synth_atlas(truth_dir)
    print(f"anatomy stage, 1 thread, median of {repeats} runs per subject (ANTs reference: 1 run)")
    print(f"{'subject':10} {'tool':6} {'n4 s':>6} {'affine s':>9} {'syn s':>7} {'total s':>8} "
          f"{'mean err mm':>12} {'p95 err mm':>11} {'median Dice':>12}")
    rows = []
    for subject in subjects:
        t1w_path = bids_path(bids_dir, subject, "anat", "T1w", ".nii.gz")
        truth = np.loadtxt(bids_path(truth_dir, subject, None, "xfm", ".txt", from_="T1w", to=MNI_SPACE, mode="world"))
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = register_t1w(load_t1w(t1w_path))
            runs.append((time.perf_counter() - start, result))
        total, result = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        labels, _ = atlas_to_t1w(atlas, result.brain_mask, result.registration)
        accuracy = registration_accuracy(t1w_path, truth, atlas, result.registration.mni_points_to_t1w,
                                         np.asarray(labels.dataobj))
        m = result.metrics
        print(f"sub-{subject:6} {'dipy':6} {m['n4_seconds']:6.1f} {m['affine_seconds']:9.1f} {m['syn_seconds']:7.1f} "
              f"{total:8.1f} {accuracy['mean_error_mm']:12.2f} {accuracy['p95_error_mm']:11.2f} "
              f"{accuracy['median_dice']:12.3f}")
        start = time.perf_counter()
        seconds, ants_labels, ants_points = ants_reference(t1w_path, atlas)
        ants_total = time.perf_counter() - start
        ants_accuracy = registration_accuracy(t1w_path, truth, atlas, ants_points, ants_labels)
        print(f"sub-{subject:6} {'ANTs':6} {seconds['n4']:6.1f} {seconds['affine']:9.1f} {seconds['syn']:7.1f} "
              f"{ants_total:8.1f} {ants_accuracy['mean_error_mm']:12.2f} {ants_accuracy['p95_error_mm']:11.2f} "
              f"{ants_accuracy['median_dice']:12.3f}")
        rows.append((total, accuracy, ants_total, ants_accuracy))
    print(f"median over subjects: dipy (the stage) {statistics.median(r[0] for r in rows):.1f} s, mean error "
          f"{statistics.median(r[1]['mean_error_mm'] for r in rows):.2f} mm, median Dice "
          f"{statistics.median(r[1]['median_dice'] for r in rows):.3f}; ANTs "
          f"{statistics.median(r[2] for r in rows):.1f} s, {statistics.median(r[3]['mean_error_mm'] for r in rows):.2f} mm, "
          f"Dice {statistics.median(r[3]['median_dice'] for r in rows):.3f}; time ratio dipy/ANTs "
          f"{statistics.median(r[0] / r[2] for r in rows):.2f}")
    if real is not None:
        t1w_path = next((real / "sub-01" / "anat").glob("*_T1w.nii.gz"))
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = register_t1w(load_t1w(t1w_path))
            runs.append((time.perf_counter() - start, result.metrics))
        volumes = sorted({m["brain_volume_ml"] for _, m in runs})
        _, m = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"real T1w {t1w_path.name} {nib.load(t1w_path).shape}: median {statistics.median(r[0] for r in runs):.1f} s "
              f"(n4 {m['n4_seconds']}, affine {m['affine_seconds']}, syn {m['syn_seconds']}), template correlation "
              f"{m['template_correlation']}, brain mask {m['brain_volume_ml']} ml; distinct mask volumes over "
              f"{repeats} runs: {volumes}")


def sc_accuracy(bids_dir: Path, derivatives: Path, atlas: str = "synth", weight: str = "count") -> dict:
    """Accuracy of the SC matrices the workflow wrote for a synthetic cohort, against its truth:
    per-subject ROC AUC (true bundles vs non-edges), Spearman correlation of weights with the
    true bundle strengths on true edges, and where the SZ-HC effect edges rank among all edges
    by the group difference (Welch t of log(1 + count), HC minus SZ)."""
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    from connex.paths import bids_path

    truth_dir = bids_dir / "derivatives" / "groundtruth"
    participants = pd.read_csv(bids_dir / "participants.tsv", sep="\t")
    aucs, rhos, matrices, labels = [], [], [], []
    for pid, diagnosis in zip(participants["participant_id"], participants["diagnosis"]):
        subject = pid[4:]
        path = bids_path(derivatives, subject, "dwi", "relmat", ".tsv", atlas=atlas, meas=weight)
        if not path.exists():
            continue
        estimated = pd.read_csv(path, sep="\t").to_numpy(float)
        true = pd.read_csv(bids_path(truth_dir, subject, None, "relmat", ".tsv", atlas=atlas, meas="bundlestrength",
                                     desc="true"), sep="\t").to_numpy(float)
        upper = np.triu_indices(len(true), 1)
        is_edge = true[upper] > 0
        aucs.append(roc_auc_score(is_edge, estimated[upper]))
        rhos.append(stats.spearmanr(estimated[upper][is_edge], true[upper][is_edge])[0])
        matrices.append(np.log1p(estimated[upper]))
        labels.append(diagnosis)
    matrices, labels = np.array(matrices), np.array(labels)
    effect = pd.read_csv(truth_dir / "group" / "effect_edges.tsv", sep="\t")
    effect = effect[effect["modality"] == "SC"]
    n = round((1 + np.sqrt(1 + 8 * matrices.shape[1])) / 2)
    upper = np.triu_indices(n, 1)
    position = {(i + 1, j + 1): k for k, (i, j) in enumerate(zip(*upper))}
    t, _ = stats.ttest_ind(matrices[labels == "HC"], matrices[labels == "SZ"], equal_var=False)
    t = np.nan_to_num(t, nan=-np.inf)
    order = np.argsort(-t)
    rank = {k: r + 1 for r, k in enumerate(order)}
    effect_ranks = sorted(rank[position[(min(i, j), max(i, j))]] for i, j in zip(effect["region_i"], effect["region_j"]))
    return {"subjects": len(aucs), "auc_median": float(np.median(aucs)), "auc_min": float(np.min(aucs)),
            "spearman_median": float(np.median(rhos)), "effect_edge_ranks": effect_ranks, "n_edges": len(order)}


def _run(command: list[str]) -> float:
    import subprocess

    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _mrtrix_reference(dwi: Path, bval: Path, bvec: Path, mask: Path, seed_mask: Path, labels: Path, n_streamlines: int,
                      params, folder: Path, radius_mm: float) -> dict[str, float]:
    """MRtrix3 on the same preprocessed DWI, mask, seeds and labels (one thread): tensor, FA-based
    response, CSD, deterministic SD_STREAM selecting the streamline count dipy kept, connectome."""
    grad = ["-fslgrad", str(bvec), str(bval)]
    one = ["-nthreads", "1", "-force", "-quiet"]
    seconds = {}
    seconds["tensor"] = _run(["dwi2tensor", str(dwi), str(folder / "dt.mif"), "-mask", str(mask), *grad, *one])
    seconds["response+fodf"] = _run(["dwi2response", "fa", str(dwi), str(folder / "response.txt"), "-mask", str(mask),
                                     *grad, *one])
    seconds["response+fodf"] += _run(["dwi2fod", "csd", str(dwi), str(folder / "response.txt"), str(folder / "fod.mif"),
                                      "-mask", str(mask), *grad, *one])
    algorithm = "SD_STREAM" if params.algorithm == "deterministic" else "iFOD2"
    seconds["tracking"] = _run(["tckgen", str(folder / "fod.mif"), str(folder / "tracks.tck"), "-algorithm", algorithm,
                                "-seed_image", str(seed_mask), "-mask", str(mask), "-select", str(n_streamlines),
                                "-step", str(params.step_mm), "-angle", str(params.max_angle),
                                "-minlength", str(params.min_length_mm), "-maxlength", str(params.max_length_mm), *one])
    seconds["connectome"] = _run(["tck2connectome", str(folder / "tracks.tck"), str(labels), str(folder / "sc.csv"),
                                  "-assignment_radial_search", str(radius_mm), "-symmetric", "-zero_diagonal", *one])
    return seconds


def benchmark_sc(bids_dir: Path, derivatives: Path, subjects: list[str], repeats: int = 3, real: Path | None = None,
                 real_derivatives: Path | None = None, atlas: str = "synth") -> None:
    """Per-step time of the SC stage on the workflow's preprocessed DWI (median of ``repeats``
    runs, one thread) and streamlines per second, beside MRtrix3 on the same data, mask, seeds
    and labels; the preprocessing time from the workflow's own benchmark file; then the
    accuracy of the workflow's SC matrices against the synthetic ground truth."""
    import shutil

    from connex.dwi import fsl_bvecs
    from connex.paths import bids_path
    from connex.sc import load_preprocessed
    from connex.tractography import TrackingParams, connectome, fit_fodf, track

    params = TrackingParams()
    has_mrtrix = shutil.which("tckgen") is not None
    print(f"SC stage, 1 thread, median of {repeats} runs; defaults {params}")
    print(f"{'subject':10} {'prep s':>6} {'fodf s':>7} {'track s':>8} {'conn s':>7} {'sum s':>6} {'kept':>7} {'sl/s':>7} | "
          f"MRtrix3 {'dti':>5} {'fodf':>5} {'track':>6} {'conn':>5} {'sum':>6} | dipy/MRtrix3")
    cases = [(derivatives, s, atlas) for s in subjects]
    if real is not None:
        cases.append((real_derivatives, "01", "desikankilliany"))
    for deriv_dir, subject, atlas_name in cases:
        def dwi_file(suffix, extension, deriv_dir=deriv_dir, subject=subject, **entities):
            return bids_path(deriv_dir, subject, "dwi", suffix, extension, **entities)
        series = load_preprocessed(*(dwi_file("dwi", e, space="dwi", desc="preproc") for e in (".nii.gz", ".bval", ".bvec")))
        mask = np.asarray(nib.load(dwi_file("mask", ".nii.gz", space="dwi", desc="brain")).dataobj) > 0
        fa = nib.load(dwi_file("dwimap", ".nii.gz", space="dwi", model="tensor", param="fa")).get_fdata()
        labels = np.asarray(nib.load(dwi_file("dseg", ".nii.gz", space="dwi", atlas=atlas_name)).dataobj)
        preprocessing = pd.read_csv(deriv_dir.parent / "benchmarks" / "preprocess_dwi" / f"sub-{subject}.tsv", sep="\t")["s"].iloc[0]
        timings = []
        for _ in range(repeats):
            steps = {}
            start = time.perf_counter()
            shm, _ = fit_fodf(series.data, series.gradient_table(50), mask, params.model)
            steps["fodf"] = time.perf_counter() - start
            start = time.perf_counter()
            streamlines, figures = track(shm, fa, mask, series.affine, params)
            steps["track"] = time.perf_counter() - start
            start = time.perf_counter()
            connectome(streamlines, labels, series.affine, int(labels.max()), fa)
            steps["conn"] = time.perf_counter() - start
            timings.append((sum(steps.values()), steps, figures))
        total, steps, figures = sorted(timings, key=lambda r: r[0])[len(timings) // 2]
        line = (f"sub-{subject:6} {preprocessing:6.1f} {steps['fodf']:7.1f} {steps['track']:8.1f} {steps['conn']:7.1f} "
                f"{total:6.1f} {figures['streamlines_kept']:7d} {figures['streamlines_generated'] / steps['track']:7.0f}")
        if has_mrtrix:
            with tempfile.TemporaryDirectory() as folder:
                folder = Path(folder)
                for name, data in (("dwi", series.data), ("mask", mask.astype(np.uint8)),
                                   ("seeds", (mask & (fa >= params.seed_fa_threshold)).astype(np.uint8)),
                                   ("labels", labels.astype(np.int32))):
                    nib.save(nib.Nifti1Image(data, series.affine), folder / f"{name}.nii.gz")
                np.savetxt(folder / "dwi.bval", series.bvals[None], fmt="%g")
                np.savetxt(folder / "dwi.bvec", fsl_bvecs(series), fmt="%.6f")
                mr = _mrtrix_reference(folder / "dwi.nii.gz", folder / "dwi.bval", folder / "dwi.bvec",
                                       folder / "mask.nii.gz", folder / "seeds.nii.gz", folder / "labels.nii.gz",
                                       figures["streamlines_kept"], params, folder, 4.0)
            mr_sum = mr["response+fodf"] + mr["tracking"] + mr["connectome"]
            line += (f" | {mr['tensor']:13.1f} {mr['response+fodf']:5.1f} {mr['tracking']:6.1f} {mr['connectome']:5.1f} "
                     f"{mr_sum:6.1f} | {total / mr_sum:5.2f}")
        print(line)
    print("prep: the workflow's preprocess_dwi job (benchmark file); sum and ratio: fODF, tracking and connectome "
          "(MRtrix3: dwi2response fa + dwi2fod csd, tckgen -select <dipy's kept count>, tck2connectome)")
    accuracy = sc_accuracy(bids_dir, derivatives, atlas)
    print(f"accuracy over {accuracy['subjects']} synthetic subjects (workflow outputs, atlas {atlas}, count): ROC AUC "
          f"median {accuracy['auc_median']:.3f} (min {accuracy['auc_min']:.3f}); Spearman on true edges median "
          f"{accuracy['spearman_median']:.3f}; ranks of the SC effect edges by HC-SZ difference among "
          f"{accuracy['n_edges']} edges: {accuracy['effect_edge_ranks']}")


def _upper_correlation(estimated: np.ndarray, true: np.ndarray) -> float:
    upper = np.triu_indices(len(true), 1)
    return float(np.corrcoef(estimated[upper], true[upper])[0, 1])


def _true_fc(bids_dir: Path, subject: str, atlas: str, task: str) -> np.ndarray:
    from connex.paths import bids_path

    truth = bids_path(bids_dir / "derivatives" / "groundtruth", subject, None, "relmat", ".tsv", task=task, atlas=atlas,
                      meas="correlation", desc="true")
    return pd.read_csv(truth, sep="\t").to_numpy(float)


def fc_accuracy(bids_dir: Path, derivatives: Path, atlas: str = "synth", task: str = "rest") -> dict:
    """Accuracy of the correlation matrices the workflow wrote for a synthetic cohort: per-subject
    correlation of the upper triangle with the true FC, and where the FC effect edges rank among
    all edges by the HC-SZ difference (Welch t of Fisher z, HC minus SZ: SZ lacks a shared factor)."""
    from scipy import stats

    from connex.paths import bids_path

    participants = pd.read_csv(bids_dir / "participants.tsv", sep="\t")
    scores, vectors, labels = [], [], []
    for pid, diagnosis in zip(participants["participant_id"], participants["diagnosis"]):
        subject = pid[4:]
        path = bids_path(derivatives, subject, "func", "relmat", ".tsv", task=task, atlas=atlas, meas="correlation")
        if not path.exists():
            continue
        estimated = pd.read_csv(path, sep="\t").to_numpy(float)
        scores.append(_upper_correlation(estimated, _true_fc(bids_dir, subject, atlas, task)))
        vectors.append(np.arctanh(np.clip(estimated[np.triu_indices(len(estimated), 1)], -0.999, 0.999)))
        labels.append(diagnosis)
    result = {"subjects": len(scores), "r_median": float(np.median(scores)) if scores else float("nan"),
              "r_min": float(np.min(scores)) if scores else float("nan")}
    vectors, labels = np.array(vectors), np.array(labels)
    if {"HC", "SZ"} <= set(labels):
        effect = pd.read_csv(bids_dir / "derivatives" / "groundtruth" / "group" / "effect_edges.tsv", sep="\t")
        effect = effect[effect["modality"] == "FC"]
        n = round((1 + np.sqrt(1 + 8 * vectors.shape[1])) / 2)
        position = {(i + 1, j + 1): k for k, (i, j) in enumerate(zip(*np.triu_indices(n, 1)))}
        t, _ = stats.ttest_ind(vectors[labels == "HC"], vectors[labels == "SZ"], equal_var=False)
        rank = {k: r + 1 for r, k in enumerate(np.argsort(-np.nan_to_num(t, nan=-np.inf)))}
        result["effect_edge_ranks"] = sorted(rank[position[(min(i, j), max(i, j))]]
                                             for i, j in zip(effect["region_i"], effect["region_j"]))
        result["n_edges"] = len(rank)
    return result


#: Cleaning variants the FC benchmark compares: (label, CleaningParams overrides).
FC_VARIANTS = [(f"{strategy}{'+GSR' if gsr else ''}", dict(strategy=strategy, global_signal=gsr))
               for strategy in ("none", "6P", "24P", "36P", "aCompCor") for gsr in (False, True)]
FC_FILTERS = {"no filter": dict(low_pass=None, high_pass=None), "high-pass 0.01": dict(low_pass=None, high_pass=0.01),
              "band-pass 0.01-0.08": dict(low_pass=0.08, high_pass=0.01)}


def benchmark_fc(bids_dir: Path, derivatives: Path, subjects: list[str], repeats: int = 3, atlas: str = "synth",
                 task: str = "rest") -> None:
    """Per-step time of BOLD preprocessing and of the connectome (median of ``repeats`` runs, one
    thread) for ``subjects``, then, for every participant the workflow processed, accuracy against
    the true FC: the workflow's matrices, and every confound strategy and temporal filter
    recomputed from the workflow's preprocessed runs and confounds."""
    from connex.atlases import atlas_positions, load_atlas
    from connex.bids import read_sidecar
    from connex.bold import preprocess_bold
    from connex.connectivity import (
        CleaningParams,
        censor,
        connectivity,
        parcellate,
        select_confounds,
    )
    from connex.coreg import t1w_to_epi
    from connex.fc import atlas_on_bold
    from connex.paths import bids_path

    atlas_spec = load_atlas(atlas, synth_dir=bids_dir / "derivatives" / "groundtruth")
    default = CleaningParams()

    def clean_fc(image, labels, brain, confounds, repetition_time, params):
        selected = select_confounds(confounds, params, "benchmark")
        kept = censor(confounds["framewise_displacement"].to_numpy(), repetition_time, params,
                      n_regressors=0 if selected is None else selected.shape[1])
        series, missing = parcellate(image, labels, brain, atlas_spec.n_regions, selected, kept.keep, params,
                                     repetition_time)
        return {m: connectivity(series, missing, m) for m in ("correlation", "partialcorrelation", "covariance")}

    print(f"FC stage, 1 thread, median of {repeats} runs (the workflow's steps, rerun in this process)")
    print(f"{'subject':10} {'volumes':>7} {'load':>6} {'slice':>6} {'realign':>8} {'coreg':>6} {'confounds':>9} "
          f"{'connectome':>10} {'total s':>8}")
    for subject in subjects:
        def anat(suffix, subject=subject, **entities):
            return nib.load(bids_path(derivatives, subject, "anat", suffix, ".nii.gz", **entities))
        raw = bids_path(bids_dir, subject, "func", "bold", ".nii.gz", task=task)
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = preprocess_bold(raw, read_sidecar(raw, bids_dir), anat("T1w", desc="preproc"),
                                     anat("mask", desc="brain"), {k: anat("probseg", label=k) for k in ("GM", "WM", "CSF")},
                                     slice_timing=True)
            connectome_start = time.perf_counter()
            image = nib.Nifti1Image(result.series.data, result.series.affine)
            labels = atlas_positions(t1w_to_epi(anat("dseg", space="T1w", atlas=atlas), result.t1w_to_bold, image.shape,
                                                image.affine, interpolation="nearest"), atlas_spec)
            clean_fc(image, labels, result.masks.brain, result.confounds, result.series.repetition_time, default)
            seconds = {**result.metrics["seconds"], "connectome": time.perf_counter() - connectome_start}
            runs.append((time.perf_counter() - start, seconds))
        total, seconds = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"sub-{subject:6} {result.series.n_volumes:7d} {seconds['load']:6.1f} {seconds.get('slice_timing', 0):6.1f} "
              f"{seconds['realign']:8.1f} {seconds['coregistration']:6.1f} {seconds['confounds']:9.1f} "
              f"{seconds['connectome']:10.1f} {total:8.1f}")
    print("goal: under 120 s per subject on one core")

    table: dict = {}
    participants = pd.read_csv(bids_dir / "participants.tsv", sep="\t")["participant_id"].str[4:]
    done = []
    for subject in participants:
        def func(suffix, extension, subject=subject, **entities):
            return bids_path(derivatives, subject, "func", suffix, extension, task=task, **entities)
        bold = func("bold", ".nii.gz", space="bold", desc="preproc")
        if not bold.exists():
            continue
        done.append(subject)
        image = nib.load(bold)
        image = nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), image.affine, image.header)  # decompress once
        brain = np.asarray(nib.load(func("mask", ".nii.gz", space="bold", desc="brain")).dataobj) > 0
        labels = atlas_on_bold(atlas_spec, image, xfm=str(func("xfm", ".txt", from_="T1w", to="bold", mode="image")),
                               atlas_t1w=str(bids_path(derivatives, subject, "anat", "dseg", ".nii.gz", space="T1w",
                                                       atlas=atlas)))
        confounds = pd.read_csv(func("timeseries", ".tsv", desc="confounds"), sep="\t")
        repetition_time = float(image.header.get_zooms()[3])
        truth = _true_fc(bids_dir, subject, atlas, task)
        for filter_name, filter_overrides in FC_FILTERS.items():
            for label, overrides in FC_VARIANTS:
                params = CleaningParams(**{**default.as_dict(), **overrides, **filter_overrides})
                matrix = clean_fc(image, labels, brain, confounds, repetition_time, params)["correlation"]
                table.setdefault((filter_name, label), []).append(_upper_correlation(matrix, truth))
    print(f"\nCorrelation of recovered with true FC (upper triangle), median [min] over {len(done)} subjects; "
          f"FD > {default.fd_threshold} mm censored; default strategy {default.strategy}, no filter")
    print(f"{'strategy':14}" + "".join(f"{name:>22}" for name in FC_FILTERS))
    for label, _ in FC_VARIANTS:
        cells = [table[(name, label)] for name in FC_FILTERS]
        print(f"{label:14}" + "".join(f"{np.median(c):>14.3f} [{np.min(c):.3f}]" for c in cells))
    accuracy = fc_accuracy(bids_dir, derivatives, atlas, task)
    print(f"\nworkflow matrices ({accuracy['subjects']} subjects): median r {accuracy['r_median']:.3f} "
          f"(min {accuracy['r_min']:.3f}); ranks of the FC effect edges by HC-SZ difference among "
          f"{accuracy.get('n_edges')} edges: {accuracy.get('effect_edge_ranks')}")


def _cv_job(args):
    """One split of the model benchmark, in a worker process with one thread."""
    dataset_path, splits, split, models, graph, hyper, train = args
    import torch

    torch.set_num_threads(1)
    from connex.dataset import ConnectomeDataset
    from connex.evaluation import run_fold
    from connex.training import TrainParams

    start = time.perf_counter()
    out = run_fold(ConnectomeDataset.load(dataset_path), splits, split, models=models, graph_params=graph,
                   model_params=hyper, train_params=TrainParams(**train))
    return time.perf_counter() - start, out


def benchmark_model(connectomes: Path, *, atlas: str = "synth", folds: int = 5, repeats: int = 3, jobs: int = 2,
                    device: str = "cpu", models: tuple[str, ...] = ("connex",), config: Path | None = None) -> None:
    """Training throughput and the wall time of a full k-fold run of the model stages.

    Hyperparameters are those of ``config`` (default config/config.yaml). Throughput: ConneX
    trained on the first training fold, epochs timed one by one (median of ``repeats`` after a
    warm-up). Full run: every split of one k-fold repeat in ``jobs`` worker processes of one
    thread each (what ``snakemake --cores jobs`` does with one job per split), beside the same
    run of logistic regression (the reference).
    """
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    import torch
    import yaml

    from connex.dataset import ConnectomeDataset, build_dataset
    from connex.evaluation import (
        build_graphs,
        fold_metrics,
        make_graph_model,
        make_splits,
        model_inputs,
        split_indices,
        summarise_metrics,
    )
    from connex.training import (
        TrainParams,
        resolve_device,
        train_model,
        validation_split,
    )

    config = yaml.safe_load((config or Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    model_config = config["model"]
    train = {k: v for k, v in model_config["training"].items() if k != "validation_fraction"}
    train["device"] = device
    if Path(connectomes).suffix == ".npz":  # a dataset written by the dataset stage
        dataset = ConnectomeDataset.load(connectomes)
    else:
        dataset, _ = build_dataset(connectomes, atlas=atlas, sc_weight=model_config["sc_weight"],
                                   fc_measure=model_config["fc_measure"], task=config["bold_task"])
    n = len(dataset.regions)
    print(f"Model benchmark: {len(dataset.subjects)} subjects, {n} regions, device {resolve_device(device)} "
          f"({torch.cuda.get_device_name() if resolve_device(device).type == 'cuda' else f'{jobs} CPU core(s)'}), "
          f"torch {torch.__version__}")
    splits = make_splits(dataset, n_folds=folds, n_repeats=1, seed=model_config["cv"]["seed"])
    train_index, _ = split_indices(dataset, splits, "r01f01")
    fit, val = validation_split(dataset.y, train_index, fraction=model_config["training"]["validation_fraction"],
                                seed=train["seed"])
    graphs = build_graphs(dataset, train_index, **model_config["graph"])
    inputs = model_inputs("connex", graphs)
    for threads in (sorted({1, jobs}) if resolve_device(device).type == "cpu" else [1]):
        torch.set_num_threads(threads)
        model = make_graph_model("connex", inputs, model_config["architecture"])
        params = TrainParams(**{**train, "epochs": repeats + 1, "patience": 10_000})
        history = train_model(model, inputs, dataset.y, fit, val, params).history
        per_epoch = history["seconds"].to_numpy()[1:]  # the first epoch warms up
        print(f"  ConneX training, {threads} thread(s): {np.median(per_epoch):.3f} s per epoch (median of "
              f"{len(per_epoch)}; {len(fit)} training + {len(val)} validation subjects), "
              f"{len(fit) / np.median(per_epoch):.0f} training subjects/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.npz"
        dataset.save(path)
        for label, chosen in (("reference: logistic regression", ["logistic_regression"]),
                              ("ConneX" if list(models) == ["connex"] else "models", list(models))):
            tasks = [(path, splits, split, chosen, model_config["graph"], model_config["architecture"], train)
                     for split in sorted(splits["split"].unique())]
            start = time.perf_counter()
            if resolve_device(device).type == "cpu" and jobs > 1:
                with ProcessPoolExecutor(jobs) as pool:
                    results = list(pool.map(_cv_job, tasks))
            else:
                results = [_cv_job(task) for task in tasks]
            wall = time.perf_counter() - start
            summary = summarise_metrics(fold_metrics(pd.concat([r[1]["predictions"] for r in results])))
            epochs = [r[1]["info"].get("connex_best_epoch") for r in results]
            print(f"  {label} ({', '.join(chosen)}), {folds} folds: {wall:.1f} s wall "
                  f"(per split median {np.median([r[0] for r in results]):.1f} s"
                  + (f", best epochs {epochs}" if epochs[0] is not None else "") + ")")
            for row in summary.itertuples():
                print(f"    {row.model}: AUC {row.roc_auc_mean:.3f} +- {row.roc_auc_std:.3f}")
            if label.startswith("reference"):
                reference = wall
        print(f"  ratio {label} / reference wall time: {wall / reference:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["synth", "anat", "sc", "fc", "model", "workflow"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bids", type=Path, default=Path("results/demo/bids"), help="a synthetic cohort")
    parser.add_argument("--subjects", nargs="+", default=["01", "02", "03"])
    parser.add_argument("--real", type=Path, default=None, help="a real BIDS dataset (its sub-01)")
    parser.add_argument("--derivatives", type=Path, default=Path("results/connex"),
                        help="sc: the workflow's outputs for --bids (anatomy stage and SC matrices)")
    parser.add_argument("--real-derivatives", type=Path, default=None,
                        help="sc: the workflow's outputs for --real (SC stage with atlas desikankilliany)")
    parser.add_argument("--connectomes", type=Path, default=None,
                        help="model: a connectomes folder (connex synth --connectomes-only) or a "
                             "group/dataset.npz of the dataset stage")
    parser.add_argument("--folds", type=int, default=5, help="model: folds of the full run")
    parser.add_argument("--jobs", type=int, default=2, help="model: parallel splits (one CPU core each)")
    parser.add_argument("--device", default="cpu", help="model: cpu, cuda or auto")
    parser.add_argument("--models", nargs="+", default=["connex"], help="model: models of the full run")
    parser.add_argument("--cores", nargs="+", type=int, default=[1, 2],
                        help="workflow: core counts, the first one the reference")
    parser.add_argument("--configfile", nargs="*", type=Path, default=[],
                        help="workflow: config files laid over config/config.yaml (default: the demo)")
    parser.add_argument("--out", type=Path, default=Path("benchmark-workflow"),
                        help="workflow: folder of the runs' outputs (one subfolder per core count)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS/OpenMP thread: the figures are per core
    if args.what == "synth":
        benchmark_synth(args.repeats)
    elif args.what == "anat":
        benchmark_anat(args.bids, args.subjects, args.repeats, args.real)
    elif args.what == "sc":
        benchmark_sc(args.bids, args.derivatives, args.subjects, args.repeats, args.real, args.real_derivatives)
    elif args.what == "fc":
        benchmark_fc(args.bids, args.derivatives, args.subjects, args.repeats)
    elif args.what == "model":
        benchmark_model(args.connectomes, folds=args.folds, repeats=args.repeats, jobs=args.jobs,
                        device=args.device, models=tuple(args.models))
    elif args.what == "workflow":
        from connex.workflow_benchmark import benchmark_workflow

        benchmark_workflow(args.cores, repeats=args.repeats, configfiles=args.configfile, out_root=args.out)


if __name__ == "__main__":
    main()
