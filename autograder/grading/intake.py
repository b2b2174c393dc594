"""Who handed in what: the class read from its download, the roster applied, and what was read kept for export.

:func:`read_class` reads ``cfg.submissions`` in whatever layout it comes (:func:`autograder.lms.collect.collect`:
an LMS's zip is extracted into ``<out>/download``, out of every sandbox's sight), applies ``cfg.roster``
(:mod:`autograder.lms.roster`) and writes ``<out>/submissions.json``: the layout, and each student's id, name,
email, lateness, whether they handed in a notebook and what their LMS needs to take feedback back. The export
(:mod:`autograder.lms.export`) reads it with ``grades.csv``; a copy of the roster is kept beside it as
``roster<suffix>``, the file the LMS's import is made from.

Runs in the grader's process.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

from ..config import ASSIGNMENT, NOTEBOOK, GradeConfig
from ..lms.collect import collect
from ..lms.entries import Entry
from ..lms.listing import ListingError
from ..lms.roster import RosterError, apply_roster, read_roster
from .errors import InputError
from .submission import Submission

__all__ = ["Intake", "read_class", "MANIFEST", "NO_NOTEBOOK"]

#: What the grader read of the class, beside ``grades.csv``.
MANIFEST = "submissions.json"
#: The status reason of a student who handed in no notebook.
NO_NOTEBOOK = f"no notebook in the submission (expected {ASSIGNMENT}/{NOTEBOOK}.ipynb)"


@dataclass
class Intake:
    """A class read for grading.

    Attributes:
        line: the one line that says what was read (its layout, how many students).
        submissions: the notebooks to grade.
        problems: ``(student_id, reason)`` of students who handed in no notebook (their rows say why).
        absent: ids of the roster's students who handed in nothing (``no submission`` rows).
        people: ``{student_id: {"name", "email", "late"}}`` of every student, for ``grades.csv``.
    """

    line: str
    submissions: list[Submission] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    people: dict[str, dict] = field(default_factory=dict)


def read_class(cfg: GradeConfig) -> Intake:
    """The class of ``cfg`` (see the module's text); :class:`InputError` with one sentence when the submissions or
    the roster cannot be read."""
    work = cfg.out / "download"
    shutil.rmtree(work, ignore_errors=True)
    try:
        collected = collect(cfg.submissions, work)
        roster = read_roster(cfg.roster) if cfg.roster is not None else None
    except (ListingError, RosterError) as exc:
        raise InputError(str(exc)) from None
    absent: list[Entry] = apply_roster(collected, roster) if roster is not None else []
    intake = Intake(collected.line() + (f"; {len(absent)} more in the roster handed in nothing" if absent else ""))
    for entry in collected.entries:
        if entry.notebook is not None:
            intake.submissions.append(Submission(entry.student_id, entry.notebook, list(entry.notes)))
        else:
            why = next((n for n in entry.notes if "no notebook" in n), "")
            intake.problems.append((entry.student_id, f"{NO_NOTEBOOK}{f': {why}' if why else ''}"))
    intake.absent = [e.student_id for e in absent]
    everyone = [*collected.entries, *absent]
    intake.people = {e.student_id: {"name": e.name, "email": e.email, "late": e.late} for e in everyone}
    manifest = {"layout": collected.layout, "source": str(cfg.submissions), "ignored": collected.ignored,
                "roster": None, "students": [e.record() for e in sorted(everyone, key=lambda e: e.student_id)]}
    if roster is not None:
        kept = cfg.out / f"roster{cfg.roster.suffix}"
        shutil.copyfile(cfg.roster, kept)
        manifest["roster"] = {"kind": roster.kind, "lms": roster.lms, "file": kept.name, "source": str(cfg.roster)}
    (cfg.out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return intake
