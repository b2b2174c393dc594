"""Grading on a Dask cluster (``python -m autograder grade --cluster ...``).

:class:`DaskCluster` connects to a scheduler (``tcp://host:8786``) or starts a ``LocalCluster``
(``local:N``), sends every worker the run's :class:`~autograder.cluster.worker.GradingPlugin`
(grading data, model, settings, code digest), and grades each submission as one task
(:func:`~autograder.cluster.worker.grade_task`). What the grader and the workers measure is shared
through the scheduler (:mod:`autograder.cluster.store`), so each model is measured once per run, as
in local grading. Everything else stays in the grader: reusing
the journal, the gradebook, feedback and ``grades.csv`` (:mod:`autograder.grading.batch`), so a
result is durable as soon as its task returns, whatever happens to the cluster afterwards. Every result
passes through the grader, so its work per submission bounds how many workers help; the workers
therefore also render each executed notebook for its feedback page (about 0.3 CPU s, more than the
rest of the page), and the grader writes the page around it.

The scheduler needs nothing of this course: a stock ``dask scheduler`` (or one that dask-jobqueue or
dask-kubernetes starts) works, since every setting goes through the client and every function the grader
sends runs on the workers. A worker that dies while running a task (``kill -9``, a lost machine) has that
task run again on another worker, as many times as the scheduler's ``distributed.scheduler.allowed-failures``
allows (Dask's default 3; a ``local:N`` cluster, which this process starts, uses :data:`ALLOWED_FAILURES`);
after that the submission's row says ``not graded`` (never a grade: a rerun tries it again) and the rest of
the class is graded.

Runs in the grader's process.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import shlex
import shutil
import sys
import tempfile
import uuid
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import dask
from distributed import Client, KilledWorker, LocalCluster
from distributed.utils import get_mp_context

from ..config import JOBQUEUE_KINDS, REPO_ROOT, GradeConfig, local_workers
from ..grading.results import CheckResult, StudentGrade
from ..runner.limits import LimitsInForce
from . import ClusterError, ClusterLost, WorkerLost, jobqueue
from .store import SchedulerStore, drop_run, forget_measurements, publish_measurements
from .worker import PLUGIN_NAME, GradingPlugin, code_digest, grade_task

if TYPE_CHECKING:  # torch comes with them: imported while the cluster starts (DaskCluster.open)
    from ..grading.jobs import JobContext
    from ..grading.submission import Submission

__all__ = ["DaskCluster", "worker_command", "call_on_worker", "WORKER_SETTINGS", "ALLOWED_FAILURES", "LOCAL_SETTINGS",
           "WORKER_PRELOAD"]

#: How many times a task may lose its worker on a ``local:N`` cluster and run again before its row is not graded.
ALLOWED_FAILURES = 1
#: GradeConfig fields a worker's own configuration takes from the grader's.
WORKER_SETTINGS = tuple(f.name for f in fields(GradeConfig)
                        if f.init and f.name not in {"submissions", "data_root", "model", "out", "jobs", "regrade",
                                                     "regrade_status", "cluster", "roster", "similarity_threshold",
                                                     "workers", "worker_wait"})
#: Submissions sent to the scheduler at least at a time (each waits in a thread of the grader).
IN_FLIGHT = 64
#: Seconds to wait for a scheduler, and for at least one worker.
CONNECT_TIMEOUT = 30
#: The module a ``local:N`` cluster's workers import as they start (:mod:`autograder.cluster.preload`).
WORKER_PRELOAD = "autograder.cluster.preload"
#: Dask settings of a ``local:N`` cluster, whose scheduler and workers share the grading machine's cores with
#: the notebooks. Each periodic task below wakes a process many times a second for nothing a grading run
#: uses; measured on 2 cores, an idle ``local:2`` took 2.75 s of CPU in 30 s with Dask's defaults (the
#: grader's process, which holds the scheduler, 1.51 s) and 0.37 s with these. Grading tasks run for many
#: seconds and a worker takes one at a time (``worker-saturation`` 1.0 keeps the rest in the scheduler's
#: queue), so no task waits on another worker to be stolen; the event loop's tick (every 20 ms: it only
#: warns of a blocked loop) and the system monitor (every 0.5 s: the dashboard's figures, and there is no
#: dashboard) can be slow; the statistical profiler (every thread sampled 100 times a second) is off.
#: The workers are forked from one server process that imports :data:`WORKER_PRELOAD` once
#: (:func:`_preload_once`), instead of each starting a new interpreter that imports it (torch and the grading
#: code: about 4 s of CPU per worker, while the grader imports the same and the kernel slots start).
LOCAL_SETTINGS = {"distributed.worker.multiprocessing-method": "forkserver",
                  "distributed.scheduler.worker-saturation": 1.0,
                  "distributed.scheduler.work-stealing": False,
                  "distributed.worker.profile.enabled": False,
                  "distributed.admin.tick.interval": "1s",
                  "distributed.admin.system-monitor.interval": "2s"}


def _preload_once() -> None:
    """Have the multiprocessing fork server that starts this process's local workers import
    :data:`WORKER_PRELOAD` (with Dask) before it forks the first; call under :data:`LOCAL_SETTINGS`. Once
    that server runs, later calls change nothing (it keeps what it imported)."""

    get_mp_context().set_forkserver_preload(["distributed", WORKER_PRELOAD])


class _Call:
    """``fn(*args)``, called when this object is unpickled (:func:`call_on_worker`)."""

    def __init__(self, fn, args: tuple):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def call_on_worker(fn, *args) -> bytes:
    """A task's argument for ``client.submit(pickle.loads, call_on_worker(fn, *args))``: a pickle whose loading
    calls ``fn(*args)`` (``fn`` by its module and name) and returns its result.

    Dask's scheduler unpickles every task it is given (to build its graph), so a task whose function is this
    course's would need the course's code on the scheduler. Submitted this way the scheduler sees only
    :func:`pickle.loads` and bytes: a stock ``dask scheduler`` runs it, and only the worker imports ``fn``.
    """
    return pickle.dumps(_Call(fn, args), protocol=pickle.HIGHEST_PROTOCOL)


def worker_command(address: str) -> str:
    """The command that starts a worker able to grade for the scheduler at ``address`` (this machine's paths)."""
    return (f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} {shlex.quote(sys.executable)} -m distributed.cli.dask_worker "
            f"{address} --nthreads 1 --preload {WORKER_PRELOAD}")


