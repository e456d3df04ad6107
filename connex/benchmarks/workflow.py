"""Benchmark of the whole workflow: the demo run with 1 and with N cores, side by side.

    python -m connex.benchmarks workflow [--cores 1 2] [--repeats 3] [--configfile X.yaml] [--out DIR]

Each run starts from an empty output folder (the demo cohort is generated again), with the local
profile, pinned to its first N CPUs with taskset where there is one. Figures: wall time per core
count (median over repeats), the speed-up against the 1-core reference run of the same command,
and from the rules' `benchmark:` files of the reference run each rule's jobs, median and total
seconds, and peak memory (max RSS).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def rule_benchmarks(benchmark_dir: str | Path) -> pd.DataFrame:
    """One row per rule from Snakemake's benchmark files (``<dir>/<rule>/<job>.tsv``).

    Returns columns ``rule, jobs, median_s, total_s, peak_rss_mb`` sorted by total seconds.
    """
    rows = []
    for folder in sorted(p for p in Path(benchmark_dir).iterdir() if p.is_dir()):
        runs = [pd.read_csv(f, sep="\t") for f in sorted(folder.glob("*.tsv"))]
        if not runs:
            continue
        table = pd.concat(runs, ignore_index=True)
        rss = pd.to_numeric(table["max_rss"], errors="coerce")  # "NA" for jobs too short to sample
        rows.append({"rule": folder.name, "jobs": len(runs), "median_s": float(table["s"].median()),
                     "total_s": float(table["s"].sum()), "peak_rss_mb": float(rss.max())})
    columns = ["rule", "jobs", "median_s", "total_s", "peak_rss_mb"]
    return pd.DataFrame(rows, columns=columns).sort_values("total_s", ascending=False, ignore_index=True)


def run_workflow(out_dir: Path, cores: int, configfiles: list[Path]) -> float:
    """Run the workflow (local profile) into an empty ``out_dir``; return the wall seconds."""
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile",
               str(REPO / "config" / "profiles" / "local"), "--cores", str(cores), "--nolock"]
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    command += ["--config", f"output_dir={out_dir}"]
    allowed = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") and cores <= len(allowed):
        # Pin the run to its cores: a one-thread job may still start BLAS or ITK threads, and the
        # "1 core" figure must not borrow the second one.
        command = ["taskset", "-c", ",".join(map(str, allowed[:cores])), *command]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"workflow run with {cores} core(s) failed:\n{result.stderr[-3000:]}")
    return seconds


def benchmark_workflow(cores: list[int], *, repeats: int = 1, configfiles: list[Path] = (),
                       out_root: Path = Path("benchmark-workflow")) -> pd.DataFrame:
    """Time the workflow at each core count; print the figures; return the per-rule table of the
    first (reference) core count's last run."""
    out_root = Path(out_root).resolve()  # Snakemake runs in the repository, not here
    walls = {}
    for n in cores:
        walls[n] = [run_workflow(out_root / f"cores-{n}", n, list(configfiles)) for _ in range(repeats)]
        print(f"{n} core(s): wall {statistics.median(walls[n]):.1f} s (median of {repeats}; runs "
              + ", ".join(f"{w:.1f}" for w in walls[n]) + ")", flush=True)
    reference = cores[0]
    for n in cores[1:]:
        print(f"speed-up {reference} -> {n} cores: "
              f"{statistics.median(walls[reference]) / statistics.median(walls[n]):.2f}x")
    rules = rule_benchmarks(out_root / f"cores-{reference}" / "benchmarks")
    print(f"\nPer rule ({reference}-core run; seconds per job, peak RSS over the rule's jobs):")
    print(rules.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print("\nSlowest rules (total seconds): " + ", ".join(f"{r.rule} {r.total_s:.0f} s"
                                                         for r in rules.head(3).itertuples()))
    return rules
