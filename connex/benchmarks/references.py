"""Reference tools the benchmarks compare against when installed (ANTs, MRtrix3)."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


def ants_reference(t1w_path: Path, atlas) -> tuple[dict, np.ndarray, object]:
    """The same strategy with ANTsPy, for comparison: Mattes-MI affine of the whole head (neck
    cropped) to the head model, brain mask through it, then SyN of the masked T1w to the
    skull-stripped template from that affine. Returns seconds per step, the atlas in T1w space
    and the MNI -> T1w point mapping."""
    import ants

    from connex.anat.preprocess import _crop_below_top_of_head, _n4, load_t1w
    from connex.anat.templates import head_model, load_mni_template

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


def _run(command: list[str]) -> float:
    import subprocess

    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def mrtrix_reference(dwi: Path, bval: Path, bvec: Path, mask: Path, seed_mask: Path, labels: Path, n_streamlines: int,
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
