"""Benchmarks: commands that print figures (medians over repeats). Never run as tests.

    python -m connex.benchmarks synth [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["synth"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "synth":
        benchmark_synth(args.repeats)


if __name__ == "__main__":
    main()
