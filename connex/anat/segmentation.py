"""GM, WM and CSF of the subject's own T1w: ANTs Atropos with the warped template priors.

The template priors brought to T1w space (:func:`connex.anat.preprocess.tissue_maps_to_t1w`)
are a population average seen through the registration: blurred, and blind to this subject's
sulci, ventricles and cortical thickness. Here they are the priors of a segmentation of the
image itself:

1. N4 again, inside the brain mask only (the first N4 corrected the whole head; the residual
   field inside the brain, e.g. the darker centre of a multichannel head coil, would otherwise
   put deep white matter into grey matter).
2. Atropos (ANTsPy's library, a Gaussian mixture with an MRF), initialised from the priors and
   keeping them with weight PRIOR_WEIGHT, MRF smoothing MRF_WEIGHT, ITERATIONS EM iterations.
3. Checks: T1 contrast between the priors' tissues before (:func:`contrast_problem`), tissue
   volumes and agreement with the priors after (:func:`plausibility_problem`); when one fails,
   or Atropos fails, the template priors are kept with a logged warning and the sidecars say why.

Measured (``python -m connex.benchmarks.tissues``; README "Tissue maps"): on T1w rendered from
known individual tissues (:mod:`connex.synth.tissues`), Atropos has higher Dice and map
correlation than the warped priors for every tissue (median Dice GM 0.93 vs 0.84, WM 0.95 vs
0.85, CSF 0.77 vs 0.54) and than dipy's HMRF for GM and WM (HMRF takes neither priors nor a mask,
and on bids-xa30 it lost the white matter); about 10-14 s of one core per 2 mm T1w. On the demo
cohort, whose T1w is the template's own average image, the warped priors are the truth by
construction and stay ahead. ``anat.tissues: template`` keeps the warped priors.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.errors import check_choice
from connex.inputs.io import save_nifti, write_json, write_tsv
from connex.inputs.paths import sidecar_path
from connex.registry import TISSUE_METHODS, TISSUES

log = logging.getLogger(__name__)

#: Labels of the ``_dseg`` image (fMRIPrep's: 1 GM, 2 WM, 3 CSF; 0 outside the brain mask).
DSEG_LABELS = {name: index for index, name in enumerate(TISSUES, start=1)}
#: Atropos: weight of the priors in the posterior (0 = initialisation only; 0.25 as in ANTs'
#: cortical thickness pipeline), MRF smoothing, EM iterations (the benchmark's figures).
PRIOR_WEIGHT = 0.25
MRF_WEIGHT = 0.2
ITERATIONS = 5
#: A segmentation whose tissue takes a fraction of the brain mask outside these bounds is not
#: believed (seen: GM 46-55%, WM 33-41%, CSF 12-15% on bids-xa30, the demo, the tiny test cohort
#: and the phantoms; bids-xa30's warped priors 54/33/12%).
PLAUSIBLE_FRACTIONS = {"GM": (0.2, 0.7), "WM": (0.12, 0.6), "CSF": (0.03, 0.5)}
#: Nor one whose hard labels overlap the priors' this little (Dice), for GM or WM (swapped or
#: lost classes; seen: 0.76-0.87).
MIN_PRIOR_DICE = 0.4
#: The T1w must be brighter in the priors' WM than in their GM, and there than in their CSF, by
#: this factor (medians); else there is no T1 contrast to segment (bids-xa30: 1.47 and 1.89).
MIN_CONTRAST_RATIO = 1.05


@dataclass
class TissueMaps:
    """GM, WM and CSF probability maps in T1w space, their hard labels, and how they were made.

    maps : {"GM", "WM", "CSF"} -> Nifti1Image (float32, zero outside the brain mask, summing
    to at most 1); dseg : Nifti1Image (uint8, :data:`DSEG_LABELS`); method : ``"atropos"`` or
    ``"template"`` (what the maps are); metrics : the requested method, the fallback reason
    (None when there was none), volumes, fractions, agreement with the priors, seconds.
    """

    maps: dict[str, nib.Nifti1Image]
    dseg: nib.Nifti1Image
    method: str
    metrics: dict = field(default_factory=dict)


def segment_tissues(t1w: nib.Nifti1Image, brain_mask: nib.Nifti1Image, priors: dict[str, nib.Nifti1Image], *,
                    method: str = "segmentation", n_threads: int = 1) -> TissueMaps:
    """The tissue maps of a bias-corrected RAS T1w (the anatomy stage's ``desc-preproc``).

    Parameters
    ----------
    t1w, brain_mask : Nifti1Image on one grid
    priors : {"GM", "WM", "CSF"} -> Nifti1Image
        The warped template priors (:func:`connex.anat.preprocess.tissue_maps_to_t1w`).
    method : ``"segmentation"`` (Atropos, falling back to the priors when it fails a check)
        or ``"template"`` (the priors).
    n_threads : int
        ITK threads (read when ANTs is first imported in the process).
    """
    check_choice("anat.tissues", method, TISSUE_METHODS)
    mask = np.asarray(brain_mask.dataobj) > 0
    prior = {name: np.asarray(priors[name].dataobj, dtype=np.float32) * mask for name in TISSUES}
    metrics: dict = {"RequestedMethod": method, "FallbackReason": None}
    start = time.perf_counter()
    maps = None
    if method == "segmentation":
        data = np.asarray(t1w.dataobj, dtype=np.float32)
        problem = contrast_problem(data, mask, prior)
        if problem is None:
            try:
                maps, _ = atropos_tissues(t1w, mask, prior, n_threads=n_threads)
            except Exception as error:  # an ITK exception, a missing output: keep the priors
                problem = f"Atropos failed: {error}"
        if maps is not None:
            problem = plausibility_problem(maps, mask, prior)
        if problem is not None:
            log.warning("Tissue segmentation not used, keeping the warped template priors: %s", problem)
            metrics["FallbackReason"] = problem
            maps = None
    used = "template" if maps is None else "atropos"
    maps = prior if maps is None else maps
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    voxel_ml = float(np.prod(brain_mask.header.get_zooms()[:3])) / 1000
    labels = hard_labels(maps, mask)
    prior_labels = hard_labels(prior, mask)
    n_mask = max(int(mask.sum()), 1)
    metrics["VolumesML"] = {name: round(float(maps[name].sum()) * voxel_ml, 1) for name in TISSUES}
    metrics["FractionsOfBrainMask"] = {name: round(float(maps[name].sum()) / n_mask, 3) for name in TISSUES}
    metrics["DiceWithTemplatePriors"] = {name: round(dice(labels, prior_labels, index), 3)
                                         for name, index in DSEG_LABELS.items()}
    images = {name: nib.Nifti1Image(maps[name].astype(np.float32), brain_mask.affine) for name in TISSUES}
    dseg = nib.Nifti1Image(labels, brain_mask.affine)
    dseg.header.set_xyzt_units("mm")
    return TissueMaps(maps=images, dseg=dseg, method=used, metrics=metrics)


def atropos_tissues(t1w: nib.Nifti1Image, mask: np.ndarray, priors: dict[str, np.ndarray], *,
                    n_threads: int = 1, prior_weight: float = PRIOR_WEIGHT, mrf: float = MRF_WEIGHT,
                    iterations: int = ITERATIONS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Atropos posteriors (GM, WM, CSF) of the T1w inside ``mask``, N4-corrected there first, and
    that corrected T1w (zero outside the mask).

    Atropos runs from files in a temporary folder: every input goes through the same NIfTI
    header, so ITK finds them on one physical grid (an origin held in double precision in
    memory and in single precision on disk counts as a different grid).
    """
    # ITK reads its thread count when ANTs is first imported: set it before.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(n_threads)
    from ants.internal import get_lib_fn

    with tempfile.TemporaryDirectory(prefix="connex-atropos-") as folder:
        folder = Path(folder)

        def write(data: np.ndarray, name: str) -> str:
            path = folder / name
            nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), t1w.affine), path)
            return str(path)

        mask_path = write(mask, "mask.nii.gz")
        corrected = correct_in_mask(write(np.asarray(t1w.dataobj), "t1w.nii.gz"), mask_path) * mask
        t1w_path = write(corrected, "t1w_n4.nii.gz")
        for index, name in enumerate(TISSUES, start=1):
            write(priors[name], f"prior{index:02d}.nii.gz")
        arguments = ["-d", "3", "-a", t1w_path, "-x", mask_path,
                     "-i", f"PriorProbabilityImages[{len(TISSUES)},{folder / 'prior%02d.nii.gz'},{prior_weight}]",
                     "-m", f"[{mrf},1x1x1]", "-c", f"[{iterations},0]", "-r", "0",  # -r 0: a fixed seed
                     "-o", f"[{folder / 'labels.nii.gz'},{folder / 'posterior%02d.nii.gz'}]"]
        status = get_lib_fn("Atropos")(arguments)
        if status != 0:
            raise RuntimeError(f"Atropos exited with status {status}")
        posteriors = {}
        for index, name in enumerate(TISSUES, start=1):
            path = folder / f"posterior{index:02d}.nii.gz"
            if not path.exists():
                raise RuntimeError(f"Atropos wrote no posterior for {name}")
            posteriors[name] = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    maps = {name: np.clip(np.nan_to_num(value), 0, 1) * mask for name, value in posteriors.items()}
    total = np.maximum(sum(maps.values()), 1.0)
    return {name: value / total for name, value in maps.items()}, corrected.astype(np.float32)


