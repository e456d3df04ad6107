"""A single-node SLURM on localhost (Debian's slurmctld, slurmd and munge), for the cluster test.

Brought up only where it can be: as root, with the daemons installed (`.ci/run` installs them
with apt when it runs as root), and never over an existing /etc/slurm/slurm.conf that this
module did not write (that would be a real cluster's). Why each setting: ../shared/notes/SLURM.md.
- The config must sit at /etc/slurm/slurm.conf: the job-step plugin strips SLURM_CONF.
- No slurmdbd: the executor plugin must be told to poll with squeue, and finished jobs must stay
  visible to squeue long enough (MinJobAge).
- DefMemPerCPU: a job without --mem would otherwise take the whole node's memory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by connex tests/local_slurm.py"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def unavailable_reason() -> str | None:
    """Why a local SLURM cannot be brought up here (None when it can)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "a local SLURM needs root (slurmd runs jobs as their user); run the tests as root or in CI"
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return (f"SLURM/munge not installed (missing {', '.join(missing)}): "
                "apt-get install slurmctld slurmd slurm-client munge (.ci/run does it as root)")
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} exists and was not written by this test: not touching a real cluster's config"
    return None


@dataclass
class LocalSlurm:
    """A running single-node cluster; ``partition`` is the one partition's name."""

    state_dir: Path
    partition: str = "debug"

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld"):
            _kill_pid_file(self.state_dir / f"{name}.pid")


def start_local_slurm(state_dir: Path, *, timeout_s: float = 60) -> LocalSlurm:
    """Write slurm.conf, start munged (if not running), slurmctld and slurmd; wait for an idle node."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20) - 1024
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
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "/run/munge"], check=True)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
    subprocess.run(["/usr/sbin/slurmctld"], check=True)
    subprocess.run(["/usr/sbin/slurmd", "-N", node], check=True)
    cluster = LocalSlurm(state_dir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if state.startswith("idle"):
            return cluster
        time.sleep(1)
    cluster.stop()
    log = (state_dir / "slurmctld.log").read_text()[-2000:] if (state_dir / "slurmctld.log").exists() else ""
    raise RuntimeError(f"the local SLURM node did not become idle within {timeout_s} s (sinfo: {state!r})\n{log}")


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
