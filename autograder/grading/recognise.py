"""Finding the cells of a notebook that lost its nbgrader metadata.

nbgrader knows a cell by the ``grade_id`` in its metadata. Cells pasted into a new notebook, or
saved by an editor that drops cell metadata (nbgrader issues #424 and #1546), have none, and would
be graded as if the student had deleted every answer. Before the usual restoring
(:func:`autograder.grading.submission.prepare_notebook`), every cell without a ``grade_id`` is
matched against the source notebook:

* a cell whose text is an instructor cell's (as released) is that cell;
* a code cell that defines an answer cell's function (``prune_unstructured``, ...), or its names
  when it defines no function (``finetune_results``), is that answer cell; of several, the last one
  (the student's latest version) wins;
* a markdown cell right after a question (found by the rules above) is that question's written answer.

Cells recognised get their ``grade_id`` back (the source's nbgrader metadata), with a note. Then
cells are put back in the source notebook's order when a student moved them (each cell of the
student's own stays after the cell it followed). When a notebook lost metadata and an answer
cell still cannot be found, :class:`~autograder.grading.submission.SubmissionError` says so in
words a TA acts on: the grade would otherwise be a silent zero.

Runs in the grader's process.
"""

from __future__ import annotations

import ast
import copy

__all__ = ["recognise_cells", "reorder_cells", "defined_names"]


def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")  # metadata: required by the nbformat 4 schema


def _norm(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def defined_names(source: str) -> set[str]:
    """Names a code cell defines at its top level (functions, classes, assignments); empty if unparsable.

    >>> sorted(defined_names("def f(x):\\n    return x\\nresults = []\\n%matplotlib inline"))
    ['f', 'results']
    """
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _label(cell, source_cell) -> None:
    cell.metadata["nbgrader"] = copy.deepcopy(source_cell.metadata["nbgrader"])


def recognise_cells(submitted, source, released_text) -> tuple[list[str], list[str]]:
    """Give cells without a ``grade_id`` theirs back where they can be recognised (in place).

    Args:
        submitted: the student's notebook (modified in place).
        source: the instructor's source notebook.
        released_text: ``f(source_cell) -> str``, the text students see of an instructor cell.

    Returns:
        ``(notes, unfound)``: what was recognised, and the answer cells that a notebook with lost
        metadata still lacks (empty when nothing was lost: an answer cell deleted from a notebook
        whose instructor cells kept their metadata is reported as missing by the restoring step).
    """
    have = {_gid(c) for c in submitted.cells if _gid(c)}
    wanted = [c for c in source.cells if _gid(c) and _gid(c) not in have]
    bare = [c for c in submitted.cells if not _gid(c)]
    if not wanted or not bare:
        return [], []
    found: list[str] = []
    # 1. instructor cells by their text
    texts = {}
    for cell in wanted:
        if not cell.metadata["nbgrader"].get("solution"):
            texts.setdefault((cell.cell_type, tuple(_norm(released_text(cell)))), cell)
    for cell in bare:
        match = texts.pop((cell.cell_type, tuple(_norm(cell.source))), None)
        if match is not None:
            _label(cell, match)
    # instructor cells without metadata (or none with any): metadata was lost, not an answer deleted
    lost = not have or any(_gid(c) for c in bare)
    # 2. code answer cells by the function they define (the last definition wins)
    for answer in [c for c in wanted if c.cell_type == "code" and c.metadata["nbgrader"].get("solution")]:
        names = defined_names(answer.source)
        # a cell is known by the functions it defines, or by its names when it defines none (part 3's fine-tuning)
        functions = {n for n in names if f"def {n}(" in answer.source} or names
        defining = [c for c in submitted.cells if not _gid(c) and c.cell_type == "code"
                    and functions & defined_names(c.source)]
        if defining:
            _label(defining[-1], answer)
            found.append(_gid(answer))
    # 3. written answers: the first unlabelled markdown cell after their question
    order = [_gid(c) for c in source.cells]
    for answer in [c for c in wanted if c.cell_type == "markdown" and c.metadata["nbgrader"].get("solution")]:
        question = order[order.index(_gid(answer)) - 1]
        at = next((i for i, c in enumerate(submitted.cells) if _gid(c) == question), None)
        nxt = submitted.cells[at + 1] if at is not None and at + 1 < len(submitted.cells) else None
        if nxt is not None and nxt.cell_type == "markdown" and not _gid(nxt):
            _label(nxt, answer)
            found.append(_gid(answer))
    labelled = sum(1 for c in bare if _gid(c))
    notes = []
    if labelled:
        notes.append(f"{labelled} cells had lost their nbgrader metadata and were recognised"
                     + (f" (answers: {', '.join(found)})" if found else ""))
    now = {_gid(c) for c in submitted.cells if _gid(c)}
    unfound = [_gid(c) for c in wanted if c.cell_type == "code" and c.metadata["nbgrader"].get("solution")
               and _gid(c) not in now] if lost else []
    return notes, unfound


def reorder_cells(submitted, source) -> list[str]:
    """Put cells with a ``grade_id`` back in the source's order (in place); a note if any moved.

    Each cell without one moves with the cell it followed; cells before the first keep their place.
    """
    rank = {_gid(c): i for i, c in enumerate(source.cells) if _gid(c)}
    head, groups = [], []
    for cell in submitted.cells:
        if _gid(cell) in rank:
            groups.append((rank[_gid(cell)], [cell]))
        elif groups:
            groups[-1][1].append(cell)
        else:
            head.append(cell)
    ordered = sorted(groups, key=lambda g: g[0])  # stable: duplicates keep their order
    if [r for r, _ in ordered] == [r for r, _ in groups]:
        return []
    submitted.cells = head + [c for _, cells in ordered for c in cells]
    return ["cells moved by the student were put back in the assignment's order"]
