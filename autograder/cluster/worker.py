"""A Dask worker's preparation for a grading run, and the task that grades one notebook.

:class:`GradingPlugin` is sent by the grader (:mod:`autograder.cluster.client`) to every worker of
the cluster, also to workers that join later or are restarted. On each worker it checks that the
worker's copy of the course code is the grader's, writes the grading data and model it carries
(checked by SHA-256) into a private folder, and starts as many sandboxed warm kernel slots as
the worker has threads, with the run's time, memory and process limits
(:class:`autograder.grading.local.LocalSlots`), and runs the preflight notebook in each of them
(:mod:`autograder.grading.preflight`: a worker that cannot run one fails to prepare, and the grader stops
with its reason before any row is written). :func:`grade_task` then grades one submission in
one of those slots, exactly as local grading does
(:func:`autograder.grading.notebook_job.run_and_score`): the notebook runs in the sandbox, the hidden
checks and scores run here, in the worker's own trusted code, never in a kernel; the executed notebook is
rendered here for its feedback page too (:func:`task_record`). The
grader publishes its measurements of the reference solution
(:class:`~autograder.grading.measure.Measurements`) as soon as it has them, while the first notebooks
run; the worker adopts them once, or measures the reference itself if it grades on another kind of
device than the grader measured on (:func:`~autograder.grading.measure.reference_from`). Whatever
else it measures it shares with the grader and the other workers through the scheduler
(:mod:`autograder.cluster.store`).

torch and the grading code are imported inside the plugin's methods and the task, on the worker: the
grader's client imports this module for the plugin's class before the run's own imports.

Runs in a Dask worker process.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from distributed import WorkerPlugin, get_worker

from ..config import REPO_ROOT, GradeConfig
from ..grading.local import private_folder

__all__ = ["GradingPlugin", "grade_task", "task_record", "code_digest", "PLUGIN_NAME"]

#: The plugin's name on every worker (one grading run at a time per cluster).
PLUGIN_NAME = "pruning-grader"


def code_digest() -> str:
    """SHA-256 of the course code a grade depends on: every ``.py`` file of ``helpers/`` and
    ``autograder/`` and the source notebook, by path and content."""
    digest = hashlib.sha256()
    files = sorted([*REPO_ROOT.glob("helpers/**/*.py"), *REPO_ROOT.glob("autograder/**/*.py"),
                    *REPO_ROOT.glob("assignment/source/**/*.ipynb")])
    for path in files:
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _drop_nanny_allocator_setting() -> None:
    """Remove from this worker's environment the ``MALLOC_TRIM_THRESHOLD_`` that Dask's nanny set
    (``distributed.nanny.pre-spawn-environ``), so that the kernels this worker starts do not inherit it:
    it turns glibc's dynamic mmap threshold off, and training then maps and unmaps every activation
    (see :func:`helpers.evaluate.steady_allocator`). A value the TA set otherwise is kept."""
    import dask

    nanny = dask.config.get("distributed.nanny.pre-spawn-environ", {}).get("MALLOC_TRIM_THRESHOLD_")
    if nanny is not None and os.environ.get("MALLOC_TRIM_THRESHOLD_") == str(nanny):
        del os.environ["MALLOC_TRIM_THRESHOLD_"]


class WorkerMismatch(RuntimeError):
    """The worker cannot grade for this run (other course code, or data that arrived damaged)."""


class GradingPlugin(WorkerPlugin):
    """Prepares a worker for one grading run (see the module's text).

    ``settings``: :class:`~autograder.config.GradeConfig` fields of the run (tolerances, limits,
    timeouts, sandbox). ``files``: ``{"model.pt": bytes, "data.npz": bytes}``, checked against
    ``sha256`` (the same names). ``code``: the grader's :func:`code_digest`. ``run``: the run's name in
    the scheduler's metadata (:class:`~autograder.cluster.store.SchedulerStore`). The worker runs as many
    notebooks at once as it has Dask threads (``jobs``), each with ``settings["threads"]`` CPU threads
    (``None``: the worker's CPUs divided by its Dask threads).
    """

    name = PLUGIN_NAME

    def __init__(self, settings: dict, files: dict[str, bytes], sha256: dict[str, str], code: str, run: str):
        self.settings, self.files, self.sha256, self.code, self.run = settings, files, sha256, code, run
        self.jobs = None
        self._folder: Path | None = None
        self.slots = self._owner = None
        self._reference_parts = None  # reference_from's arguments but the measurements
        self._receiving = False  # the first task started receiving the grader's measurements
        self._lock = None  # made on the worker (a lock does not travel)

    async def setup(self, worker) -> None:
        if code_digest() != self.code:
            raise WorkerMismatch(f"worker {worker.address} has other course code than the grader "
                                 f"(helpers/, autograder/ or the source notebook differ); update its checkout")
        self._lock = threading.Lock()
        _drop_nanny_allocator_setting()
        self._folder, self._folder_lock = private_folder("worker")  # removed when stale
        # Off the event loop (the worker keeps answering the scheduler), in a thread that lives until
        # teardown: the slot servers' sandboxes die with the thread that started them (--die-with-parent).
        self._owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgrade-slots")
        try:
            self.jobs = await asyncio.get_running_loop().run_in_executor(self._owner, self._prepare,
                                                                         worker.state.nthreads, worker.address)
        except BaseException:
            self.teardown(worker)
            raise

    def _prepare(self, nthreads: int, address: str):
        # torch and the grading code: imported here, on the worker (or by its preload), not by the grader's
        # client, which imports this module for the plugin's class before the run's own imports.
        import nbformat
        import numpy as np
        import torch

        from helpers import load_model
        from helpers.evaluate import steady_allocator
        from helpers.models import model_config

        from ..config import SOURCE_NOTEBOOK
        from ..grading.gradebook import read_points
        from ..grading.jobs import JobContext
        from ..grading.local import LocalSlots
        from ..grading.warm_imports import import_before_threads

        folder = self._folder
        for name, data in self.files.items():
            if hashlib.sha256(data).hexdigest() != self.sha256[name]:
                raise WorkerMismatch(f"{name} arrived damaged (SHA-256 differs from the grader's)")
            (folder / name).write_bytes(data)
        cfg = GradeConfig(submissions=folder, data_root=str(folder / "data.npz"), model=folder / "model.pt",
                          out=folder / "out", jobs=nthreads, **self.settings)
        cfg.out.mkdir()
        torch.set_num_threads(cfg.threads_per_job)
        steady_allocator()  # every hidden check's training and evaluation here, whatever runs first
        import_before_threads()  # before the task threads, which render feedback pages, and the reference's
        # thread, which trains (nothing when preloaded: autograder.cluster.preload)
        self.slots = LocalSlots.open(cfg)
        model = load_model(cfg.model)
        arch, config = model_config(model)
        with np.load(folder / "data.npz") as data:
            test_data, train_data = [data["X_test"], data["y_test"]], [data["X_train"], data["y_train"]]
        self._reference_parts = {"model": model, "arch": arch, "config": config, "test_data": test_data,
                                 "device": cfg.device, "train_data": train_data}
        self.slots.prepare(cfg, folder / "data.npz")
        executed = folder / "executed"
        executed.mkdir()
        source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
        jobs = JobContext(cfg, Future(), source, folder / "data.npz", read_points(), executed)
        self.preflight_seconds = self.slots.preflight(jobs, where=f"of worker {address}")
        return jobs

    def start_reference(self, client) -> None:
        """On the first task: wait, in a thread, for the grader's measurements of the reference (published
        when it has them: :func:`~autograder.cluster.store.publish_measurements`) and make this worker's
        reference from them (``jobs.ref``). The notebooks run meanwhile; only their scoring waits."""
        with self._lock:
            if self._receiving:
                return
            self._receiving = True
        threading.Thread(target=self._receive_reference, args=(client, self.jobs.ref), daemon=True,
                         name="pgrade-reference").start()

    def _receive_reference(self, client, ref: Future) -> None:
        from ..grading.measure import measuring_device, reference_from
        from .store import SchedulerStore, receive_measurements
        try:
            shared = SchedulerStore(lambda: client, [self.run, measuring_device(self._reference_parts["device"])])
            ref.set_result(reference_from(measured=receive_measurements(client, self.run), shared=shared,
                                          **self._reference_parts))
        except BaseException as exc:  # noqa: BLE001 - every grade of this worker says why
            ref.set_exception(exc)

    def teardown(self, worker) -> None:
        if self.slots is not None:
            self.slots.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            os.close(self._folder_lock)
        if self._owner is not None:
            self._owner.shutdown(wait=False)
        self.slots = self._folder = self.jobs = self._owner = None

    def restarts(self) -> int:
        return self.slots.restarts() if self.slots is not None else 0


def grade_task(student_id: str, nb_bytes: bytes, notes: list[str]) -> dict:
    """Grade one notebook on this worker; plain data for the grader (the executed notebook as bytes).

    The notebook runs at once; its scoring waits for the worker's reference
    (:meth:`GradingPlugin.start_reference`).

    Keys: ``status``, ``checks`` (:class:`~autograder.grading.results.CheckResult` fields), ``notes``,
    ``timings`` (with ``worker``: this worker's address, and ``render``), ``executed`` (bytes or ``None``),
    ``notebook_html`` (the executed notebook for the feedback page, or ``None``: :func:`task_record`),
    ``figures`` (for the class report: :func:`~autograder.grading.figures.submission_figures`).
    """
    from distributed import get_client

    from ..grading.submission import Submission

    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.jobs is None:
        raise WorkerMismatch(f"worker {worker.address} is not prepared for grading")
    plugin.start_reference(get_client())
    grade = plugin.slots.score(Submission(student_id, Path(f"{student_id}.ipynb"), list(notes)), nb_bytes, plugin.jobs)
    return task_record(grade, worker.address)


def task_record(grade, worker: str) -> dict:
    """What :func:`grade_task` returns for ``grade`` (a :class:`~autograder.grading.results.StudentGrade` made
    on worker ``worker``): its executed notebook's bytes (the file is removed) and that notebook rendered for
    the feedback page here, so that the grader, which every worker's results pass through, only writes it."""
    from ..grading.report import notebook_feedback_html

    executed = page = None
    timings = {**grade.timings, "worker": worker}
    if grade.executed is not None:
        executed = grade.executed.read_bytes()
        start = time.perf_counter()
        page = notebook_feedback_html(grade.executed)
        timings["render"] = round(time.perf_counter() - start, 3)
        grade.executed.unlink()
    return {"status": grade.status, "checks": [asdict(c) for c in grade.checks], "notes": grade.notes,
            "timings": timings, "executed": executed, "notebook_html": page, "figures": grade.figures}
