"""The notebook's visible checks of a whole results list, with messages that teach.

Used by the notebook's check cells (instant feedback in seconds on a CPU). The autograder runs
the same inspections (:mod:`helpers.inspection`) in a clean process on the models a notebook
produced, plus accuracy measurements and calls at targets the student never saw.
``inspect_unstructured``, ``inspect_structured``, ``compounded`` and ``TARGETS`` are those of
:mod:`helpers.inspection`, here for the notebook's imports.
"""

from __future__ import annotations

import math
import numbers

from torch import nn

from .inspection import TARGETS, compounded, inspect_structured, inspect_unstructured
from .parts import Part, get_part
from .sparsity import global_sparsity

__all__ = ["TARGETS", "RESULT_KEYS", "compounded", "inspect_unstructured", "inspect_structured",
           "check_results"]

#: Keys every results entry must have.
RESULT_KEYS = ("target", "model", "sparsity", "accuracy")


def check_results(results, original: nn.Module, kind: str | Part, targets=None, tol: float = 0.001) -> str:
    """Check a notebook's ``unstructured_results`` or ``structured_results`` list.

    Args:
        results: list of dicts with keys ``target``, ``model``, ``sparsity``, ``accuracy``.
        original: the pretrained model (must itself be unpruned).
        kind: the pruning kind (:mod:`helpers.parts`) or its name, ``"unstructured"`` or ``"structured"``.
        targets: the targets the list must follow (default: the kind's).
        tol: allowed distance of a claimed sparsity from the model's.

    Returns:
        ``""`` when everything is right, else the problems, one per line.
    """
    part = kind if isinstance(kind, Part) else get_part(kind)
    targets = part.targets if targets is None else targets
    name = part.results_name
    if not isinstance(results, (list, tuple)):
        return f"{name} must be a list of dicts, got {type(results).__name__}"
    if len(results) == 0:
        return f"{name} is empty: fill it in the cell above, one dict per target {list(targets)}"
    if global_sparsity(original) > 0:
        return ("the pretrained `model` itself is pruned: prune a copy (copy.deepcopy(model)) so that "
                "every target starts from the original weights; reload it with load_model to start over")
    problems = []
    if len(results) != len(targets):
        problems.append(f"{name} has {len(results)} entries, expected {len(targets)} (targets {list(targets)})")
    for i, (entry, target) in enumerate(zip(results, targets)):
        if not isinstance(entry, dict) or set(RESULT_KEYS) - set(entry):
            problems.append(f"{name}[{i}] must be a dict with keys {list(RESULT_KEYS)}")
            continue
        if not isinstance(entry["target"], numbers.Real) or not math.isclose(entry["target"], target):
            problems.append(f"{name}[{i}]['target'] is {entry['target']!r}, expected {target}")
            continue
        try:
            msg = part.inspect(entry["model"], original, target)
        except Exception as exc:  # a broken student object must give a message, not a traceback
            msg = f"could not inspect the model: {type(exc).__name__}: {exc}"
        if msg:
            problems.append(msg if msg.startswith("target") else f"target {target:.2f}: {msg}")
            continue
        measured = part.sparsity(entry["model"])
        claimed = entry["sparsity"]
        if not isinstance(claimed, numbers.Real) or abs(float(claimed) - measured) > tol:
            problems.append(f"target {target:.2f}: 'sparsity' says {claimed!r} but the model's zeros over "
                            f"{part.layers_text} give {measured:.4f}")
        acc = entry["accuracy"]
        if not isinstance(acc, numbers.Real) or not 0.0 <= float(acc) <= 1.0:
            problems.append(f"target {target:.2f}: 'accuracy' must be test_model's number in [0, 1], got {acc!r}")
    return "\n".join(problems)
