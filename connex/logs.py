"""Logging set-up for workflow scripts and the command line."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_file(path: str) -> None:
    """Send all logging, warnings and stderr of a workflow job to ``path`` (its Snakemake log)."""
    handle = open(path, "a", buffering=1)
    sys.stderr = handle
    logging.basicConfig(level=logging.INFO, format=FORMAT, stream=handle, force=True)
    logging.captureWarnings(True)


def log_to_console(verbose: bool = False) -> None:
    """Log to the terminal (the ``connex`` command)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT, force=True)
    logging.captureWarnings(True)
