"""Grades back in each LMS's own file: the downloaded file with only this assignment's cells changed (every other
byte as the LMS wrote it), scaled to what the assignment is worth there, students without points left as
downloaded and listed; and the feedback zips named as each LMS's importer matches them.

Formats: Canvas's gradebook export and import (``lib/gradebook_exporter.rb``, ``lib/gradebook_importer.rb``) and
re-upload zip (``abstract_assignment.rb``); Moodle's grading worksheet (``gradingtable.php``, offline feedback
``importgradeslib.php``) and feedback zip (``feedback/file/importziplib.php``): the course's
``reference/lms-formats.md``, sections 2, 4, 5 and 6.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from autograder.lms import canvas, moodle
from autograder.lms.csv_cells import CsvCells
from autograder.lms.entries import Outcome
from autograder.lms.export import ExportError, export
from autograder.samples import Sample
from autograder.samples.lms import CANVAS_COLUMN, canvas_gradebook, class_list, moodle_worksheet

EMPTY = Sample("empty", set(), "ok", cells={})


def test_csv_cells_keep_every_byte_but_the_cells_changed():
    text = ('\ufeffStudent;ID;"Note ""x""";Pruning (1)\r\n"Doe; John";1;" keep  me ";\r\n'
            '"Multi\nline";2;x;"7,5"\r\n')
    sheet = CsvCells.read(text.encode())
    assert sheet.delimiter == ";" and sheet.bom
    assert sheet.rows[1] == ["Doe; John", "1", " keep  me ", ""] and sheet.rows[2][0] == "Multi\nline"
    assert sheet.data() == text.encode(), "read and written back unchanged"
    sheet.set(1, 3, "31.5")
    sheet.set(2, 3, "a;b")
    assert sheet.data() == text.replace('" keep  me ";', '" keep  me ";31.5').replace('"7,5"', '"a;b"').encode()


def _outcomes(points: dict[str, float | None], most: float = 37) -> dict[str, Outcome]:
    return {sid: Outcome(sid, p, most, None if p is not None else "no submission", f"{p}/{most}")
            for sid, p in points.items()}


def test_canvas_import_fills_one_column_and_leaves_every_other_cell_as_downloaded(tmp_path):
    people = class_list([EMPTY] * 3, absent=2)
    template = canvas_gradebook(tmp_path / "gradebook.csv", people, points=37).read_bytes()
    template = template.replace(b"12344,anamaria.lopez,Section 01,8.50,,", b"12344,anamaria.lopez,Section 01,8.50,20,")
    assert b",20," in template, "a score Canvas has already"
    data, written = canvas.write_import(template, _outcomes({"12340": 31, "12341": 35.5, "12342": 0,
                                                             "12343": None, "99999": 30}))
    before, after = (list(csv.reader(io.StringIO(b.decode()))) for b in (template, data))
    col = before[0].index(CANVAS_COLUMN)
    assert [r[col] for r in after[2:]] == ["31", "35.5", "0", "", before[6][col]]
    for old, new in zip(before, after):
        assert old[:col] + old[col + 1:] == new[:col] + new[col + 1:]
    assert data.splitlines()[:2] == template.splitlines()[:2] and data.splitlines()[5:] == template.splitlines()[5:]
    assert written.graded == ["12340", "12341", "12342"]
    assert written.blank == {"12343": "no submission", "12344": "not in this grading run"}
    assert written.outside == ["99999"] and written.notes == []


def test_canvas_scales_to_the_points_possible_and_names_the_column_it_could_not_tell(tmp_path):
    people = class_list([EMPTY], absent=0)
    template = canvas_gradebook(tmp_path / "gradebook.csv", people, points=100).read_bytes()
    data, written = canvas.write_import(template, _outcomes({"12340": 37}))
    assert b",100," in data.splitlines()[2] and written.notes == [
        "scores scaled from 37 points to the 100 the Canvas assignment is worth"]
    with pytest.raises(ValueError, match=r"no assignment column 'Quiz'.*Lab 1 \(5001\); Pruning notebook \(5003\)"):
        canvas.write_import(template, {}, column="Quiz")
    assert canvas.write_import(template, _outcomes({"12340": 37}), column="5003")[1].graded == ["12340"]


