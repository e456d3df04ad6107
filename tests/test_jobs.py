"""A workflow job reports its failure in one console line and stops when the Snakemake that started it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from connex.jobs import failure_line, is_snakemake, job_label

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
ENV.pop("SNAKEMAKE_PROFILE", None)


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ConneX: ")]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited with {proc.returncode} before writing {path.name}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} not written within {timeout} s")
        time.sleep(0.2)


def _snakefile(tmp_path: Path, script: str, output: str = "out.txt") -> Path:
    """A one-rule workflow in ``tmp_path`` whose job runs ``script`` (a Snakemake ``script:``)."""
    (tmp_path / "job.py").write_text(textwrap.dedent(script))
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(textwrap.dedent(f"""\
        rule all:
            input: "{output}"

        rule job:
            output: "{{name}}.txt"
            log: "logs/{{name}}.log"
            script: "job.py"
        """))
    return snakefile


def _snakemake(tmp_path: Path, snakefile: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", "1", "-s", str(snakefile), "--directory", str(tmp_path)]


def test_console_line_keeps_the_first_line_of_the_message():
    exc = ValueError("bad.tsv: expected 3 columns\ncolumns found: a, b")
    line = failure_line(exc, "job {'name': 'out'}", "logs/out.log")
    assert line == ("ConneX: job job {'name': 'out'} failed: ValueError: bad.tsv: expected 3 columns ... "
                    "(traceback in logs/out.log)")
    assert failure_line(RuntimeError(), None, "x.log").endswith("failed: RuntimeError (traceback in x.log)")


def test_job_label_drops_the_prefix_of_snakemakes_script_copy(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/w/.snakemake/scripts/tmpa1b2_c3d.preprocess_anat.py"])
    assert job_label() == "preprocess_anat.py"
    assert job_label("tractography {'subject': '01'}") == "tractography {'subject': '01'}"
    assert job_label("report {}") == "report"


@pytest.mark.parametrize(("cmdline", "expected"), [
    (["/w/.venv/bin/python", "/w/.venv/bin/snakemake", "--cores", "2"], True),
    (["python", "-m", "snakemake", "--executor", "slurm-jobstep"], True),
    (["snakemake", "--slurm-jobstep"], True),
    (["/bin/bash", "-c", "set -euo pipefail; python /w/.snakemake/scripts/tmpab.job.py"], False),
    (["python", "/w/.snakemake/scripts/tmpab.job.py"], False),
    (["python", "-m", "pytest", "tests/test_snakemake.py"], False),
])
def test_snakemake_is_recognised_by_argument_not_substring(cmdline, expected):
    assert is_snakemake(cmdline) is expected


def test_uncaught_error_gives_one_console_line_and_the_traceback_in_the_log(tmp_path):
    log = tmp_path / "job.log"
    code = textwrap.dedent(f"""\
        from connex.errors import BIDSError
        from connex.logs import log_to_file
        log_to_file({str(log)!r})
        def read():
            raise BIDSError("sub-01_T1w.nii.gz: truncated; expected 100 bytes")
        read()
        """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 1
    lines = _console_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "BIDSError: sub-01_T1w.nii.gz: truncated; expected 100 bytes" in lines[0]
    assert f"(traceback in {log})" in lines[0]
    assert "Traceback" not in result.stderr
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in read" in text
    assert "connex.errors.BIDSError: sub-01_T1w.nii.gz: truncated; expected 100 bytes" in text


def test_keyboard_interrupt_prints_no_console_line(tmp_path):
    log = tmp_path / "job.log"
    code = f"from connex.logs import log_to_file\nlog_to_file({str(log)!r})\nraise KeyboardInterrupt\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode != 0
    assert _console_lines(result.stderr) == []
    assert "KeyboardInterrupt" in log.read_text()


def test_a_script_run_by_hand_has_no_watchdog_and_runs_to_the_end(tmp_path):
    log, out = tmp_path / "job.log", tmp_path / "out.txt"
    code = textwrap.dedent(f"""\
        import threading, time
        from connex.logs import log_to_file
        log_to_file({str(log)!r})
        assert not any(t.name == "connex-snakemake-watchdog" for t in threading.enumerate())
        time.sleep(3)  # longer than the watchdog's poll
        open({str(out)!r}, "w").write("done")
        """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "done"
    assert "is gone" not in log.read_text()


def test_a_job_stops_when_snakemake_is_killed(tmp_path):
    snakefile = _snakefile(tmp_path, """\
        import os, time
        from connex.logs import log_to_file
        log_to_file(snakemake.log[0])
        open("job.pid", "w").write(str(os.getpid()))
        time.sleep(120)
        open(snakemake.output[0], "w").write("done")
        """)
    proc = subprocess.Popen(_snakemake(tmp_path, snakefile), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    pid = None
    try:
        _wait_for(tmp_path / "job.pid", proc, timeout=60)
        pid = int((tmp_path / "job.pid").read_text())
        time.sleep(0.5)  # let the job start its watchdog
        assert not _gone(pid)
        proc.send_signal(signal.SIGKILL)  # not reaped yet: Snakemake stays a zombie, which counts as dead
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(pid), "the job outlived Snakemake by 10 s"
        assert "Snakemake (pid " in (tmp_path / "logs" / "out.log").read_text()
        assert f"(pid {proc.pid}) is gone; stopping this job" in (tmp_path / "logs" / "out.log").read_text()
        assert not (tmp_path / "out.txt").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        if pid is not None and not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_failed_rule_shows_its_error_on_snakemakes_console(tmp_path):
    snakefile = _snakefile(tmp_path, """\
        from connex.logs import log_to_file
        log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")
        raise ValueError("bad.tsv: expected 3 columns\\nfound 2")
        """)
    result = subprocess.run(_snakemake(tmp_path, snakefile), capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode != 0
    lines = _console_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0] == ("ConneX: job job {'name': 'out'} failed: ValueError: bad.tsv: expected 3 columns ... "
                        "(traceback in logs/out.log)")
    assert "Traceback" in (tmp_path / "logs" / "out.log").read_text()
