"""A class from the LMS and back: a Canvas download and a Moodle download, each with its roster, graded in one
command run from a folder outside the checkout; the written answers graded as formgrader grades them; the
grades exported into each LMS's own file and read back.

The downloads and grade files follow each LMS's documented naming (:mod:`autograder.samples.lms`, after Canvas's
``lib/content_zipper.rb``, ``lib/gradebook_exporter.rb`` and Moodle's ``mod/assign/classes/downloader.php``,
``mod/assign/gradingtable.php``; the course's ``reference/lms-formats.md``): students named with spaces,
accents and apostrophes, a late submission, a re-upload, and two students of the roster who handed in nothing.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

import pytest

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.runner.sandbox import sandbox_support
from autograder.samples import load_samples
from autograder.samples.lms import (
    CANVAS_COLUMN,
    canvas_download,
    canvas_gradebook,
    class_list,
    moodle_download,
    moodle_worksheet,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox_support() is not None, reason=f"no sandbox here: {sandbox_support()}")]

SAMPLES = ("reference", "correct_manual_topk", "mistake_per_layer")
WRITTEN = 1.5  # what the TA gives each written answer in formgrader


def _autograder(*args: str, cwd) -> subprocess.CompletedProcess:
    """``python -m autograder`` with the course's Python, from ``cwd`` (not the checkout)."""
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)


def _grade_written_answers(out) -> None:
    """What formgrader does when a TA types a score for each written answer
    (``nbgrader/server_extensions/formgrader/apihandlers.py``, ``GradeHandler.put``)."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{out / 'course' / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions("pruning"):
            for nb in sub.notebooks:
                for grade in nb.grades:
                    if grade.needs_manual_grade:
                        grade.manual_score = WRITTEN
                        grade.needs_manual_grade = False
        gb.db.commit()


def _rows(out) -> dict[str, dict]:
    with open(out / "grades.csv", encoding="utf-8") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def course(tmp_path_factory, trained_model_path):
    """Both LMSs' downloads and rosters of one class, graded; the written answers then graded."""
    root = tmp_path_factory.mktemp("lms")
    samples = {s.name: s for s in load_samples()}
    people = class_list([samples[n] for n in SAMPLES], absent=2)
    files = {"canvas": (canvas_download(root / "canvas submissions.zip", people),
                        canvas_gradebook(root / "canvas gradebook.csv", people)),
             "moodle": (moodle_download(root / "moodle submissions.zip", people),
                        moodle_worksheet(root / "moodle worksheet.csv", people))}
    elsewhere = root / "a folder outside the checkout"
    elsewhere.mkdir()
    runs = {}
    for lms, (download, roster) in files.items():
        out = root / f"{lms} grading"
        runs[lms] = _autograder("grade", str(download), "--roster", str(roster), "--data-root", "synthetic",
                                "--model", str(trained_model_path), "--out", str(out), "--jobs", "2", "--timeout",
                                "300", "--per-class", "50", cwd=elsewhere)
        assert runs[lms].returncode == 0, runs[lms].stdout[-3000:] + runs[lms].stderr[-3000:]
        _grade_written_answers(out)
    return {"root": root, "people": people, "files": files, "runs": runs, "elsewhere": elsewhere}


def test_each_download_is_recognised_and_every_roster_student_has_a_row(course):
    canvas_run, moodle_run = course["runs"]["canvas"], course["runs"]["moodle"]
    assert ("submissions: Canvas download, 3 students: 3 notebooks, 1 with several notebooks (the latest graded), "
            "1 late; 2 more in the roster handed in nothing") in canvas_run.stdout
    assert "submissions: Moodle download, 3 students: 3 notebooks; 2 more in the roster handed in nothing" \
        in moodle_run.stdout
    canvas_rows = _rows(course["root"] / "canvas grading")
    moodle_rows = _rows(course["root"] / "moodle grading")
    people = course["people"]
    assert sorted(canvas_rows) == [str(p.canvas_id) for p in people]
    assert sorted(moodle_rows) == [str(p.participant) for p in people]
    for p in people:
        c, m = canvas_rows[str(p.canvas_id)], moodle_rows[str(p.participant)]
        assert (c["name"], m["name"], m["email"]) == (p.sortable, p.full, p.email)
        assert c["late"] == ("late" if p.late else "") and m["late"] == ""
        if p.sample is None:
            assert c["status"] == m["status"] == "no submission" and c["score"] == m["score"] == ""
        # The printed summary names each student beside the LMS's number.
        for run, sid, name in ((canvas_run, p.canvas_id, p.sortable), (moodle_run, p.participant, p.full)):
            line = next(ln for ln in run.stdout.splitlines() if ln.split()[:1] == [str(sid)])
            assert line.split(maxsplit=1)[1].startswith(name), line
    assert "graded pruning-1.ipynb, the latest upload, not pruning.ipynb" in canvas_rows[str(people[2].canvas_id)][
        "notes"]


