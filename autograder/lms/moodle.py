"""Moodle: its "Download all submissions" zip in, its grading worksheet out, its feedback-files zip back.

The formats, from Moodle's source (``moodle/moodle``; the course's ``reference/lms-formats.md`` quotes them):

* **Download all submissions** (``mod/assign/classes/downloader.php`` since 4.1; the file importer's comment
  for older ones): with "Download submissions in folders" (the default) one folder per student,
  ``<Full name>_<participant>_assignsubmission_file`` (before 4.1 with a trailing ``_``), holding the files as
  uploaded; without it, flat files ``<Full name>_<participant>_assignsubmission_file_<file name>``. The full
  name has ``_`` turned into spaces; ``<participant>`` is the assignment's participant number (the worksheet's
  ``Participant <n>``), not the user id. Online text comes as ``..._assignsubmission_onlinetext/onlinetext.html``.
* **Grading worksheet** (``mod/assign/gradingtable.php``; upload: ``mod/assign/feedback/offline``): UTF-8 with
  a byte-order mark, columns ``Identifier`` (``Participant <n>``), ``Full name``, ``Email address``,
  ``Status``, ``Grade``, ``Maximum grade``, ..., ``Last modified (grade)``, ``Feedback comments``. On upload
  Moodle reads only ``Identifier``, ``Grade``, ``Last modified (grade)`` and the feedback columns, matched by
  their exact header; a blank grade changes nothing, a grade above the maximum is skipped.
* **Upload multiple feedback files in a zip** (``mod/assign/feedback/file/importziplib.php``): each file's path
  holds a part ``<anything>_<participant>_assignsubmission_file[_]``; what follows is the feedback file's
  name. A file identical to the student's own submitted file of the same name is skipped.

Runs in the grader's process.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import NOTEBOOK
from .csv_cells import CsvCells
from .entries import Collected, Entry, Outcome, Person, Roster, Written, pick_latest, unique_ids
from .listing import Listing

__all__ = ["read_download", "read_worksheet", "write_worksheet", "feedback_path"]

_FOLDER = re.compile(r"^(?P<name>[^_/]*)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?$")
_FLAT = re.compile(r"^(?P<name>[^_/]*)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.+)$")
#: The worksheet's columns the grader reads or writes (English headers: Moodle matches them exactly).
IDENTIFIER, NAME, EMAIL, GRADE, MAXIMUM, FEEDBACK = ("Identifier", "Full name", "Email address", "Grade",
                                                     "Maximum grade", "Feedback comments")


def read_download(listing: Listing, prefix: str = "") -> Collected | None:
    """The students of a Moodle download in ``listing`` (below ``prefix``), in folders or flat; ``None`` when it is
    not one."""
    notebooks: dict[str, dict[Path, tuple[float, str]]] = {}
    others: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    folders: dict[str, str] = {}
    ignored = []
    for rel, mtime in sorted(listing.under(prefix).items()):
        top, _, rest = rel.partition("/")
        m = _FOLDER.match(top) if rest else _FLAT.match(rel)
        if m is None:
            ignored.append(rel)
            continue
        sid, plugin = m["id"], m["plugin"]
        file = rest or m["file"]
        names.setdefault(sid, m["name"])
        folders.setdefault(sid, top if rest else f"{m['name']}_{sid}_assignsubmission_file_")
        if plugin == "file" and file.lower().endswith(".ipynb"):
            path = Path(f"{prefix}/{rel}" if prefix else rel)
            notebooks.setdefault(sid, {})[path] = (mtime, Path(file).name)
        else:
            others.setdefault(sid, []).append("online text" if plugin == "onlinetext" else file)
    if not notebooks and not others:
        return None
    entries = []
    for sid in sorted({*notebooks, *others}):
        entry = Entry(sid, None, names[sid], lms={"folder": folders[sid]})
        if sid in notebooks:
            entry.notebook, entry.notes = pick_latest(notebooks[sid], f"{NOTEBOOK}.ipynb", "the latest saved")
            entry.candidates = len(notebooks[sid])
        else:
            entry.notes.append(f"handed in {', '.join(others[sid])}: no notebook")
        entries.append(entry)
    return Collected("Moodle download", unique_ids(entries), ignored)


def _participant(cell: str) -> str | None:
    """The participant number of an ``Identifier`` cell (``Participant 1234567``, or localised)."""
    m = re.fullmatch(r"\D*?(\d+)\s*", cell)
    return m[1] if m else None


def read_worksheet(data: bytes) -> Roster | None:
    """The students of a Moodle grading worksheet (by participant number), or ``None`` when ``data`` is not one."""
    try:
        rows = CsvCells.read(data).rows
    except UnicodeDecodeError:
        return None
    if not rows or IDENTIFIER not in rows[0]:
        return None
    header = rows[0]
    col = {name: header.index(name) for name in (IDENTIFIER, NAME, EMAIL) if name in header}
    people = {}
    for row in rows[1:]:
        sid = _participant(row[col[IDENTIFIER]]) if len(row) > col[IDENTIFIER] else None
        if sid is None:
            continue
        people[sid] = Person(sid, *(row[col[k]] if k in col and len(row) > col[k] else "" for k in (NAME, EMAIL)))
    return Roster("Moodle grading worksheet", people, lms="moodle")


def _number(text: str) -> tuple[float | None, str]:
    """A worksheet number and its decimal separator (Moodle writes the site language's)."""
    separator = "," if "," in text and "." not in text else "."
    try:
        return float(text.strip().replace(",", ".")), separator
    except ValueError:
        return None, separator


def write_worksheet(template: bytes, outcomes: dict[str, Outcome]) -> tuple[bytes, Written]:
    """The grading worksheet ``template`` (as downloaded) with ``Grade`` and ``Feedback comments`` filled.

    Grades are scaled to each row's ``Maximum grade`` when the assignment is worth another number in Moodle,
    written with the sheet's decimal separator; a student without points keeps their row as downloaded (Moodle
    leaves a blank grade alone anyway). ``Last modified (grade)`` stays as downloaded: Moodle skips a row whose
    grade changed in Moodle after it. Raises ``ValueError`` when the template is no worksheet.
    """
    sheet = CsvCells.read(template)
    rows = sheet.rows
    if not rows or IDENTIFIER not in rows[0] or GRADE not in rows[0]:
        raise ValueError(f"this is not a Moodle grading worksheet: its first row must name {IDENTIFIER} and {GRADE}")
    header = rows[0]
    grade, maximum = header.index(GRADE), header.index(MAXIMUM) if MAXIMUM in header else None
    feedback = header.index(FEEDBACK) if FEEDBACK in header else None
    written = Written(GRADE)
    if feedback is None:
        written.notes.append(f"the worksheet has no '{FEEDBACK}' column (enable the feedback comments type): "
                             "grades only")
    listed, scaled = set(), set()
    for r, row in enumerate(rows[1:], 1):
        sid = _participant(row[header.index(IDENTIFIER)]) if row else None
        if sid is None:
            continue
        listed.add(sid)
        outcome = outcomes.get(sid)
        if outcome is None:
            written.blank[sid] = "not in this grading run"
            continue
        if outcome.points is None:
            written.blank[sid] = outcome.why_blank or "no grade"
            continue
        most, separator = _number(row[maximum]) if maximum is not None and len(row) > maximum else (None, ".")
        points = outcome.points
        if most and abs(most - outcome.max_points) > 1e-9:
            points = outcome.points * most / outcome.max_points
            scaled.add((outcome.max_points, most))
        sheet.set(r, grade, f"{points:.2f}".replace(".", separator))
        if feedback is not None:
            sheet.set(r, feedback, outcome.comment)
        written.graded.append(sid)
    for ours, theirs in sorted(scaled):
        written.notes.append(f"grades scaled from {ours:g} points to the maximum grade of {theirs:g}")
    written.outside = sorted(sid for sid, o in outcomes.items() if sid not in listed and o.points is not None)
    return sheet.data(), written


def feedback_path(entry: dict, page: str = f"{NOTEBOOK}-feedback.html") -> str | None:
    """Where a student's feedback page goes in the zip Moodle takes back (``entry``: their record in
    ``submissions.json``): in their download's own folder name, or ``None`` without a participant number."""
    if not entry["student_id"].isdigit():
        return None
    folder = entry.get("lms", {}).get("folder") or f"{entry.get('name') or 'student'}_{entry['student_id']}" \
                                                     "_assignsubmission_file_"
    return f"{folder}/{page}"
