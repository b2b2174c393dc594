"""What a submitted notebook carries besides its grade: its code, and what running or sharing it left behind.

:func:`notebook_traces` reads the notebook as it was handed in (before the grader ran it): each code cell's
source, whether nbgrader marks it as a solution cell, its cell id, its execution count and a digest of its
outputs. Two students who shared one notebook file share what it left behind: the ids of cells they added,
outputs of cells whose outputs differ from run to run (a timing, a fine-tuning run on another machine), the
order they ran their cells in. :mod:`~autograder.classreport.similarity` compares them.

Runs anywhere (plain values; no torch); never raises for what a notebook holds.
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["notebook_traces", "MAX_SOURCE_CHARS"]

#: A cell's source is kept to this many characters (a notebook pasting megabytes into a cell is not compared on
#: all of them).
MAX_SOURCE_CHARS = 20_000
_MAX_CELLS = 400


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _outputs_digest(outputs) -> str | None:
    """A digest of what the outputs show (text, and image bytes), or ``None`` when there are none."""
    if not isinstance(outputs, list) or not outputs:
        return None
    h = hashlib.blake2b(digest_size=12)
    for out in outputs:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        if kind == "stream":
            h.update(_text(out.get("text")).encode(errors="replace"))
        elif kind == "error":
            h.update(f"{out.get('ename')}: {out.get('evalue')}".encode(errors="replace"))
        elif kind in ("execute_result", "display_data") and isinstance(out.get("data"), dict):
            for mime in sorted(out["data"]):
                h.update(mime.encode())
                h.update(_text(out["data"][mime]).encode(errors="replace"))
    return h.hexdigest()


def notebook_traces(nb_bytes: bytes) -> dict:
    """The traces of a notebook file's bytes (``{}`` when they are not a notebook).

    Returns ``{"cells": [...]}``, one dict per code cell in order: ``key`` (its nbgrader grade id, or
    ``cell-<i>``: its index among all cells), ``solution`` (nbgrader marks it one), ``id`` (the cell id, or
    ``None``: nbformat before 4.5), ``source`` (at most :data:`MAX_SOURCE_CHARS` characters), ``count`` (its
    execution count, or ``None``) and ``outputs`` (:func:`_outputs_digest`); and ``"ids"``: the ids of every cell,
    markdown included.
    """
    try:
        nb = json.loads(nb_bytes.decode("utf-8", errors="replace"))
        cells = nb.get("cells") if isinstance(nb, dict) else None
    except (ValueError, AttributeError):
        return {}
    if not isinstance(cells, list):
        return {}
    out, ids = [], []
    for i, cell in enumerate(cells[:_MAX_CELLS]):
        if not isinstance(cell, dict):
            continue
        cid = cell.get("id") if isinstance(cell.get("id"), str) else None
        if cid:
            ids.append(cid[:64])
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        gid = nbg.get("grade_id") if isinstance(nbg.get("grade_id"), str) else None
        count = cell.get("execution_count")
        out.append({"key": gid or f"cell-{i}", "solution": bool(nbg.get("solution")), "id": cid and cid[:64],
                    "source": _text(cell.get("source"))[:MAX_SOURCE_CHARS],
                    "count": count if isinstance(count, int) and not isinstance(count, bool) else None,
                    "outputs": _outputs_digest(cell.get("outputs"))})
    return {"cells": out, "ids": ids}
