"""Workers as batch jobs: ``--cluster slurm`` (and the other schedulers of dask-jobqueue).

:func:`start` makes dask-jobqueue's cluster of that scheduler from Dask's own configuration
(``jobqueue.<scheduler>``: queue, account, cores, memory, walltime, ``job-script-prologue`` for a ``module
load`` or a venv's ``activate``), with a scheduler in this process that speaks TLS only, with a certificate
made for this run (:meth:`distributed.security.Security.temporary`): a client or worker without it cannot
connect, so another user of the cluster can neither read the grading data nor submit tasks. The workers'
copies of the certificate are files in ``--out``'s ``cluster/`` folder (mode 700; the jobs must read it,
so ``--out`` must be on a filesystem the compute nodes share; see :func:`_folder`), removed when the run ends.

:class:`Jobs` asks for ``--workers`` jobs, says how many run and how many wait in the queue while the grader
waits for the first (:meth:`Jobs.wait_for_first`, up to ``--worker-wait`` seconds), submits a job again for
each one the queue ends early (walltime, preemption, ``scancel``: its submission's task goes to another worker,
or its row is ``not graded``), and cancels every job at the end, also on Ctrl-C (:meth:`Jobs.close`).

Runs in the grader's process.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import dask

from ..config import JOBQUEUE_KINDS, REPO_ROOT, GradeConfig
from . import ClusterError

__all__ = ["Jobs", "start", "import_jobqueue", "RESCALE_SECONDS"]

#: How often the jobs are counted, and a job submitted again for each the queue ended.
RESCALE_SECONDS = 10.0


class Jobs:
    """The worker jobs of one run on a batch scheduler (see the module's docstring)."""

    def __init__(self, kind: str, cluster, wanted: int, folder: Path):
        self.kind, self.cluster, self.wanted, self.folder = kind, cluster, wanted, folder
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep_scaled, name="pgrade-jobs", daemon=True)

    def running(self, client) -> int:
        """Workers connected to the scheduler now."""
        return len(client.scheduler_info().get("workers", {}))

    def wait_for_first(self, client, timeout: float, progress: bool) -> None:
        """Wait until a worker is connected, saying how many run and wait; :class:`ClusterError` after ``timeout``
        seconds (the jobs are cancelled by :meth:`close`)."""
        start, said = time.monotonic(), None
        while True:
            n = self.running(client)
            line = f"{self.kind}: {n} of {self.wanted} workers running, {self.wanted - n} queued"
            if progress and line != said:
                print(line, flush=True)
                said = line
            if n:
                break
            if time.monotonic() - start > timeout:
                raise ClusterError(f"no {self.kind} worker job started in {timeout:g} s (--worker-wait): the queue "
                                   f"holds them (see squeue), or they fail as they start (their logs: "
                                   f"{self.folder / 'logs'})")
            time.sleep(1.0)
        if progress and n < self.wanted:
            print(f"{self.kind}: grading starts; the other workers join as the queue starts them", flush=True)
        self._keeper.start()

    def _keep_scaled(self) -> None:
        while not self._stop.wait(RESCALE_SECONDS):
            try:
                self.cluster.scale(self.wanted)  # a job the queue ended is dropped by Dask, then asked for again
            except Exception:  # noqa: BLE001 - the run goes on with the workers it has
                pass

    def close(self) -> None:
        """Cancel every job of the run and stop its scheduler (the certificate files go with it)."""
        self._stop.set()
        self.cluster.close()


def import_jobqueue():
    """Import dask-jobqueue; call in the main thread (it sets a SIGINT handler as it is imported). The handler it
    sets is put back as it was, so Ctrl-C still raises ``KeyboardInterrupt`` and the jobs are cancelled on the
    way out."""
    if "dask_jobqueue" in sys.modules:
        return sys.modules["dask_jobqueue"]
    before = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue  # noqa: PLC0415 - only for --cluster slurm and the like
    except ImportError as exc:
        raise ClusterError(f"--cluster with a batch scheduler needs dask-jobqueue ({exc}); install it in the "
                           "grader's environment (make venv does)") from None
    finally:
        signal.signal(signal.SIGINT, before)
    return dask_jobqueue


def _job_settings(kind: str) -> dict:
    conf = dask.config.get(f"jobqueue.{kind}", default={}) or {}
    if not conf.get("cores") or not conf.get("memory"):
        raise ClusterError(f"--cluster {kind}: Dask's configuration has no jobqueue.{kind}.cores or "
                           f"jobqueue.{kind}.memory; write them in ~/.config/dask/jobqueue.yaml (docs/cluster.md has "
                           "the file), or point DASK_CONFIG at a folder that has it")
    return conf


def _plain(path: Path) -> bool:
    """Can ``path`` go unquoted into a job script (dask-jobqueue writes its paths as they are)?"""
    return re.fullmatch(r"[\w@%+=:,./-]+", str(path)) is not None


def _folder(kind: str, cfg: GradeConfig, conf: dict) -> Path:
    """Where the run's certificate files and the jobs' logs go: Dask's ``shared-temp-directory`` when set, else
    ``--out``'s ``cluster/``, else ``~/.cache/pruning-course/cluster`` (the first a job script can name: no spaces
    or shell characters; each must be on a filesystem the compute nodes share)."""
    candidates = [Path(conf["shared-temp-directory"]).expanduser()] if conf.get("shared-temp-directory") else []
    candidates += [Path(cfg.out) / "cluster", Path.home() / ".cache" / "pruning-course" / "cluster"]
    for folder in candidates:
        if _plain(folder):
            return folder
    raise ClusterError(f"--cluster {kind}: a job script cannot name {candidates[0]} (spaces or shell characters); set "
                       f"jobqueue.{kind}.shared-temp-directory to a folder the compute nodes share, without them")


def start(kind: str, cfg: GradeConfig, preload: str):
    """The client and :class:`Jobs` of a new cluster of ``cfg.workers`` jobs on the batch scheduler ``kind``
    (:data:`~autograder.config.JOBQUEUE_KINDS`), whose workers import ``preload`` as they start;
    :class:`ClusterError` when it cannot be started."""
    from distributed import Client  # noqa: PLC0415
    from distributed.security import Security  # noqa: PLC0415

    conf = _job_settings(kind)
    folder = _folder(kind, cfg, conf)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    prologue = [*(conf.get("job-script-prologue") or []),
                f"export PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"]
    try:
        security = Security.temporary()
    except ImportError as exc:
        raise ClusterError(f"--cluster {kind} needs the cryptography package for its TLS certificate ({exc}); "
                           "install it in the grader's environment (make venv does)") from None
    cluster = None
    try:
        cluster = getattr(import_jobqueue(), JOBQUEUE_KINDS[kind])(
            security=security, shared_temp_directory=str(folder),
            python=shlex.quote(conf.get("python") or sys.executable),
            log_directory=conf.get("log-directory") or str(folder / "logs"), job_script_prologue=prologue,
            worker_extra_args=[*(conf.get("worker-extra-args") or []), "--preload", preload])
        cluster.scale(cfg.workers)
        (folder / "scheduler").write_text(f"scheduler {cluster.scheduler_address}\n")  # for dask's tools, with the cert
        client = Client(cluster, security=security)
    except Exception as exc:  # noqa: BLE001 - a missing sbatch, a refused job: said in one sentence
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()  # no job of a run that did not start is left in the queue
        raise ClusterError(f"--cluster {kind}: the worker jobs could not be submitted ({type(exc).__name__}: "
                           f"{str(exc).strip()[:400]})") from None
    return client, Jobs(kind, cluster, cfg.workers, folder)
