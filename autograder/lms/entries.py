"""What every layout of submissions is read into: one :class:`Entry` per student, and the :class:`Collected` class.

Runs in the grader's process.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Entry", "Collected", "Person", "Roster", "Outcome", "Written", "safe_id", "SAFE_ID", "pick_latest",
           "unique_ids", "JUNK"]

#: What a student id may hold (a folder name and a file name everywhere the grader writes one).
SAFE_ID = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
#: Names of files and folders an archive or a download carries that are nobody's submission.
JUNK = re.compile(r"^(__MACOSX|\.ipynb_checkpoints|\.DS_Store|Thumbs\.db|desktop\.ini|\..*|~.*)$")


@dataclass
class Entry:
    """One student's submission, as an LMS or nbgrader handed it over.

    Attributes:
        student_id: the LMS's id where it has one (Canvas's user id, Moodle's participant number), nbgrader's
            student id, or one made from the name (:func:`safe_id`); never depends on how the name is written.
        notebook: the notebook to grade, or ``None`` when the student handed in none (a text entry, another file).
        name: the student's name as the download (or, once applied, the roster) gives it.
        email: from the roster, where it has one.
        late: the LMS marked the submission late.
        notes: what reading the submission decided (the latest of several notebooks, a renamed file).
        lms: what the LMS needs to take feedback back (Canvas's ``attachment_id``, Moodle's ``folder``).
        candidates: the notebooks the student handed in (the latest is graded, the notes say which).
    """

    student_id: str
    notebook: Path | None
    name: str = ""
    email: str = ""
    late: bool = False
    notes: list[str] = field(default_factory=list)
    lms: dict[str, str] = field(default_factory=dict)
    candidates: int = 1

    def record(self) -> dict:
        """The entry as ``submissions.json`` keeps it (without the notebook's path)."""
        data = asdict(self)
        data.pop("notebook")
        data["submitted"] = self.notebook is not None
        return data


@dataclass
class Collected:
    """A download read: its layout, one entry per student, and what was left aside.

    Attributes:
        layout: what the download is (``"Canvas download"``, ``"Moodle download"``, ``"nbgrader submitted/
            folder"``, ``"nbgrader exchange inbound"``, ``"folder of notebooks"``).
        entries: one per student, by student id.
        ignored: files and folders that are no student's submission (named for the TA).
    """

    layout: str
    entries: list[Entry]
    ignored: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one line that says what was read."""
        notebooks = sum(e.notebook is not None for e in self.entries)
        parts = [f"{notebooks} notebook{'s' * (notebooks != 1)}"]
        without = len(self.entries) - notebooks
        if without:
            parts.append(f"{without} without a notebook")
        several = sum(e.candidates > 1 for e in self.entries)
        if several:
            parts.append(f"{several} with several notebooks (the latest graded)")
        late = sum(e.late for e in self.entries)
        if late:
            parts.append(f"{late} late")
        if self.ignored:
            shown = ", ".join(self.ignored[:3]) + (" ..." if len(self.ignored) > 3 else "")
            parts.append(f"{len(self.ignored)} other file{'s' * (len(self.ignored) != 1)} ignored ({shown})")
        return f"submissions: {self.layout}, {len(self.entries)} students: {', '.join(parts)}"


@dataclass
class Person:
    """One student of a roster: the LMS's id for them (as a download names them), their name and email."""

    student_id: str
    name: str = ""
    email: str = ""


@dataclass
class Roster:
    """A class list: who should have handed in, whatever they did.

    Attributes:
        kind: ``"Canvas gradebook"``, ``"Moodle grading worksheet"`` or ``"class list"`` (``id,name,email``).
        people: by student id, in the file's order.
        lms: the LMS whose import file the roster is (``"canvas"``, ``"moodle"``), or ``None``.
    """

    kind: str
    people: dict[str, Person]
    lms: str | None = None


@dataclass
class Outcome:
    """What goes back to the LMS for one student: their points, or why there are none.

    Attributes:
        points: automatic and manual points together, or ``None`` (the cell is left as it was, and listed).
        max_points: what the assignment is worth in the grader (automatic and written answers).
        why_blank: why ``points`` is ``None`` (``"no submission"``, ``"written answers not graded yet"``).
        comment: one line for the student's feedback comment.
    """

    student_id: str
    points: float | None
    max_points: float
    why_blank: str | None = None
    comment: str = ""


@dataclass
class Written:
    """What an export wrote: the file, and who got a grade and who did not (with why)."""

    path: str
    graded: list[str] = field(default_factory=list)
    blank: dict[str, str] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)  # graded students the LMS's file does not list
    notes: list[str] = field(default_factory=list)


def safe_id(text: str) -> str:
    """A student id (:data:`SAFE_ID`) made from ``text``, a name or a file name: accents dropped (``é`` -> ``e``),
    apostrophes removed, every other character outside ``[A-Za-z0-9._@+-]`` a ``-``; never empty.

    >>> safe_id("Zoë O'Brien-Núñez"), safe_id("李 雷"), safe_id("jane.doe@uni.edu")
    ('Zoe-OBrien-Nunez', 'student', 'jane.doe@uni.edu')
    """
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    plain = re.sub(r"['`\u2019]", "", plain)
    plain = re.sub(r"[^A-Za-z0-9._@+-]+", "-", plain).strip("-.")[:100]
    return plain or "student"


def unique_ids(entries: list[Entry]) -> list[Entry]:
    """``entries`` sorted by id, an id that two students were given made unique (``-2``, ``-3``...), noted."""
    seen: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: (e.student_id, e.name)):
        n = seen.get(entry.student_id, 0) + 1
        seen[entry.student_id] = n
        if n > 1:
            old = entry.student_id
            entry.student_id = f"{old}-{n}"
            entry.notes.append(f"graded as {entry.student_id}: another submission was also named {old}")
    return sorted(entries, key=lambda e: e.student_id)


def pick_latest(files: dict[Path, tuple[object, str]], expected: str, why: str,
                prefer_expected: bool = False) -> tuple[Path, list[str]]:
    """The notebook to grade of one student's ``files`` (``{path: (order, the name the student gave it)}``), and
    notes: the latest by ``order`` (``why`` says what latest means: "the latest upload"), or with
    ``prefer_expected`` the one named ``expected`` if there is one; a note on every other notebook and on a name
    other than ``expected``."""
    named = [p for p in files if files[p][1] == expected] if prefer_expected else []
    pick = named[0] if named else max(files, key=lambda p: (files[p][0], files[p][1] == expected))
    shown = files[pick][1]
    notes = []
    if shown != expected:
        notes.append(f"graded {shown} (the notebook was not named {expected})")
    others = sorted(files[p][1] for p in files if p != pick)
    if others:
        because = "" if named else f", {why}"
        notes.append(f"{len(files)} notebooks in the submission; graded {shown}{because}, not {', '.join(others)}")
    return pick, notes