class DaskCluster:
    """A connection to the grading cluster (a context manager: closes what it started).

    An :class:`~autograder.grading.executor.Executor`: :func:`autograder.grading.grade.grade` takes
    :meth:`open`, which the command line passes for ``--cluster``.

    Example::

        grade(cfg, DaskCluster.open)  # cfg.cluster: "local:2", or a scheduler's address
    """

    def __init__(self, client, local_cluster=None, jobs: jobqueue.Jobs | None = None, wait: float = 30.0,
                 progress: bool = True):
        self.client, self.local_cluster, self.jobs = client, local_cluster, jobs
        self.wait, self.progress = wait, progress
        self.address = client.scheduler.address if client.scheduler is not None else "?"
        self._registered = False
        #: This grading run's name in the scheduler's metadata (its shared measurements: :meth:`store`).
        self.run = f"pgrade-{uuid.uuid4().hex[:12]}"
        self.where = "on a Dask cluster"

    @functools.cached_property
    def work(self) -> Path:
        """A private folder for the run's shared files (the grading data sent to the workers), made when first
        asked for and removed by :meth:`close`."""
        return Path(tempfile.mkdtemp(prefix="pgrade-client-"))

    @classmethod
    def open(cls, cfg: GradeConfig, progress: bool = True) -> DaskCluster:
        """Connect to the cluster ``cfg.cluster`` (``local:N``: start its processes) in a thread while this
        process imports torch, nbformat and nbgrader and what its grading threads would import late
        (:func:`~autograder.grading.warm_imports.import_before_threads`). Raises :class:`ClusterError` when the
        cluster cannot grade."""
        if cfg.cluster in JOBQUEUE_KINDS:
            jobqueue.import_jobqueue()  # here, in the main thread
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgrade-connect") as starter:
            connecting = starter.submit(cls.connect, cfg.cluster, progress, cfg)
            try:
                # torch, nbformat, nbgrader and what the grading threads import late: while the cluster starts
                from ..grading import batch  # noqa: F401, PLC0415
                from ..grading.warm_imports import import_before_threads  # noqa: PLC0415
                import_before_threads()  # a local:N cluster's fork server imports as much before its workers start
            except BaseException:
                if connecting.exception() is None:
                    connecting.result().close()
                raise
        cluster = connecting.result()
        cluster.where = f"on the Dask cluster {cfg.cluster}"
        return cluster

    @classmethod
    def connect(cls, address: str, progress: bool = True, cfg: GradeConfig | None = None) -> DaskCluster:
        """Connect to the scheduler at ``address``, start ``local:N`` worker processes here, or submit
        ``cfg.workers`` worker jobs to a batch scheduler (``slurm``: :mod:`autograder.cluster.jobqueue`)."""
        if address in JOBQUEUE_KINDS:
            if cfg is None:
                raise ClusterError(f"--cluster {address} needs the run's settings (--workers, --out)")
            client, jobs = jobqueue.start(address, cfg, WORKER_PRELOAD)
            if progress:
                print(f"{address}: asked for {cfg.workers} worker job{'s' if cfg.workers != 1 else ''} (TLS, this "
                      f"run's certificate)", flush=True)
            return cls(client, jobs=jobs, wait=cfg.worker_wait, progress=progress)

        n = local_workers(address)
        if n is not None:
            with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES, **LOCAL_SETTINGS,
                                  "distributed.worker.preload": [WORKER_PRELOAD]}):
                _preload_once()
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       memory_limit=0, silence_logs=40)  # the job slots' cgroups limit memory
            return cls(Client(cluster), cluster)
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise ClusterError(f"no Dask scheduler answers at {address} ({exc}); start one with "
                               f"'dask scheduler' and workers with 'dask worker {address}'") from None
        return cls(client)

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._registered:
            try:
                self.client.unregister_worker_plugin(PLUGIN_NAME)
                drop_run(self.client, self.run)
                forget_measurements(self.client, self.run)
            except Exception:  # noqa: BLE001 - a lost scheduler has nothing left to unregister
                pass
        try:
            self.client.close()
            if self.local_cluster is not None:
                self.local_cluster.close()
            if self.jobs is not None:
                self.jobs.close()  # every job cancelled
        finally:
            if "work" in self.__dict__:  # made (cached_property) only when a run asked for it
                shutil.rmtree(self.work, ignore_errors=True)

    def publish(self, ref: Future) -> None:
        """Give every worker the reference's measurements once ``ref`` (a future of
        :class:`~autograder.grading.measure.ReferenceMeasurements`) is done, or why there are none."""
        exc = ref.exception()
        if exc is not None:
            publish_measurements(self.client, self.run, error=f"{type(exc).__name__}: {exc}")
        else:
            publish_measurements(self.client, self.run, ref.result().measurements())

    def share(self, ref: Future, part3: bool) -> None:
        """Publish the reference's measurements to the workers (their notebooks are already running), then, when
        part 3 is graded, measure its reference starting models for all of them
        (:func:`~autograder.grading.part3_checks.measure_reference_starts`)."""
        self.publish(ref)
        if ref.exception() is not None or not part3:
            return
        from ..grading.part3_checks import measure_reference_starts  # noqa: PLC0415 - torch: not at import (the command line)
        try:
            measure_reference_starts(ref.result())
        except Exception as exc:  # noqa: BLE001 - only saves the workers time
            print(f"warning: part 3's reference models could not be measured for the workers "
                  f"({type(exc).__name__}: {exc}); each worker measures them for itself", file=sys.stderr)

    def preflight(self, context) -> None:
        """Nothing here: each worker ran the preflight notebook in its slots when it prepared."""
        return None

    def store(self, device_kind: str) -> SchedulerStore:
        """The measurements this run shares on ``device_kind``
        (:func:`~autograder.grading.measure.measuring_device`), as the workers see them."""
        return SchedulerStore(lambda: self.client, [self.run, device_kind])

    def prepare(self, cfg: GradeConfig, data_file: Path) -> int:
        """Send every worker (present and future) this run's plugin and wait until they are ready.

        Returns how many submissions to keep in flight: at least :data:`IN_FLIGHT`, and twice the
        cluster's threads, so that no worker waits for the grader and workers that join later get
        work. Raises :class:`ClusterError` when no worker joins in :data:`CONNECT_TIMEOUT` seconds or
        a worker cannot prepare (the message says which and why).
        """
        files = {"model.pt": Path(cfg.model).read_bytes(), "data.npz": Path(data_file).read_bytes()}
        settings = {name: getattr(cfg, name) for name in WORKER_SETTINGS}
        if self.local_cluster is not None:  # N workers share this machine's cores
            settings["threads"] = cfg.threads_per_job
        elif not cfg.memory_limit_given:  # each worker's share of its own machine (or job), not of this one
            settings["memory_limit"] = None
        plugin = GradingPlugin(settings, files, {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
                               code_digest(), self.run)
        try:
            if self.jobs is not None:
                self.jobs.wait_for_first(self.client, self.wait, self.progress)
            else:
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClusterError(f"no worker joined the scheduler in {CONNECT_TIMEOUT} s; start one with "
                               f"'dask worker {self.client.scheduler.address}'") from None
        try:
            self._registered = True  # also if only some workers took it
            self.client.register_plugin(plugin, name=PLUGIN_NAME)
        except Exception as exc:
            if isinstance(exc, ModuleNotFoundError) or "No module named" in str(exc):
                raise ClusterError(f"a worker cannot import the course's code ({exc}); start every worker from "
                                   f"the course's environment: {worker_command(self.address)}") from None
            raise ClusterError(f"a worker could not prepare for grading: {type(exc).__name__}: {exc}") from None
        self._limits = self._worker_limits()
        return max(IN_FLIGHT, 2 * sum(self.client.nthreads().values()))

    def _worker_limits(self) -> dict[str, dict]:
        """Each prepared worker's limits (:class:`~autograder.runner.limits.LimitsInForce`), printed here too:
        the TA reads them with the run's first lines, not in the workers' logs."""
        try:
            found = {address: limits for address, limits in self.client.run(_limits).items() if limits}
        except Exception:  # noqa: BLE001 - only a report
            return {}
        for address, limits in sorted(found.items()):
            for line in LimitsInForce(**limits).lines():
                print(f"{address}: {line}", flush=True)
        return found

    def limits_in_force(self) -> dict:
        """The workers' limits by address, as :meth:`prepare` found them."""
        return dict(getattr(self, "_limits", {}))

    def score(self, sub: Submission, nb_bytes: bytes, jobs: JobContext) -> StudentGrade:
        """Grade ``sub`` on a worker; its executed notebook is written to ``jobs.executed_dir`` here."""
        future = self.client.submit(pickle.loads, call_on_worker(grade_task, sub.student_id, nb_bytes, list(sub.notes)),
                                    pure=False, key=f"grade-{sub.student_id}-{uuid.uuid4().hex[:8]}")
        try:
            record = future.result()
        except (CancelledError, OSError) as exc:  # the grader cancels nothing: the scheduler is gone
            raise ClusterLost(f"lost the Dask scheduler at {self.address} ({type(exc).__name__}); every submission "
                              "graded before is journaled: rerun the same command to grade the rest") from None
        except KilledWorker:  # not journaled (the grader's handler makes the row): a rerun tries again
            raise WorkerLost("the grading worker died while running this notebook, each time the scheduler sent "
                             "it to one (its distributed.scheduler.allowed-failures); rerun the command to try "
                             "again") from None
        executed = None
        if record["executed"] is not None:
            executed = jobs.executed_dir / f"{sub.student_id}.ipynb"
            executed.write_bytes(record["executed"])
        return StudentGrade(sub.student_id, record["status"], [CheckResult(**c) for c in record["checks"]],
                            record["notes"], executed=executed, timings=record["timings"],
                            notebook_html=record.get("notebook_html"), figures=record.get("figures") or {})

    def restarts(self) -> int:
        """Kernel servers restarted on the workers during this run."""
        try:
            counts = self.client.run(_restarts)
        except Exception:  # noqa: BLE001 - only a statistic
            return 0
        return sum(counts.values())


def _limits(dask_worker=None) -> dict | None:
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    slots = getattr(plugin, "slots", None)
    return slots.limits.as_dict() if slots is not None else None


def _restarts(dask_worker=None) -> int:
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.restarts() if plugin is not None else 0
