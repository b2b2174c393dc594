"""A finished grading folder back to the course: grades, automatic and written-answer points together, and feedback.

``python -m autograder export DIR`` reads what ``grade`` left in ``DIR``: ``grades.csv`` (the automatic points and
each row's status), ``submissions.json`` (who handed in what, their names, what their LMS needs back), the
roster kept as ``roster.*``, the nbgrader gradebook in ``course/`` (the written answers' points entered in
formgrader, and any score a TA overrode there) and ``feedback/``. It writes, in ``DIR/lms/``:

* ``--to canvas``: the gradebook CSV downloaded from Canvas (the roster, or ``--template``) with this
  assignment's column filled and every other byte as downloaded, and ``canvas-feedback.zip`` for Re-Upload
  Submissions (:mod:`autograder.lms.canvas`);
* ``--to moodle``: the grading worksheet with ``Grade`` and ``Feedback comments`` filled, and
  ``moodle-feedback.zip`` for "Upload multiple feedback files in a zip" (:mod:`autograder.lms.moodle`);
* ``--to csv``: ``grades.csv`` with one row per student: id, name, email, points, maximum, status;
* ``--to nbgrader --course FOLDER``: each feedback page where ``nbgrader release_feedback`` takes it, in the
  JupyterHub course whose ``submitted/`` was graded.

A student gets points only when every part of them is known: a student with no submission, a row the grader
could not grade, or written answers still to be graded in formgrader is left blank (in Canvas and Moodle: the
cell as downloaded) and listed with the reason; never a silent zero, never dropped.

Runs in the grader's process.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ASSIGNMENT, NOTEBOOK
from . import canvas, moodle
from .entries import Outcome, Written

__all__ = ["export", "Exported", "ExportError", "outcomes", "TARGETS"]

#: What ``--to`` takes.
TARGETS = ("canvas", "moodle", "csv", "nbgrader")


class ExportError(ValueError):
    """The export cannot be made (no grading folder, no template for the LMS); the message says what to do."""


@dataclass
class Exported:
    """What an export wrote, for the command's lines."""

    target: str
    grades: Path | None
    written: Written
    feedback: Path | None = None
    pages: int = 0
    no_page: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    next_step: str = ""

    def lines(self) -> list[str]:
        w = self.written
        out = []
        if self.grades is not None:
            out.append(f"{self.target}: {self.grades} ({w.path}): {len(w.graded)} students with points, "
                       f"{len(w.blank)} left blank")
        out += [f"  {note}" for note in w.notes]
        out += [f"  left blank: {sid} ({why})" for sid, why in sorted(w.blank.items())]
        out += [f"  graded with an error status, exported as graded: {sid} ({why})" for sid, why in
                sorted(self.errors.items())]
        out += [f"  not in the LMS's file, so not exported: {sid}" for sid in w.outside]
        if self.feedback is not None:
            out.append(f"feedback: {self.feedback}: {self.pages} pages"
                       + (f"; none for {', '.join(self.no_page)}" if self.no_page else ""))
        if self.next_step:
            out.append(f"Next: {self.next_step}")
        return out


def _rows(out: Path) -> dict[str, dict]:
    path = out / "grades.csv"
    if not path.is_file():
        raise ExportError(f"{out} holds no grades.csv: give the --out folder of a finished grading run")
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def _manifest(out: Path) -> dict:
    path = out / "submissions.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _gradebook(out: Path) -> tuple[dict[str, dict], float | None]:
    """Each recorded student's points in the gradebook (``score``, ``written``, ``written_max``, ``needs_manual``)
    and the assignment's maximum there (``None`` without a gradebook)."""
    db = out / "course" / "gradebook.db"
    if not db.is_file():
        return {}, None
    from nbgrader.api import Gradebook, MissingEntry  # noqa: PLC0415 - about a second of imports, only to export
    found = {}
    with Gradebook(f"sqlite:///{db}") as gb:
        try:
            maximum = gb.find_assignment(ASSIGNMENT).max_score
        except MissingEntry:
            return {}, None
        for sub in gb.assignment_submissions(ASSIGNMENT):
            found[sub.student.id] = {"score": sub.score, "written": sub.written_score,
                                     "written_max": sub.max_written_score, "needs_manual": sub.needs_manual_grade}
    return found, maximum


def outcomes(out: Path, allow_ungraded_answers: bool = False) -> tuple[dict[str, Outcome], dict[str, str]]:
    """What goes back for each student of ``out``, and the students exported despite an error status (with it)."""
    rows, points = _rows(out), _gradebook(out)
    recorded, maximum = points
    results, errors = {}, {}
    for sid, row in rows.items():
        auto_max = float(row["max_score"])
        most = maximum or auto_max
        status = row["status"]
        if status == "no submission" or status.startswith("not graded") or row["score"] == "":
            why = status if status == "no submission" else f"{status}: grade again once fixed"
            results[sid] = Outcome(sid, None, most, why)
            continue
        auto = float(row["score"])
        book = recorded.get(sid)
        if book is not None and book["needs_manual"] and not allow_ungraded_answers:
            results[sid] = Outcome(sid, None, most, "written answers not graded yet in formgrader")
            continue
        total = book["score"] if book is not None else auto
        written = f", {book['written']:g}/{book['written_max']:g} written answers" if book is not None else ""
        if status != "ok":
            errors[sid] = status
        comment = (f"{total:g}/{most:g}: {auto:g}/{auto_max:g} from the automatic checks{written}"
                   f"{'' if status == 'ok' else f' ({status})'}. Your feedback page says what each check found.")
        results[sid] = Outcome(sid, total, most, None, comment)
    return results, errors


