"""Making each submitted notebook safe to grade (the class is read by :mod:`autograder.grading.intake`).

Before a notebook runs, every cell the instructor owns (locked cells and test cells) is put
back exactly as in the source notebook, by nbgrader grade_id: edited ones are replaced,
deleted ones re-inserted where they belong, duplicates dropped, and nbgrader metadata a
student forged on their own cells removed. What was changed is reported as notes. A seeding
cell is put first so every run starts from the same random state.

Runs in the grader's process.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .recognise import recognise_cells, reorder_cells

__all__ = ["Submission", "prepare_notebook", "SubmissionError", "SEED_CELL",
           "strip_hidden_tests", "PREAMBLE_CELLS", "preamble_end"]

_BAKED = re.compile(r'^(HELPERS_URL|HELPERS_VERSION|MODEL_URL|MODEL_SHA256) = ".*"$')
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)

#: First cell of every graded run: the same random state for python, numpy and torch.
SEED_CELL = ("# Added by the autograder: fixed seeds for a reproducible run.\n"
             "import random as _r, numpy as _np, torch as _t\n"
             "_r.seed(0); _np.random.seed(0); _t.manual_seed(0)\n"
             "del _r, _np, _t")


#: The instructor's cells that set a run up (install check, imports, data and model loading). In a graded run
#: they run first, right after :data:`SEED_CELL`, before any student code (:func:`prepare_notebook` moves
#: student cells found among them, such as the editable paths cell, after them), so their failure is the
#: grading machine's, never the student's (:func:`preamble_end`).
PREAMBLE_CELLS = ("setup", "imports", "load")


class SubmissionError(ValueError):
    """The submission cannot be graded (e.g. invalid notebook JSON); the message says why."""


@dataclass
class Submission:
    """One student's notebook path and what preparing it changed."""

    student_id: str
    path: Path
    notes: list[str] = field(default_factory=list)


def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")  # metadata: required by the nbformat 4 schema


