"""Runs in the grader's process (never in a kernel): the reference solutions, never shipped to students.

These are the answers to the two solution cells of the notebook. The demo, the tests and
the hidden checks (reference accuracies) use them; the source notebook contains the same
code between nbgrader's solution markers.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import prune

from helpers import prunable_layers, test_model
from helpers.parts import STRUCTURED, Part

__all__ = ["prune_unstructured", "prune_structured", "sweep"]


def prune_unstructured(model: nn.Module, amount: float) -> nn.Module:
    """Return a pruned copy: the ``amount`` smallest-magnitude weights of all Conv2d and
    Linear layers together are zeroed (global L1 pruning). ``model`` is not modified."""
    pruned = copy.deepcopy(model)
    params = [(m, "weight") for _, m in prunable_layers(pruned)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return pruned


def prune_structured(model: nn.Module, amount: float) -> nn.Module:
    """Return a pruned copy: in every Conv2d, the ``amount`` fraction of output filters with
    the smallest L2 norm are zeroed. Linear layers are untouched; ``model`` is not modified."""
    pruned = copy.deepcopy(model)
    for _, m in prunable_layers(pruned, STRUCTURED.layer_types):
        prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    return pruned


def sweep(model: nn.Module, prune_fn, test_data, part: Part, verbose: bool = True) -> list[dict]:
    """Prune a fresh copy for each of ``part``'s targets and test it.

    Returns one dict per target with ``target``, ``model``, ``sparsity`` (over ``part``'s
    layers) and ``accuracy``.
    """
    results = []
    for target in part.targets:
        pruned = prune_fn(model, target)
        sparsity = part.sparsity(pruned)
        if verbose:
            print(f"target {target:.2f}  sparsity {sparsity:.4f}  ", end="")
        accuracy = test_model(pruned, test_data, verbose=verbose)
        results.append({"target": target, "model": pruned, "sparsity": sparsity, "accuracy": accuracy})
    return results
