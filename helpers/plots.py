"""Plots for the notebook: accuracy vs sparsity, per-layer sparsity, weight histograms.

Each function draws on a new matplotlib figure and returns it, so notebooks show it inline
and tests can save it (``fig.savefig("x.png")``). Nothing is modified.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from torch import nn

from ._values import as_number
from .sparsity import effective_weight, global_sparsity, layer_sparsity, prunable_layers

__all__ = ["plot_sweeps", "plot_layer_sparsity", "plot_weight_histograms", "plot_costs"]


def plot_sweeps(sweeps: dict[str, list[dict]], baseline: float | None = None, over=None):
    """Accuracy against achieved sparsity for several sweeps on one figure.

    Args:
        sweeps: label -> results list (dicts with ``sparsity`` and ``accuracy``), e.g.
            ``{"unstructured": unstructured_results, "structured": structured_results}``.
        baseline: accuracy of the unpruned model, drawn as a dashed line.
        over: layer types (e.g. ``(nn.Conv2d,)``): the x axis is then the fraction of zero weights over those
            layers, measured on each entry's ``model``, so that sweeps of different kinds share one axis
            (default: each entry's stored ``sparsity``).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, results in sweeps.items():
        points = []
        for r in results if isinstance(results, (list, tuple)) else ():
            if not isinstance(r, dict):
                continue
            x = global_sparsity(r["model"], over) if over and isinstance(r.get("model"), nn.Module) else \
                as_number(r.get("sparsity"))
            y = as_number(r.get("accuracy"))
            if x is not None and y is not None:
                points.append((x, y))
        if points:
            x, y = zip(*points)
            ax.plot(x, y, marker="o", label=label)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle="--", label=f"unpruned ({baseline:.3f})")
    ax.axhline(0.1, color="lightgray", linestyle=":", label="chance (0.10)")
    names = " and ".join(t.__name__ for t in over) if over else ""
    ax.set_xlabel(f"fraction of {names} weights that are zero" if over else
                  "sparsity (fraction of weights that are zero)")
    ax.set_ylabel("test accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Accuracy as pruning increases")
    fig.tight_layout()
    return fig


def plot_layer_sparsity(models: dict[str, nn.Module]):
    """Grouped bars: fraction of zero weights per Conv2d/Linear layer for each model."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels = list(models)
    per_model = [layer_sparsity(models[k]) for k in labels]
    layers = list(per_model[0]) if per_model else []
    width = 0.8 / max(1, len(labels))
    x = np.arange(len(layers))
    for i, (label, sp) in enumerate(zip(labels, per_model)):
        ax.bar(x + i * width - 0.4 + width / 2, [sp.get(n, 0.0) for n in layers], width, label=label)
    ax.set_xticks(x, layers)
    ax.set_ylabel("fraction of weights = 0")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title("Sparsity per layer")
    fig.tight_layout()
    return fig


def plot_weight_histograms(models: dict[str, nn.Module], bins: int = 100):
    """Histogram of the nonzero weight values of all Conv2d/Linear layers, one curve per model.

    The zeros of a pruned model are counted in the legend instead of drawn, so the gap that
    magnitude pruning cuts around zero is visible.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    weights = {label: np.concatenate([effective_weight(m).cpu().numpy().ravel() for _, m in prunable_layers(model)])
               for label, model in models.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(weights.values())), bins=bins)
    # Magnitude pruning leaves the large weights as they were, so the curves coincide beyond each
    # model's threshold: the first is drawn widest and each later one narrower and dashed on top,
    # so that every curve stays visible where they overlap.
    styles = ["-", "--", "-.", ":"]
    for i, (label, w) in enumerate(weights.items()):
        ax.hist(w[w != 0], bins=edges, histtype="step", linewidth=max(1.0, 3.5 - 0.8 * i),
                linestyle=styles[i % len(styles)], label=f"{label} ({(w == 0).mean():.0%} zeros)")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count (zeros not drawn)")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    ax.set_title("Weight magnitudes before and after pruning")
    fig.tight_layout()
    return fig


def plot_costs(rows: list[dict], latency_key: str = "latency_256"):
    """Accuracy against MACs and latency against MACs, one marker style per kind of model.

    Args:
        rows: from :func:`helpers.cost.cost_rows` (``kind``, ``macs``, ``accuracy`` and ``latency_key``).
        latency_key: which latency column to plot (seconds; drawn in milliseconds).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["macs"])
        macs = [r["macs"] / 1e6 for r in mine]
        style = {"marker": "o", "label": kind, "linestyle": "-" if len(mine) > 1 else "none"}
        left.plot(macs, [r["accuracy"] for r in mine], **style)
        right.plot(macs, [r[latency_key] * 1e3 for r in mine], **style)
    left.set_ylabel("test accuracy")
    right.set_ylabel(f"CPU latency, batch {latency_key.split('_')[-1]} (ms)")
    for ax, title in ((left, "Accuracy against computation"), (right, "Time against computation")):
        ax.set_xlabel("MACs per image (millions)")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title)
    right.set_ylim(bottom=0)
    fig.tight_layout()
    return fig
