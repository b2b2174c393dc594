"""What grading hands the class report: the record of a run, the figures journaled and sent by cluster workers,
and a report that cannot be built costing nothing else."""

from __future__ import annotations

import shutil
from concurrent.futures import Future

import nbformat

from autograder.classreport.record import read_class_record
from autograder.cluster.worker import task_record
from autograder.config import GradeConfig
from autograder.grading.class_record import class_record, release_of, write_report
from autograder.grading.journal import Journal
from autograder.grading.results import NO_SUBMISSION, CheckResult, StudentGrade, not_graded
from autograder.samples import RELEASE_NOTEBOOK

FIGURES = {"unstructured": [{"target": 0.5, "sparsity": 0.5, "accuracy": 0.61}],
           "finetune": [{"kind": "structured", "before": 0.5, "after": 0.55}]}
POINTS = {"test_unstructured_sparsity": 4.0, "test_finetuning": 4.0}


def _grades():
    ok = StudentGrade("alice", "ok", [CheckResult("test_unstructured_sparsity", 4.0, 4.0),
                                      CheckResult("test_finetuning", 0.0, 4.0, ["structured: too little"])],
                      timings={"kernel": 12.5}, figures=FIGURES, traces={"cells": [], "ids": ["a"]})
    return [ok, StudentGrade("bob", NO_SUBMISSION), not_graded("carol", "the worker died")]


def test_the_journal_keeps_the_figures_of_a_grade(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.add(_grades()[0], "key")
    journal.close()
    again = Journal(tmp_path / "journal.jsonl").reuse("alice", "key", tmp_path)
    assert again.figures == FIGURES and again.traces == {}  # traces are read from the submission in every run


def test_a_cluster_worker_sends_the_figures_back():
    assert task_record(_grades()[0], "tcp://w:1")["figures"] == FIGURES


def test_the_record_of_a_run_has_every_row_as_the_report_needs_it(tmp_path):
    (tmp_path / "feedback").mkdir()
    (tmp_path / "feedback" / "alice.html").write_text("page")
    record = class_record(_grades(), {"alice": {"name": "Alice O'Brien"}}, POINTS, 8.0, {"removal": []},
                          {"code": ["x = 1"]}, {"wall": 3.0}, tmp_path)
    assert [(c.grade_id, c.part, c.max_points) for c in record.checks] == [
        ("test_unstructured_sparsity", "Part 1", 4.0), ("test_finetuning", "Part 3", 4.0)]
    alice, bob, carol = record.students
    assert (alice.score, alice.name, alice.seconds, alice.feedback, alice.figures) == (
        4.0, "Alice O'Brien", 12.5, "feedback/alice.html", FIGURES)
    assert alice.checks["test_finetuning"] == {"points": 0.0, "messages": ["structured: too little"]}
    assert (bob.score, bob.graded, bob.feedback, bob.seconds) == (None, True, None, None)
    assert (carol.score, carol.graded) == (None, False)


def test_the_release_is_read_from_the_runs_course(tmp_path):
    assert release_of(tmp_path) == {}
    folder = tmp_path / "release" / "pruning"
    folder.mkdir(parents=True)
    shutil.copy(RELEASE_NOTEBOOK, folder / "pruning.ipynb")
    nb = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    assert release_of(tmp_path) == {"code": [c.source for c in nb.cells if c.cell_type == "code"],
                                    "cell_ids": [c.id for c in nb.cells]}
    assert "### BEGIN SOLUTION" not in "".join(release_of(tmp_path)["code"])


def _config(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "model.pt").write_bytes(b"")
    return GradeConfig(submissions=tmp_path / "subs", data_root="synthetic", model=tmp_path / "model.pt",
                       out=tmp_path / "out")


def test_a_report_that_cannot_be_built_is_a_warning_and_the_record_is_still_written(tmp_path, capsys):
    cfg = _config(tmp_path)
    cfg.out.mkdir()
    failed = Future()
    failed.set_exception(RuntimeError("no reference"))
    built = write_report(cfg, _grades(), {}, POINTS, 8.0, failed, tmp_path / "no-course", {})
    assert built is not None and built.report.is_file()  # without the reference's figures
    assert read_class_record(cfg.out).reference == {}
    (cfg.out / "report.html").unlink()
    (cfg.out / "report.html").mkdir()  # a page that cannot be written where it goes
    (cfg.out / "report.html" / "x").write_text("in the way")
    assert write_report(cfg, _grades(), {}, POINTS, 8.0, failed, tmp_path / "no-course", {}) is None
    err = capsys.readouterr().err
    assert "warning: the class report could not be built" in err and "python -m autograder report" in err
