"""The summary a run prints: ids, and the names an LMS or a roster gives, in columns a terminal can show."""

from __future__ import annotations

import io

from autograder.grading import batch
from autograder.grading.report import NAME_WIDTH, summary_table
from autograder.grading.results import NO_SUBMISSION, CheckResult, StudentGrade, not_graded

IDS = ["test_a", "test_b"]


def _graded(student_id: str, a: float, b: float) -> StudentGrade:
    return StudentGrade(student_id, "ok", [CheckResult("test_a", a, 2, "m"), CheckResult("test_b", b, 4, "m")])


def _rows(table: str) -> dict[str, str]:
    return {line.split()[0]: line for line in table.splitlines()[2:]}


def test_without_names_the_table_has_no_name_column():
    table = summary_table([_graded("alice", 2, 4), _graded("bob", 0, 4)], IDS, 6.0, {"alice": {"email": "a@x"}})
    head = table.splitlines()[0]
    assert head.split()[:2] == ["student", "score"] and "name" not in head
    assert _rows(table)["alice"].split()[:4] == ["alice", "6/6", "2", "4"]


def test_names_from_the_lms_follow_the_ids_in_one_column():
    long_name = "Maria Concepción de los Ángeles Fernández"
    people = {"12345": {"name": "Jane  Smith"}, "67890": {"name": long_name}, "11111": {"name": "O'Brien, Seán"}}
    grades = [_graded("12345", 2, 4), _graded("67890", 0, 4), not_graded("11111", "the machine"),
              StudentGrade("22222", NO_SUBMISSION)]
    table = summary_table(grades, IDS, 6.0, people)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["student", "name", "score"]
    rows = _rows(table)
    assert rows["12345"].startswith("12345      Jane Smith ")  # the id's column is 10 wide; spaces in names folded
    assert "O'Brien, Seán" in rows["11111"] and "not graded: the machine" in rows["11111"]
    cut = long_name[:NAME_WIDTH - 3] + "..."
    assert cut in rows["67890"] and long_name not in table
    # Every row's score starts in the same column, whoever has a name (the student with none gets blanks).
    starts = {sid: row.index("/6") for sid, row in rows.items()}
    assert len(set(starts.values())) == 1, table
    assert rows["22222"].split()[:2] == ["22222", "-/6"] and NO_SUBMISSION in rows["22222"]


def test_a_name_the_terminal_cannot_encode_is_printed_with_question_marks(monkeypatch):
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(batch.sys, "stdout", latin1)
    text = batch._printable("12345 Jane 李 Smith – ok")
    assert text == "12345 Jane ? Smith ? ok"
    print(text, file=latin1)  # would raise UnicodeEncodeError without _printable