def test_no_students_points_depend_on_their_name_or_their_lms(course):
    points = read_points()
    for lms, field in (("canvas", "canvas_id"), ("moodle", "participant")):
        rows = _rows(course["root"] / f"{lms} grading")
        for p in course["people"]:
            if p.sample is not None:
                row = rows[str(getattr(p, field))]
                assert {g: float(row[g]) for g in CHECKS} == p.sample.expected_points(points), (lms, p.full)
                assert row["status"] == "ok", (lms, p.full, row["status"])


def _read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_canvas_gets_its_own_gradebook_back_with_this_column_filled(course):
    out = course["root"] / "canvas grading"
    done = _autograder("export", str(out), cwd=course["elsewhere"])
    assert done.returncode == 1, done.stdout + done.stderr  # two students are left blank, and listed
    template = course["files"]["canvas"][1].read_bytes()
    exported = (out / "lms" / "canvas-grades.csv").read_bytes()
    before, after = _read_csv(template), _read_csv(exported)
    col = before[0].index(CANVAS_COLUMN)
    for old, new in zip(before, after, strict=True):
        assert old[:col] + old[col + 1:] == new[:col] + new[col + 1:], "every other column as downloaded"
    auto = {p.canvas_id: sum(p.sample.expected_points(read_points()).values()) for p in course["people"] if p.sample}
    written = {p.canvas_id: 3 * WRITTEN if p.sample.name == "correct_manual_topk" else 0
               for p in course["people"] if p.sample}
    by_id = {r[1]: r[col] for r in after[2:]}
    for p in course["people"]:
        expect = f"{auto[p.canvas_id] + written[p.canvas_id]:g}" if p.sample else ""
        assert by_id[str(p.canvas_id)] == expect, p.full
    absent = [p for p in course["people"] if p.sample is None]
    for p in absent:
        assert f"left blank: {p.canvas_id} (no submission)" in done.stdout
    unchanged = sum(old == new for old, new in zip(template.splitlines(), exported.splitlines(), strict=True))
    assert unchanged == 2 + len(absent), "the header, Points Possible and the absent students' rows, byte for byte"
    with zipfile.ZipFile(out / "lms" / "canvas-feedback.zip") as archive:
        names = sorted(archive.namelist())
    assert len(names) == 3 and all(n.endswith("_pruning-feedback.html") for n in names)
    assert any(f"_{course['people'][2].canvas_id}_7000" in n for n in names), "the reply to the latest upload"


def test_moodle_gets_its_worksheet_back_with_grades_comments_and_a_feedback_zip(course):
    out = course["root"] / "moodle grading"
    done = _autograder("export", str(out), cwd=course["elsewhere"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "grades scaled from 37 points to the maximum grade of 100" in done.stdout
    exported = (out / "lms" / "moodle-grades.csv").read_bytes()
    assert exported.startswith(b"\xef\xbb\xbf")
    rows = _read_csv(exported)
    header = rows[0]
    by_id = {r[0].split()[-1]: r for r in rows[1:]}
    assert len(by_id) == 5, "every roster student"
    for p in course["people"]:
        row = by_id[str(p.participant)]
        if p.sample is None:
            assert row[header.index("Grade")] == "" and row[header.index("Feedback comments")] == ""
            assert f"left blank: {p.participant} (no submission)" in done.stdout
        else:
            total = sum(p.sample.expected_points(read_points()).values()) + \
                (3 * WRITTEN if p.sample.name == "correct_manual_topk" else 0)
            assert row[header.index("Grade")] == f"{total * 100 / 37:.2f}"
            assert row[header.index("Feedback comments")].startswith(f"{total:g}/37: ")
    with zipfile.ZipFile(out / "lms" / "moodle-feedback.zip") as archive:
        names = sorted(archive.namelist())
    assert names == sorted(f"{p.full}_{p.participant}_assignsubmission_file/pruning-feedback.html"
                           for p in course["people"] if p.sample)


def test_the_plain_csv_lists_everyone_with_their_total(course):
    out = course["root"] / "canvas grading"
    done = _autograder("export", str(out), "--to", "csv", cwd=course["elsewhere"])
    assert done.returncode == 1
    rows = list(csv.DictReader(io.StringIO((out / "lms" / "csv-grades.csv").read_text())))
    assert len(rows) == 5 and {r["max_score"] for r in rows} == {"37"}
    assert [r["score"] for r in rows if r["status"] == "no submission"] == ["", ""]