def _template(out: Path, manifest: dict, lms: str, given: Path | None) -> bytes:
    if given is not None:
        return Path(given).read_bytes()
    roster = manifest.get("roster") or {}
    if roster.get("lms") == lms:
        return (out / roster["file"]).read_bytes()
    what = "the gradebook CSV (Grades > Export)" if lms == "canvas" else "the grading worksheet (View all " \
        "submissions > Grading action > Download grading worksheet)"
    raise ExportError(f"--to {lms} fills in the file {lms.title()} exports: download {what} and give it with "
                      "--template (or grade with it as --roster)")


def _zip(path: Path, pages: dict[str, Path]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, page in sorted(pages.items()):
            archive.write(page, name)


def _feedback_zip(out: Path, manifest: dict, lms: str, dest: Path, exported: Exported) -> None:
    namer = canvas.feedback_name if lms == "canvas" else moodle.feedback_path
    pages = {}
    for student in manifest.get("students", []):
        page = out / "feedback" / f"{student['student_id']}.html"
        name = namer(student) if student.get("submitted") else None
        if name is not None and page.is_file():
            pages[name] = page
        elif student.get("submitted"):
            exported.no_page.append(student["student_id"])
    _zip(dest, pages)
    exported.feedback, exported.pages = dest, len(pages)


def _plain_csv(results: dict[str, Outcome], manifest: dict, rows: dict[str, dict]) -> tuple[bytes, Written]:
    people = {s["student_id"]: s for s in manifest.get("students", [])}
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["student_id", "name", "email", "score", "max_score", "status", "late"])
    written = Written("score")
    for sid, outcome in sorted(results.items()):
        who = people.get(sid, {})
        score = "" if outcome.points is None else f"{outcome.points:g}"
        writer.writerow([sid, who.get("name", rows[sid].get("name", "")), who.get("email", rows[sid].get("email", "")),
                         score, f"{outcome.max_points:g}", rows[sid]["status"], "late" if who.get("late") else ""])
        if outcome.points is None:
            written.blank[sid] = outcome.why_blank or "no grade"
        else:
            written.graded.append(sid)
    return text.getvalue().encode("utf-8"), written


def _to_nbgrader(out: Path, course: Path | None, rows: dict[str, dict]) -> Exported:
    """Each feedback page where ``nbgrader release_feedback`` takes it in ``course`` (the hub course folder)."""
    if course is None or not (Path(course) / "submitted").is_dir():
        raise ExportError("--to nbgrader needs --course: the course folder whose submitted/ was graded (where "
                          "nbgrader collect put it)")
    exported = Exported("nbgrader", None, Written("feedback"))
    for sid in sorted(rows):
        page = out / "feedback" / f"{sid}.html"
        submitted = Path(course) / "submitted" / sid / ASSIGNMENT
        if not page.is_file() or not (submitted / "timestamp.txt").is_file():
            if rows[sid]["status"] != "no submission":
                exported.no_page.append(sid)
            continue
        dest = Path(course) / "feedback" / sid / ASSIGNMENT
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, dest / f"{NOTEBOOK}.html")
        for secret in ("timestamp.txt", "submission_secret.txt"):  # what release_feedback reads beside each page
            if (submitted / secret).is_file():
                shutil.copyfile(submitted / secret, dest / secret)
        exported.pages += 1
    exported.feedback = Path(course) / "feedback"
    exported.next_step = f"cd {course} && nbgrader release_feedback {ASSIGNMENT}; students then fetch it " \
                         f"(nbgrader fetch_feedback {ASSIGNMENT}, or the Assignments tab)"
    return exported


def export(out: Path, to: str, template: Path | None = None, column: str | None = None,
           course: Path | None = None, allow_ungraded_answers: bool = False) -> Exported:
    """Write what ``to`` (one of :data:`TARGETS`) takes back from the grading folder ``out`` (see the module's
    text); :class:`ExportError` when it cannot."""
    out = Path(out)
    if to not in TARGETS:
        raise ExportError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    rows = _rows(out)
    if to == "nbgrader":
        return _to_nbgrader(out, course, rows)
    manifest = _manifest(out)
    results, errors = outcomes(out, allow_ungraded_answers)
    folder = out / "lms"
    folder.mkdir(exist_ok=True)
    if to == "csv":
        data, written = _plain_csv(results, manifest, rows)
    else:
        source = _template(out, manifest, to, template)
        try:
            data, written = (canvas.write_import(source, results, column) if to == "canvas"
                             else moodle.write_worksheet(source, results))
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        written.blank.update({sid: o.why_blank or "no grade" for sid, o in results.items()
                              if o.points is None and sid not in written.blank})
    exported = Exported(to, folder / f"{to}-grades.csv", written, errors=errors)
    exported.grades.write_bytes(data)
    if to in ("canvas", "moodle") and manifest:
        _feedback_zip(out, manifest, to, folder / f"{to}-feedback.zip", exported)
    exported.next_step = {
        "canvas": "in Canvas, Grades > Import > the grades file; then the assignment's Re-Upload Submissions > "
                  "the feedback zip (each page is attached to the student's submission as a comment)",
        "moodle": "in Moodle, the assignment's View all submissions > Grading action > Upload grading worksheet "
                  "(tick 'Allow updating records that have been modified more recently' if grades were entered "
                  "since the download); then Upload multiple feedback files in a zip",
        "csv": "import it as your LMS takes a CSV (student_id and score)"}[to]
    return exported
