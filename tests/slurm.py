"""A real single-node SLURM for the tests: munged, slurmctld and slurmd started by hand in a private folder.

As in ``../shared/reference/slurm-single-node.md`` (Debian's ``slurm-wlm`` and ``munge``, no systemd): nothing
in ``/etc`` is edited; clients find the cluster through ``SLURM_CONF``. Needs root (slurmd runs jobs as their
users) and the packages (``.ci/run`` installs them); :func:`why_not` says what is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["why_not", "slurm_cluster", "squeue"]

_DAEMONS = ("munged", "slurmctld", "slurmd", "mungekey", "sinfo", "sbatch", "scancel", "squeue")


def why_not() -> str | None:
    """Why a SLURM cluster cannot be started here, or ``None``."""
    if os.geteuid() != 0:
        return "a test SLURM needs root (slurmd)"
    missing = [d for d in _DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        return f"no {', '.join(missing)} (apt-get install slurm-wlm munge)"
    return None


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def squeue(env: dict) -> list[str]:
    """The job ids in the queue."""
    out = subprocess.run([_bin("squeue"), "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=30)
    return out.stdout.split()


def _stop(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    for _ in range(40):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.25)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster(root: Path):
    """Start the cluster in ``root``; yield the environment its clients need (``SLURM_CONF`` set); stop it."""
    root = Path(root)
    for d in ("etc", "log", "state", "spool", "munge-key", "munge-run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    (root / "munge-run").chmod(0o755)  # munged: its socket's folder must be o+x
    (root / "munge-key").chmod(0o700)
    key = root / "munge-key" / "munge.key"
    subprocess.run([_bin("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o400)
    sock = root / "munge-run" / "munge.socket.2"
    subprocess.run([_bin("munged"), f"--socket={sock}", f"--key-file={key}",
                    f"--pid-file={root / 'munge-run' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
                    f"--seed-file={root / 'munge-key' / 'munged.seed'}"], check=True, capture_output=True)
    host = socket.gethostname().split(".")[0]
    node = subprocess.run([_bin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    conf = root / "etc" / "slurm.conf"
    conf.write_text(f"""ClusterName=pgradetest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    env = dict(os.environ, SLURM_CONF=str(conf))
    try:
        subprocess.run([_bin("slurmctld"), "-f", str(conf)], env=env, check=True, capture_output=True)
        subprocess.run([_bin("slurmd"), "-f", str(conf)], env=env, check=True, capture_output=True)
        for _ in range(240):
            state = subprocess.run([_bin("sinfo"), "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                break
            time.sleep(0.25)
        else:
            log = (root / "log" / "slurmctld.log").read_text()[-2000:]
            raise RuntimeError(f"the test SLURM did not become idle: {log}")
        yield env
    finally:
        jobs = squeue(env) if (root / "slurmctld.pid").exists() else []
        if jobs:
            subprocess.run([_bin("scancel"), "--full", *jobs], env=env, capture_output=True)
        for pidfile in (root / "slurmd.pid", root / "slurmctld.pid", root / "munge-run" / "munged.pid"):
            _stop(pidfile)
