"""Benchmark of the input check: seconds per participant with and without reading the voxels."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from connex.inputs.bids import build_inventory
from connex.inputs.checks import NIFTI_EXTENSIONS, check_nifti


def benchmark_inputs(bids_dir: Path, *, task: str, repeats: int) -> None:
    """Print the median time of the full input check (``build_inventory``: headers, gradients,
    sidecars and every voxel) per participant, against a reference pass that only opens each
    NIfTI header (the check before it read voxels), and the data rate of the full check."""
    files = sorted(f for f in Path(bids_dir).glob("sub-*/**/*") if f.name.endswith(NIFTI_EXTENSIONS))
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    n_participants = len({f.relative_to(bids_dir).parts[0] for f in files})
    full, header = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        build_inventory(bids_dir, task=task)
        full.append(time.perf_counter() - start)
        start = time.perf_counter()
        for f in files:
            check_nifti(f)
        header.append(time.perf_counter() - start)
    full_s, header_s = statistics.median(full), statistics.median(header)
    print(f"input check of {bids_dir}: {n_participants} participant(s), {len(files)} NIfTI files, "
          f"{megabytes:.1f} MB on disk; medians of {repeats} runs, one core")
    print(f"  full check (every voxel)   {full_s:8.3f} s   {full_s / n_participants:.3f} s per participant   "
          f"{megabytes / full_s:.0f} MB/s of compressed input")
    print(f"  reference: headers only    {header_s:8.3f} s   ratio full / headers {full_s / header_s:.1f}x")
