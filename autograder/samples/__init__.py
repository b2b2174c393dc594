"""Sample submissions, correct, mistaken and hostile.

Each ``autograder/samples/cells/<name>.py`` holds the code of the solution cells it changes (after
the markers ``### prune_unstructured`` and ``### prune_structured``; a cell it leaves out is
the reference solution's, taken from the source notebook's solution cells), optionally the text of
written answers (after ``### answer_unstructured`` and the like: graded by hand, in formgrader) and, in its header, the
expected outcome: ``# expect-zero:`` lists the graded cells that must score 0 (all others
score full points) and ``# expect-status:`` the status. They are written into the student
release to make complete notebooks. A few hostile submissions are built here in code. The
demo grades them; the tests check every expectation through the real grading command.

Runs in the grader's (or a test's) process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..config import ASSIGNMENT, NOTEBOOK, REPO_ROOT, SOURCE_NOTEBOOK
from ..grading.parts import CHECKS, GRADED_PARTS, PART3

__all__ = ["Sample", "load_samples", "parse_sample", "write_class", "split_sweeps", "RELEASE_NOTEBOOK", "SWEEPS"]

SAMPLES_DIR = Path(__file__).with_name("cells")
RELEASE_NOTEBOOK = REPO_ROOT / "assignment" / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
_SOLUTION_CELLS = ("prune_unstructured", "sweep_unstructured", "prune_structured", "sweep_structured", "remove_filters",
                   "sweep_removal", "finetune")
#: Each function's solution cell and the sweep cell after it, and the list the sweep fills: a sample may give both in
#: the function's section (:func:`split_sweeps`).
SWEEPS = (("prune_unstructured", "sweep_unstructured", "unstructured_results"),
          ("prune_structured", "sweep_structured", "structured_results"),
          ("remove_filters", "sweep_removal", "removal_results"))
#: The written answers (markdown cells graded by hand); a sample may give their text after ``### <grade_id>``.
_ANSWER_CELLS = ("answer_unstructured", "answer_structured", "answer_removal")


@dataclass
class Sample:
    """A sample submission and what grading it must give."""

    name: str
    expect_zero: set[str]
    expect_status: str
    cells: dict[str, str] | None = None   # solution cell code by grade_id; None: see ``raw``
    raw: str | None = None                # file content written as is (e.g. invalid JSON)
    edit: str | None = None               # a named change to the notebook after filling it

    def expected_points(self, points: dict[str, float]) -> dict[str, float]:
        return {gid: 0.0 if gid in self.expect_zero else points[gid] for gid in CHECKS}


def split_sweeps(cells: dict[str, str]) -> dict[str, str]:
    """``cells`` with each function section that also builds its results list (``unstructured_results = ...`` at the
    top level) split in two, as the notebook has them: the function cell and its sweep cell."""
    out = dict(cells)
    for function, sweep, results in SWEEPS:
        code = out.get(function)
        if code is None or sweep in out:
            continue
        lines = code.splitlines(keepends=True)
        at = next((i for i, line in enumerate(lines) if line.startswith(f"{results} ")), None)
        if at is not None:
            out[function] = "".join(lines[:at]).rstrip() + "\n"
            out[sweep] = "".join(lines[at:])
    return out


def parse_sample(path: Path) -> Sample:
    text = path.read_text()
    header = {}
    for line in text.splitlines():
        if line.startswith("# expect-"):
            key, _, value = line[2:].partition(":")
            header[key] = value.strip()
    cells, current = {}, None
    for line in text.splitlines(keepends=True):
        if current in _ANSWER_CELLS and line.startswith("# "):  # an answer is written as comment lines
            line = line[2:]
        if line.startswith("### ") and line[4:].strip() in (*_SOLUTION_CELLS, *_ANSWER_CELLS):
            current = line[4:].strip()
            cells[current] = ""
        elif current:
            cells[current] += line
    return Sample(path.stem, set(header.get("expect-zero", "").split()), header.get("expect-status", "ok"),
                  split_sweeps({k: v.strip() + "\n" for k, v in cells.items()}))


def _reference_sample() -> Sample:
    """The source notebook's own solution cells (solution markers removed): the reference answer."""
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    cells = {}
    for cell in source.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in _SOLUTION_CELLS:
            lines = [ln for ln in cell.source.splitlines(keepends=True) if "### BEGIN SOLUTION" not in ln
                     and "### END SOLUTION" not in ln]
            cells[gid] = "".join(lines).strip() + "\n"
    return Sample("reference", set(), "ok", cells)


