"""What the class report plots of each submission, measured by the grader from the saved models.

:func:`submission_figures` reads the records the checks read (:func:`~autograder.grading.scoring.load_records`,
loaded once) and gives plain numbers: each sweep's models as (target, sparsity, accuracy), each removed model's MACs and
accuracy, and each fine-tuned model's accuracy before and after. Nothing the student *stored* is used: a
sparsity is measured on the model, an accuracy is the grader's own (:meth:`ReferenceMeasurements.accuracy_of`,
measured once per model in a run, so the models the checks measured cost nothing more).
:func:`reference_figures` gives the same for the reference solution. The class report
(:mod:`autograder.classreport`) draws them; grading writes them into ``class.json``.

Runs in the grader's process (or a cluster worker's); runs no student code.
"""

from __future__ import annotations

import math

from helpers.cost import count_macs
from helpers.models import plain_state_dict
from helpers.removal import small_cnn_from_state
from helpers.removal_checks import FINETUNE_TARGETS, removable

from . import solutions as solution
from .measure import ReferenceMeasurements, model_digest, model_from_state
from .parts import GRADED_PARTS

__all__ = ["submission_figures", "reference_figures"]

#: At most this many entries of one list are measured (a results list of thousands is not the assignment's).
_MAX_ENTRIES = 20


def _items(record) -> list[dict]:
    items = record.get("results") if isinstance(record, dict) else None
    return [i for i in (items if isinstance(items, list) else [])[:_MAX_ENTRIES] if isinstance(i, dict)]


def _target(item: dict) -> float | None:
    t = item.get("target")
    return round(float(t), 6) if isinstance(t, float) and math.isfinite(t) else None


def _measured(items: list[dict], rebuild, ref: ReferenceMeasurements, measure) -> list[dict]:
    """``{"target", **measure(model), "accuracy"}`` of each item whose model ``rebuild(state)`` can make."""
    rows = []
    for item in items:
        target = _target(item)
        model = rebuild(item.get("state"))[0] if target is not None else None
        if model is not None:
            rows.append({"target": target, **measure(model), "accuracy": ref.accuracy_of(model, model_digest(model))})
    return rows


def submission_figures(records: dict[str, tuple], ref: ReferenceMeasurements) -> dict:
    """The figures of one submission from its saved records (:func:`~autograder.grading.scoring.load_records`:
    what :mod:`.kernel_export` saved, as the checks read it).

    Returns ``{"unstructured": [...], "structured": [...], "removal": [...], "finetune": [...]}``, each a list of
    plain dicts (a part whose results were not saved is absent):

    - a sweep: ``{"target", "sparsity", "accuracy"}``: the fraction of zero weights over the part's layers
      (:meth:`helpers.parts.Part.sparsity`) and the accuracy on the grading data, both in [0, 1];
    - ``removal``: ``{"target", "macs", "accuracy"}``: multiply-accumulates of one image (a float) and accuracy;
    - ``finetune``: ``{"kind", "before", "after"}``: accuracy of the model it started from (the student's own at
      :data:`~helpers.removal_checks.FINETUNE_TARGETS`) and of the fine-tuned model.

    A model that cannot be rebuilt from its tensors is left out. Never raises for what a notebook saved.
    """
    out: dict[str, list[dict]] = {}
    for gp in GRADED_PARTS:
        record, problem = records[gp.name]
        if not problem:
            out[gp.name] = _measured(_items(record), lambda state: model_from_state(state, ref), ref,
                                     lambda model, part=gp.part: {"sparsity": round(part.sparsity(model), 6)})
    record, problem = records["removal"]
    if not problem:
        out["removal"] = _measured(_items(record), small_cnn_from_state, ref,
                                   lambda model: {"macs": float(count_macs(model)[0])})
    record, problem = records["finetune"]
    if not problem:
        starts = {name: {r["target"]: r["accuracy"] for r in out.get(name, [])} for name in ("removal", "unstructured")}
        rows = []
        for item in _items(record):
            kind = item.get("kind")
            if kind not in FINETUNE_TARGETS:
                continue
            removed = kind == "structured"
            state = item.get("state")
            model, _ = small_cnn_from_state(state) if removed else model_from_state(state, ref)
            before = starts["removal" if removed else "unstructured"].get(round(FINETUNE_TARGETS[kind], 6))
            if model is not None:
                rows.append({"kind": kind, "before": before, "after": ref.accuracy_of(model, model_digest(model))})
        out["finetune"] = rows
    return out


def reference_figures(ref: ReferenceMeasurements) -> dict:
    """The reference solution's figures in :func:`submission_figures`'s form (sweeps and removed models; its
    fine-tuning is not a single run, so it has none)."""
    out: dict[str, list[dict]] = {}
    for gp in GRADED_PARTS:
        rows = []
        for t in gp.part.targets:
            model, _ = model_from_state(plain_state_dict(gp.reference(ref.model, t)), ref)
            rows.append({"target": t, "sparsity": round(gp.part.sparsity(model), 6),
                         "accuracy": ref.accuracy[gp.name][t]})
        out[gp.name] = rows
    rows = []
    for t in GRADED_PARTS[1].part.targets:
        pruned = solution.prune_structured(ref.model, t)
        if not removable(pruned):  # a layer of zeros only has nothing to remove to
            continue
        removed, _ = small_cnn_from_state(plain_state_dict(solution.remove_filters(pruned)))
        rows.append({"target": t, "macs": float(count_macs(removed)[0]),
                     "accuracy": ref.accuracy_of(removed, model_digest(removed))})
    out["removal"] = rows
    return out
