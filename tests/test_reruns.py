"""Reruns and resumption through Snakemake, on one participant of the tiny cohort.

One module fixture runs the SC stage of sub-01 once (anatomy, DWI preprocessing, tracking,
matrices); each test then asks Snakemake for one kind of rerun on that output folder and
checks what ran, what did not, and that the outputs are whole and equal to the first run's.
Each test sets up the state it needs, so they pass in any order.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_workflow import SNAKEMAKE, overlay, snakemake

SUBJECT = "01"


def sc_files(out: Path) -> dict[str, Path]:
    dwi = out / "connex" / f"sub-{SUBJECT}" / "dwi"
    return {"preproc": dwi / f"sub-{SUBJECT}_space-dwi_desc-preproc_dwi.nii.gz",
            "tractogram": dwi / f"sub-{SUBJECT}_space-dwi_tractography.trk",
            "count": dwi / f"sub-{SUBJECT}_atlas-synth_stat-count_relmat.tsv",
            "sidecar": dwi / f"sub-{SUBJECT}_atlas-synth_stat-count_relmat.json"}


def rules_run(result) -> list[str]:
    """Names of the rules whose jobs a Snakemake run executed (from its log)."""
    import re

    return sorted(set(re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", result.stdout + result.stderr,
                                 flags=re.M)) - {"sc"})


def no_temporary_files(out: Path) -> bool:
    return not [p for p in out.rglob(".*") if p.name.startswith(".sub-")]


@pytest.fixture(scope="module")
def sc_run(tiny_cohort, tmp_path_factory):
    """(options that run sub-01 only, output folder, bytes of its first count matrix). Targets go
    before the options: --config would take a target after it as one more setting."""
    out = tmp_path_factory.mktemp("reruns") / "out"
    arguments = ["--cores", "2", "--config", f"bids_dir={tiny_cohort}", f"output_dir={out}",
                 f"participants={{'include': ['{SUBJECT}']}}"]
    result = snakemake("sc", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    return arguments, out, sc_files(out)["count"].read_bytes()


def test_one_subjects_target_file_then_forced_rerun_of_one_rule(sc_run):
    arguments, out, first_count = sc_run
    files = sc_files(out)
    target = str(files["count"])
    snakemake("sc", *arguments)  # the default state (a no-op unless another test changed it)
    again = snakemake(target, *arguments)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    tractogram_mtime = files["tractogram"].stat().st_mtime_ns
    count_mtime = files["count"].stat().st_mtime_ns
    forced = snakemake(target, "--forcerun", "structural_connectome", *arguments)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert rules_run(forced) == ["structural_connectome"]
    assert files["count"].stat().st_mtime_ns > count_mtime
    assert files["tractogram"].stat().st_mtime_ns == tractogram_mtime
    assert files["count"].read_bytes() == first_count  # same inputs, same matrix


def test_changed_tracking_parameter_reruns_tracking_and_what_depends_on_it_only(sc_run, tmp_path):
    import json

    arguments, out, first_count = sc_run
    files = sc_files(out)
    snakemake("sc", *arguments)  # the default state (a no-op unless another test changed it)
    preproc_mtime = files["preproc"].stat().st_mtime_ns
    streamlines = json.loads(files["sidecar"].read_text())["streamlines"]
    denser = overlay(tmp_path, {"sc": {"seeds_per_voxel": 12}})
    changed = snakemake("sc", "--configfile", denser, *arguments)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert rules_run(changed) == ["structural_connectome", "tractography"]
    assert files["preproc"].stat().st_mtime_ns == preproc_mtime  # DWI preprocessing kept
    assert json.loads(files["sidecar"].read_text())["streamlines"] > streamlines
    restored = snakemake("sc", *arguments)  # back to the default: the first run's matrix again
    assert rules_run(restored) == ["structural_connectome", "tractography"]
    assert files["count"].read_bytes() == first_count


def test_run_killed_mid_job_resumes_to_complete_equal_outputs(sc_run):
    arguments, out, first_count = sc_run
    files = sc_files(out)
    log = out / "logs" / "tractography" / f"sub-{SUBJECT}.log"
    started = time.time()
    # SIGKILL of Snakemake and its job together: what a dead node or an OOM killer does.
    process = subprocess.Popen(SNAKEMAKE + ["sc", "--forcerun", "tractography", *arguments],
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not (log.exists() and log.stat().st_mtime > started):
            assert process.poll() is None, "the run ended before the tracking job started"
            assert time.time() - started < 300
            time.sleep(0.2)
        time.sleep(2)  # well inside the job (it takes 10-20 s)
        assert process.poll() is None
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not files["tractogram"].exists()  # Snakemake removed it before the job; none half-written
    # What a kill during the write itself leaves (the tracking above was killed before it wrote):
    stale = files["tractogram"].with_name(f".{files['tractogram'].name}.k3j9x.trk")
    stale.write_bytes(b"half a tractogram")
    resumed = snakemake("sc", "--rerun-incomplete", *arguments)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "tractography" in rules_run(resumed) and "preprocess_dwi" not in rules_run(resumed)
    assert files["count"].read_bytes() == first_count
    assert not stale.exists() and no_temporary_files(out)
