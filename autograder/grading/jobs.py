"""Runs in the grader's process (or a cluster worker's): one submission's job, from its notebook to its grade.

:func:`grade_one` reuses the journal's grade of an unchanged submission, or has it graded by
:func:`run_and_score` (here, or on a cluster worker: :mod:`autograder.cluster`), and then
records it in the gradebook, writes its feedback and appends it to the journal
(:func:`finish_grade`). :func:`run_and_score` prepares a copy of the notebook
(:mod:`autograder.grading.submission`), runs it in a job slot (:mod:`autograder.runner`) with its
own copies of the grading data, the model and the export code, scores what it saved
(:mod:`autograder.grading.scoring`) and names any limit it hit.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from helpers.config import ENV_CACHE, ENV_EVAL_PER_CLASS, ENV_MODEL, ENV_ROOT

from ..config import DISPLAY_CELLS, GradeConfig
from ..runner.execute import run_notebook
from ..runner.kernels import kernel_environment
from ..runner.limits import format_size
from ..runner.provisioning import ForkedKernelManager, SandboxedKernelManager
from ..runner.sandbox import inside_path
from ..runner.slots import Slot, SlotPool
from .collect import ENV_EXPORT, ENV_EXPORT_CODE
from .journal import Journal, grade_key
from .parts import graded_checks
from .report import StudentGrade, not_graded, write_feedback
from .scoring import CheckResult, score_submission
from .submission import Submission, SubmissionError, preamble_end, prepare_notebook, read_notebook

__all__ = ["Jobs", "Run", "Scorer", "grade_one", "run_and_score", "finish_grade", "zero_checks",
           "job_environment", "preamble_failure", "MachineFailure", "prepare_job", "execute_job", "restart_slot",
           "log_tail", "with_log", "NOT_SANDBOXED", "EXPORT_CODE", "RETRIES"]

#: The note every row gets when grading ran with ``--no-sandbox``.
NOT_SANDBOXED = "not sandboxed"
#: The export code copied into every job folder (run there by the hidden-test regions).
EXPORT_CODE = Path(__file__).with_name("collect.py")
#: Fresh kernels a submission gets after a failure of the grading machine before its row says ``not graded``.
RETRIES = 2


class MachineFailure(RuntimeError):
    """A job failed for a reason of the grading machine's, before any student code ran (its kernel or sandbox
    could not start, a set-up cell failed, the grader's own files could not be written); the message says why.
    Never a grade: the job is retried, then reported as not graded (:func:`~autograder.grading.report.not_graded`)."""


def job_environment(job: Path, threads: int, sandbox) -> dict[str, str]:
    """A kernel's environment in job folder ``job`` (as the kernel sees it): its private data, model,
    cache, export folder and export code, on top of :func:`~autograder.runner.kernels.kernel_environment`.
    The notebook's ``test_data`` is the grading data's whole test split (``evaluation_data`` takes no sample),
    so the accuracies a student's code stores are measured on the grader's own images."""
    env = kernel_environment(threads, home=None if sandbox is not None else job / "home", sandbox=sandbox)
    env.update({ENV_ROOT: str(job / "data.npz"), ENV_CACHE: str(job / "cache"), ENV_MODEL: str(job / "model.pt"),
                ENV_EVAL_PER_CLASS: "all", ENV_EXPORT: str(job / "export"),
                ENV_EXPORT_CODE: str(job / "grader_export.py")})
    return env


def zero_checks(points: dict[str, float], message: str) -> list[CheckResult]:
    return [CheckResult(gid, 0.0, points[gid], [message]) for gid in graded_checks(points)]


@dataclass
class Jobs:
    """What running and scoring a notebook needs: the same in the grader and on a cluster worker."""

    cfg: GradeConfig
    ref: Future
    source: nbformat.NotebookNode
    data_file: Path
    points: dict[str, float]
    slots: SlotPool
    executed_dir: Path
    rlimit_as: int | None = None


#: ``(submission, its notebook's bytes, jobs) -> StudentGrade``: grades a submission that must run.
Scorer = Callable[[Submission, bytes, Jobs], StudentGrade]


@dataclass
class Run:
    """What every job of one grading run shares: :class:`Jobs`, the gradebook and the journal."""

    jobs: Jobs
    course: Future
    journal: Journal
    run_key: str
    reused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cfg(self) -> GradeConfig:
        return self.jobs.cfg

    @property
    def points(self) -> dict[str, float]:
        return self.jobs.points


def grade_one(sub: Submission, run: Run, scorer: Scorer | None = None) -> StudentGrade:
    """Grade one submission (or reuse its journal entry), record it and write its feedback (worker thread).

    ``scorer`` runs and scores the notebook (default :func:`run_and_score`, in this process's slots).
    """
    try:
        nb_bytes = sub.path.read_bytes()
    except OSError as exc:
        grade = StudentGrade(sub.student_id, f"error: cannot read the notebook: {exc}",
                             zero_checks(run.points, "the notebook could not be read"))
        return finish_grade(grade, None, False, run)
    key = grade_key(hashlib.sha256(nb_bytes).hexdigest(), run.run_key)
    grade = run.journal.reuse(sub.student_id, key, run.jobs.executed_dir)
    if grade is not None and run.cfg.must_regrade(sub.student_id, grade.status):
        grade = None
    reused = grade is not None
    if reused:
        with run.lock:  # jobs run in threads
            run.reused += 1
    else:
        grade = (scorer or run_and_score)(sub, nb_bytes, run.jobs)
    return finish_grade(grade, key, reused, run)


def finish_grade(grade: StudentGrade, key: str | None, reused: bool, run: Run) -> StudentGrade:
    """Record ``grade`` in the gradebook (unless it is there), write its feedback, journal it (with a ``key``).

    A row that was not graded (the machine's failure) is none of these: it has no points to record and the
    next run grades it again. A failure to write any of them makes the row not graded as well (nothing of it
    is journaled, so nothing wrong is reused)."""
    if not grade.graded:
        return grade
    try:
        return _finish(grade, key, reused, run)
    except OSError as exc:
        return not_graded(grade.student_id, f"the grader could not write its results to {run.cfg.out}: {exc}",
                          grade.notes, grade.timings)


def _finish(grade: StudentGrade, key: str | None, reused: bool, run: Run) -> StudentGrade:
    recorded = reused and run.course.exception() is None and run.course.result().has(grade.student_id)
    if grade.executed is not None and not recorded and run.course.exception() is None:  # waits for the course
        start = time.perf_counter()
        problem = run.course.result().record(grade.student_id, grade.executed)
        grade.timings["record"] = round(time.perf_counter() - start, 3)
        if problem and problem not in grade.notes:
            grade.notes.append(problem)
    start = time.perf_counter()
    write_feedback(run.cfg.out / "feedback", grade, sum(run.points[g] for g in graded_checks(run.points)))
    grade.timings["feedback"] = round(time.perf_counter() - start, 3)
    grade.notebook_html = None  # a class's pages are not all kept in memory until the run ends
    if key is not None and not reused:
        run.journal.add(grade, key)
    return grade


def _limit_status(status: str, before: dict, after: dict, cfg: GradeConfig) -> tuple[str, list[str]]:
    """The job's status and notes once the slot's limit counters are known."""
    notes = []
    if after.get("oom_kill", 0) > before.get("oom_kill", 0):
        status = f"error: memory limit ({format_size(cfg.memory_limit)}) exceeded"
    if after.get("pids_max", 0) > before.get("pids_max", 0):
        notes.append(f"process limit ({cfg.pids_limit}) reached: the notebook's forks were refused")
        if status.startswith("error: the kernel died"):
            status = f"error: process limit ({cfg.pids_limit}) reached"
    return status, notes


def run_and_score(sub: Submission, nb_bytes: bytes, run: Jobs) -> StudentGrade:
    """Prepare, run and score one notebook in a free slot of ``run`` (the executed notebook is kept in
    ``run.executed_dir``).

    A failure of the grading machine before any student code ran (:class:`MachineFailure`) is tried again on a
    fresh kernel server, :data:`RETRIES` times; if it persists, or the grader itself fails, the row says
    ``not graded: <reason>`` (:func:`~autograder.grading.report.not_graded`), never a grade."""
    cfg, points = run.cfg, run.points
    start = time.perf_counter()
    try:
        nb = read_notebook(sub.path, data=nb_bytes)
        nb, notes = prepare_notebook(nb, run.source, lean=not cfg.full_notebook, display_cells=DISPLAY_CELLS)
    except SubmissionError as exc:
        return StudentGrade(sub.student_id, f"error: {exc}", zero_checks(points, str(exc)), list(sub.notes))
    notes = list(sub.notes) + notes
    if not cfg.sandbox:
        notes.append(NOT_SANDBOXED)
    tries: list[str] = []
    for attempt in range(1 + RETRIES):
        slot = run.slots.take()
        grade = None
        try:
            if attempt:
                restart_slot(slot)  # a fresh kernel server too, not only a fresh kernel
            grade = _run_in_slot(sub, nb, notes, slot, run, start)
        except MachineFailure as exc:
            tries.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - the grader's own failure: never a grade, not worth a retry
            grade = not_graded(sub.student_id, f"the grader failed: {type(exc).__name__}: {exc}", notes)
        finally:
            begin = time.perf_counter()
            slot.clean()
            run.slots.give(slot)
        if grade is not None:
            grade.timings["clean"] = round(time.perf_counter() - begin, 3)
            if tries:
                grade.timings["machine_failures"] = tries
            return grade
    return not_graded(sub.student_id, f"{tries[-1]} ({len(tries)} tries)", notes, {"machine_failures": tries})


def restart_slot(slot: Slot) -> None:
    """Give ``slot`` a fresh kernel server; :class:`MachineFailure` when it cannot start."""
    try:
        slot.restart()
    except (OSError, RuntimeError, ValueError) as exc:
        raise MachineFailure(f"the slot's kernel server could not be restarted: {type(exc).__name__}: {exc}") from None


def preamble_failure(nb, status: str) -> str | None:
    """Why the grading machine failed a run, or ``None``: the executed notebook ``nb`` (prepared by
    :func:`~autograder.grading.submission.prepare_notebook`) ended with ``status`` before its set-up cells
    (:func:`~autograder.grading.submission.preamble_end`) had all run, or one of them failed. Up to there only
    the grader's and the instructor's code runs, in a fresh kernel, so the student cannot be the cause."""
    for cell in nb.cells[:preamble_end(nb) + 1]:
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id") or "the seed cell"
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if error is not None:
            return (f"the instructor's set-up cell {gid} failed before any student code ran: "
                    f"{error.get('ename')}: {str(error.get('evalue'))[:300]}")
        if cell.get("execution_count") is None:
            why = "the kernel did not start" if status.startswith("error") else f"status {status}"
            return f"the kernel stopped before any student code ran, in {gid} ({why}: {status})"
    return None


def _run_in_slot(sub: Submission, nb, notes: list[str], slot: Slot, run: Jobs, start: float) -> StudentGrade:
    cfg, points = run.cfg, run.points
    job = prepare_job(slot, nb, run)
    timings = {"prepare": round(time.perf_counter() - start, 3)}
    done, limit_notes = execute_job(slot, job, run)
    machine = preamble_failure(done["notebook"], done["status"])
    if machine is not None:
        raise MachineFailure(with_log(machine, job / "executed.kernel.log", slot.log))
    ref = run.ref.result()
    begin = time.perf_counter()
    checks = score_submission(job / "export", ref, cfg, points)
    timings.update(kernel=done["seconds"], score=round(time.perf_counter() - begin, 3), cells=done["cells"])
    executed = None
    if (job / "executed.ipynb").is_file():
        executed = run.executed_dir / f"{sub.student_id}.ipynb"
        shutil.copy(job / "executed.ipynb", executed)
    return StudentGrade(sub.student_id, done["status"], checks, notes + limit_notes, executed=executed,
                        timings=timings)


def prepare_job(slot: Slot, nb, run: Jobs) -> Path:
    """The slot's fresh job folder with ``nb`` as ``pruning.ipynb`` and private copies of the grading data,
    the model and the export code (a kernel can only spoil its own); :class:`MachineFailure` when that fails
    (a full disk, a kernel server that cannot start)."""
    try:
        job = slot.fresh_job()
        nbformat.write(nb, job / "pruning.ipynb")
        shutil.copy(run.data_file, job / "data.npz")
        shutil.copy(run.cfg.model, job / "model.pt")
        shutil.copy(EXPORT_CODE, job / "grader_export.py")
    except (OSError, RuntimeError, ValueError) as exc:
        raise MachineFailure(f"the job could not be prepared: {type(exc).__name__}: {exc}") from None
    return job


def log_tail(path: Path, lines: int = 1) -> list[str]:
    """The last ``lines`` non-empty lines of a log (none when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.rstrip()[:300] for line in text.splitlines() if line.strip()][-lines:]


def with_log(reason: str, *logs: Path) -> str:
    """``reason`` and the last line of the first of ``logs`` that has one (the kernel's, then its server's)."""
    for log in logs:
        tail = log_tail(log)
        if tail:
            return f"{reason}; last line of {log.name}: {tail[-1].strip()}"
    return reason


def execute_job(slot: Slot, job: Path, run: Jobs) -> tuple[dict, list[str]]:
    """Run the job's notebook in the slot; the run's result and notes on limits that were hit."""
    cfg = run.cfg
    before = slot.limits.events() if slot.limits else {}
    sandboxed = slot.sandbox is not None
    env = job_environment(inside_path(job, slot.folder) if sandboxed else job, cfg.threads_per_job, slot.sandbox)
    km = None
    if slot.server is None and slot.sandbox is not None:
        km = SandboxedKernelManager.for_job(job, slot.sandbox, slot.folder, slot.limits)
    elif slot.server is not None:
        km = ForkedKernelManager.for_server(slot.server, job / "executed.kernel.log", job=job, rlimit_as=run.rlimit_as)
    done = run_notebook(job / "pruning.ipynb", job / "executed.ipynb", env, cfg.cell_timeout, cfg.timeout, km=km)
    after = slot.limits.events() if slot.limits else {}
    done["status"], notes = _limit_status(done["status"], before, after, cfg)
    return done, notes
