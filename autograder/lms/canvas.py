"""Canvas: its "Download Submissions" zip in, its gradebook CSV out, and feedback for its re-upload zip.

The formats, from Canvas's source (``instructure/canvas-lms``; the course's ``reference/lms-formats.md`` quotes
them):

* **Download Submissions** (``lib/content_zipper.rb``): one flat folder; an uploaded file is named
  ``<name>[_LATE]_<user id>_<attachment id>_<file name>``, where ``<name>`` is the student's sortable name
  lower-cased with every non-word character removed, ``<user id>`` Canvas's user id (the gradebook's ``ID``) and
  ``<attachment id>`` the file's id (a re-upload gets a larger one); with anonymous grading
  ``[LATE_]anon_<anonymous id>_<attachment id>_<file name>``; a text entry ``<name>[_LATE]_<user id>_text.html``.
  Only the latest attempt is in the zip; a file re-uploaded under the same name is renamed ``pruning-1.ipynb``.
* **Gradebook export and import** (``lib/gradebook_exporter.rb``, ``lib/gradebook_importer.rb``): a header
  ``Student,ID,[SIS User ID,]SIS Login ID,Section,...`` then one column per assignment titled ``<title> (<id>)``,
  a ``    Points Possible`` row, one row per student; ``,`` or ``;`` as delimiter, a byte-order mark by the
  user's choice. On import Canvas matches students by ``ID`` and assignments by the ``(<id>)`` in the title,
  and a cell that is blank where Canvas has a score **removes** that score: cells the grader has no grade for
  are left exactly as downloaded.
* **Re-Upload Submissions** (``app/models/abstract_assignment.rb``): a zip whose files are named
  ``<anything>_<user id>_<attachment id>_<anything>``, each attached as a comment to that student's submission
  if the attachment is one of the files of their current submission (Canvas then shows it under that
  attachment's name).

Runs in the grader's process.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import NOTEBOOK
from .csv_cells import CsvCells
from .entries import Collected, Entry, Outcome, Person, Roster, Written, pick_latest, unique_ids
from .listing import Listing

__all__ = ["read_download", "read_gradebook", "write_import", "feedback_name", "assignment_columns"]

_NAMED = re.compile(r"^(?P<name>.*?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$", re.I)
_ANON = re.compile(r"^(?P<late>LATE_)?anon_(?P<anon>[^_]+)_(?P<attachment>\d+)_(?P<file>.+)$", re.I)
_TEXT = re.compile(r"^(?P<name>.*?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<kind>text|link)\.html$", re.I)
#: Columns of the gradebook that are Canvas's totals, never an assignment (``gradebook_importer.rb``).
_TOTALS = re.compile(r"Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|"
                     r"Override Score|Override Grade|Override Status")
_ASSIGNMENT = re.compile(r"^(?P<title>.*)\s\((?P<id>\d+)\)$")
_SKIPPED_ROW = re.compile(r"^\s*(Muted|Manual Posting.*)?\s*$", re.I)


def _upload(rel: str) -> tuple[str, dict] | None:
    """``(user id, fields)`` of a download's file name, or ``None`` when it is not one of Canvas's."""
    m = _ANON.match(rel)
    if m:
        return f"anon_{m['anon']}", {**m.groupdict(), "name": ""}
    m = _NAMED.match(rel)
    return (m["user"], m.groupdict()) if m else None


def read_download(listing: Listing, prefix: str = "") -> Collected | None:
    """The students of a Canvas download in ``listing`` (below ``prefix``); ``None`` when it is not one."""
    uploads: dict[str, list[tuple[int, str, dict]]] = {}
    others: dict[str, list[str]] = {}
    late: dict[str, bool] = {}
    names: dict[str, str] = {}
    ignored = []
    for rel in sorted(listing.under(prefix)):
        found = _upload(rel) if "/" not in rel else None
        text = _TEXT.match(rel) if found is None and "/" not in rel else None
        if found is not None:
            user, fields = found
            if fields["file"].lower().endswith(".ipynb"):
                uploads.setdefault(user, []).append((int(fields["attachment"]), rel, fields))
            else:
                others.setdefault(user, []).append(fields["file"])
        elif text is not None:
            user, fields = text["user"], text.groupdict()
            others.setdefault(user, []).append(f"a {text['kind']} entry")
        else:
            ignored.append(rel)
            continue
        late[user] = late.get(user, False) or bool(fields.get("late"))
        names.setdefault(user, fields.get("name") or "")
    if not uploads and not others:
        return None
    entries = []
    for user in sorted({*uploads, *others}):
        entry = Entry(user, None, names[user], late=late[user], lms={"canvas_name": names[user]})
        if user in uploads:
            files = {Path(f"{prefix}/{rel}" if prefix else rel): (attachment, fields["file"])
                     for attachment, rel, fields in uploads[user]}
            entry.notebook, entry.notes = pick_latest(files, f"{NOTEBOOK}.ipynb", "the latest upload")
            entry.candidates = len(files)
            entry.lms["attachment_id"] = str(files[entry.notebook][0])
        else:
            entry.notes.append(f"handed in {', '.join(others[user])}: no notebook")
        if user.startswith("anon_"):
            entry.notes.append("anonymous grading: Canvas names the student only when grades are posted")
        entries.append(entry)
    return Collected("Canvas download", unique_ids(entries), ignored)


def _header_ok(header: list[str]) -> bool:
    """Canvas's own test of a gradebook file's header row (``gradebook_importer.rb``)."""
    if len(header) > 3 and "Student" in header[0] and "ID" in header[1]:
        return True
    return header[:3] == ["LastName", "FirstName", "ID"]


def _is_student(row: list[str], id_col: int) -> bool:
    if not row or len(row) <= id_col or "Points Possible" in row[0]:
        return False
    if all(_SKIPPED_ROW.match(cell or "") for cell in row):
        return False
    return row[id_col].strip().isdigit()


def read_gradebook(data: bytes) -> Roster | None:
    """The students of a Canvas gradebook export (``ID`` is their user id), or ``None`` when ``data`` is not one."""
    try:
        rows = CsvCells.read(data).rows
    except UnicodeDecodeError:
        return None
    if not rows or not _header_ok(rows[0]):
        return None
    header = rows[0]
    id_col = header.index("ID")
    login = header.index("SIS Login ID") if "SIS Login ID" in header else None
    people = {}
    for row in rows[1:]:
        if not _is_student(row, id_col):
            continue
        name = row[0][2:-1] if row[0].startswith('="') and row[0].endswith('"') else row[0]
        if header[0] == "LastName":
            name = f"{row[0]}, {row[1]}"
        email = row[login] if login is not None and "@" in row[login] else ""
        people[row[id_col].strip()] = Person(row[id_col].strip(), name, email)
    return Roster("Canvas gradebook", people, lms="canvas")


def assignment_columns(header: list[str]) -> dict[int, str]:
    """The assignment columns of a gradebook's header: ``{index: title with its id}``."""
    return {i: title for i, title in enumerate(header)
            if _ASSIGNMENT.match(title) and not _TOTALS.search(title)}


