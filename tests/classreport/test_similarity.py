"""The pairs worth comparing: calibrated on independent solutions and disguised copies, and the traces a shared
notebook leaves (cell ids, outputs), against classes made here."""

from __future__ import annotations

import csv

import nbformat
import pytest

from autograder.classreport.record import ClassRecord
from autograder.classreport.settings import SimilarityConfig
from autograder.classreport.similarity import highlighted, similar_pairs, write_pairs_csv
from autograder.classreport.traces import notebook_traces
from autograder.samples.corpus import code_cells, independent_solutions, record_of, release_record
from autograder.samples.variations import disguise_cells
from benchmarks.similarity import calibrate


def test_calibration_lists_every_copy_and_no_independent_pair():
    found = calibrate(seeds=3)
    row = next(r for r in found["rows"] if r["threshold"] == SimilarityConfig().threshold)
    assert found["independent_solutions"] >= 7
    assert row["independent_listed"] == 0, found["independent_max_score"]
    assert row["copies_found"] == found["copies"] == 3 * found["independent_solutions"], found["copy_scores"]
    assert row["demo_listed"] == [found["demo_copy_pair"]]  # the demo's class: its one copied pair and no other


def _class(students):
    return ClassRecord("pruning", 31.0, [], students, release=release_record())


def test_a_copy_in_disguise_is_listed_with_its_shared_passages_marked(tmp_path):
    solutions = independent_solutions()
    students = [record_of(s.name, code_cells(s)) for s in solutions]
    students.append(record_of("copier", disguise_cells(code_cells(solutions[2]), seed=11)))
    pairs = similar_pairs(_class(students))
    assert [(p.a, p.b) for p in pairs] == [tuple(sorted(("copier", solutions[2].name)))]
    pair = pairs[0]
    assert pair.score >= SimilarityConfig().threshold and pair.shares[0].endswith("common code set aside)")
    for side in (0, 1):
        page = highlighted(pair, side)
        assert "<mark>" in page and "<script" not in page
    rows = list(csv.DictReader(open(write_pairs_csv(tmp_path / "pairs.csv", pairs), encoding="utf-8")))
    assert rows == [{"student_a": pair.a, "student_b": pair.b, "score": f"{pair.score:.4f}",
                     "shared_tokens": str(pair.tokens), "shares": "; ".join(pair.shares)}]


def test_code_is_escaped_on_the_page():
    solutions = independent_solutions()
    cells = code_cells(solutions[0])
    cells["finetune"] += "\nprint('<script>alert(1)</script>')\n"
    students = [record_of("a", cells), record_of("b", dict(cells))] + [record_of(s.name, code_cells(s))
                                                                          for s in solutions[1:]]
    pair = similar_pairs(_class(students))[0]
    assert "<script>" not in highlighted(pair, 0) + highlighted(pair, 1)
    assert "&lt;script&gt;" in highlighted(pair, 0)


def _notebook_with(tmp_cells, outputs=None, added_id=None):
    """A release notebook with ``tmp_cells``, whose cost table and fine-tuning cells print ``outputs`` and, with
    ``added_id``, a cell added by hand."""
    from autograder.samples import RELEASE_NOTEBOOK
    nb = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in tmp_cells:
            cell.source = tmp_cells[gid]
        if gid in ("cost_table", "finetune") and outputs is not None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=outputs)]
    if added_id:
        extra = nbformat.v4.new_code_cell("print(model)")
        extra.id = added_id
        nb.cells.append(extra)
    return nbformat.writes(nb).encode()


@pytest.mark.parametrize("kind", ["cell id", "outputs"])
def test_a_shared_notebook_file_is_listed_even_when_the_code_differs(kind):
    solutions = independent_solutions()[:5]
    students = []
    for i, s in enumerate(solutions):
        shared = i in (1, 3)
        nb = _notebook_with(code_cells(s),
                            outputs=f"{'7.31' if shared and kind == 'outputs' else 5 + i} ms, accuracy 0.6\n",
                            added_id="c0ffee12" if shared and kind == "cell id" else f"added{i}")
        students.append(record_of(s.name, code_cells(s)))
        students[-1].traces = notebook_traces(nb)
    pairs = similar_pairs(_class(students))
    assert [(p.a, p.b) for p in pairs] == [tuple(sorted((solutions[1].name, solutions[3].name)))]
    assert pairs[0].shares == (["1 added cell with the same id"] if kind == "cell id" else
                               ["the same output in 2 cells whose output differs across the class"])


def test_release_cell_ids_and_outputs_everyone_has_are_not_evidence():
    solutions = independent_solutions()[:4]
    students = []
    for s in solutions:
        students.append(record_of(s.name, code_cells(s)))
        students[-1].traces = notebook_traces(_notebook_with(code_cells(s), outputs="accuracy 0.61\n"))
    assert similar_pairs(_class(students)) == []


def test_traces_of_a_notebook_and_of_what_is_not_one():
    assert notebook_traces(b"{ not json") == {} and notebook_traces(b'{"cells": 3}') == {}
    from autograder.samples import RELEASE_NOTEBOOK
    traces = notebook_traces(_notebook_with({"finetune": "x = 1"}, outputs="hello\n"))
    cells = {c["key"]: c for c in traces["cells"]}
    assert cells["finetune"]["solution"] and cells["finetune"]["source"] == "x = 1"
    assert cells["cost_table"]["outputs"] and cells["sweep_removal"]["outputs"] is None
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    assert traces["ids"] == [c.id for c in release.cells]


def test_a_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"must be in \(0, 1\], got 1.5"):
        SimilarityConfig(threshold=1.5)
