"""Benchmarks: commands that print figures (medians over repeats). Never run as tests.

    python -m connex.benchmarks synth [--repeats 3]
    python -m connex.benchmarks inputs --bids DIR [--task rest] [--repeats 3]
    python -m connex.benchmarks anat --bids results/demo/bids [--subjects 01 02 03] [--repeats 3]
                                     [--real ../shared/data/bids-xa30]
    python -m connex.benchmarks sc --bids results/demo/bids --derivatives results/connex
                                   [--real ../shared/data/bids-xa30 --real-derivatives OUT/connex]
    python -m connex.benchmarks tracking --derivatives OUT/connex --subjects 01 [--atlas desikankilliany]
    python -m connex.benchmarks fc --bids results/demo/bids --derivatives results/connex [--subjects ...]
    python -m connex.benchmarks model --connectomes DIR [--folds 5] [--jobs 2]
    python -m connex.benchmarks workflow [--cores 1 2] [--repeats 3] [--configfile X.yaml] [--out DIR]
    python -m connex.benchmarks realign [--repeats 1] [--real ../shared/data/bids-xa30]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from connex.benchmarks.stages import benchmark_anat, benchmark_fc, benchmark_model, benchmark_sc, benchmark_synth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m connex.benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["synth", "inputs", "anat", "sc", "tracking", "fc", "model", "workflow",
                                                      "realign"])
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (realign: 1)")
    parser.add_argument("--bids", type=Path, default=Path("results/demo/bids"), help="a synthetic cohort")
    parser.add_argument("--subjects", nargs="+", default=["01", "02", "03"])
    parser.add_argument("--task", default="rest", help="inputs: BOLD task label")
    parser.add_argument("--real", type=Path, default=None, help="a real BIDS dataset (its sub-01)")
    parser.add_argument("--derivatives", type=Path, default=Path("results/connex"),
                        help="sc: the workflow's outputs for --bids (anatomy stage and SC matrices)")
    parser.add_argument("--atlas", default="desikankilliany", help="tracking: the atlas of the dseg in DWI space")
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
    if args.repeats is None:
        args.repeats = 1 if args.what == "realign" else 3
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS/OpenMP thread: the figures are per core
    if args.what == "synth":
        benchmark_synth(args.repeats)
    elif args.what == "inputs":
        from connex.benchmarks.inputs import benchmark_inputs

        benchmark_inputs(args.bids, task=args.task, repeats=args.repeats)
    elif args.what == "anat":
        benchmark_anat(args.bids, args.subjects, args.repeats, args.real)
    elif args.what == "sc":
        benchmark_sc(args.bids, args.derivatives, args.subjects, args.repeats, args.real, args.real_derivatives)
    elif args.what == "tracking":
        from connex.benchmarks.tracking import benchmark_tracking

        benchmark_tracking(args.derivatives, args.subjects[0], args.atlas, args.repeats)
    elif args.what == "fc":
        benchmark_fc(args.bids, args.derivatives, args.subjects, args.repeats)
    elif args.what == "model":
        benchmark_model(args.connectomes, folds=args.folds, repeats=args.repeats, jobs=args.jobs,
                        device=args.device, models=tuple(args.models))
    elif args.what == "workflow":
        from connex.benchmarks.workflow import benchmark_workflow

        benchmark_workflow(args.cores, repeats=args.repeats, configfiles=args.configfile, out_root=args.out)
    elif args.what == "realign":
        from connex.benchmarks.realign import benchmark_realign

        benchmark_realign(repeats=args.repeats, real=args.real)


if __name__ == "__main__":
    main()
