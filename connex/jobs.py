"""What a workflow job does besides its work: report its failure on the console, and stop when Snakemake dies.

:func:`connex.logs.log_to_file` calls both :func:`install_excepthook` and :func:`watch_snakemake`, so
every job script gets them with its log.

Why a watchdog thread and not ``PR_SET_PDEATHSIG``: Snakemake runs a script job as
``snakemake -> bash -c '... python script' -> python``, so the job's parent is the shell, which outlives
a killed Snakemake; and the death signal follows the parent *thread*, which for Snakemake is a worker
of its thread pool, so it could fire while Snakemake is still alive. The watchdog instead looks up the
Snakemake ancestor itself and polls it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
EXIT_STATUS = 3  # the status of a job stopped because Snakemake is gone

_watchdog: threading.Thread | None = None


# --- the console line of a failed job -------------------------------------------------------------------------------


def job_label(job: str | None = None) -> str:
    """``job`` if given (less an empty ``{}``: a rule without wildcards), else the running script's name.

    Snakemake runs a copy of a script named ``.snakemake/scripts/tmp<random>.<script name>``; the
    prefix is dropped."""
    if job and job.strip():
        return job.strip().removesuffix(" {}")
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return re.sub(r"^tmp[A-Za-z0-9_]+\.(?=.+\.py$)", "", name)


def failure_line(exc: BaseException, job: str | None, log_path: str) -> str:
    """The one console line that says what went wrong: type, first line of the message, the log."""
    lines = str(exc).strip().splitlines()
    message = lines[0].strip() if lines else ""
    if len(lines) > 1:
        message += " ..."
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"ConneX: job {job_label(job)} failed: {what} (traceback in {log_path})"


def install_excepthook(log_handle, log_path: str, job: str | None = None) -> None:
    """On an uncaught exception, write the traceback to ``log_handle`` and one line to the console.

    The console is ``sys.__stderr__`` (the job's inherited stderr, which Snakemake shows), not
    ``sys.stderr``, which :func:`connex.logs.log_to_file` points at the log. A ``KeyboardInterrupt``
    gets only its traceback in the log."""

    def hook(exc_type, exc, tb):
        try:
            traceback.print_exception(exc_type, exc, tb, file=log_handle)
            log_handle.flush()
        except Exception:  # the log is gone (disk full, closed): fall back to the console
            sys.__excepthook__(exc_type, exc, tb)
        if issubclass(exc_type, KeyboardInterrupt):
            return
        console = sys.__stderr__
        if console is None:
            return
        try:
            console.write(failure_line(exc, job, log_path) + "\n")
            console.flush()
        except Exception:
            pass

    sys.excepthook = hook


# --- stopping when Snakemake dies -------------------------------------------------------------------------------------


def is_snakemake(cmdline: list[str]) -> bool:
    """Whether a command line runs Snakemake (``.../bin/snakemake ...`` or ``python -m snakemake ...``).

    Matched by argument, not by substring: the shell that Snakemake starts a script with, and the
    script itself, have ``.snakemake/scripts/...`` in their command lines."""
    for i, arg in enumerate(cmdline):
        if os.path.basename(arg) in ("snakemake", "snakemake.exe"):
            return True
        if arg == "-m" and i + 1 < len(cmdline) and cmdline[i + 1] == "snakemake":
            return True
    return False


def snakemake_ancestors():
    """The ``psutil.Process`` of every Snakemake among this process's ancestors, nearest first."""
    import psutil

    found = []
    try:
        parents = psutil.Process().parents()
    except (psutil.Error, OSError):
        return found
    for proc in parents:
        try:
            if is_snakemake(proc.cmdline()):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _alive(proc) -> bool:
    """Whether ``proc`` still runs: the same pid *and* create time (psutil checks it), not a zombie."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # e.g. AccessDenied: it exists
        return True


def stop_children(timeout: float = 3.0) -> None:
    """Terminate this process's own descendants (SIGTERM, then SIGKILL after ``timeout``); never a group."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, remaining = psutil.wait_procs(children, timeout=timeout)
    for child in remaining:
        try:
            child.kill()
        except psutil.Error:
            pass


def _watch(watched, log_handle, poll: float) -> None:
    event = threading.Event()
    while True:
        gone = next((proc for proc in watched if not _alive(proc)), None)
        if gone is not None:
            break
        event.wait(poll)
    message = f"Snakemake (pid {gone.pid}) is gone; stopping this job"
    try:
        log.error(message)
        if log_handle is not None:
            log_handle.flush()
    except Exception:
        pass
    try:
        stop_children()
    finally:
        os._exit(EXIT_STATUS)


def watch_snakemake(log_handle=None, poll: float = POLL_SECONDS) -> threading.Thread | None:
    """Start a daemon thread that ends this job once the Snakemake that started it has died.

    It watches the Snakemake processes among this process's ancestors (the nearest is the one that
    started the job: the main ``snakemake`` locally, the ``--slurm-jobstep`` one on a cluster node);
    when one is gone, it logs ``Snakemake (pid N) is gone; stopping this job``, terminates this
    job's child processes and exits with status :data:`EXIT_STATUS`. Without a Snakemake ancestor
    (a script run by hand, a test) it does nothing and returns None. Started once per process."""
    global _watchdog
    if _watchdog is not None:
        return _watchdog
    try:
        watched = snakemake_ancestors()
    except ImportError:  # psutil comes with Snakemake; without it there is nothing to watch for
        return None
    if not watched:
        return None
    log.debug("watching Snakemake pid(s) %s", ", ".join(str(proc.pid) for proc in watched))
    _watchdog = threading.Thread(target=_watch, args=(watched, log_handle, poll), name="connex-snakemake-watchdog",
                                 daemon=True)
    _watchdog.start()
    return _watchdog
