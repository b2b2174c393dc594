"""The notebook as a student reads it, top to bottom: it asks before it tells, checks each function before its
sweep, and says what each part and check is worth and how close is close enough, in the same numbers the checks and
the grader use.

Read from the committed source and release notebooks (no kernel runs).
"""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize

import nbformat
import pytest

from autograder.config import REPO_ROOT, SOURCE_NOTEBOOK, GradeConfig
from autograder.grading.gradebook import read_points
from autograder.grading.kernel_export import UNSEEN_TARGETS
from helpers.checks import CLAIM_TOL, SPARSITY_CLAIM_TOL
from helpers.inspection import SPARSITY_TOL
from tests.notebook_cells import gid

RELEASE_NOTEBOOK = REPO_ROOT / "assignment" / "release" / "pruning" / "pruning.ipynb"
NOTEBOOKS = {"source": SOURCE_NOTEBOOK, "release": RELEASE_NOTEBOOK}

#: (reference cell, the answer cell it must follow, the cells whose output the question asks about)
QUESTIONS = [
    ("reference_unstructured", "answer_unstructured", "question1", ("sweep_unstructured", "part1_plots", "slider")),
    ("reference_structured", "answer_structured", "question2", ("sweep_structured", "part2_plots")),
    (None, "answer_removal", "question3", ("sweep_removal", "cost_table")),
]
#: (function cell, its quick check, the sweep that uses the function)
SWEEPS = [
    ("prune_unstructured", "test_unstructured_function", "sweep_unstructured"),
    ("prune_structured", "test_structured_function", "sweep_structured"),
    ("remove_filters", "test_removal_function", "sweep_removal"),
]
FIGURE = re.compile(r"\b0\.\d{3}\b")


@pytest.fixture(scope="module", params=sorted(NOTEBOOKS))
def nb(request):
    return nbformat.read(NOTEBOOKS[request.param], as_version=4)


def _index(nb, grade_id):
    found = [i for i, c in enumerate(nb.cells) if gid(c) == grade_id]
    assert len(found) == 1, f"{grade_id}: {len(found)} cells"
    return found[0]


def _markdown_before(nb, index):
    return [(i, c.source) for i, c in enumerate(nb.cells[:index]) if c.cell_type == "markdown"]


def test_no_text_before_an_answer_states_the_reference_figures_its_question_asks_about(nb):
    for reference, answer, question, _ in QUESTIONS:
        if reference is None:
            continue
        ref_at, answer_at = _index(nb, reference), _index(nb, answer)
        assert ref_at > answer_at, f"{reference} must follow {answer}"
        figures = set(FIGURE.findall(nb.cells[ref_at].source))
        assert len(figures) >= 3, f"{reference} has no figures to compare with: {figures}"
        for i, text in _markdown_before(nb, answer_at):
            told = figures & set(FIGURE.findall(text))
            assert not told, f"cell {i} ({gid(nb.cells[i])}) states {sorted(told)} before {question} asks for them"


def test_every_question_comes_after_the_output_it_asks_about(nb):
    for _, answer, question, outputs in QUESTIONS:
        q_at = _index(nb, question)
        assert _index(nb, answer) == q_at + 1, f"{answer} must follow {question} directly"
        for name in outputs:
            assert _index(nb, name) < q_at, f"{question} asks about {name}, which comes after it"


def test_a_prediction_cell_precedes_each_sweep_and_the_cost_table(nb):
    previous = 0
    for name in [s for _, _, s in SWEEPS[:2]] + ["cost_table"]:
        at = _index(nb, name)
        between = [c for c in nb.cells[previous:at]
                   if c.cell_type == "markdown" and c.source.startswith("*Your prediction")]
        assert between, f"no prediction cell before {name}"
        assert "predict" in "".join(c.source for c in nb.cells[previous:at] if c.cell_type == "markdown").lower()
        previous = at


