"""The ``connex`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from connex import __version__
from connex.errors import ConnexError
from connex.logs import log_to_console
from connex.registry import PARTIAL_DWI_POLICIES

log = logging.getLogger("connex")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connex", description=__doc__)
    parser.add_argument("--version", action="version", version=f"connex {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synth", help="write a synthetic BIDS cohort with ground truth",
        description="Write a synthetic BIDS cohort (T1w, DWI, BOLD, participants.tsv) with its ground "
                    "truth in OUT/derivatives/groundtruth, or with --connectomes-only just the "
                    "connectome matrices in the layout of the pipeline's outputs.")
    synth.add_argument("out", type=Path, help="output folder (must not exist or be empty)")
    synth.add_argument("--subjects", type=int, default=8, help="number of participants (default 8)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--sites", type=int, default=2, help="number of sites (default 2)")
    synth.add_argument("--regions", type=int, default=48, help="atlas regions, even (default 48)")
    synth.add_argument("--sc-effect", type=float, default=0.5,
                       help="fraction by which SZ bundles on the SC effect edges are weaker (default 0.5)")
    synth.add_argument("--fc-effect", type=float, default=0.6,
                       help="variance of the shared factor SZ lacks on the FC effect edges (default 0.6)")
    synth.add_argument("--sc-effect-edges", type=int, default=8,
                       help="number of SC edges carrying the SZ effect (default 8)")
    synth.add_argument("--fc-effect-edges", type=int, default=8,
                       help="number of FC edges carrying the SZ effect, at most regions/2 (default 8)")
    synth.add_argument("--volumes", type=int, default=150, help="BOLD volumes (default 150)")
    synth.add_argument("--hard", action="store_true",
                       help="a cohort closer to real scans: each subject's own anatomy, white matter full of fibres "
                            "(realistic FA), larger motion with jumps and spin-history dips, lower SNR "
                            "(connex.synth.cohort.hard_config)")
    synth.add_argument("--sessions", type=int, default=1,
                       help="sessions per participant (default 1: no ses- folders); each session rescans the "
                            "same brain with a new head position, motion and noise")
    synth.add_argument("--jobs", type=int, default=1,
                       help="participants rendered at once, one process each (default 1; same images for any)")
    synth.add_argument("--connectomes-only", action="store_true",
                       help="write only SC/FC matrices (fast: hundreds of subjects in seconds)")

    inventory = commands.add_parser(
        "inventory", help="find and validate BIDS inputs; write the availability table",
        description="Check a BIDS dataset the way the workflow does and write its availability table.")
    inventory.add_argument("bids_dir", type=Path)
    inventory.add_argument("out", type=Path, help="availability table to write (.tsv)")
    inventory.add_argument("--task", default="rest", help="BOLD task label (default rest)")
    inventory.add_argument("--label-column", default="diagnosis")
    inventory.add_argument("--classes", nargs="+", default=["HC", "SZ"])
    inventory.add_argument("--strict", action="store_true", help="stop at the first invalid file")
    inventory.add_argument("--partial-dwi", choices=PARTIAL_DWI_POLICIES, default="exclude",
                           help="a participant with a DWI run that fails the check: leave SC out (exclude, the "
                                "default) or build it from the other runs (use_remaining)")
    inventory.add_argument("--dwi-acquisition", default=None,
                           help="only the DWI runs of this acq- label (default: the acquisition with the most volumes)")

    args = parser.parse_args(argv)
    log_to_console(args.verbose)
    try:
        if args.command == "synth":
            return _synth(args)
        if args.command == "inventory":
            return _inventory(args)
    except (ConnexError, FileExistsError, ValueError) as error:
        log.error("%s", error)
        return 2
    return 0


def _synth(args: argparse.Namespace) -> int:
    from connex.synth import SynthConfig, generate_cohort, generate_connectomes
    from connex.synth.cohort import hard_config

    settings = dict(n_subjects=args.subjects, seed=args.seed, n_sites=args.sites,
                    n_regions=args.regions, sc_effect=args.sc_effect, fc_effect=args.fc_effect,
                    n_sc_effect_edges=args.sc_effect_edges, n_fc_effect_edges=args.fc_effect_edges,
                    n_volumes=args.volumes, n_sessions=args.sessions)
    config = hard_config(**settings) if args.hard else SynthConfig(**settings)
    start = time.perf_counter()
    if args.connectomes_only:
        generate_connectomes(args.out, config)
    else:
        generate_cohort(args.out, config, progress=sys.stderr.isatty(), n_jobs=args.jobs)
    log.info("Done in %.1f s: %s", time.perf_counter() - start, args.out)
    return 0


def _inventory(args: argparse.Namespace) -> int:
    from connex.inputs.bids import build_inventory
    from connex.inputs.io import write_tsv

    table = build_inventory(args.bids_dir, task=args.task, label_column=args.label_column,
                            classes=tuple(args.classes), strict=args.strict, partial_dwi=args.partial_dwi,
                            dwi_acquisition=args.dwi_acquisition)
    write_tsv(table, args.out)
    log.info("%d participant(s); %d with SC inputs, %d with FC inputs, %d to model. Table: %s",
             len(table), table["use_sc"].sum(), table["use_fc"].sum(), table["use_model"].sum(), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