def _instructor_owned(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def _same_text(submitted: str, source: str) -> bool:
    """Does a student's copy of an instructor cell match the release version of ``source``?

    The values a release bakes into the set-up cell (``HELPERS_URL = "..."``) count as unchanged.
    """
    def norm(text: str) -> list[str]:
        return [_BAKED.sub(r'\1 = ""', line.rstrip()) for line in text.strip().splitlines()]
    return norm(submitted) in (norm(source), norm(strip_hidden_tests(source)))


def _clean_copy(cell):
    new = copy.deepcopy(cell)
    if new.cell_type == "code":
        new.outputs = []
        new.execution_count = None
    return new


def read_notebook(path: Path, max_bytes: int = 50_000_000, data: bytes | None = None):
    """Parse a submitted notebook (or ``data``, its bytes already read); :class:`SubmissionError`
    with the reason if it is not one."""
    size = len(data) if data is not None else path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(f"notebook is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    try:
        text = (data if data is not None else path.read_bytes()).decode("utf-8", errors="replace")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # NotJSONError, ValidationError, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SubmissionError(f"invalid notebook JSON: {first}") from None
    return nb


def _lean(cell, display_cells):
    """The grading version of an instructor cell: display cells do nothing and check cells
    keep only their hidden regions (what the grader needs); their visible parts are
    recomputed, more strictly, by the hidden checks."""
    gid = _gid(cell)
    if gid in display_cells:
        cell.source = f"# {gid}: display only, skipped by the autograder"
    elif cell.metadata["nbgrader"].get("grade") and cell.cell_type == "code":  # owned cells only
        hidden = _HIDDEN.findall(cell.source)  # markers kept: feedback strips these regions again
        cell.source = ("".join(h if h.endswith("\n") else h + "\n" for h in hidden).rstrip("\n") if hidden
                       else f"# {gid}: scored by the autograder's hidden checks")
    return cell


def prepare_notebook(submitted, source, lean: bool = False,
                     display_cells: tuple[str, ...] = ()) -> tuple[nbformat.NotebookNode, list[str]]:
    """Return a gradable copy of ``submitted`` and notes on what was restored.

    Raises:
        SubmissionError: the notebook lost its metadata and an answer cell cannot be found.

    Cells that lost their nbgrader metadata are recognised first (:mod:`.recognise`), and cells a
    student moved are put back in the source's order.

    Args:
        submitted: the student's notebook (``nbformat`` node, version 4); not modified.
        source: the instructor's source notebook.
        lean: run only what grading needs (see :func:`_lean`) instead of the whole notebook.
        display_cells: grade_ids of instructor cells that only display (plots, widgets).
    """
    submitted = copy.deepcopy(submitted)
    notes, unfound = recognise_cells(submitted, source, lambda c: strip_hidden_tests(c.source))
    if unfound:
        raise SubmissionError(
            f"the notebook lost its nbgrader cell metadata and no cell defines the answer of {', '.join(unfound)}: "
            "ask the student to copy their code into the released notebook and resubmit")
    notes += reorder_cells(submitted, source)
    owned = {_gid(c): c for c in source.cells if _gid(c) and _instructor_owned(c)}
    known = {_gid(c) for c in source.cells if _gid(c)}
    seen: set[str] = set()
    cells = [c for c in (_keep(cell, owned, known, seen, notes) for cell in submitted.cells) if c is not None]
    _reinsert_deleted(cells, [_gid(c) for c in source.cells if _gid(c)], owned, seen, notes)
    cells = _student_code_after_preamble(cells, owned)
    if lean:
        cells = [_lean(c, display_cells) if _gid(c) in owned else c for c in cells]
    nb = submitted  # already this function's own copy
    nb.cells = [nbformat.v4.new_code_cell(SEED_CELL)] + cells
    nb.metadata["kernelspec"] = copy.deepcopy(source.metadata.get("kernelspec", {}))
    return nb, notes


def _student_code_after_preamble(cells: list, owned: dict) -> list:
    """``cells`` with every code cell the student owns that lies before the last of :data:`PREAMBLE_CELLS`
    (the editable paths cell, or code a student put at the top) moved, in order, to just after it: no student
    code runs before the set-up is done, so it can neither change the grader's data and model paths nor make
    the set-up fail. Such cells only set paths, which a graded run ignores, so no note is made."""
    ends = [i for i, c in enumerate(cells) if _gid(c) in PREAMBLE_CELLS and _gid(c) in owned]
    if not ends:
        return cells
    end = ends[-1]
    early = [c for c in cells[:end] if c.cell_type == "code" and _gid(c) not in owned]
    if not early:
        return cells
    head = [c for c in cells[:end + 1] if not any(c is e for e in early)]
    return head + early + cells[end + 1:]


def preamble_end(nb) -> int:
    """Index in a prepared notebook (:func:`prepare_notebook`) of its last set-up cell (:data:`PREAMBLE_CELLS`):
    every cell up to it is the grader's or the instructor's; ``0`` (the seed cell) when it has none."""
    ends = [i for i, c in enumerate(nb.cells) if _gid(c) in PREAMBLE_CELLS]
    return ends[-1] if ends else 0


def _keep(cell, owned: dict, known: set, seen: set, notes: list[str]):
    """The cell to grade in place of a submitted ``cell`` (``None``: drop it); notes what changed."""
    gid = _gid(cell)
    if gid in owned:
        if gid in seen:
            notes.append(f"removed duplicate cell {gid}")
            return None
        seen.add(gid)
        if not _same_text(cell.source, owned[gid].source) or cell.cell_type != owned[gid].cell_type:
            notes.append(f"restored edited cell {gid}")
        return _clean_copy(owned[gid])
    # ``cell`` belongs to prepare_notebook's own copy of the submission: changed in place
    if gid in known:
        if gid in seen:
            notes.append(f"duplicate of {gid} kept as an ordinary cell")
            del cell.metadata["nbgrader"]
        seen.add(gid)
        return cell
    if "nbgrader" in cell.metadata:
        del cell.metadata["nbgrader"]
        if gid:
            notes.append(f"ignored unknown grade_id {gid}")
    return cell


def _reinsert_deleted(cells: list, order: list[str], owned: dict, seen: set, notes: list[str]) -> None:
    """Put instructor cells the student deleted back after the cell that preceded them in the source."""
    for i, gid in enumerate(order):
        if gid in seen:
            continue
        if gid not in owned:
            notes.append(f"answer cell {gid} is missing")
            continue
        notes.append(f"restored deleted cell {gid}")
        before = [g for g in order[:i] if g in seen]
        pos = 1 + max(j for j, c in enumerate(cells) if _gid(c) == before[-1]) if before else 0
        cells.insert(pos, _clean_copy(owned[gid]))
        seen.add(gid)


def strip_hidden_tests(text: str) -> str:
    """Remove ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions from cell source."""
    return _HIDDEN.sub("", text)
