"""A single-node SLURM on localhost (Debian's slurmctld, slurmd and munge), for the cluster test.

Brought up only where it can be and where it cannot disturb a real cluster: as root, with the
daemons installed (`.ci/run` installs them with apt when it runs as root), with no SLURM daemon
already running, no SLURM_CONF in the environment, no configless-mode cache, and no
/etc/slurm/slurm.conf that this module did not write. Why each setting: ../shared/notes/SLURM.md.
- The config must sit at /etc/slurm/slurm.conf: the job-step plugin strips SLURM_CONF.
- No slurmdbd: the executor plugin must be told to poll with squeue, and finished jobs must stay
  visible to squeue long enough (MinJobAge).
- DefMemPerCPU: a job without --mem would otherwise take the whole node's memory.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by connex tests/local_slurm.py"
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def unavailable_reason() -> str | None:
    """Why a local SLURM cannot be brought up here (None when it can)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "a local SLURM needs root (slurmd runs jobs as their user); run the tests as root or in CI"
    missing = [c for c in COMMANDS if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]
    if missing:
        return (f"SLURM/munge not installed (missing {', '.join(missing)}): "
                "apt-get install slurmctld slurmd slurm-client munge (.ci/run does it as root)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (it needs Python >= 3.11)"
    if os.environ.get("SLURM_CONF"):
        return f"SLURM_CONF={os.environ['SLURM_CONF']} is set: this machine belongs to a cluster; not touching it"
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} exists and was not written by this test: not touching a real cluster's config"
    if Path("/run/slurm/conf").exists():
        return "/run/slurm/conf exists (a configless cluster node): not touching it"
    running = [d for d in ("slurmctld", "slurmd") if _running(d)]
    if running:
        return f"{' and '.join(running)} already running here: not starting a second cluster beside it"
    return None


@dataclass
class LocalSlurm:
    """A running single-node cluster."""

    state_dir: Path
    started_munged: bool = False
    env: dict = field(default_factory=lambda: {**os.environ, "SLURM_CONF": str(SLURM_CONF)})

    def stop(self) -> None:
        """Stop the daemons this cluster started and remove its slurm.conf."""
        for name in ("slurmd", "slurmctld"):
            _kill_pid_file(self.state_dir / f"{name}.pid")
        if self.started_munged:
            subprocess.run(["pkill", "-x", "munged"], capture_output=True)
        if SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text():
            SLURM_CONF.unlink()


def start_local_slurm(state_dir: Path, *, timeout_s: float = 60) -> LocalSlurm:
    """Write slurm.conf, start munged (if not running), slurmctld and slurmd; wait for an idle node."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    # The node as slurmd sees it (CPUs within this cpuset, memory), less 1 GB for the system.
    hardware = subprocess.run(["/usr/sbin/slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    node = re.search(r"NodeName=(\S+)", hardware).group(1)
    cpus = int(re.search(r"CPUs=(\d+)", hardware).group(1))
    memory_mb = int(re.search(r"RealMemory=(\d+)", hardware).group(1)) - 1024
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(f"""{MARKER}
ClusterName=connextest
SlurmctldHost={node}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
DefMemPerCPU=1000
ReturnToService=2
StateSaveLocation={state_dir}/ctld
SlurmdSpoolDir={state_dir}/d
SlurmctldPidFile={state_dir}/slurmctld.pid
SlurmdPidFile={state_dir}/slurmd.pid
SlurmctldLogFile={state_dir}/slurmctld.log
SlurmdLogFile={state_dir}/slurmd.log
NodeName={node} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    for sub in ("ctld", "d"):
        (state_dir / sub).mkdir(exist_ok=True)
    cluster = LocalSlurm(state_dir)
    try:
        if not _running("munged"):
            subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "/run/munge"], check=True)
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
            cluster.started_munged = True
        subprocess.run(["/usr/sbin/slurmctld"], check=True, env=cluster.env)
        subprocess.run(["/usr/sbin/slurmd", "-N", node], check=True, env=cluster.env)
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True,
                                   env=cluster.env).stdout.strip()
            if state.startswith("idle"):
                return cluster
            time.sleep(1)
        log = (state_dir / "slurmctld.log").read_text()[-2000:] if (state_dir / "slurmctld.log").exists() else ""
        raise RuntimeError(f"the local SLURM node did not become idle within {timeout_s} s (sinfo: {state!r})\n{log}")
    except BaseException:
        cluster.stop()
        raise


def _kill_pid_file(pid_file: Path, timeout_s: float = 15) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
