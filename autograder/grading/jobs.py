"""One submission's job in a grading run, from its notebook to its recorded grade.

:func:`grade_one` reuses the journal's grade of an unchanged submission, or has the run's executor run and
score it (:meth:`~autograder.grading.executor.Executor.score`: this machine's job slots,
:mod:`autograder.grading.notebook_job`, or a cluster worker), and then records it in the gradebook, writes
its feedback and appends it to the journal (:func:`finish_grade`).

Runs in the grader's process (a cluster worker uses :class:`JobContext` only).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..classreport.traces import notebook_traces
from ..config import GradeConfig
from .journal import Journal, grade_key
from .parts import graded_checks
from .report import write_feedback
from .results import CheckResult, StudentGrade, not_graded
from .statuses import cannot_read
from .submission import Submission

__all__ = ["JobContext", "RunState", "Scorer", "grade_one", "finish_grade", "zero_checks"]


def zero_checks(points: dict[str, float], message: str) -> list[CheckResult]:
    """Every graded check of ``points`` at 0 points, each with ``message``."""
    return [CheckResult(gid, 0.0, points[gid], [message]) for gid in graded_checks(points)]


@dataclass
class JobContext:
    """What running and scoring a notebook needs: the same in the grader and on a cluster worker."""

    cfg: GradeConfig
    #: A future of the run's :class:`~autograder.grading.measure.ReferenceMeasurements` (scoring waits on it).
    ref: Future
    source: nbformat.NotebookNode
    data_file: Path
    points: dict[str, float]
    executed_dir: Path


#: ``(submission, its notebook's bytes, context) -> StudentGrade``: grades a submission that must run.
Scorer = Callable[[Submission, bytes, JobContext], StudentGrade]


@dataclass
class RunState:
    """What every job of one grading run shares: its :class:`JobContext`, scorer, gradebook and journal."""

    context: JobContext
    score: Scorer
    course: Future
    journal: Journal
    run_key: str
    reused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cfg(self) -> GradeConfig:
        return self.context.cfg

    @property
    def points(self) -> dict[str, float]:
        return self.context.points


def grade_one(sub: Submission, run: RunState) -> StudentGrade:
    """Grade one submission (or reuse its journal entry) with ``run.score``, record it and write its feedback
    (called in a worker thread)."""
    try:
        nb_bytes = sub.path.read_bytes()
    except OSError as exc:
        grade = StudentGrade(sub.student_id, cannot_read(exc),
                             zero_checks(run.points, "the notebook could not be read"))
        return finish_grade(grade, None, False, run)
    key = grade_key(hashlib.sha256(nb_bytes).hexdigest(), run.run_key)
    grade = run.journal.reuse(sub.student_id, key, run.context.executed_dir)
    if grade is not None and run.cfg.must_regrade(sub.student_id, grade.status):
        grade = None
    reused = grade is not None
    if reused:
        with run.lock:  # jobs run in threads
            run.reused += 1
    else:
        grade = run.score(sub, nb_bytes, run.context)
    grade.traces = notebook_traces(nb_bytes)
    return finish_grade(grade, key, reused, run)


def finish_grade(grade: StudentGrade, key: str | None, reused: bool, run: RunState) -> StudentGrade:
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


def _finish(grade: StudentGrade, key: str | None, reused: bool, run: RunState) -> StudentGrade:
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
