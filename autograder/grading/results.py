"""What grading learns about a submission: each check's result and the student's row (torch-free values).

Runs anywhere: plain values (the grader, a cluster worker, the journal and the report use them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CheckResult", "StudentGrade", "NOT_GRADED", "NO_SUBMISSION", "not_graded", "not_graded_summary"]


@dataclass
class CheckResult:
    """Outcome of one graded cell: points earned of ``max_points`` and messages for the student."""

    grade_id: str
    points: float
    max_points: float
    messages: list[str] = field(default_factory=list)


#: Status of a row the grader could not grade for a reason of its own (its sandbox, kernel, worker, disk):
#: ``not graded: <reason>``. Such a row has no points (not zeros), no feedback page, no gradebook entry and
#: no journal line, so the next run of the same command grades it again.
NOT_GRADED = "not graded"
#: Status of a student of the roster who handed in nothing: no points (not zeros), no feedback page, no
#: gradebook entry; the export leaves their grade blank and lists them.
NO_SUBMISSION = "no submission"


@dataclass
class StudentGrade:
    """Everything the run learned about one student."""

    student_id: str
    status: str
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    executed: Path | None = None
    #: Seconds spent on this student: ``prepare``, ``kernel`` (the whole notebook run),
    #: ``score``, ``record``, ``feedback``, and ``cells`` (seconds per graded cell id); on a cluster
    #: also ``render`` (the worker's :func:`notebook_feedback_html`) and ``worker`` (its address).
    timings: dict = field(default_factory=dict)
    #: The executed notebook as its feedback page shows it (:func:`notebook_feedback_html`), when a cluster
    #: worker rendered it already; ``None``: :func:`write_feedback` renders it. Dropped once written.
    notebook_html: str | None = field(default=None, repr=False)
    #: What the grader measured of the stored models, for the class report
    #: (:func:`autograder.grading.figures.submission_figures`); journaled with the grade.
    figures: dict = field(default_factory=dict, repr=False)
    #: What the submitted notebook carries besides its grade (:func:`autograder.classreport.traces.notebook_traces`),
    #: read from the submission in every run.
    traces: dict = field(default_factory=dict, repr=False)

    @property
    def score(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def graded(self) -> bool:
        """``False`` for a :data:`NOT_GRADED` row (the grader's failure, not the student's)."""
        return not self.status.startswith(NOT_GRADED)

    @property
    def has_points(self) -> bool:
        """``False`` for a row without points: :data:`NOT_GRADED` and :data:`NO_SUBMISSION` (empty, never zeros)."""
        return self.graded and self.status != NO_SUBMISSION


def not_graded(student_id: str, reason: str, notes: list[str] = (), timings: dict | None = None) -> StudentGrade:
    """The row of a submission the grader could not grade for a reason of its own (see :data:`NOT_GRADED`)."""
    reason = " ".join(reason.split())  # one line in grades.csv and the summary
    return StudentGrade(student_id, f"{NOT_GRADED}: {reason}", [], list(notes), timings=dict(timings or {}))


def not_graded_summary(grades: list[StudentGrade]) -> str | None:
    """One line on the rows that were not graded and why (``None`` when every row was graded)."""
    missing = [g for g in grades if not g.graded]
    if not missing:
        return None
    reasons: dict[str, list[str]] = {}
    for g in missing:
        reasons.setdefault(g.status[len(NOT_GRADED) + 2:], []).append(g.student_id)
    why = "; ".join(f"{', '.join(ids[:5])}{' and others' if len(ids) > 5 else ''}: {reason}"
                    for reason, ids in reasons.items())
    return (f"{len(missing)} of {len(grades)} submissions NOT GRADED because of the grading machine, not the "
            f"students ({why}). Their rows have no points and nothing was journaled: fix the cause and run the same "
            "command again; every graded row is reused.")
