"""Classes made of the samples, for the class report: independent solutions, copies in disguise, and a large class.

:func:`independent_solutions` are correct solutions written independently (the reference and the ones in
``tests/fixtures/similarity/``, each in the samples' format); :func:`record_of` turns code into the report's
student record as grading would (:func:`autograder.classreport.traces.notebook_traces` of a notebook holding it);
:func:`large_class` makes a class of any size from the samples with variations (for the report's benchmark).

Runs anywhere (no torch).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import nbformat

from ..classreport.record import StudentRecord
from ..classreport.traces import notebook_traces
from ..config import REPO_ROOT
from . import RELEASE_NOTEBOOK, Sample, load_samples, parse_sample
from .variations import disguise_cells

__all__ = ["INDEPENDENT_DIR", "independent_solutions", "code_cells", "release_record", "record_of", "large_class"]

INDEPENDENT_DIR = REPO_ROOT / "tests" / "fixtures" / "similarity"


def independent_solutions() -> list[Sample]:
    """The reference and every ``independent_*.py`` of :data:`INDEPENDENT_DIR`: correct, written independently."""
    reference = next(s for s in load_samples() if s.name == "reference")
    return [reference] + [parse_sample(p) for p in sorted(INDEPENDENT_DIR.glob("independent_*.py"))]


def code_cells(sample: Sample) -> dict[str, str]:
    """A sample's code cells by grade id (its written answers left out)."""
    return {k: v for k, v in (sample.cells or {}).items() if not k.startswith("answer_")}


def release_record(release: Path = RELEASE_NOTEBOOK) -> dict:
    """The release notebook's code and cell ids, as grading puts them in ``class.json``."""
    nb = nbformat.read(release, as_version=4)
    return {"code": [c.source for c in nb.cells if c.cell_type == "code"],
            "cell_ids": [c.get("id") for c in nb.cells if c.get("id")]}


def record_of(student_id: str, cells: dict[str, str], release: Path = RELEASE_NOTEBOOK, **fields) -> StudentRecord:
    """The report's record of a student whose notebook is the release with ``cells`` (code by grade id) filled in,
    its traces read from the notebook's bytes as grading reads them; ``fields`` set the record's others."""
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and gid in cells:
            cell.source = cells[gid]
    traces = notebook_traces(nbformat.writes(nb).encode())
    return StudentRecord(student_id=student_id, status=fields.pop("status", "ok"), traces=traces, **fields)


def large_class(n: int, seed: int = 0, template: list[StudentRecord] | None = None) -> list[StudentRecord]:
    """``n`` students made from the samples: each a sample's code disguised (:func:`~.variations.disguise_cells`),
    with the points, messages, figures and time of a graded student of ``template`` (when given) jittered."""
    rng = random.Random(seed)
    bases = [s for s in load_samples() if s.cells] + independent_solutions()
    out = []
    for i in range(n):
        base = rng.choice(bases)
        cells = disguise_cells(code_cells(base), seed * 100_000 + i)
        extra = {}
        if template:
            like = json.loads(json.dumps(rng.choice(template).__dict__))  # a deep copy of plain values
            for part in like["figures"].values():
                for row in part:
                    for key in ("accuracy", "after"):
                        if row.get(key) is not None:
                            row[key] = min(1.0, max(0.0, row[key] + rng.uniform(-0.01, 0.01)))
            extra = {k: like[k] for k in ("status", "score", "checks", "notes", "figures", "graded")}
            extra["seconds"] = (like["seconds"] or 20.0) * rng.uniform(0.8, 1.3)
        out.append(record_of(f"s{i:04d}", cells, **extra))
    return out
