"""The class report and the pairs worth comparing, built from a finished grading folder.

``python -m autograder grade`` writes ``DIR/class.json`` at the end (:mod:`~autograder.classreport.record`) and
calls :func:`build_report`, which writes ``DIR/report.html`` (:mod:`~autograder.classreport.page`) and
``DIR/similar-pairs.csv`` (:mod:`~autograder.classreport.similarity`); ``python -m autograder report DIR``
rebuilds both from ``class.json`` alone. Nothing here imports grading: the record is the whole interface.

Modules: ``record`` (the file), ``traces`` (what a submitted notebook carries), ``groups`` (messages by cause,
pass rates), ``similarity`` (pairs), ``plots`` (figures), ``page`` (the HTML).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .record import ReportError, read_class_record
from .settings import SimilarityConfig

__all__ = ["build_report", "Built", "ReportError", "SimilarityConfig", "REPORT_FILE", "PAIRS_FILE", "CALIBRATION"]

REPORT_FILE = "report.html"
PAIRS_FILE = "similar-pairs.csv"
#: What the page says of the threshold's calibration (measured by ``benchmarks/similarity.py``).
CALIBRATION = ("calibrated on independent correct solutions written differently (none listed) and on copies "
               "with names changed, lines reordered and comments added (all listed): see docs/instructors.md.")


@dataclass(frozen=True)
class Built:
    """What :func:`build_report` wrote: the page, the pairs' CSV and how many pairs it lists."""

    report: Path
    pairs_csv: Path
    pairs: int


def build_report(out: Path, similarity: SimilarityConfig = SimilarityConfig()) -> Built:
    """Write ``out/report.html`` and ``out/similar-pairs.csv`` from ``out/class.json``; :class:`ReportError` when
    the folder has no usable record. Each file is written beside its place, then renamed (never half a page)."""
    from .page import render_report  # noqa: PLC0415 - matplotlib and jinja2 load only when a report is made
    from .similarity import similar_pairs, write_pairs_csv  # noqa: PLC0415 - copydetect (and its pyplot) too

    out = Path(out)
    record = read_class_record(out)
    pairs = similar_pairs(record, similarity)
    csv_path = write_pairs_csv(out / f".{PAIRS_FILE}.tmp", pairs)
    os.replace(csv_path, out / PAIRS_FILE)
    page = out / f".{REPORT_FILE}.tmp"
    page.write_text(render_report(record, pairs, similarity, CALIBRATION), encoding="utf-8")
    os.replace(page, out / REPORT_FILE)
    return Built(out / REPORT_FILE, out / PAIRS_FILE, len(pairs))
