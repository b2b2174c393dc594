"""The class report's page: ``DIR/report.html``, one self-contained file (figures inline, no network).

:func:`render_report` fills ``templates/report.html.j2`` (Jinja2, autoescaped) with what
:mod:`~autograder.classreport.groups`, :mod:`~autograder.classreport.plots` and
:mod:`~autograder.classreport.similarity` computed from the record. Student code appears only in the pairs
worth comparing; nothing of the hidden tests or the reference solution's code is in the record, so none can be
on the page.

Runs anywhere (no torch).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader

from . import plots
from .groups import group_messages, pass_rates
from .record import ClassRecord
from .settings import SimilarityConfig
from .similarity import Pair, highlighted

__all__ = ["render_report", "SLOWEST", "SHOWN_PAIRS"]

#: How many of the slowest notebooks the page lists.
SLOWEST = 10
#: How many pairs the page shows side by side (the rest in a table; all of them in similar-pairs.csv).
SHOWN_PAIRS = 40
_ENV = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True)


def render_report(record: ClassRecord, pairs: list[Pair], similarity: SimilarityConfig, pairs_note: str) -> str:
    """The page's HTML for ``record`` and its ``pairs`` (found with ``similarity``; ``pairs_note`` says how the
    threshold was calibrated)."""
    students = sorted(record.students, key=lambda s: s.student_id)
    scored = [s.score for s in students if s.has_points]
    counts = {"students": len(students), "scored": len(scored),
              "not_graded": sum(1 for s in students if not s.graded),
              "absent": sum(1 for s in students if s.graded and not s.has_points),
              "mean": statistics.fmean(scored) if scored else 0.0,
              "median": statistics.median(scored) if scored else 0.0}
    rates = pass_rates(record)
    figures = {"points": plots.points_histograms(record), "status": plots.status_counts(record),
               "rates": plots.pass_rate_chart(rates), "curves": plots.sweep_curves(record),
               "removal": plots.removal_chart(record), "finetune": plots.finetune_chart(record),
               "time": plots.time_histogram(record)}
    feedback = {s.student_id: (f"feedback/{quote(s.student_id)}.html" if s.feedback else "#students")
                for s in students}
    slowest = sorted((s for s in students if s.seconds is not None), key=lambda s: -s.seconds)[:SLOWEST]
    return _ENV.get_template("report.html.j2").render(
        record=record, students=students, counts=counts, rates=rates, groups=group_messages(record),
        titles={c.grade_id: c.title for c in record.checks}, figures=figures, feedback=feedback, slowest=slowest,
        failures=[s for s in students if not s.graded], run=record.run, pairs=pairs, similarity=similarity,
        pairs_note=pairs_note, highlighted=highlighted, shown_pairs=SHOWN_PAIRS)
