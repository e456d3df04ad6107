"""Tissue maps: the warped template priors, Atropos with them (the anatomy stage's default) and
dipy's HMRF, against known tissues, with their time. Never run as a test.

    python -m connex.benchmarks.tissues phantom [--seeds 1 2 3]
    python -m connex.benchmarks.tissues derivatives --derivatives results/connex [--bids results/demo/bids]
                                                    [--subjects 01 02]

``phantom``: T1w rendered from an individual's tissues (:mod:`connex.synth.tissues`: labels
drawn around the template priors, partial volume, bias field, noise, a random head position),
registered by the anatomy stage; seed 2 has atrophy (CSF favoured). ``derivatives``: subjects
the anatomy stage has processed (their preprocessed T1w, brain mask and transforms; the priors
are warped again from the transforms); with ``--bids`` a demo cohort, whose truth is the
template priors seen through the generator's transform (the demo renders the template's average
T1w: the priors are right there by construction), without it a real dataset (no truth: volumes,
fractions of the brain mask, agreement with the priors, median T1w per tissue).
Dice of hard labels, Pearson r of the probability maps inside the union of both brains.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from connex.registry import TISSUES

#: Phantom settings per seed: (variation, csf_shift); seed 2 has atrophy.
PHANTOMS = {1: (1.0, 0.0), 2: (1.0, 0.7), 3: (1.5, 0.0)}


def hmrf_tissues(t1w: nib.Nifti1Image, mask: np.ndarray, *, beta: float = 0.1, iterations: int = 5
                 ) -> dict[str, np.ndarray]:
    """dipy's HMRF (3 classes) on the brain's bounding box of the T1w N4-corrected inside the mask
    (as Atropos sees it). It takes no mask and no priors: the zeros outside the brain join the
    darkest class, CSF (4 classes, one for them, did worse: CSF Dice 0.2-0.26 on the phantoms)."""
    import tempfile

    from dipy.segment.tissue import TissueClassifierHMRF

    from connex.anat.segmentation import correct_in_mask

    with tempfile.TemporaryDirectory() as folder:
        nib.save(nib.Nifti1Image(np.asarray(t1w.dataobj, dtype=np.float32), t1w.affine), f"{folder}/t1w.nii.gz")
        nib.save(nib.Nifti1Image(mask.astype(np.float32), t1w.affine), f"{folder}/mask.nii.gz")
        data = correct_in_mask(f"{folder}/t1w.nii.gz", f"{folder}/mask.nii.gz").astype(np.float64) * mask
    corner = np.argwhere(mask)
    box = tuple(slice(a, b + 1) for a, b in zip(corner.min(0), corner.max(0)))
    _, _, pve = TissueClassifierHMRF(verbose=False).classify(data[box], 3, beta, max_iter=iterations)
    maps = {}
    for index, name in enumerate(("CSF", "GM", "WM")):
        full = np.zeros(mask.shape, np.float32)
        full[box] = pve[..., index]
        maps[name] = full * mask
    return maps


def methods(t1w: nib.Nifti1Image, mask: np.ndarray, priors: dict[str, np.ndarray]) -> dict[str, tuple[dict, float]]:
    """{method: (maps, seconds)}: the template priors, Atropos as the anatomy stage runs it (its
    N4 inside the brain included), HMRF (the same N4 included)."""
    from connex.anat.segmentation import atropos_tissues

    out = {"template": (priors, 0.0)}
    start = time.perf_counter()
    out["atropos"] = (atropos_tissues(t1w, mask, priors)[0], time.perf_counter() - start)
    start = time.perf_counter()
    out["hmrf"] = (hmrf_tissues(t1w, mask), time.perf_counter() - start)
    return out


def scores(maps: dict, mask: np.ndarray, truth: dict, truth_mask: np.ndarray) -> dict:
    """Dice of hard labels and r of the maps per tissue."""
    from connex.anat.segmentation import DSEG_LABELS, dice, hard_labels

    labels, true_labels = hard_labels(maps, mask), hard_labels(truth, truth_mask)
    region = mask | truth_mask
    row = {}
    for name in TISSUES:
        row[f"dice_{name}"] = dice(labels, true_labels, DSEG_LABELS[name])
        row[f"r_{name}"] = float(np.corrcoef(maps[name][region], truth[name][region])[0, 1])
    return row


def print_table(rows: list[dict]) -> None:
    keys = [k for k in rows[0] if k not in ("subject", "method")]
    print(f"{'subject':>10} {'method':>9} " + " ".join(f"{k:>10}" for k in keys))
    for row in rows:
        print(f"{row['subject']:>10} {row['method']:>9} "
              + " ".join(f"{row[k]:>10.3f}" if isinstance(row[k], float) else f"{row[k]:>10}" for k in keys))
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    if len({row["subject"] for row in rows}) > 1:
        for method, group in by_method.items():
            print(f"{'median':>10} {method:>9} " + " ".join(
                f"{np.median([r[k] for r in group]):>10.3f}" if isinstance(group[0][k], float) else f"{'':>10}"
                for k in keys))


def benchmark_phantoms(seeds: list[int]) -> list[dict]:
    from connex.anat.preprocess import register_t1w, tissue_maps_to_t1w
    from connex.anat.templates import head_model, load_mni_template
    from connex.synth.cohort import BRAIN_CENTRE_MM
    from connex.synth.images import grid_around, random_misalignment
    from connex.synth.tissues import individual_labels, render_phantom

    fine, coarse = load_mni_template(1), load_mni_template(2)
    rows = []
    for seed in seeds:
        variation, csf_shift = PHANTOMS.get(seed, (1.0, 0.0))
        rng = np.random.default_rng(seed)
        labels = individual_labels(fine, rng, variation=variation, csf_shift=csf_shift)
        subject_to_mni = random_misalignment(rng, BRAIN_CENTRE_MM, rotation_deg=8, translation_mm=10, scaling=0.06)
        grid = grid_around(head_model(coarse) > 0.02, coarse.affine, subject_to_mni, voxel_mm=2.0, margin_mm=4,
                           orientation="RAS")
        phantom = render_phantom(fine, labels, grid, subject_to_mni, rng)
        start = time.perf_counter()
        anat = register_t1w(nib.Nifti1Image(phantom.t1w, phantom.affine))
        registration_s = time.perf_counter() - start
        mask = np.asarray(anat.brain_mask.dataobj) > 0
        priors = {k: np.asarray(v.dataobj) for k, v in tissue_maps_to_t1w(anat.brain_mask, anat.registration).items()}
        truth = {name: phantom.tissues[name.lower()] for name in TISSUES}
        truth_mask = phantom.labels > 0
        for method, (maps, seconds) in methods(anat.preproc, mask, priors).items():
            rows.append({"subject": f"phantom{seed}", "method": method,
                         **scores(maps, mask, truth, truth_mask), "seconds": round(seconds, 1)})
        print(f"phantom {seed} (variation {variation}, csf shift {csf_shift}): registration {registration_s:.0f} s",
              flush=True)
    return rows


def _anat_inputs(derivatives: Path, subject: str):
    from connex.anat.preprocess import Registration, tissue_maps_to_t1w
    from connex.anat.templates import MNI_SPACE
    from connex.inputs.paths import bids_path

    def anat(suffix, extension=".nii.gz", **entities):
        return bids_path(derivatives, subject=subject, datatype="anat", suffix=suffix, extension=extension,
                         **entities)

    t1w = nib.load(anat("T1w", desc="preproc"))
    brain = nib.load(anat("mask", desc="brain"))
    registration = Registration.load(
        affine=anat("xfm", ".txt", from_="T1w", to=MNI_SPACE, mode="image", desc="affine"),
        warp=anat("xfm", from_="T1w", to=MNI_SPACE, mode="image", desc="warp"),
        inverse_warp=anat("xfm", from_=MNI_SPACE, to="T1w", mode="image", desc="warp"), t1w=t1w)
    priors = {k: np.asarray(v.dataobj) for k, v in tissue_maps_to_t1w(brain, registration).items()}
    return t1w, np.asarray(brain.dataobj) > 0, priors


def benchmark_derivatives(derivatives: Path, subjects: list[str], bids: Path | None) -> list[dict]:
    from connex.anat.segmentation import DSEG_LABELS, dice, hard_labels
    from connex.anat.templates import MNI_SPACE, load_mni_template
    from connex.inputs.paths import bids_path
    from connex.synth.images import Grid, sample_tissues

    rows = []
    for subject in subjects:
        t1w, mask, priors = _anat_inputs(derivatives, subject)
        results = methods(t1w, mask, priors)
        if bids is not None:
            xfm = np.loadtxt(bids_path(bids / "derivatives" / "groundtruth", subject=subject, datatype=None,
                                       suffix="xfm", extension=".txt", from_="T1w", to=MNI_SPACE, mode="world"))
            true = sample_tissues(load_mni_template(2), Grid(t1w.shape, t1w.affine), xfm)
            truth = {name: true[name.lower()] for name in TISSUES}
            truth_mask = sum(truth.values()) >= 0.5
            for method, (maps, seconds) in results.items():
                rows.append({"subject": subject, "method": method, **scores(maps, mask, truth, truth_mask),
                             "seconds": round(seconds, 1)})
            continue
        voxel_ml = float(np.prod(t1w.header.get_zooms()[:3])) / 1000
        data = np.asarray(t1w.dataobj, dtype=np.float32)
        prior_labels = hard_labels(priors, mask)
        for method, (maps, seconds) in results.items():
            labels = hard_labels(maps, mask)
            row = {"subject": subject, "method": method}
            row |= {f"ml_{name}": float(maps[name].sum() * voxel_ml) for name in TISSUES}
            row |= {f"frac_{name}": float(maps[name].sum() / mask.sum()) for name in TISSUES}
            row |= {f"dice_tpl_{name}": dice(labels, prior_labels, DSEG_LABELS[name]) for name in TISSUES}
            row |= {f"t1_{name}": float(np.median(data[labels == DSEG_LABELS[name]])) for name in TISSUES}
            rows.append(row | {"seconds": round(seconds, 1)})
        print(f"sub-{subject}: brain mask {mask.sum() * voxel_ml:.0f} ml", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m connex.benchmarks.tissues", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["phantom", "derivatives"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--derivatives", type=Path, default=Path("results/connex"))
    parser.add_argument("--bids", type=Path, default=None, help="the demo cohort of --derivatives (its truth)")
    parser.add_argument("--subjects", nargs="+", default=["01"])
    args = parser.parse_args(argv)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if args.what == "phantom":
        rows = benchmark_phantoms(args.seeds)
    else:
        rows = benchmark_derivatives(args.derivatives, args.subjects, args.bids)
    print_table(rows)


if __name__ == "__main__":
    main()