def correct_in_mask(t1w: str | Path, mask: str | Path) -> np.ndarray:
    """N4 of a T1w file inside a mask file (shrink 4, 4 levels), as an array (zero-clipped)."""
    import ants

    corrected = ants.n4_bias_field_correction(ants.image_read(str(t1w)), mask=ants.image_read(str(mask)),
                                              shrink_factor=4, convergence={"iters": [50, 50, 50, 50], "tol": 1e-7})
    return np.clip(corrected.numpy(), 0, None)


def contrast_problem(data: np.ndarray, mask: np.ndarray, priors: dict[str, np.ndarray]) -> str | None:
    """Why the image has no T1 contrast for the priors' tissues to segment, or None.

    The median intensity where the priors' most likely tissue is WM must exceed that in their GM,
    and that in their CSF, by MIN_CONTRAST_RATIO (a constant, noise or a T2w image fails).
    """
    labels = hard_labels(priors, mask)
    medians = {}
    for name, index in DSEG_LABELS.items():
        values = data[labels == index]
        if values.size < 10:
            return f"the template priors give {name} {values.size} voxel(s) in the brain mask"
        medians[name] = float(np.median(values))
    if not (medians["WM"] > MIN_CONTRAST_RATIO * medians["GM"] > 0
            and medians["GM"] > MIN_CONTRAST_RATIO * medians["CSF"]):
        return ("no T1 contrast between the priors' tissues (median intensity WM {WM:.4g}, GM {GM:.4g}, "
                "CSF {CSF:.4g})".format(**medians))
    return None


