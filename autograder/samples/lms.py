"""A class as Canvas and Moodle hand it over: their download zips and their grade files, made from samples.

Names and numbers follow each LMS's own code (quoted in :mod:`autograder.lms.canvas` and
:mod:`autograder.lms.moodle`): Canvas's ``<sortable name, lower case, word characters only>[_LATE]_<user id>_
<attachment id>_<file>``, its gradebook export with a ``Points Possible`` row; Moodle's
``<Full name>_<participant>_assignsubmission_file/`` folders and its grading worksheet with a byte-order mark.
Used by the demo and the tests; every name below has something a student id cannot hold (a space, an accent,
an apostrophe).

Runs in the grader's (or a test's) process.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..config import ASSIGNMENT, NOTEBOOK, REPO_ROOT
from . import Sample, build_notebook

__all__ = ["Student", "class_list", "canvas_download", "canvas_gradebook", "moodle_download", "moodle_worksheet",
           "CANVAS_COLUMN"]

#: The assignment's column in the Canvas gradebook the fixtures make (``<title> (<assignment id>)``).
CANVAS_COLUMN = "Pruning notebook (5003)"
_RELEASE = REPO_ROOT / "assignment" / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
_FIRST = ["Seán", "Zoë", "Chloé", "Jan-Erik", "Ana María", "Björn", "Nguyễn", "Siobhán", "José", "Ife", "Mei", "Åsa"]
_LAST = ["O'Brien", "Dupont", "D'Souza", "van der Berg", "López", "Øberg", "Văn An", "Ní Bhriain", "Núñez",
         "Adé-Okafor", "Lin", "Ek"]


@dataclass
class Student:
    """One student of the made-up class, and what they handed in (``sample``: ``None`` for nothing)."""

    first: str
    last: str
    canvas_id: int
    participant: int
    sample: Sample | None
    late: bool = False
    resubmitted: bool = False

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def sortable(self) -> str:
        return f"{self.last}, {self.first}"

    @property
    def email(self) -> str:
        def plain(text: str) -> str:
            return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode())
        return f"{plain(self.first)}.{plain(self.last)}@uni.edu"


def class_list(samples: list[Sample], absent: int = 2) -> list[Student]:
    """One student per sample, then ``absent`` more who handed in nothing. The second handed in late, and the
    third uploaded twice (Canvas renamed the second upload ``pruning-1.ipynb``)."""
    people = []
    for i in range(len(samples) + absent):
        people.append(Student(_FIRST[i % len(_FIRST)], _LAST[i % len(_LAST)] + ("" if i < len(_LAST) else f" {i}"),
                              12340 + i, 1234560 + i, samples[i] if i < len(samples) else None,
                              late=i == 1, resubmitted=i == 2))
    return people


def _notebook_bytes(sample: Sample, release) -> bytes:
    return nbformat.writes(build_notebook(sample, release)).encode()


def canvas_download(dest: Path, students: list[Student]) -> Path:
    """Canvas's "Download Submissions" zip of ``students`` at ``dest``."""
    release = nbformat.read(_RELEASE, as_version=4)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for n, s in enumerate(students):
            if s.sample is None:
                continue
            name = re.sub(r"\W", "", s.sortable.lower())
            late = "_LATE" if s.late else ""
            if s.resubmitted:  # the first upload, then the same name again: Canvas renamed it
                first = build_notebook(Sample("first try", set(), "ok", cells={}), release)
                archive.writestr(f"{name}{late}_{s.canvas_id}_{60000 + n}_{NOTEBOOK}.ipynb", nbformat.writes(first))
                archive.writestr(f"{name}{late}_{s.canvas_id}_{70000 + n}_{NOTEBOOK}-1.ipynb",
                                 _notebook_bytes(s.sample, release))
            else:
                archive.writestr(f"{name}{late}_{s.canvas_id}_{60000 + n}_{NOTEBOOK}.ipynb",
                                 _notebook_bytes(s.sample, release))
    return dest


def canvas_gradebook(dest: Path, students: list[Student], points: float = 37) -> Path:
    """The gradebook CSV Canvas exports for ``students`` (two assignments, one group, no grading scheme), with
    another assignment's scores filled in, at ``dest``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    totals = ["Assignments Current Points", "Assignments Final Points", "Assignments Current Score",
              "Current Points", "Final Points", "Current Score"]
    writer.writerow(["Student", "ID", "SIS Login ID", "Section", "Lab 1 (5001)", CANVAS_COLUMN, *totals])
    writer.writerow(["    Points Possible", "", "", "", "10.00", f"{points:.2f}", *["(read only)"] * len(totals)])
    for s in students:
        writer.writerow([s.sortable, s.canvas_id, s.email.split("@")[0], "Section 01", "8.50", "", "8.50", "8.50",
                         "85.00", "8.50", "8.50", "85.00"])
    dest.write_text(out.getvalue(), encoding="utf-8")
    return dest


def moodle_download(dest: Path, students: list[Student], folders: bool = True) -> Path:
    """Moodle's "Download all submissions" zip of ``students`` at ``dest``, one folder per student (or flat)."""
    release = nbformat.read(_RELEASE, as_version=4)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for s in students:
            if s.sample is None:
                continue
            prefix = f"{s.full}_{s.participant}_assignsubmission_file"
            name = f"{prefix}/{NOTEBOOK}.ipynb" if folders else f"{prefix}_{NOTEBOOK}.ipynb"
            archive.writestr(name, _notebook_bytes(s.sample, release))
    return dest


def moodle_worksheet(dest: Path, students: list[Student], maximum: float = 100) -> Path:
    """The grading worksheet Moodle downloads for ``students`` (UTF-8 with a byte-order mark) at ``dest``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum grade",
                     "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
                     "Feedback comments"])
    for s in students:
        status = "No submission" if s.sample is None else "Submitted for grading"
        when = "-" if s.sample is None else "Monday, 7 December 2026, 10:00 AM"
        writer.writerow([f"Participant {s.participant}", s.full, s.email, status, "", f"{maximum:.2f}", "Yes",
                         when, "-", ""])
    dest.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    return dest
