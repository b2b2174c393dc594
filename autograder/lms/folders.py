"""Layouts without an LMS: nbgrader's ``submitted/`` folder, its exchange's inbound folder, a folder of notebooks.

* nbgrader's ``submitted/<student_id>/<assignment>/<notebook>.ipynb`` (what ``nbgrader collect`` and
  ``zip_collect`` make); a notebook directly in the student's folder is taken too.
* nbgrader's exchange, ``<exchange>/<course>/inbound/<student_id>+<assignment>+<timestamp>[+<random>]/``, one
  folder per ``nbgrader submit`` (``nbgrader/exchange/default/submit.py``; the student id may hold ``+``, so the
  name is split from the right, as ``collect`` does): the latest submission of each student is graded.
* A folder of notebooks, one per student, each named after its student (``Jane Doe.ipynb``).

A name that is no valid student id (a space, an accent, an apostrophe) gives an id made from it
(:func:`~autograder.lms.entries.safe_id`), and the name is kept beside it: it never costs a point.

Runs in the grader's process.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from dateutil.parser import parse as parse_date

from ..config import ASSIGNMENT, NOTEBOOK
from .entries import SAFE_ID, Collected, Entry, pick_latest, safe_id, unique_ids
from .listing import Listing

__all__ = ["read_submitted", "read_inbound", "read_notebooks"]

_EXPECTED = f"{NOTEBOOK}.ipynb"


def _entry(name: str, notebook: Path | None) -> Entry:
    """A student whose folder or file is called ``name``: its id if it is a valid one, else one made from it."""
    entry = Entry(name if SAFE_ID.match(name) else safe_id(name), notebook, name)
    if entry.student_id != name:
        entry.notes.append(f"graded as {entry.student_id} (from the name {name!r})")
    return entry


def read_submitted(listing: Listing, prefix: str = "") -> Collected | None:
    """nbgrader's ``submitted/`` layout, or ``None`` when no student folder holds a notebook."""
    by_student: dict[str, dict[Path, tuple[float, str]]] = {}
    folders, ignored = {d.split("/", 1)[0] for d in listing.dirs_under(prefix)}, []
    for rel, mtime in sorted(listing.under(prefix).items()):
        parts = rel.split("/")
        if len(parts) < 2:
            ignored.append(rel)
            continue
        folders.add(parts[0])
        inner = parts[1:]
        if inner[-1].lower().endswith(".ipynb") and (len(inner) == 1 or (len(inner) == 2 and inner[0] == ASSIGNMENT)):
            path = Path(f"{prefix}/{rel}" if prefix else rel)
            by_student.setdefault(parts[0], {})[path] = (mtime, "/".join(inner))
    if not by_student:
        return None
    entries = []
    for folder in sorted(folders):
        entry = _entry(folder, None)
        if folder in by_student:
            entry.notebook, notes = pick_latest(by_student[folder], f"{ASSIGNMENT}/{_EXPECTED}",
                                                "the most recently saved", prefer_expected=True)
            entry.notes += notes
            entry.candidates = len(by_student[folder])
        else:
            entry.notes.append(f"no notebook in the student's folder (expected {ASSIGNMENT}/{_EXPECTED})")
        entries.append(entry)
    return Collected("nbgrader submitted/ folder", unique_ids(entries), ignored)


#: ``<student_id>+<assignment>+<timestamp>[+<random>]``, the timestamp in nbgrader's default format (it starts
#: with the date), which tells the student id's own ``+`` from the separators.
_INBOUND = re.compile(r"^(?P<student>.+?)\+(?P<assignment>[^+]+)\+(?P<timestamp>\d{4}-\d\d-\d\d[^+]*)(\+[^+]*)?$")


def _when(stamp: str) -> tuple[bool, datetime | str]:
    """A submission folder's time, to order by (nbgrader's own parser; text where it cannot parse it)."""
    try:
        return False, parse_date(stamp)
    except (ValueError, OverflowError):
        return True, stamp


def read_inbound(listing: Listing, prefix: str = "") -> Collected | None:
    """nbgrader's exchange inbound folder (or an exchange or course folder holding one), or ``None``."""
    files = listing.under(prefix)
    base = next((rel.split("inbound/", 1)[0] + "inbound" for rel in files if "inbound/" in rel), "")
    if base:
        prefix = f"{prefix}/{base}" if prefix else base
        files = listing.under(prefix)
    by_student: dict[str, dict[str, list[str]]] = {}  # student -> submission folder -> its notebooks
    ignored, others = [], set()
    for rel in sorted(files):
        top, _, rest = rel.partition("/")
        m = _INBOUND.match(top)
        if m is None or not rest:
            ignored.append(rel)
        elif m["assignment"] != ASSIGNMENT:
            others.add(m["assignment"])
        elif rest.lower().endswith(".ipynb") and "/" not in rest:
            by_student.setdefault(m["student"], {}).setdefault(top, []).append(rest)
    if not by_student:
        return None
    entries = []
    for student, submitted in sorted(by_student.items()):
        latest = max(submitted, key=lambda top: _when(_INBOUND.match(top)["timestamp"]))
        notebooks = submitted[latest]
        pick = _EXPECTED if _EXPECTED in notebooks else sorted(notebooks)[0]
        entry = _entry(student, Path(f"{prefix}/{latest}/{pick}" if prefix else f"{latest}/{pick}"))
        entry.candidates = sum(len(n) for n in submitted.values())
        if len(submitted) > 1:
            entry.notes.append(f"{len(submitted)} submissions; graded the latest, of "
                               f"{_INBOUND.match(latest)['timestamp']}")
        if pick != _EXPECTED:
            entry.notes.append(f"graded {pick} (the notebook was not named {_EXPECTED})")
        entries.append(entry)
    if others:
        ignored.append(f"submissions of other assignments ({', '.join(sorted(others))})")
    return Collected("nbgrader exchange inbound", unique_ids(entries), ignored)


def read_notebooks(listing: Listing, prefix: str = "") -> Collected | None:
    """A folder of notebooks, one per student, each named after its student; ``None`` when it holds none."""
    entries, ignored = [], []
    for rel in sorted(listing.under(prefix)):
        if "/" not in rel and rel.lower().endswith(".ipynb"):
            entries.append(_entry(rel[:-len(".ipynb")], Path(f"{prefix}/{rel}" if prefix else rel)))
        else:
            ignored.append(rel)
    return Collected("folder of notebooks", unique_ids(entries), ignored) if entries else None