def plausibility_problem(maps: dict[str, np.ndarray], mask: np.ndarray, priors: dict[str, np.ndarray]
                         ) -> str | None:
    """Why a segmentation is not believable, or None: a tissue volume outside
    PLAUSIBLE_FRACTIONS of the brain mask, or GM/WM hard labels too far from the priors'."""
    n_mask = mask.sum()
    if n_mask == 0:
        return "the brain mask is empty"
    for name, (low, high) in PLAUSIBLE_FRACTIONS.items():
        fraction = float(maps[name].sum()) / n_mask
        if not low <= fraction <= high:
            return (f"{name} takes {fraction:.1%} of the brain mask (plausible: {low:.0%}-{high:.0%})")
    labels, prior_labels = hard_labels(maps, mask), hard_labels(priors, mask)
    for name in ("GM", "WM"):
        overlap = dice(labels, prior_labels, DSEG_LABELS[name])
        if overlap < MIN_PRIOR_DICE:
            return f"{name} overlaps the template priors' {name} with Dice {overlap:.2f} (< {MIN_PRIOR_DICE})"
    return None


def hard_labels(maps: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
    """The most likely tissue of every brain-mask voxel (:data:`DSEG_LABELS`), 0 elsewhere and
    where no tissue has any probability."""
    stack = np.stack([np.asarray(maps[name], dtype=np.float32) for name in TISSUES])
    labels = (np.argmax(stack, axis=0) + 1).astype(np.uint8)
    labels[~mask | (stack.sum(0) <= 0)] = 0
    return labels


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    """Dice overlap of ``label`` in two label images (1 when both lack it)."""
    x, y = a == label, b == label
    total = int(x.sum() + y.sum())
    return 1.0 if total == 0 else 2.0 * float((x & y).sum()) / total


def save_tissue_maps(result: TissueMaps, *, probseg: dict[str, Path], dseg: Path, source: str,
                     dseg_table: Path | None = None) -> None:
    """Write the probability maps and the hard labels (atomically), each with a JSON sidecar
    saying how they were made, and the labels' look-up table (BIDS ``_dseg.tsv``: index, name)."""
    description = {
        "atropos": "ANTs Atropos segmentation of the subject's T1w (Gaussian mixture, MRF), initialised "
                   f"from the MNI152 tissue priors warped to T1w space and weighted by them "
                   f"(prior weight {PRIOR_WEIGHT}, MRF {MRF_WEIGHT}, {ITERATIONS} iterations), after N4 "
                   "inside the brain mask",
        "template": "MNI152 tissue priors brought to T1w space through the inverse registration",
    }[result.method]
    common = {"Sources": [source], "Method": result.method, "Description": description, **result.metrics}
    for name in TISSUES:
        save_nifti(result.maps[name], probseg[name])
        write_json({**common, "Label": name}, sidecar_path(probseg[name]))
    save_nifti(result.dseg, dseg)
    labels = {"0": "outside"} | {str(index): name for name, index in DSEG_LABELS.items()}
    write_json({**common, "Labels": labels}, sidecar_path(dseg))
    if dseg_table is not None:
        write_tsv(pd.DataFrame({"index": list(DSEG_LABELS.values()), "name": list(DSEG_LABELS)}), dseg_table)