def test_moodle_worksheet_gets_grades_comments_and_keeps_its_bom_and_dates(tmp_path):
    people = class_list([EMPTY] * 2, absent=1)
    template = moodle_worksheet(tmp_path / "worksheet.csv", people, maximum=100).read_bytes()
    data, written = moodle.write_worksheet(template, _outcomes({"1234560": 37, "1234561": 18.5, "1234562": None}))
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header = rows[0]
    grade, comment, modified = header.index("Grade"), header.index("Feedback comments"), \
        header.index("Last modified (grade)")
    assert [r[grade] for r in rows[1:]] == ["100.00", "50.00", ""]
    assert rows[1][comment] == "37/37" and rows[3][comment] == ""
    assert [r[modified] for r in rows[1:]] == ["-", "-", "-"], "as downloaded: Moodle's staleness check reads it"
    assert written.notes == ["grades scaled from 37 points to the maximum grade of 100"]
    assert written.blank == {"1234562": "no submission"}


def test_moodle_writes_the_sites_decimal_comma():
    sheet = (b"Identifier,Full name,Grade,Maximum grade,Last modified (grade)\n"
             b'Participant 5,Ann,,"10,00",-\n')
    data, _ = moodle.write_worksheet(sheet, _outcomes({"5": 37}))
    assert data.decode().splitlines()[1] == 'Participant 5,Ann,"10,00","10,00",-'


def test_feedback_names_are_what_each_importer_matches():
    """Canvas: the first two all-digit ``_``-separated tokens are the user and the attachment; Moodle: a path part
    that ``explode('_', part, 5)`` splits into a name, a numeric participant, ``assignsubmission``, ``file``."""
    name = canvas.feedback_name({"student_id": "12340", "lms": {"attachment_id": "60000", "canvas_name": "obrien"}})
    tokens = [t for t in name.replace("LATE_", "").split("_") if t.isdigit()]
    assert name == "obrien_12340_60000_pruning-feedback.html" and tokens[:2] == ["12340", "60000"]
    assert canvas.feedback_name({"student_id": "12340", "lms": {}}) is None, "nothing uploaded to reply to"
    path = moodle.feedback_path({"student_id": "1234560", "name": "Seán O'Brien",
                                 "lms": {"folder": "Seán O'Brien_1234560_assignsubmission_file"}})
    part = path.split("/")[0].split("_", 4)
    assert part[1].isdigit() and part[2:4] == ["assignsubmission", "file"] and path.endswith("/pruning-feedback.html")


def _grading_folder(tmp_path, rows: list[dict], students: list[dict], roster=None):
    out = tmp_path / "grading"
    (out / "feedback").mkdir(parents=True)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["student_id", "score", "max_score", "status", "notes", "name", "email", "late"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"max_score": "31", "notes": "", "name": "", "email": "", "late": "", **row})
    for row in rows:
        if row["score"] != "":
            (out / "feedback" / f"{row['student_id']}.html").write_text("<p>page</p>")
    (out / "submissions.json").write_text(json.dumps({"layout": "x", "students": students, "roster": roster}))
    return out


def test_export_without_a_gradebook_lists_who_is_blank_and_why(tmp_path):
    rows = [{"student_id": "a", "score": "31", "status": "ok"},
            {"student_id": "b", "score": "0", "status": "error: invalid notebook JSON: Expecting value"},
            {"student_id": "c", "score": "", "status": "not graded: the kernel did not start (3 tries)"},
            {"student_id": "d", "score": "", "status": "no submission"}]
    students = [{"student_id": s, "name": s.upper(), "email": "", "late": s == "a", "submitted": s != "d", "lms": {}}
                for s in "abcd"]
    done = export(_grading_folder(tmp_path, rows, students), "csv")
    got = list(csv.DictReader(io.StringIO(done.grades.read_text())))
    assert [(r["student_id"], r["name"], r["score"], r["late"]) for r in got] == [
        ("a", "A", "31", "late"), ("b", "B", "0", ""), ("c", "C", "", ""), ("d", "D", "", "")]
    lines = "\n".join(done.lines())
    assert "left blank: c (not graded: the kernel did not start (3 tries): grade again once fixed)" in lines
    assert "left blank: d (no submission)" in lines
    assert "graded with an error status, exported as graded: b (error: invalid notebook JSON" in lines


def test_export_to_an_lms_needs_its_file(tmp_path):
    out = _grading_folder(tmp_path, [{"student_id": "a", "score": "31", "status": "ok"}], [])
    with pytest.raises(ExportError, match=r"--to canvas fills in the file Canvas exports: download the gradebook"):
        export(out, "canvas")
    with pytest.raises(ExportError, match="holds no grades.csv"):
        export(tmp_path, "csv")
    with pytest.raises(ExportError, match="--to nbgrader needs --course"):
        export(out, "nbgrader")
    assert re.search(r"canvas-grades\.csv", str(export(out, "canvas", template=canvas_gradebook(
        tmp_path / "g.csv", class_list([EMPTY], 0))).grades))
