"""Logging set-up for workflow scripts and the command line."""

from __future__ import annotations

import logging
import sys

from connex.jobs import install_excepthook, watch_snakemake

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_file(path: str, job: str | None = None) -> None:
    """Send all logging, warnings and stderr of a workflow job to ``path`` (its Snakemake log).

    Also, for the job (:mod:`connex.jobs`): an uncaught exception writes its traceback to ``path``
    and one ``ConneX: job <job> failed: <error> (traceback in <path>)`` line to the console; and the
    job stops by itself within a few seconds once the Snakemake process that started it is gone.
    ``job`` names the job on that line (e.g. the rule and its wildcards); the script's name if None.
    """
    handle = open(path, "a", buffering=1)
    sys.stderr = handle
    logging.basicConfig(level=logging.INFO, format=FORMAT, stream=handle, force=True)
    logging.captureWarnings(True)
    install_excepthook(handle, path, job)
    watch_snakemake(handle)


def log_to_console(verbose: bool = False) -> None:
    """Log to the terminal (the ``connex`` command)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT, force=True)
    logging.captureWarnings(True)
