"""The feedback page (:mod:`autograder.grading.report`) starts from the cause: the student's cell that raised, or
where a limit stopped the run, is named before any check, and the checks that failed because of it say so.

Pages written from executed notebooks made by hand (no kernel); the e2e run of the sample whose part 2 sweep raises is
in ``tests/e2e/test_grading_app.py``.
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_output

from autograder.config import SOURCE_NOTEBOOK
from autograder.grading.cells import DEPENDS, STUDENT_CELLS, TITLES
from autograder.grading.parts import CHECKS
from autograder.grading.report import causes, write_feedback
from autograder.grading.results import CheckResult, StudentGrade
from autograder.grading.statuses import memory_exceeded
from autograder.runner.execute import STOPPED_HERE
from tests.notebook_cells import gid

TRACEBACK_END = "MemoryError: Unable to allocate 2.00 GiB for an array with shape (90000, 3, 32, 32)"


def _executed(path, *, error_in=None, ran_until=None):
    """The source notebook as if run: every code cell up to ``ran_until`` (all when ``None``) has an execution
    count; ``error_in`` holds a MemoryError."""
    nb = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count, cell.outputs = count, []
        if gid(cell) == error_in:
            cell.outputs = [new_output("error", ename="MemoryError",
                                       evalue="Unable to allocate 2.00 GiB for an array with shape (90000, 3, 32, 32)",
                                       traceback=["Traceback ...", TRACEBACK_END])]
        if ran_until is not None and gid(cell) == ran_until:
            break
    nb.cells = [c for c in nb.cells]
    nbformat.write(nb, path)
    return path


def _grade(executed, status, failing):
    checks = [CheckResult(g, 0.0 if g in failing else 3.0, 3.0, [f"{g} found nothing to check"] if g in failing else [])
              for g in CHECKS]
    return StudentGrade("s1", status, checks, executed=executed)


def test_the_tables_name_every_check_and_every_student_cell():
    assert set(TITLES) == set(CHECKS) == set(DEPENDS)
    nb = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    solution_code = {gid(c) for c in nb.cells
                     if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    assert set(STUDENT_CELLS) == solution_code
    assert all(set(cells) <= set(STUDENT_CELLS) for cells in DEPENDS.values())


def test_a_cell_that_raised_is_named_with_its_error_before_any_check(tmp_path):
    failing = {"test_structured_filters", "test_structured_accuracy", "test_removal_models", "test_finetuning"}
    grade = _grade(_executed(tmp_path / "s1.ipynb", error_in="sweep_structured"), "ok", failing)
    page = write_feedback(tmp_path / "feedback", grade, 37).read_text()
    start, table = page.index("Start here"), page.index("<table>")
    assert start < table
    cause = page[start:table]
    assert "sweep_structured" in cause and "part 2&#x27;s sweep" in cause
    assert "MemoryError: Unable to allocate 2.00 GiB" in cause
    rows = {row.split("<code class='gid'>")[1].split("</code>")[0]: row for row in page[table:].split("<tr>")[2:]}
    for check in failing:
        assert "Failed because your cell <code>sweep_structured</code>" in rows[check], check
        assert TITLES[check] in rows[check]
    # A check that passed, or whose cells all ran, is not blamed on the sweep.
    for check in set(CHECKS) - failing:
        assert "Failed because" not in rows[check]


def test_a_failing_check_whose_cells_ran_is_not_blamed_on_another_cell(tmp_path):
    grade = _grade(_executed(tmp_path / "s1.ipynb", error_in="sweep_structured"), "ok", {"test_unstructured_sparsity"})
    page = write_feedback(tmp_path / "feedback", grade, 37).read_text()
    assert "Start here" in page and "Failed because" not in page


def test_where_a_limit_stopped_the_run_the_cell_it_was_in_is_named_with_the_limit(tmp_path):
    status = memory_exceeded("8.8 GiB")
    executed = _executed(tmp_path / "s1.ipynb", ran_until="finetune")
    assert causes(executed, status) == {"finetune": f"was running when the notebook stopped ({status})"}
    page = write_feedback(tmp_path / "feedback", _grade(executed, status, {"test_finetuning"}), 37).read_text()
    assert page.index("memory limit (8.8 GiB) exceeded") < page.index("<table>")
    assert "Failed because your cell <code>finetune</code>" in page


def test_the_cell_the_runner_marked_is_named_even_when_its_start_never_arrived(tmp_path):
    # A kernel that exits at once can die before it says the cell began: the cell has no execution count, and
    # the last cell with one is an earlier cell. The runner's mark decides, so the page is the same every run.
    status = "error: the kernel died (did the notebook exit?)"
    executed = _executed(tmp_path / "s1.ipynb", ran_until="sweep_unstructured")
    nb = nbformat.read(executed, as_version=4)
    after = False
    for cell in nb.cells:
        if after and gid(cell) == "prune_structured":
            cell.metadata[STOPPED_HERE] = True
        after = after or gid(cell) == "sweep_unstructured"
    nbformat.write(nb, executed)
    assert causes(executed, status) == {"prune_structured": f"was running when the notebook stopped ({status})"}
    assert causes(executed, "ok") == {}


def test_a_notebook_that_ran_cleanly_has_no_cause_box(tmp_path):
    executed = _executed(tmp_path / "s1.ipynb")
    assert causes(executed, "ok") == {}
    page = write_feedback(tmp_path / "feedback", _grade(executed, "ok", {"test_finetuning"}), 37).read_text()
    assert "Start here" not in page and "Failed because" not in page
    assert causes(None, "error: timeout") == {} and causes(tmp_path / "missing.ipynb", "ok") == {}


def test_the_releases_placeholder_is_named_as_such(tmp_path):
    nb = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if gid(cell) == "sweep_unstructured":
            cell.execution_count = 9
            cell.outputs = [new_output("error", ename="NotImplementedError", evalue="", traceback=[])]
    nbformat.write(nb, tmp_path / "s1.ipynb")
    assert causes(tmp_path / "s1.ipynb", "ok") == {
        "sweep_unstructured": "still raises NotImplementedError, the release's placeholder: your code goes there"}
