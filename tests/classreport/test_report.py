"""The report built from a hand-made ``class.json``: what the page holds, what it never holds, its command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autograder.classreport import PAIRS_FILE, REPORT_FILE, build_report
from autograder.classreport.record import (
    CLASS_FILE,
    CheckInfo,
    ClassRecord,
    ReportError,
    StudentRecord,
    read_class_record,
    write_class_record,
)
from autograder.samples.corpus import code_cells, independent_solutions, record_of, release_record
from tests.conftest import REPO

CHECKS = [CheckInfo("test_unstructured_sparsity", "Part 1: sparsity", "Part 1", 4.0),
          CheckInfo("test_finetuning", "Part 3: fine-tuning", "Part 3", 4.0)]
SECTIONS = ("points", "checks", "mistakes", "curves", "part3", "time", "pairs", "students")


def _class(tmp_path) -> ClassRecord:
    solutions = independent_solutions()[:3]
    students = []
    for i, s in enumerate(solutions):
        failed = i == 0
        figures = {"unstructured": [{"target": t, "sparsity": t, "accuracy": 0.6 - 0.3 * t * t}
                                    for t in (0.1, 0.5, 0.9)],
                   "finetune": [{"kind": "structured", "before": 0.5, "after": 0.55}]}
        students.append(record_of(
            s.name, code_cells(s), score=4.0 if failed else 8.0, seconds=10.0 + i, figures=figures,
            checks={"test_unstructured_sparsity": {"points": 4.0, "messages": []},
                    "test_finetuning": {"points": 0.0 if failed else 4.0,
                                        "messages": ["structured: fine-tuning took the accuracy from 0.5 to 0.5"]
                                        if failed else []}},
            feedback=f"feedback/{s.name}.html"))
    students.append(StudentRecord("<b>odd & id</b>", "no submission"))
    students.append(StudentRecord("lost", "not graded: the worker died", graded=False))
    reference = {"unstructured": [{"target": t, "sparsity": t, "accuracy": 0.61} for t in (0.1, 0.5, 0.9)],
                 "removal": [{"target": 0.5, "macs": 3.0e6, "accuracy": 0.57}]}
    return ClassRecord("pruning", 8.0, CHECKS, students, reference, release_record(), {"wall": 12.5, "where": "here"})


def test_the_record_round_trips_and_a_bad_one_says_what_to_do(tmp_path):
    record = _class(tmp_path)
    write_class_record(tmp_path, record)
    assert read_class_record(tmp_path) == record
    with pytest.raises(ReportError, match="does not exist: the report is built from a folder"):
        read_class_record(tmp_path / "nowhere")
    (tmp_path / CLASS_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(ReportError, match="format 99, this report reads format 1"):
        read_class_record(tmp_path)
    (tmp_path / CLASS_FILE).write_text("{ cut off")
    with pytest.raises(ReportError, match="cannot be read"):
        read_class_record(tmp_path)


def test_the_page_has_every_section_its_figures_and_escapes_what_students_wrote(tmp_path):
    write_class_record(tmp_path, _class(tmp_path))
    built = build_report(tmp_path)
    page = built.report.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert page.count("<svg") == 7  # points, status, rates, curves, removal, fine-tuning, time
    assert "&lt;b&gt;odd &amp; id&lt;/b&gt;" in page and "<b>odd" not in page
    assert 'href="feedback/' + independent_solutions()[0].name + '.html"' in page
    for fetch in ("src=", "<link", "url(http", "url(//", "@import", "https://"):  # nothing to fetch: it works offline
        assert fetch not in page, fetch
    assert "Not graded because of the grading machine" in page and "lost: not graded: the worker died" in page
    assert built.pairs == 0 and (tmp_path / PAIRS_FILE).read_text().startswith("student_a,student_b,score")
    # the grouped message, its numbers out, with its one student
    assert "structured: fine-tuning took the accuracy from # to #" in page


def test_the_command_rebuilds_the_report_and_says_when_there_is_no_run(tmp_path):
    write_class_record(tmp_path, _class(tmp_path))
    done = subprocess.run([sys.executable, "-m", "autograder", "report", str(tmp_path), "--similarity-threshold",
                           "0.3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"class report: {tmp_path / REPORT_FILE}" in done.stdout
    assert "Threshold 0.30" in (tmp_path / REPORT_FILE).read_text()
    missing = subprocess.run([sys.executable, "-m", "autograder", "report", str(tmp_path / "empty")], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "grade into this folder first" in missing.stderr
    bad = subprocess.run([sys.executable, "-m", "autograder", "report", str(tmp_path), "--similarity-threshold", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "must be in (0, 1], got 2.0" in bad.stderr


def test_past_the_pairs_shown_side_by_side_the_rest_are_a_table(tmp_path, monkeypatch):
    from autograder.classreport import page as page_module
    from autograder.samples.variations import disguise_cells
    record = _class(tmp_path)
    solution = independent_solutions()[1]
    record.students.append(record_of("copier", disguise_cells(code_cells(solution), seed=3)))
    write_class_record(tmp_path, record)
    assert build_report(tmp_path).pairs == 1
    assert '<div class="pair"' in (tmp_path / REPORT_FILE).read_text()
    monkeypatch.setattr(page_module, "SHOWN_PAIRS", 0)
    page = build_report(tmp_path).report.read_text()
    assert '<div class="pair"' not in page and "1 more pairs" in page and 'class="more-pairs"' in page
    assert ">copier</a>" in page.split('class="more-pairs"')[1]
