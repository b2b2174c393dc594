"""The report's figures, drawn with matplotlib and embedded as SVG text (the page needs no network).

Each function takes the :class:`~autograder.classreport.record.ClassRecord` (or what was computed from it) and
returns one ``<svg>`` element as a string, or ``""`` when there is nothing to draw. Every figure is drawn on
matplotlib's non-interactive Agg/SVG backend and closed.

Runs anywhere (no torch).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .groups import CheckRate  # noqa: E402
from .record import ClassRecord  # noqa: E402

__all__ = ["points_histograms", "status_counts", "pass_rate_chart", "sweep_curves", "finetune_chart",
           "removal_chart", "time_histogram"]

_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "class-report", "font.size": 9, "axes.spines.top": False,
          "axes.spines.right": False}
_STUDENT = {"color": "tab:blue", "alpha": 0.25, "linewidth": 1}
_REFERENCE = {"color": "black", "linewidth": 2, "marker": "o", "markersize": 4, "label": "reference solution"}
_PART_NAMES = {"unstructured": "Part 1: unstructured pruning", "structured": "Part 2: structured pruning"}


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(ncols: int = 1, width: float = 4.2, height: float = 2.8):
    with plt.rc_context(_STYLE):
        return plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)


def points_histograms(record: ClassRecord) -> str:
    """The distribution of total points and of each part's points, among the students with points."""
    scored = [s for s in record.students if s.has_points]
    if not scored:
        return ""
    parts = record.parts
    with plt.rc_context(_STYLE):
        fig, axes = _figure(1 + len(parts), 3.2, 2.4)
        panels = [("Total", [s.score for s in scored], record.max_score)]
        for part, checks in parts.items():
            panels.append((part, [sum(s.checks.get(c.grade_id, {}).get("points", 0.0) for c in checks)
                                  for s in scored], sum(c.max_points for c in checks)))
        for ax, (title, values, top) in zip(axes[0], panels):
            bins = [x - 0.5 for x in range(int(top) + 2)]
            ax.hist(values, bins=bins, color="tab:blue", edgecolor="white")
            ax.set_title(f"{title} (of {top:g})")
            ax.set_xlabel("points")
            ax.set_xlim(-0.5, top + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("students")
        return _svg(fig)


def status_counts(record: ClassRecord) -> str:
    """How many rows have each status (``ok``, a timeout, a limit, not graded, no submission)."""
    counts: dict[str, int] = {}
    for s in record.students:
        label = s.status if len(s.status) <= 60 else s.status[:57] + "..."
        counts[label] = counts.get(label, 0) + 1
    if not counts:
        return ""
    with plt.rc_context(_STYLE):
        fig, axes = _figure(1, 6.5, 0.35 * len(counts) + 0.8)
        ax = axes[0][0]
        labels = sorted(counts, key=lambda k: -counts[k])
        ax.barh(labels[::-1], [counts[k] for k in labels[::-1]], color="tab:gray")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("submissions")
        return _svg(fig)


def pass_rate_chart(rates: list[CheckRate]) -> str:
    """Each check's pass rate, lowest at the top."""
    if not rates or not rates[0].of:
        return ""
    with plt.rc_context(_STYLE):
        fig, axes = _figure(1, 6.5, 0.32 * len(rates) + 0.8)
        ax = axes[0][0]
        ax.barh([r.title for r in rates][::-1], [100 * r.rate for r in rates][::-1], color="tab:green")
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of students with full points")
        return _svg(fig)


def sweep_curves(record: ClassRecord) -> str:
    """Each student's accuracy against sparsity in both sweeps (faint), over the reference solution's."""
    names = [n for n in _PART_NAMES if n in record.reference or any(n in s.figures for s in record.students)]
    if not names:
        return ""
    with plt.rc_context(_STYLE):
        fig, axes = _figure(len(names), 4.2, 3.0)
        for ax, name in zip(axes[0], names):
            for s in record.students:
                rows = sorted(s.figures.get(name) or [], key=lambda r: r["sparsity"])
                if rows:
                    ax.plot([r["sparsity"] for r in rows], [r["accuracy"] for r in rows], **_STUDENT)
            ref = sorted(record.reference.get(name) or [], key=lambda r: r["sparsity"])
            if ref:
                ax.plot([r["sparsity"] for r in ref], [r["accuracy"] for r in ref], **_REFERENCE)
                ax.legend(loc="lower left")
            ax.set_title(_PART_NAMES[name])
            ax.set_xlabel("fraction of weights that are zero" + (" (conv layers)" if name == "structured" else ""))
            ax.set_ylabel("accuracy (grader's data)")
        return _svg(fig)


def finetune_chart(record: ClassRecord) -> str:
    """Accuracy before and after fine-tuning, one line per student, for each kind of starting model."""
    kinds = sorted({r["kind"] for s in record.students for r in s.figures.get("finetune") or []})
    if not kinds:
        return ""
    with plt.rc_context(_STYLE):
        fig, axes = _figure(len(kinds), 3.2, 3.0)
        for ax, kind in zip(axes[0], kinds):
            for s in record.students:
                for r in s.figures.get("finetune") or []:
                    if r["kind"] == kind and r.get("before") is not None:
                        ax.plot([0, 1], [r["before"], r["after"]], **_STUDENT)
            ax.set_xticks([0, 1], ["before", "after"])
            ax.set_xlim(-0.2, 1.2)
            ax.set_title(f"fine-tuning the {kind} model")
            ax.set_ylabel("accuracy (grader's data)")
        return _svg(fig)


def removal_chart(record: ClassRecord) -> str:
    """The removed models' MACs (one image) against their accuracy: the students' and the reference solution's."""
    points = [(r["macs"], r["accuracy"]) for s in record.students for r in s.figures.get("removal") or []]
    ref = sorted(record.reference.get("removal") or [], key=lambda r: r["macs"])
    if not points and not ref:
        return ""
    with plt.rc_context(_STYLE):
        fig, axes = _figure(1, 5.0, 3.0)
        ax = axes[0][0]
        if points:
            ax.scatter([p[0] / 1e6 for p in points], [p[1] for p in points], s=12, color="tab:blue", alpha=0.35,
                       label="students' removed models")
        if ref:
            ax.plot([r["macs"] / 1e6 for r in ref], [r["accuracy"] for r in ref], **_REFERENCE)
        ax.set_xlabel("MACs per image (millions)")
        ax.set_ylabel("accuracy (grader's data)")
        ax.legend(loc="lower right")
        return _svg(fig)


def time_histogram(record: ClassRecord) -> str:
    """How long each notebook ran (kernel start to end), in seconds."""
    seconds = [s.seconds for s in record.students if s.seconds is not None]
    if not seconds:
        return ""
    with plt.rc_context(_STYLE):
        fig, axes = _figure(1, 5.0, 2.4)
        ax = axes[0][0]
        ax.hist(seconds, bins=min(30, max(5, len(seconds) // 3)), color="tab:purple", edgecolor="white")
        ax.set_xlabel("seconds per notebook")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("submissions")
        return _svg(fig)
