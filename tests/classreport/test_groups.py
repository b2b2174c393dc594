"""Messages grouped by cause and checks ranked by pass rate, against hand-made classes."""

from __future__ import annotations

from autograder.classreport.groups import cause_of, group_messages, pass_rates
from autograder.classreport.record import CheckInfo, ClassRecord, StudentRecord

CHECKS = [CheckInfo("test_a", "Part 1: a", "Part 1", 4.0), CheckInfo("test_b", "Part 1: b", "Part 1", 3.0),
          CheckInfo("test_c", "Part 2: c", "Part 2", 3.0)]


def _student(sid, a=4.0, b=3.0, c=3.0, messages=None, status="ok"):
    messages = messages or {}
    checks = {gid: {"points": p, "messages": messages.get(gid, [])} for gid, p in (("test_a", a), ("test_b", b),
                                                                                    ("test_c", c))}
    return StudentRecord(sid, status, score=a + b + c, checks=checks)


def test_numbers_are_taken_out_and_names_keep_theirs():
    assert cause_of("target 0.30: the model scores 0.4123, the reference solution 0.5531 (allowed 0.02)") == \
        "target #: the model scores #, the reference solution # (allowed #)"
    assert cause_of("fc1 of conv2 had 1,234,567 MACs and -3e-05 in cell-12") == \
        "fc1 of conv2 had # MACs and # in cell-12"
    assert cause_of("[0.1, 0.2]  and\n 45%") == "[#, #] and #%"


def test_messages_of_one_mistake_are_one_group_with_each_student_once():
    msg = "target {t}: the model scores {a}, the reference solution 0.6120 (allowed difference 0.02)"
    students = [_student("s1", b=0, messages={"test_b": [msg.format(t=0.7, a=0.52), msg.format(t=0.8, a=0.4)]}),
                _student("s2", b=0, messages={"test_b": [msg.format(t=0.9, a=0.1)]}),
                _student("s3", a=0, messages={"test_a": ["prune_unstructured(model, 0.35) failed: ValueError:"]}),
                _student("s4"), StudentRecord("s5", "no submission")]
    groups = group_messages(ClassRecord("pruning", 10.0, CHECKS, students))
    assert [(g.grade_id, g.students, g.messages) for g in groups] == [
        ("test_b", ["s1", "s2"], 3), ("test_a", ["s3"], 1)]
    assert groups[0].cause == "target #: the model scores #, the reference solution # (allowed difference #)"
    assert groups[0].example == msg.format(t=0.7, a=0.52)


def test_checks_are_ranked_by_pass_rate_among_students_with_points():
    students = [_student("s1", a=0), _student("s2", a=0, c=0), _student("s3"), StudentRecord("s4", "no submission"),
                StudentRecord("s5", "not graded: the worker died", graded=False)]
    rates = pass_rates(ClassRecord("pruning", 10.0, CHECKS, students))
    assert [(r.grade_id, r.passed, r.of) for r in rates] == [("test_a", 1, 3), ("test_c", 2, 3), ("test_b", 3, 3)]