def _column(header: list[str], wanted: str | None) -> int:
    columns = assignment_columns(header)
    if wanted:
        hits = [i for i, title in columns.items() if title == wanted or _ASSIGNMENT.match(title)["title"] == wanted
                or _ASSIGNMENT.match(title)["id"] == wanted]
    else:
        hits = [i for i, title in columns.items() if "prun" in title.lower()]
    if len(hits) == 1:
        return hits[0]
    listed = "; ".join(columns.values()) or "none"
    what = f"no assignment column {wanted!r}" if wanted else "no single assignment column with 'prun' in its title"
    raise ValueError(f"the Canvas gradebook has {what} (its assignments: {listed}); name it with --column "
                     "(its title, or the number in brackets)")


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


def write_import(template: bytes, outcomes: dict[str, Outcome], column: str | None = None) -> tuple[bytes, Written]:
    """The gradebook ``template`` (as the instructor downloaded it) with this assignment's column filled.

    Each student of ``outcomes`` with points gets them, scaled to the column's points possible if the
    assignment is worth another number there; every other cell, row and byte is left as downloaded (a blank
    would remove a grade Canvas has). Raises ``ValueError`` when the template is no gradebook, or the column
    cannot be told (``column``: its title, or its id).
    """
    sheet = CsvCells.read(template)
    rows = sheet.rows
    if not rows or not _header_ok(rows[0]):
        raise ValueError("this is not a Canvas gradebook export: its first row must start Student,ID,...")
    header = rows[0]
    col, id_col = _column(header, column), header.index("ID")
    written = Written(header[col])
    possible = next((_number(r[col]) for r in rows[1:] if r and "Points Possible" in r[0] and len(r) > col), None)
    any_max = next(iter(outcomes.values())).max_points if outcomes else None
    scale = 1.0
    if possible and any_max and abs(possible - any_max) > 1e-9:
        scale = possible / any_max
        written.notes.append(f"scores scaled from {any_max:g} points to the {possible:g} the Canvas assignment "
                             "is worth")
    listed = set()
    for r, row in enumerate(rows):
        if r == 0 or not _is_student(row, id_col):
            continue
        sid = row[id_col].strip()
        listed.add(sid)
        outcome = outcomes.get(sid)
        if outcome is None:
            written.blank[sid] = "not in this grading run"
            continue
        if outcome.points is None:
            written.blank[sid] = outcome.why_blank or "no grade"
            continue
        sheet.set(r, col, f"{round(outcome.points * scale, 2):g}")
        written.graded.append(sid)
    written.outside = sorted(sid for sid, o in outcomes.items() if sid not in listed and o.points is not None)
    return sheet.data(), written


def feedback_name(entry: dict, page: str = f"{NOTEBOOK}-feedback.html") -> str | None:
    """The name Re-Upload Submissions needs for a student's feedback page (``entry``: their record in
    ``submissions.json``), or ``None`` when they uploaded no file to reply to."""
    attachment = entry.get("lms", {}).get("attachment_id")
    if not attachment or not entry["student_id"].isdigit():
        return None
    name = entry.get("lms", {}).get("canvas_name") or "student"
    return f"{name}_{entry['student_id']}_{attachment}_{page}"
