"""The finished grading run as the class report reads it: ``DIR/class.json``.

Grading writes it at the end of every run (:func:`write_class_record`); the report reads nothing else of
grading's (besides the feedback pages it links to, by relative path), so it can be rebuilt, tested and changed
alone. The file is plain JSON::

    {"format": 1, "assignment": str, "max_score": float,
     "checks": [{"grade_id", "title", "part", "max_points"}, ...],   # in the notebook's order
     "reference": {figures},                                         # the reference solution's
     "release": {"code": [str, ...], "cell_ids": [str, ...]},        # the release notebook's code cells
     "run": {"wall": seconds, "where": str},
     "students": [{"student_id", "name", "status", "graded": bool, "score": float | None,
                   "checks": {grade_id: {"points": float, "messages": [str]}}, "notes": [str],
                   "seconds": float | None,                          # the notebook's run, kernel start to end
                   "figures": {figures}, "traces": {traces}, "feedback": "feedback/<id>.html" | None}, ...]}

``figures`` are :func:`autograder.grading.figures.submission_figures`'s; ``traces`` are
:func:`~autograder.classreport.traces.notebook_traces`'s.

Runs anywhere (plain values; no torch).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["CLASS_FILE", "FORMAT", "CheckInfo", "StudentRecord", "ClassRecord", "ReportError", "read_class_record",
           "write_class_record"]

CLASS_FILE = "class.json"
FORMAT = 1


class ReportError(ValueError):
    """A finished folder the report cannot be built from; the message says which file and what to do."""


@dataclass(frozen=True)
class CheckInfo:
    """One graded check cell: its grade id, its title for people, its part ("Part 1") and its points."""

    grade_id: str
    title: str
    part: str
    max_points: float


@dataclass
class StudentRecord:
    """One row of the class (see the module's docstring for each field)."""

    student_id: str
    status: str
    graded: bool = True
    score: float | None = None
    checks: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    name: str = ""
    seconds: float | None = None
    figures: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)
    feedback: str | None = None

    @property
    def has_points(self) -> bool:
        return self.score is not None


@dataclass
class ClassRecord:
    """The whole run (see the module's docstring)."""

    assignment: str
    max_score: float
    checks: list[CheckInfo]
    students: list[StudentRecord]
    reference: dict = field(default_factory=dict)
    release: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, list[CheckInfo]]:
        """The checks of each part, in order."""
        out: dict[str, list[CheckInfo]] = {}
        for c in self.checks:
            out.setdefault(c.part, []).append(c)
        return out


def write_class_record(out: Path, record: ClassRecord) -> Path:
    """Write ``out/class.json`` (whole or not at all: written beside it, then renamed); returns its path."""
    path = Path(out) / CLASS_FILE
    data = {"format": FORMAT, **asdict(record)}
    tmp = path.with_name(f".{CLASS_FILE}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_class_record(out: Path) -> ClassRecord:
    """The record of the finished run in ``out``; :class:`ReportError` naming the file when it is missing, of
    another format or not this file."""
    path = Path(out) / CLASS_FILE
    if not path.is_file():
        raise ReportError(f"{path} does not exist: the report is built from a folder `python -m autograder grade` "
                          "finished (it writes class.json at the end); grade into this folder first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ReportError(f"{path} has format {data.get('format')!r}, this report reads format {FORMAT}: grade "
                              "again with this version (every graded notebook is reused)")
        return ClassRecord(assignment=data["assignment"], max_score=float(data["max_score"]),
                           checks=[CheckInfo(**c) for c in data["checks"]],
                           students=[StudentRecord(**s) for s in data["students"]],
                           reference=data.get("reference") or {}, release=data.get("release") or {},
                           run=data.get("run") or {})
    except ReportError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReportError(f"{path} cannot be read ({type(exc).__name__}: {exc}); grade into {out} again to "
                          "rewrite it") from None
