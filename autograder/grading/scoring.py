"""Scores computed from saved weights alone: every graded check of a submission.

Nothing here runs student code. The notebook's hidden-test regions saved each part's models in the job's
export folder (:mod:`autograder.grading.kernel_export`); :func:`score_submission` reads those files and
scores parts 1-2 (:mod:`autograder.grading.part12_checks`) and part 3
(:mod:`autograder.grading.part3_checks`) against the grader's own reference measurements
(:mod:`autograder.grading.measure`), with accuracies the grader measures itself.

Runs in the grader's process (or a cluster worker's).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import GradeConfig
from .measure import ReferenceMeasurements
from .part3_checks import score_part3
from .part12_checks import score_part
from .parts import CHECK_KINDS, GRADED_PARTS, PART3, graded_checks
from .results import CheckResult

__all__ = ["score_submission", "load_export", "load_records", "EXPORTS"]

_MAX_EXPORT_BYTES = 200_000_000


def load_export(path: Path):
    """The records one part's hidden-test region saved in ``path`` (a ``torch.save`` of plain data, loaded
    with ``weights_only``), and ``None``; or ``None`` and why they cannot be used (missing, too large, not
    loadable)."""
    if not path.is_file():
        return None, "no results were saved: the notebook stopped before this part's first check cell"
    if path.stat().st_size > _MAX_EXPORT_BYTES:
        return None, "the saved results are too large to be this assignment's models"
    try:
        return torch.load(path, map_location="cpu", weights_only=True), None
    except Exception as exc:  # noqa: BLE001 - a tampered file
        return None, f"the saved results could not be read ({type(exc).__name__})"


#: The files a notebook's hidden-test regions save in its export folder, by name (``<name>.pt``).
EXPORTS = (*(gp.name for gp in GRADED_PARTS), "removal", "finetune")


def load_records(export_dir: Path) -> dict[str, tuple]:
    """``{name: load_export(export_dir / "<name>.pt")}`` for every one of :data:`EXPORTS`: read once, then scored
    (:func:`score_submission`) and measured for the class report
    (:func:`~autograder.grading.figures.submission_figures`)."""
    return {name: load_export(Path(export_dir) / f"{name}.pt") for name in EXPORTS}


def score_submission(export_dir: Path, ref: ReferenceMeasurements, cfg: GradeConfig,
                     points: dict[str, float], records: dict[str, tuple] | None = None) -> list[CheckResult]:
    """Score every graded test cell from the files in ``export_dir`` (``records``: :func:`load_records` of it, when
    already read).

    Each check is all or nothing; its messages list every target that failed, so the
    student sees all problems at once.
    """
    records = load_records(export_dir) if records is None else records
    messages = {}
    for gp in GRADED_PARTS:
        if not any(gid in points for gid in gp.cells):
            continue  # the instructor's notebook has no such part
        record, problem = records[gp.name]
        kinds = {k: [problem] for k in CHECK_KINDS} if problem else score_part(gp, record, ref, cfg)
        messages.update({gid: kinds[kind] for gid, kind in gp.checks().items()})
    if any(gid in points for gid in PART3):
        messages.update(score_part3(records, ref, cfg))
    out = []
    for gid in graded_checks(points):
        max_points = float(points[gid])
        out.append(CheckResult(gid, 0.0 if messages[gid] else max_points, max_points, messages[gid]))
    return out
