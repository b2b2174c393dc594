"""The class list (``--roster``): a Canvas gradebook export, a Moodle grading worksheet, or a plain CSV.

Any of the three names every student who should have handed in, by the same id the LMS's download uses
(Canvas's user id, Moodle's participant number): a student of the roster with nothing in the download still
gets a row, and every student gets their name. A plain class list has a header with ``id`` (or
``student_id``) and optionally ``name`` and ``email``; its ids are the download's (nbgrader student ids, or
the ids the grader made from file names).

Runs in the grader's process.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from . import canvas, moodle
from .entries import Collected, Entry, Person, Roster

__all__ = ["read_roster", "apply_roster", "RosterError"]


class RosterError(ValueError):
    """A roster that cannot be read; the message says what was expected."""


def _plain(data: bytes) -> Roster | None:
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";" if text.count(";") > text.count(",") else ","))
    if not rows:
        return None
    header = [h.strip().lower() for h in rows[0]]
    id_col = next((header.index(k) for k in ("student_id", "id") if k in header), None)
    if id_col is None:
        return None
    name = header.index("name") if "name" in header else None
    email = header.index("email") if "email" in header else None
    people = {}
    for row in rows[1:]:
        if len(row) > id_col and row[id_col].strip():
            sid = row[id_col].strip()
            people[sid] = Person(sid, row[name].strip() if name is not None and len(row) > name else "",
                                 row[email].strip() if email is not None and len(row) > email else "")
    return Roster("class list", people)


def read_roster(path: Path) -> Roster:
    """The roster in ``path`` (its kind told from its header); :class:`RosterError` when it is none of the three."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RosterError(f"--roster {path} cannot be read ({exc.strerror or exc})") from None
    for reader in (canvas.read_gradebook, moodle.read_worksheet):
        roster = reader(data)
        if roster is not None:
            return roster
    try:
        roster = _plain(data)
    except UnicodeDecodeError:
        roster = None
    if roster is None:
        raise RosterError(f"--roster {path} is neither a Canvas gradebook export (Student,ID,...), a Moodle grading "
                          "worksheet (Identifier,...) nor a class list with a header naming id, name and email")
    return roster


def apply_roster(collected: Collected, roster: Roster) -> list[Entry]:
    """Give each entry of ``collected`` its roster name and email; return the roster's students who handed in
    nothing (entries without a notebook). An entry the roster does not list keeps its own name, noted."""
    entries = {e.student_id: e for e in collected.entries}
    for sid, entry in entries.items():
        person = roster.people.get(sid)
        if person is None:
            entry.notes.append(f"not in the roster ({roster.kind})")
            continue
        entry.name, entry.email = person.name or entry.name, person.email or entry.email
    return [Entry(p.student_id, None, p.name, p.email) for sid, p in roster.people.items() if sid not in entries]
