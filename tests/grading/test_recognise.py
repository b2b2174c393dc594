"""Recognising the cells of a notebook that lost its nbgrader metadata (:mod:`autograder.grading.recognise`),
on the real source and release notebooks.
"""

from __future__ import annotations

import copy

import nbformat
import pytest

from autograder.grading.submission import (
    SubmissionError,
    prepare_notebook,
)
from autograder.samples import build_notebook, load_samples
from tests.notebook_cells import gid


def _without_metadata(nb):
    """What pasting the cells into a new notebook leaves: no nbgrader metadata, no cell ids."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata = {}
        cell.pop("id", None)
    return nb


def _reference_notebook(release):
    sample = next(s for s in load_samples() if s.name == "reference")
    return build_notebook(sample, release)


def test_cells_that_lost_their_metadata_are_recognised(source, release):
    bare = _without_metadata(_reference_notebook(release))
    out, notes = prepare_notebook(bare, source)
    assert notes == ["42 cells had lost their nbgrader metadata and were recognised (answers: prune_unstructured, "
                     "sweep_unstructured, prune_structured, sweep_structured, remove_filters, sweep_removal, finetune, "
                     "answer_unstructured, answer_structured, answer_removal)"]
    assert [gid(c) for c in out.cells[1:] if gid(c)] == [gid(c) for c in source.cells if gid(c)]
    answer = next(c for c in out.cells if gid(c) == "prune_unstructured")
    assert answer.source == next(c for c in bare.cells if "def prune_unstructured" in c.source).source


def test_the_last_definition_of_an_answer_wins_and_moved_cells_go_back(source, release):
    nb = _without_metadata(_reference_notebook(release))
    first = next(i for i, c in enumerate(nb.cells) if "def prune_structured" in c.source)
    older = copy.deepcopy(nb.cells[first])
    older.source = "def prune_structured(model, amount):\n    return model  # first try"
    nb.cells.insert(first, older)
    moved = nb.cells.pop(first + 1)  # the final version, moved to the very end
    nb.cells.append(moved)
    out, notes = prepare_notebook(nb, source)
    assert "cells moved by the student were put back in the assignment's order" in notes
    answer = next(c for c in out.cells if gid(c) == "prune_structured")
    assert answer.source == moved.source
    ids = [gid(c) for c in out.cells]
    assert ids.index("prune_structured") < ids.index("test_structured_filters")


def test_a_notebook_without_metadata_or_answers_is_an_error_not_a_zero(source, release):
    nb = _without_metadata(release)
    nb.cells = [c for c in nb.cells if "def prune_unstructured" not in c.source]
    with pytest.raises(SubmissionError) as err:
        prepare_notebook(nb, source)
    assert str(err.value) == (
        "the notebook lost its nbgrader cell metadata and no cell defines the answer of prune_unstructured: ask the "
        "student to copy their code into the released notebook and resubmit")


def test_a_colab_download_needs_no_recognising(source, release):
    nb = copy.deepcopy(_reference_notebook(release))
    nb.metadata = {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"}}
    for cell in nb.cells:
        cell.pop("id", None)
    out, notes = prepare_notebook(nb, source)
    assert notes == []


def test_what_a_code_cell_defines():
    from autograder.grading.recognise import defined_names
    assert defined_names("!pip install x\n%time y = 1\ndef f():\n    !echo hi\n    return 1\nz: int = 2\n"
                         "class C:\n    pass\na, b = 1, 2\nw = v = 3") == {"f", "z", "C", "w", "v"}
    assert defined_names("def broken(:\n") == set()


def test_recognition_at_the_edges(source, release):
    one = copy.deepcopy(release)
    intro = next(c for c in one.cells if gid(c) == "part1_intro")
    intro.metadata = {}
    _, notes = prepare_notebook(one, source)
    assert notes == ["1 cells had lost their nbgrader metadata and were recognised"]

    bare = _without_metadata(_reference_notebook(release))
    bare.cells = [c for c in bare.cells if c.cell_type != "markdown" or c.source != "YOUR ANSWER HERE"]
    out, notes = prepare_notebook(bare, source)  # the written answers were deleted: not found, no error
    assert notes[0].endswith("(answers: prune_unstructured, sweep_unstructured, prune_structured, sweep_structured, "
                             "remove_filters, sweep_removal, finetune)")
    assert "answer cell answer_unstructured is missing" in notes
    assert gid(next(c for c in out.cells if c.source.startswith("## 2. Structured pruning"))) == "part2_intro"
    last = _without_metadata(release)
    question3 = next(i for i, c in enumerate(last.cells) if c.source.startswith("**Question 3 "))
    asked = last.cells.pop(question3)
    del last.cells[question3]  # its answer cell
    last.cells.append(asked)  # the question is the last cell
    out, notes = prepare_notebook(last, source)
    assert "answer cell answer_removal is missing" in notes


def test_recognition_of_what_students_do_to_pasted_cells(source, release):
    nb = _without_metadata(_reference_notebook(release))
    intro = next(c for c in nb.cells if c.source.startswith("## 2. Structured pruning"))
    intro.source = "\n".join(line + "   " for line in intro.source.splitlines())  # trailing spaces
    nb.cells.append(nbformat.v4.new_code_cell("unstructured_results = []  # scratch"))
    out, _ = prepare_notebook(nb, source)
    assert gid(next(c for c in out.cells if c.source.startswith("## 2. Structured pruning"))) == "part2_intro"
    assert "def prune_unstructured" in next(c for c in out.cells if gid(c) == "prune_unstructured").source


def test_written_answers_around_missing_or_last_questions(source, release):
    nb = _without_metadata(_reference_notebook(release))
    question = next(i for i, c in enumerate(nb.cells) if c.source.startswith("**Question 3 "))
    pair = nb.cells[question:question + 2]
    del nb.cells[question:question + 2]
    nb.cells += pair  # the written answer is the last cell
    _, notes = prepare_notebook(nb, source)
    assert "answer_removal" in notes[0] and "answer cell answer_removal is missing" not in notes
    nb = _without_metadata(_reference_notebook(release))
    del nb.cells[question]  # the question itself is gone
    _, notes = prepare_notebook(nb, source)
    assert "answer_removal" not in notes[0]


def test_a_deleted_answer_with_metadata_elsewhere_is_missing_not_lost(source, release):
    nb = copy.deepcopy(release)
    nb.cells = [c for c in nb.cells if gid(c) != "prune_unstructured"]
    _, notes = prepare_notebook(nb, source)
    assert "answer cell prune_unstructured is missing" in notes


def test_moving_cells_keeps_a_students_first_cell_and_differing_twins(source, release):
    nb = copy.deepcopy(_reference_notebook(release))
    answer = next(c for c in nb.cells if gid(c) == "prune_structured")
    older = copy.deepcopy(answer)
    older.source = "def prune_structured(model, amount):\n    return model  # first try"
    nb.cells.insert(nb.cells.index(answer), older)
    nb.cells.append(nb.cells.pop(nb.cells.index(answer)))  # the final version moved to the end
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("My notes"))
    out, notes = prepare_notebook(nb, source)
    assert out.cells[1].source == "My notes"
    assert "cells moved by the student were put back in the assignment's order" in notes
    kept = next(c for c in out.cells if gid(c) == "prune_structured")
    assert kept.source == older.source  # the first with the grade_id is the graded one


def test_partial_metadata_loss_with_a_missing_answer_is_an_error_and_notes_are_not_answers(source, release):
    nb = copy.deepcopy(release)
    for cell in nb.cells[:12]:  # the first cells pasted elsewhere and back: their metadata is gone
        cell.metadata = {}
    nb.cells = [c for c in nb.cells if "def prune_unstructured" not in c.source]
    with pytest.raises(SubmissionError, match="no cell defines the answer of prune_unstructured"):
        prepare_notebook(nb, source)
    bare = _without_metadata(_reference_notebook(release))
    intro = next(i for i, c in enumerate(bare.cells) if c.source.startswith("## 1. Unstructured pruning"))
    bare.cells.insert(intro + 1, nbformat.v4.new_markdown_cell("My notes before the answer"))
    out, notes = prepare_notebook(bare, source)
    assert not any("duplicate" in n for n in notes)
    assert gid(next(c for c in out.cells if c.source == "My notes before the answer")) is None


def test_trailing_spaces_do_not_hide_an_instructor_cell_and_every_deleted_cell_returns(source, release):
    nb = _without_metadata(_reference_notebook(release))
    intro = next(c for c in nb.cells if c.source.startswith("## 2. Structured pruning"))
    intro.source = "\n".join(line + "  " for line in intro.source.splitlines())
    out, _ = prepare_notebook(nb, source)
    assert [gid(c) for c in out.cells if c.source.startswith("## 2. Structured pruning")] == ["part2_intro"]
    kept = copy.deepcopy(release)
    kept.cells = [c for c in kept.cells if gid(c) not in ("prune_unstructured", "prune_structured", "part2_intro")]
    _, notes = prepare_notebook(kept, source)
    assert notes == ["answer cell prune_unstructured is missing", "restored deleted cell part2_intro",
                     "answer cell prune_structured is missing"]