def load_samples() -> list[Sample]:
    """All samples: the reference, those in ``cells/``, and the built-in release, hostile and broken ones."""
    reference = _reference_sample()
    samples = [reference] + [parse_sample(p) for p in sorted(SAMPLES_DIR.glob("*.py"))]
    for sample in samples:
        sample.cells = {**reference.cells, **sample.cells}
    everything = set(CHECKS)
    part2 = set(GRADED_PARTS[1].cells) | set(PART3)  # part 3 comes after the exit
    tamper = (
        "import helpers.checks\n"
        "helpers.checks.check_results = lambda *a, **k: ''\n"
        "test_model = lambda *a, **k: 0.99\n"
        "get_ipython().showtraceback = lambda *a, **k: None\n"
        "print('OK: every target reached within 0.005')\n")
    fake = tamper + ("def {fn}(model, amount):\n    return copy.deepcopy(model)\n\n\n"
                     "{part}_results = [{{'target': t, 'model': copy.deepcopy(model), 'sparsity': t, "
                     "'accuracy': 0.99}} for t in TARGETS]\n")
    samples += [
        Sample("untouched_release", everything, "ok", cells={}),
        Sample("hostile_tampering", everything, "ok", cells=split_sweeps({
            "prune_unstructured": fake.format(fn="prune_unstructured", part="unstructured"),
            "prune_structured": fake.format(fn="prune_structured", part="structured")})),
        Sample("hostile_edited_tests", set(), "ok", cells=dict(reference.cells), edit="edit_tests"),
        Sample("hostile_exits_in_part2", part2, "error", cells={
            "prune_unstructured": reference.cells["prune_unstructured"],
            "sweep_unstructured": reference.cells["sweep_unstructured"],
            "prune_structured": "import os\nos._exit(0)\n"}),
        Sample("invalid_json", everything, "error", raw='{"cells": [ this is not json'),
        # Cells pasted into a new notebook: no nbgrader metadata, no cell ids, the answers moved.
        Sample("correct_lost_metadata", set(), "ok", cells=dict(reference.cells), edit="lose_metadata"),
        Sample("lost_metadata_and_answers", everything, "error", cells={}, edit="lose_metadata_and_answers"),
    ]
    return samples


def _lose_metadata(nb, keep_answers: bool) -> None:
    """What pasting every cell into a new notebook leaves: no cell metadata, no ids. With
    ``keep_answers``, the structured answer is moved below its checks as well; without, the
    answer cells are gone."""
    nb.nbformat_minor = 4  # cell ids came with 4.5; like Colab's downloads, this notebook has none
    for cell in nb.cells:
        cell.metadata = {}
        cell.pop("id", None)
    at = next(i for i, c in enumerate(nb.cells) if "def prune_structured" in c.source)
    answer = nb.cells.pop(at)
    if keep_answers:
        nb.cells.insert(at + 3, answer)
    else:
        nb.cells[:] = [c for c in nb.cells if "def prune_unstructured" not in c.source]


def _edit_tests(nb) -> None:
    """Replace one test cell by a passing stub, delete another, duplicate a third."""
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(nb.cells)}
    nb.cells[by_id["test_unstructured_sparsity"]].source = "print('OK')  # edited by the student"
    dup = copy.deepcopy(nb.cells[by_id["test_structured_accuracy"]])
    nb.cells.insert(by_id["test_structured_accuracy"], dup)
    del nb.cells[by_id["test_unstructured_function"]]


def build_notebook(sample: Sample, release=None):
    """The release notebook with ``sample``'s code in its solution cells."""
    nb = copy.deepcopy(release or nbformat.read(RELEASE_NOTEBOOK, as_version=4))
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in (sample.cells or {}):
            cell.source = sample.cells[gid]
    if sample.edit == "edit_tests":
        _edit_tests(nb)
    elif sample.edit in ("lose_metadata", "lose_metadata_and_answers"):
        _lose_metadata(nb, keep_answers=sample.edit == "lose_metadata")
    return nb


def write_class(dest: Path, samples: list[Sample] | None = None,
                release_path: Path = RELEASE_NOTEBOOK) -> list[Sample]:
    """Write ``dest/<sample name>/pruning/pruning.ipynb`` for each sample; return the samples."""
    samples = load_samples() if samples is None else samples
    release = nbformat.read(release_path, as_version=4)
    for sample in samples:
        folder = Path(dest) / sample.name / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{NOTEBOOK}.ipynb"
        if sample.raw is not None:
            path.write_text(sample.raw)
        else:
            nbformat.write(build_notebook(sample, release), path)
    return samples

