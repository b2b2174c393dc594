"""The end of a grading run, for the class report: ``DIR/class.json``, then ``DIR/report.html``.

:func:`class_record` turns the run's grades into the report's record (:mod:`autograder.classreport.record`:
plain values, the only thing of grading the report reads); :func:`write_report` writes it and builds the page
and the pairs' CSV. A report that cannot be built is a warning: grades, feedback and the gradebook are
already written and stay as they are.

Runs in the grader's process.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future
from pathlib import Path

import nbformat

from ..classreport import Built, SimilarityConfig, build_report
from ..classreport.record import CheckInfo, ClassRecord, StudentRecord, write_class_record
from ..config import ASSIGNMENT, NOTEBOOK, GradeConfig
from .cells import TITLES
from .figures import reference_figures
from .parts import CHECKS, graded_checks
from .results import NO_SUBMISSION, StudentGrade

__all__ = ["class_record", "write_report", "release_of"]

_PARTS = {"unstructured": "Part 1", "structured": "Part 2", "removal": "Part 3"}


def release_of(course_root: Path) -> dict:
    """``{"code": [...], "cell_ids": [...]}`` of the release notebook nbgrader made in the run's course (no
    solutions, no hidden tests: what every student started from); ``{}`` when there is none."""
    path = Path(course_root) / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return {}
    return {"code": [c.source for c in nb.cells if c.cell_type == "code"],
            "cell_ids": [c.get("id") for c in nb.cells if c.get("id")]}


def class_record(grades: list[StudentGrade], people: dict[str, dict], points: dict[str, float], max_score: float,
                 reference: dict, release: dict, run: dict, out: Path) -> ClassRecord:
    """The report's record of this run's ``grades`` (``people``: names by student id; ``reference``: the
    reference solution's figures; ``release``: :func:`release_of`)."""
    checks = [CheckInfo(gid, TITLES.get(gid, gid), _PARTS[CHECKS[gid][0]], float(points[gid]))
              for gid in graded_checks(points)]
    students = []
    for g in grades:
        page = out / "feedback" / f"{g.student_id}.html"
        students.append(StudentRecord(
            student_id=g.student_id, status=g.status, graded=g.graded, score=g.score if g.has_points else None,
            checks={c.grade_id: {"points": c.points, "messages": list(c.messages)} for c in g.checks},
            notes=list(g.notes), name=(people.get(g.student_id) or {}).get("name", ""),
            seconds=g.timings.get("kernel") if g.status != NO_SUBMISSION else None,
            figures=g.figures, traces=g.traces,
            feedback=f"feedback/{g.student_id}.html" if page.is_file() else None))
    return ClassRecord(ASSIGNMENT, max_score, checks, students, reference, release, run)


def write_report(cfg: GradeConfig, grades: list[StudentGrade], people: dict[str, dict], points: dict[str, float],
                 max_score: float, ref: Future, course_root: Path, run: dict) -> Built | None:
    """Write ``class.json`` and build the report; ``None`` (and a warning on stderr) when it cannot be built."""
    try:
        reference = reference_figures(ref.result()) if ref.exception() is None else {}
        record = class_record(grades, people, points, max_score, reference, release_of(course_root), run, cfg.out)
        write_class_record(cfg.out, record)
        return build_report(cfg.out, SimilarityConfig(threshold=cfg.similarity_threshold))
    except Exception as exc:  # noqa: BLE001 - the grades are written; the report is not worth losing them
        print(f"warning: the class report could not be built ({type(exc).__name__}: {exc}); grades.csv, the "
              f"feedback and the gradebook are complete. Rebuild it with: python -m autograder report {cfg.out}",
              file=sys.stderr)
        return None
