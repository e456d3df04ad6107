"""Tractography against MRtrix3 on the same preprocessed DWI: time and peak memory per step.

Each side runs in fresh processes, one thread, so that a peak resident memory is its own:
ConneX's ``tractography`` job (fODF fit, then tracking streamed into the .trk file; the tracking
time is the trackers' own, the fODF time the job's less that, so it includes reading the inputs
and writing the tractogram, a few seconds) and its connectome (the
tractogram read as the ``structural_connectome`` job reads it), each job in its own process, and
MRtrix3's ``dwi2response fa`` + ``dwi2fod csd``, ``tckgen`` (SD_STREAM for deterministic, iFOD2
for probabilistic) selecting the streamline count ConneX kept, and ``tck2connectome``. Same mask,
same seed voxels, same step, angle and lengths.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

#: Run in a child process: one ConneX SC job (a function of this module and its keyword arguments as
#: JSON), printing its step times and its peak RSS (MB) as JSON.
_CONNEX_CHILD = """
import json, sys
from threadpoolctl import threadpool_limits
threadpool_limits(1)
from connex.benchmarks import tracking
print(json.dumps(getattr(tracking, sys.argv[1])(**json.loads(sys.argv[2]))))
"""

#: Run in a child process: one command, printing its wall seconds and peak RSS (MB) as JSON.
_COMMAND_CHILD = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(json.dumps({"s": time.perf_counter() - start,
                  "mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def connex_tracking_job(dwi: str, mask: str, fa: str, tractogram: str, *, threads: int = 1,
                        vectorised: bool = True) -> dict:
    """The workflow's ``tractography`` job (fODF fit, tracking, the streamlines written to
    ``tractogram`` batch by batch) on preprocessed files, FA stopping (no tissue maps); seconds per
    step, streamlines kept, and the process's peak RSS in MB. ``vectorised=False``: dipy's own
    compiled tracker instead of ConneX's batch tracker (the same streamlines)."""
    import resource
    import time

    from connex.structural.stage import run_tractography
    from connex.structural.tracking import TrackingParams

    stem = dwi.removesuffix(".nii.gz")
    start = time.perf_counter()
    figures = run_tractography(dwi=dwi, bval=f"{stem}.bval", bvec=f"{stem}.bvec", mask=mask, fa=fa, tissue_maps={},
                               tractogram=tractogram, sidecar=f"{tractogram}.json", params=TrackingParams(),
                               b0_threshold=50, threads=threads, vectorised=vectorised)
    seconds = time.perf_counter() - start
    return {"fodf": seconds - figures["tracking_seconds"], "track": figures["tracking_seconds"],
            "kept": figures["streamlines_kept"], "seeds": figures["seeds"],
            "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def connex_connectome_job(tractogram: str, labels: str, fa: str) -> dict:
    """ConneX's connectome from a tractogram file, read as the ``structural_connectome`` job reads
    it (streamed); seconds and the process's peak RSS in MB."""
    import resource
    import time

    from connex.structural.connectome import connectome
    from connex.structural.tracking import iter_tractogram

    label_image = nib.load(labels)
    label_data = np.asarray(label_image.dataobj).astype(int)
    fa_data = np.asarray(nib.load(fa).dataobj, dtype=np.float64)
    start = time.perf_counter()
    connectome(iter_tractogram(tractogram), label_data, label_image.affine, int(label_data.max()), fa_data)
    return {"conn": time.perf_counter() - start, "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def connex_sc_steps(dwi: str, mask: str, fa: str, labels: str, *, threads: int = 1, vectorised: bool = True) -> dict:
    """Both jobs, each in its own process: seconds per step, streamlines kept, and the peak RSS (MB)
    of each job (``mb_tracking``, ``mb_connectome``) and of the larger (``mb``)."""
    with tempfile.TemporaryDirectory() as tmp:
        tractogram = str(Path(tmp) / "tracks.trk")
        tracking = _child(_CONNEX_CHILD, "connex_tracking_job", json.dumps(
            {"dwi": dwi, "mask": mask, "fa": fa, "tractogram": tractogram, "threads": threads,
             "vectorised": vectorised}))
        matrices = _child(_CONNEX_CHILD, "connex_connectome_job", json.dumps(
            {"tractogram": tractogram, "labels": labels, "fa": fa}))
    return {**tracking, "conn": matrices["conn"], "mb_tracking": tracking["mb"], "mb_connectome": matrices["mb"],
            "mb": max(tracking["mb"], matrices["mb"])}


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def benchmark_tracking(derivatives: Path, subject: str, atlas: str, repeats: int = 3) -> None:
    """Print ConneX (1 and 2 threads) against MRtrix3 (1 thread) on one subject's workflow outputs
    (``derivatives``: the ``connex`` output folder with ``sub-<subject>/dwi``)."""
    from connex.structural.preprocess import fsl_bvecs
    from connex.structural.stage import load_preprocessed
    from connex.structural.tracking import TrackingParams

    folder = derivatives / f"sub-{subject}" / "dwi"
    dwi = folder / f"sub-{subject}_space-dwi_desc-preproc_dwi.nii.gz"
    mask = folder / f"sub-{subject}_space-dwi_desc-brain_mask.nii.gz"
    fa = folder / f"sub-{subject}_space-dwi_model-tensor_param-fa_dwimap.nii.gz"
    labels = folder / f"sub-{subject}_space-dwi_atlas-{atlas}_dseg.nii.gz"
    missing = [p for p in (dwi, mask, fa, labels) if not p.exists()]
    if missing:
        raise SystemExit(f"tracking benchmark: missing {[str(p) for p in missing]}; run the workflow's "
                         f"structural_connectome job for sub-{subject}, atlas {atlas}, first.")
    params = TrackingParams()
    print(f"SC stage on sub-{subject} ({nib.load(dwi).shape}), median of {repeats} runs, each side in its own "
          f"process; defaults {params}")
    ours = {threads: [connex_sc_steps(str(dwi), str(mask), str(fa), str(labels), threads=threads)
                      for _ in range(repeats)] for threads in (1, 2)}
    if params.algorithm == "deterministic" and params.stopping == "fa":
        # the same job on dipy's compiled tracker, which the batch tracker replaces (the same streamlines)
        ours["dipy"] = [connex_sc_steps(str(dwi), str(mask), str(fa), str(labels), vectorised=False)
                        for _ in range(repeats)]
    for threads, runs in ours.items():
        name = "dipy's tracker, 1 thread" if threads == "dipy" else f"{threads} thread(s)"
        print(f"ConneX, {name}: fODF {_median(runs, 'fodf'):6.1f} s, tracking "
              f"{_median(runs, 'track'):6.1f} s ({_median(runs, 'kept') / _median(runs, 'track'):6.0f} kept/s, "
              f"{int(_median(runs, 'kept'))} kept of {int(_median(runs, 'seeds'))} seeds, written to .trk), "
              f"connectome {_median(runs, 'conn'):5.1f} s; peak: tractography job "
              f"{_median(runs, 'mb_tracking'):5.0f} MB, connectome job {_median(runs, 'mb_connectome'):5.0f} MB")
    if shutil.which("tckgen") is None:
        print("MRtrix3 not found (tckgen): no reference (Debian/Ubuntu: apt install mrtrix3).")
        return
    kept = int(_median(ours[1], "kept"))
    series = load_preprocessed(str(dwi), str(dwi).replace(".nii.gz", ".bval"), str(dwi).replace(".nii.gz", ".bvec"))
    mask_data = np.asarray(nib.load(mask).dataobj) > 0
    fa_data = np.asarray(nib.load(fa).dataobj)
    algorithm = "SD_STREAM" if params.algorithm == "deterministic" else "iFOD2"
    one = ["-nthreads", "1", "-force", "-quiet"]
    reference: dict[str, list[dict]] = {"fodf": [], "track": [], "conn": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nib.save(nib.Nifti1Image((mask_data & (fa_data >= params.seed_fa_threshold)).astype(np.uint8),
                                 series.affine), tmp / "seeds.nii.gz")
        np.savetxt(tmp / "dwi.bval", series.bvals[None], fmt="%g")
        np.savetxt(tmp / "dwi.bvec", fsl_bvecs(series), fmt="%.6f")
        grad = ["-fslgrad", str(tmp / "dwi.bvec"), str(tmp / "dwi.bval")]
        for _ in range(repeats):
            response = _child(_COMMAND_CHILD, "dwi2response", "fa", str(dwi), str(tmp / "response.txt"), "-mask",
                              str(mask), *grad, *one)
            fod = _child(_COMMAND_CHILD, "dwi2fod", "csd", str(dwi), str(tmp / "response.txt"), str(tmp / "fod.mif"),
                         "-mask", str(mask), *grad, *one)
            reference["fodf"].append({"s": response["s"] + fod["s"], "mb": max(response["mb"], fod["mb"])})
            # a seed voxel count per second does not exist in MRtrix3: -select the count ConneX kept
            reference["track"].append(_child(
                _COMMAND_CHILD, "tckgen", str(tmp / "fod.mif"), str(tmp / "tracks.tck"), "-algorithm", algorithm,
                "-seed_image", str(tmp / "seeds.nii.gz"), "-mask", str(mask), "-select", str(kept),
                "-step", str(params.step_mm), "-angle", str(params.max_angle), "-cutoff", str(0.1),
                "-minlength", str(params.min_length_mm), "-maxlength", str(params.max_length_mm), *one))
            reference["conn"].append(_child(
                _COMMAND_CHILD, "tck2connectome", str(tmp / "tracks.tck"), str(labels), str(tmp / "sc.csv"),
                "-assignment_radial_search", "4", "-symmetric", "-zero_diagonal", *one))
    mr = {step: statistics.median(r["s"] for r in runs) for step, runs in reference.items()}
    mr_mb = {step: statistics.median(r["mb"] for r in runs) for step, runs in reference.items()}
    print(f"MRtrix3, 1 thread ({algorithm}, -select {kept}): fODF {mr['fodf']:6.1f} s, tracking {mr['track']:6.1f} s "
          f"({kept / mr['track']:6.0f} kept/s), connectome {mr['conn']:5.1f} s; peak fODF {mr_mb['fodf']:.0f} MB, "
          f"tckgen {mr_mb['track']:.0f} MB, tck2connectome {mr_mb['conn']:.0f} MB")
    one_thread = ours[1]
    if "dipy" in ours:
        print(f"ConneX's batch tracker / dipy's tracker, 1 thread each: tracking time "
              f"{_median(one_thread, 'track') / _median(ours['dipy'], 'track'):.2f}")
    print(f"ConneX / MRtrix3, 1 thread each: tracking time {_median(one_thread, 'track') / mr['track']:.2f}, "
          f"fODF + tracking + connectome {sum(_median(one_thread, k) for k in mr) / sum(mr.values()):.2f}; "
          f"peak memory {_median(one_thread, 'mb') / max(mr_mb.values()):.1f}x MRtrix3's largest step")
