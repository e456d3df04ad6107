"""The SLURM profile against a real scheduler: a single-node SLURM on localhost (tests/local_slurm.py).

Skipped, with the reason, where no such cluster can be brought up (not root, SLURM not installed).
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.local_slurm import start_local_slurm, unavailable_reason
from tests.test_workflow import overlay, snakemake

REASON = unavailable_reason()
needs_local_slurm = pytest.mark.skipif(REASON is not None, reason=str(REASON))

GROUP_OUTPUTS = ("splits.tsv", "metrics.tsv", "metrics_per_split.tsv", "predictions.tsv")


@pytest.fixture(scope="module")
def local_slurm(tmp_path_factory):
    cluster = start_local_slurm(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def test_profile_names_real_rules_and_asks_a_gpu_for_training_only():
    profile = yaml.safe_load((REPO / "config" / "profiles" / "slurm" / "config.yaml").read_text())
    rules = set(re.findall(r"^(?:rule|checkpoint) (\w+):", "".join(
        p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")), flags=re.M))
    assert profile["executor"] == "slurm"
    assert set(profile["set-resources"]) <= rules  # a typo would silently request nothing
    assert rules - set(profile["set-resources"]) <= {"all", "anat", "sc", "fc", "inputs", "model"}  # targets only
    assert [r for r, res in profile["set-resources"].items() if res.get("gpu")] == ["train_fold"]
    assert all(res["mem_mb"] > 0 for res in profile["set-resources"].values())


@needs_local_slurm
def test_model_stages_through_slurm_match_a_local_run(local_slurm, tmp_path):
    """Jobs go through sbatch with the profile's resources, and the outputs equal a local run's."""
    from connex.synth import SynthConfig
    from connex.synth.cohort import generate_connectomes

    connectomes = generate_connectomes(tmp_path / "conn", SynthConfig(
        n_subjects=12, n_regions=10, n_volumes=60, n_sc_effect_edges=2, n_fc_effect_edges=2))
    settings = overlay(tmp_path, {"connectomes_dir": str(connectomes),
                                  "model": {"cv": {"folds": 2, "repeats": 1},
                                            "training": {"epochs": 4, "patience": 2},
                                            "architecture": {"hidden": 8, "attention_heads": 2,
                                                             "mixer_blocks": 1}}})
    local = snakemake("--cores", "2", "--configfile", settings, "--config", f"output_dir={tmp_path / 'local'}")
    assert local.returncode == 0, local.stderr[-3000:]

    # The shipped profile, with two changes for a one-node test cluster without GPUs: no GPU
    # request, and no request above a quarter of this machine's memory (it would never be scheduled).
    profile = yaml.safe_load((REPO / "config" / "profiles" / "slurm" / "config.yaml").read_text())
    memory_cap = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20) // 4
    for resources in profile["set-resources"].values():
        resources.pop("gpu", None)
        resources["mem_mb"] = min(resources["mem_mb"], memory_cap)
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    cluster = snakemake("--profile", str(tmp_path / "profile"), "--max-threads", "1",  # as the local run
                        "--slurm-status-command", "squeue",  # no slurmdbd here (sacct is off)
                        "--slurm-init-seconds-before-status-checks", "1",
                        "--slurm-logdir", str(tmp_path / "slurm_logs"),
                        "--configfile", settings, "--config", f"output_dir={tmp_path / 'cluster'}", timeout=900)
    log = cluster.stdout + cluster.stderr
    assert cluster.returncode == 0, log[-3000:]

    submitted = dict(re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log))
    assert len(submitted) == 4  # dataset, 2 folds, results through sbatch (cv_splits is a local rule)
    assert "rule_cv_splits" not in " ".join(submitted.values())
    accounting = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%m"], capture_output=True,
                                text=True, check=True, env=local_slurm.env).stdout
    jobs = {line.split("|")[0]: line.split("|")[1:] for line in accounting.split()}
    for job_id, slurm_log in submitted.items():
        state, memory = jobs[job_id]
        rule = re.search(r"rule_(\w+)", slurm_log).group(1)
        assert state == "COMPLETED"
        assert memory == f"{profile['set-resources'][rule]['mem_mb']}M"  # the profile reached sbatch
        assert Path(slurm_log).is_file()
    for name in GROUP_OUTPUTS:
        assert ((tmp_path / "cluster" / "connex" / "group" / name).read_bytes()
                == (tmp_path / "local" / "connex" / "group" / name).read_bytes()), name
