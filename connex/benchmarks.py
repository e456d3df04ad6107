"""Benchmarks: commands that print figures (medians over repeats). Never run as tests.

    python -m connex.benchmarks synth [--repeats 3]
    python -m connex.benchmarks anat --bids results/demo/bids [--subjects 01 02 03] [--repeats 3]
                                     [--real ../shared/data/bids-xa30]
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

from connex.synth import SynthConfig, generate_cohort, generate_connectomes


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["synth", "anat"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bids", type=Path, default=Path("results/demo/bids"), help="a synthetic cohort")
    parser.add_argument("--subjects", nargs="+", default=["01", "02", "03"])
    parser.add_argument("--real", type=Path, default=None, help="a real BIDS dataset (first subject's T1w)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    if args.what == "synth":
        benchmark_synth(args.repeats)
    elif args.what == "anat":
        benchmark_anat(args.bids, args.subjects, args.repeats, args.real)


if __name__ == "__main__":
    main()