def test_each_function_is_checked_before_its_sweep_runs(nb):
    for function, check, sweep in SWEEPS:
        assert _index(nb, function) < _index(nb, check) < _index(nb, sweep), (function, check, sweep)
        # The quick check calls only the function, never a sweep's results (names in its code, not its strings).
        source = nb.cells[_index(nb, check)].source
        names = {t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME}
        assert function in names and not {n for n in names if n.endswith("_results")}, (check, names)


def test_points_in_headings_check_cells_and_the_intro_are_the_grade_cells_points(nb):
    points = read_points()
    headings = [(i, c.source) for i, c in enumerate(nb.cells)
                if c.cell_type == "markdown" and c.source.startswith("## ")]
    parts = [(i, text) for i, text in headings if re.match(r"## [1-9]\. ", text)]
    assert len(parts) == 3
    ends = [i for i, _ in headings]
    for at, text in parts:
        m = re.search(r"\((\d+) points: (\d+) from the checks, (\d+) for Question \d\)", text.splitlines()[0])
        assert m, text.splitlines()[0]
        end = min([e for e in ends if e > at] + [len(nb.cells)])
        graded = [gid(c) for c in nb.cells[at:end] if c.metadata.get("nbgrader", {}).get("grade")]
        checks = [g for g in graded if g.startswith("test_")]
        answers = [g for g in graded if g.startswith("answer_")]
        assert (int(m[1]), int(m[2]), int(m[3])) == (sum(points[g] for g in graded), sum(points[g] for g in checks),
                                                      sum(points[g] for g in answers)), text.splitlines()[0]
    intro = nb.cells[0].source
    for c in nb.cells:
        g = gid(c)
        if c.cell_type == "code" and g in points:
            first = c.source.splitlines()[0]
            assert first.startswith(f"# Check ({points[g]:g} points)"), f"{g}: {first!r} but it is worth {points[g]}"
            assert re.search(rf"\| `{g}` \| {points[g]:g} \|", intro), f"the intro's table lacks {g}'s points"
    total = sum(points.values())
    checks = sum(v for g, v in points.items() if g.startswith("test_"))
    assert f"**Points: {total:g}.** {checks:g} come from the check cells, {total - checks:g} from your answers" in intro


def test_the_tolerances_stated_are_the_ones_the_checks_and_the_grader_use(nb):
    defaults = {f.name: f.default for f in dataclasses.fields(GradeConfig)}
    assert SPARSITY_TOL == defaults["sparsity_tol"] and CLAIM_TOL == defaults["claim_tol"]
    intro = nb.cells[0].source
    assert f"every target reached within {SPARSITY_TOL}" in intro
    assert f"`sparsity` (within {SPARSITY_CLAIM_TOL}) and `accuracy` (within {CLAIM_TOL})" in intro
    assert "exactly" not in nb.cells[_index(nb, "test_unstructured_sparsity")].source.splitlines()[0]
    assert f"within {SPARSITY_TOL}" in nb.cells[_index(nb, "test_unstructured_sparsity")].source.splitlines()[0]


def test_the_intro_says_what_the_grader_calls_each_function_on(nb):
    intro = nb.cells[0].source
    row = {m[1]: m[2] for m in re.finditer(r"^\| `(test_\w+_function)` \| \d+ \| (.*) \|$", intro, re.M)}
    assert set(row) == {check for _, check, _ in SWEEPS}
    amounts = " and ".join(f"{t:g}" for t in UNSEEN_TARGETS)
    assert f"(the grader: at {amounts})" in row["test_unstructured_function"]
    assert "pretrained model" in row["test_removal_function"] and "at random" in row["test_removal_function"]
    assert "part 2 models" not in intro
    percents = " and ".join(f"{round(t * 100)}%" for t in UNSEEN_TARGETS)
    assert f"with {percents} zeroed at random" in row["test_removal_function"]


def test_partial_work_is_said_plainly_at_the_start_and_the_end(nb):
    intro, closing = nb.cells[0].source, nb.cells[_index(nb, "closing")].source
    for text in (intro, closing):
        text = " ".join(text.lower().split())
        assert "the grader runs every cell" in text or "grader runs every cell whatever fails" in text
        assert "a failing check costs only its own points" in text
    assert "check that it ran to the end" not in intro
