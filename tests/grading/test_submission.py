"""Reading and restoring submitted notebooks, decision by decision (fast: no kernels, no models)."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest

from autograder.config import DISPLAY_CELLS
from autograder.grading.submission import (
    PREAMBLE_CELLS,
    SEED_CELL,
    SubmissionError,
    _instructor_owned,
    preamble_end,
    prepare_notebook,
    read_notebook,
    strip_hidden_tests,
)
from autograder.samples import build_notebook, load_samples
from tests.notebook_cells import cell_of, gid

# ---- reading -------------------------------------------------------------------------------

def test_a_notebook_is_read_from_the_bytes_given_not_the_file(tmp_path, release):
    path = tmp_path / "nb.ipynb"
    path.write_text("{not json")
    data = nbformat.writes(release).encode()
    nb = read_notebook(path, data=data)
    assert [gid(c) for c in nb.cells] == [gid(c) for c in release.cells]
    path.write_bytes(data)
    assert read_notebook(path).cells[0].source == release.cells[0].source


def test_the_size_limit_is_inclusive_and_named_in_mb(tmp_path, release):
    data = nbformat.writes(release).encode()
    assert read_notebook(tmp_path / "x", data=data, max_bytes=len(data)).cells
    with pytest.raises(SubmissionError) as err:
        read_notebook(tmp_path / "x", data=data + b" " * 3_000_000, max_bytes=2_000_000)
    assert str(err.value) == f"notebook is {(len(data) + 3_000_000) / 1e6:.0f} MB, over the 2 MB limit"
    path = tmp_path / "big.ipynb"
    path.write_bytes(data + b" " * 3_000_000)
    with pytest.raises(SubmissionError, match="over the 2 MB limit"):
        read_notebook(path, max_bytes=2_000_000)


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path, release):
    nb = copy.deepcopy(release)
    nb.cells[0].source = "caf\u00e9 MARK"
    data = nbformat.writes(nb).encode().replace("caf\u00e9".encode(), b"caf\xff")
    got = read_notebook(tmp_path / "x", data=data)
    assert got.cells[0].source == "caf\ufffd MARK"


def test_an_old_format_notebook_is_upgraded(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": "x = 1", "outputs": [], "language": "python", "metadata": {}}]}]}
    nb = read_notebook(tmp_path / "x", data=json.dumps(v3).encode())
    assert nb.nbformat == 4 and nb.cells[0].source == "x = 1"


def test_invalid_notebooks_are_named_with_the_first_line_of_the_reason(tmp_path):
    with pytest.raises(SubmissionError) as err:
        read_notebook(tmp_path / "x", data=b"{not json")
    assert str(err.value).startswith("invalid notebook JSON: Notebook does not appear to be JSON: '{not json")
    bad = {"cells": [{"cell_type": "code", "source": "x"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    with pytest.raises(SubmissionError) as err:
        read_notebook(tmp_path / "x", data=json.dumps(bad).encode())
    assert str(err.value).startswith("invalid notebook JSON: ") and "\n" not in str(err.value)


# ---- who owns a cell -------------------------------------------------------------------------

@pytest.mark.parametrize("meta, owned", [
    ({"locked": True}, True),
    ({"grade": True, "solution": False}, True),     # a test cell
    ({"grade": True, "solution": True}, False),     # an autograded answer (the written answers)
    ({"solution": True}, False),                    # a code answer
    ({"grade": False, "solution": False}, False),   # an ordinary cell that kept its metadata
    ({}, False),
    (None, False),
])
def test_instructor_owned_cells(meta, owned):
    cell = nbformat.v4.new_code_cell("x")
    if meta is not None:
        cell.metadata["nbgrader"] = meta
    assert _instructor_owned(cell) is owned


# ---- restoring ---------------------------------------------------------------------------------

def test_the_submitted_notebook_is_left_unchanged(source, release):
    release.cells[5].source += "\n# edited"
    before = nbformat.writes(release)
    prepare_notebook(release, source, lean=True, display_cells=("part1_plots",))
    assert nbformat.writes(release) == before


def test_restored_cells_have_no_outputs_and_the_source_kernel(source, release):
    cell = cell_of(release, "test_unstructured_accuracy")
    cell.source = "print('OK')"
    cell.outputs = [nbformat.v4.new_output("stream", text="OK")]
    cell.execution_count = 7
    release.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    out, notes = prepare_notebook(release, source)
    assert notes == ["restored edited cell test_unstructured_accuracy"]
    restored = cell_of(out, "test_unstructured_accuracy")
    assert restored.outputs == [] and restored.execution_count is None
    assert restored.source == cell_of(source, "test_unstructured_accuracy").source
    assert out.metadata["kernelspec"] == source.metadata["kernelspec"]


def test_indentation_counts_as_an_edit(source, release):
    cell = cell_of(release, "test_unstructured_accuracy")
    cell.source = cell.source.replace("\n    ", "\n  ", 1)
    _, notes = prepare_notebook(release, source)
    assert notes == ["restored edited cell test_unstructured_accuracy"]


def test_a_deleted_first_cell_goes_back_first(source, release):
    del release.cells[0]
    out, notes = prepare_notebook(release, source)
    assert notes == ["restored deleted cell intro"]
    assert gid(out.cells[1]) == "intro"  # after the seeding cell


def test_duplicated_answer_cell_is_kept_as_an_ordinary_cell(source, release):
    answer = cell_of(release, "prune_unstructured")
    at = release.cells.index(answer)
    release.cells.insert(at + 1, copy.deepcopy(answer))
    out, notes = prepare_notebook(release, source)
    assert notes == ["duplicate of prune_unstructured kept as an ordinary cell"]
    twins = [c for c in out.cells if c.source == answer.source]
    assert [gid(c) for c in twins] == ["prune_unstructured", None]
    assert "nbgrader" not in twins[1].metadata


def test_lean_grading_keeps_only_what_grading_needs(source, release):
    out, _ = prepare_notebook(release, source, lean=True, display_cells=("part1_plots", "slider"))
    assert cell_of(out, "part1_plots").source == "# part1_plots: display only, skipped by the autograder"
    assert cell_of(out, "slider").source == "# slider: display only, skipped by the autograder"
    sparsity = cell_of(out, "test_unstructured_sparsity").source
    assert sparsity.startswith("### BEGIN HIDDEN TESTS\n") and sparsity.endswith("### END HIDDEN TESTS")
    assert "check_results" not in sparsity and '["export"]("unstructured", globals())' in sparsity
    assert cell_of(out, "test_unstructured_accuracy").source == (
        "# test_unstructured_accuracy: scored by the autograder's hidden checks")
    assert cell_of(out, "answer_unstructured").source == cell_of(release, "answer_unstructured").source
    assert cell_of(out, "part2_plots").source == cell_of(source, "part2_plots").source  # not named: kept
    full, _ = prepare_notebook(release, source, lean=False, display_cells=("part1_plots",))
    assert cell_of(full, "part1_plots").source == cell_of(source, "part1_plots").source
    for name in DISPLAY_CELLS:  # the cells lean grading skips are the instructor's display-only cells
        meta = cell_of(source, name).metadata["nbgrader"]
        assert meta["locked"] and not meta["grade"] and not meta["solution"], name
    nb, notes = prepare_notebook(release, source, lean=True, display_cells=DISPLAY_CELLS)
    assert notes == [] and all(cell_of(nb, name).source.startswith("#") and "\n" not in cell_of(nb, name).source
                               for name in DISPLAY_CELLS)
    export = cell_of(nb, "test_unstructured_sparsity").source
    assert export.strip() == (
        '### BEGIN HIDDEN TESTS\n'
        'import os as _os, runpy as _runpy\n'
        'if _os.environ.get("PRUNING_EXPORT_CODE"):  # set by the autograder only\n'
        '    _runpy.run_path(_os.environ["PRUNING_EXPORT_CODE"])["export"]("unstructured", globals())\n'
        '### END HIDDEN TESTS')
    assert strip_hidden_tests(export) == "", "feedback shows none of it"
    assert cell_of(nb, "load").source == cell_of(source, "load").source


def test_hidden_regions_without_a_final_newline_are_joined_line_by_line(source, release):
    src = copy.deepcopy(source)
    cell = cell_of(src, "test_unstructured_accuracy")
    cell.source = ("### BEGIN HIDDEN TESTS\na = 1\n### END HIDDEN TESTS\nprint('visible')\n"
                   "### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS")
    out, _ = prepare_notebook(release, src, lean=True)
    assert cell_of(out, "test_unstructured_accuracy").source == (
        "### BEGIN HIDDEN TESTS\na = 1\n### END HIDDEN TESTS\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS")


def test_restored_cells_are_the_graders_own_and_carry_nothing_from_the_source(source, release):
    src = copy.deepcopy(source)
    code = cell_of(src, "test_unstructured_accuracy")
    code.outputs = [nbformat.v4.new_output("stream", text="instructor's run")]
    code.execution_count = 3
    cell_of(release, "test_unstructured_accuracy").source += "\n# edited"
    cell_of(release, "part1_intro").source += "\nedited"
    out, _ = prepare_notebook(release, src)
    restored = cell_of(out, "test_unstructured_accuracy")
    assert restored.outputs == [] and restored.execution_count is None
    assert "outputs" not in cell_of(out, "part1_intro") and "execution_count" not in cell_of(out, "part1_intro")
    restored.metadata["execution"] = {"started": "now"}  # what nbclient adds while running
    out.metadata["kernelspec"]["name"] = "changed"
    assert "execution" not in cell_of(src, "test_unstructured_accuracy").metadata
    assert src.metadata["kernelspec"]["name"] != "changed"
    del src.metadata["kernelspec"]
    assert prepare_notebook(release, src)[0].metadata["kernelspec"] == {}


def test_deleted_cells_in_a_row_come_back_in_order(source, release):
    ids = [gid(c) for c in release.cells]
    at = ids.index("test_unstructured_accuracy")
    gone = ids[at:at + 2]
    release.cells = [c for c in release.cells if gid(c) not in gone]
    out, notes = prepare_notebook(release, source)
    assert notes == [f"restored deleted cell {g}" for g in gone]
    got = [gid(c) for c in out.cells[1:]]
    paths = ids.pop(ids.index(None))  # the editable paths cell runs after the set-up (test_machine_failures.py)
    ids.insert(ids.index("load") + 1, paths)
    assert got == ids


def test_a_notebook_whose_cells_lost_metadata_is_left_unchanged(source, release):
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        cell.metadata = {}
    before = nbformat.writes(nb)
    out, _ = prepare_notebook(nb, source)
    assert nbformat.writes(nb) == before
    cell_of(out, "part1_intro").metadata["nbgrader"]["points"] = 99
    assert cell_of(source, "part1_intro").metadata["nbgrader"].get("points") != 99


def test_answers_lost_with_the_metadata_are_all_named(source, release):
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        cell.metadata = {}
    nb.cells = [c for c in nb.cells if "def prune_" not in c.source]
    with pytest.raises(SubmissionError) as err:
        prepare_notebook(nb, source)
    assert str(err.value).startswith("the notebook lost its nbgrader cell metadata and no cell defines the answer "
                                     "of prune_unstructured, prune_structured: ")


# ---- restoring, the release, the samples ----------------------------------------------------

def test_release_needs_no_restoring(source, release):
    nb, notes = prepare_notebook(release, source)
    assert notes == []
    assert nb.cells[0].source == SEED_CELL
    expected = [gid(c) for c in source.cells]
    none = expected.pop(expected.index(None))
    expected.insert(expected.index("load") + 1, none)  # the paths cell runs after set-up
    assert [gid(c) for c in nb.cells[1:]] == expected
    test = next(c for c in nb.cells if gid(c) == "test_unstructured_sparsity")
    assert '["export"]("unstructured", globals())' in test.source, "hidden export must be back for grading"


def test_edited_deleted_duplicated_and_forged_cells(source, release):
    nb = copy.deepcopy(release)
    ids = [gid(c) for c in nb.cells]
    nb.cells[ids.index("test_unstructured_sparsity")].source = "pass"
    del nb.cells[ids.index("test_structured_function")]
    nb.cells.append(copy.deepcopy(nb.cells[ids.index("test_unstructured_accuracy")]))
    forged = nbformat.v4.new_code_cell("x = 1")
    forged.metadata["nbgrader"] = {"grade": True, "grade_id": "test_bonus", "points": 100, "solution": False,
                                   "locked": True, "schema_version": 3}
    nb.cells.append(forged)
    out, notes = prepare_notebook(nb, source)
    assert "restored edited cell test_unstructured_sparsity" in notes
    assert "restored deleted cell test_structured_function" in notes
    assert "removed duplicate cell test_unstructured_accuracy" in notes
    assert "ignored unknown grade_id test_bonus" in notes
    order = [gid(c) for c in out.cells if gid(c)]
    assert order == [gid(c) for c in source.cells if gid(c)], "instructor cells back in source order"
    restored = next(c for c in out.cells if gid(c) == "test_unstructured_sparsity")
    assert restored.source == next(c for c in source.cells if gid(c) == "test_unstructured_sparsity").source
    assert "nbgrader" not in next(c for c in out.cells if c.source == "x = 1").metadata


def test_strip_hidden_tests():
    text = "a = 1\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nb = 2\n"
    assert strip_hidden_tests(text) == "a = 1\nb = 2\n"


def test_invalid_notebooks_are_reported(tmp_path):
    bad = tmp_path / "nb.ipynb"
    bad.write_text("{not json")
    with pytest.raises(SubmissionError, match="invalid notebook JSON"):
        read_notebook(bad)
    bad.write_text('{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(SubmissionError, match="invalid notebook JSON"):
        read_notebook(bad)


def test_samples_fill_the_solution_cells(release):
    sample = next(s for s in load_samples() if s.name == "reference")
    nb = build_notebook(sample, release)
    cell = next(c for c in nb.cells if gid(c) == "prune_unstructured")
    assert "global_unstructured" in cell.source and "NotImplementedError" not in cell.source


def test_the_set_up_ends_at_the_last_set_up_cell_or_at_the_seed_cell(source, release):
    nb, _ = prepare_notebook(release, source)
    last = max(i for i, c in enumerate(nb.cells) if gid(c) in PREAMBLE_CELLS)
    assert preamble_end(nb) == last > 0
    nb.cells = [c for c in nb.cells if gid(c) not in PREAMBLE_CELLS]
    assert preamble_end(nb) == 0, "no set-up cell: only the seed cell (index 0) is the grader's"
