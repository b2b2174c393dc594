"""Reference solutions of the pruning assignment (instructor-only; never shipped to students).

These are the answers to the two solution cells of the notebook. The demo, the tests and
the hidden checks (reference accuracies) use them; the source notebook contains the same
code between nbgrader's solution markers.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import prune

from helpers import global_sparsity, prunable_layers, test_model

__all__ = ["TARGETS", "prune_unstructured", "prune_structured", "sweep"]

#: Pruning targets of both sweeps, as fractions.
TARGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


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
    for _, m in prunable_layers(pruned, (nn.Conv2d,)):
        prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    return pruned


def sweep(model: nn.Module, prune_fn, test_data, targets=TARGETS, structured: bool = False,
          verbose: bool = True) -> list[dict]:
    """Prune a fresh copy for each target and test it.

    Returns one dict per target with ``target``, ``model``, ``sparsity`` (global over Conv2d
    and Linear weights; over Conv2d weights only when ``structured``) and ``accuracy``.
    """
    types = (nn.Conv2d,) if structured else (nn.Conv2d, nn.Linear)
    results = []
    for target in targets:
        pruned = prune_fn(model, target)
        sparsity = global_sparsity(pruned, types)
        if verbose:
            print(f"target {target:.2f}  sparsity {sparsity:.4f}  ", end="")
        accuracy = test_model(pruned, test_data, verbose=verbose)
        results.append({"target": target, "model": pruned, "sparsity": sparsity, "accuracy": accuracy})
    return results
