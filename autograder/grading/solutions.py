"""The reference solutions, never shipped to students.

These are the answers to the solution cells of the notebook (parts 1 to 3). The demo, the tests and
the hidden checks (reference accuracies) use them; the source notebook contains the same
code between nbgrader's solution markers.

Runs in the grader's process (never in a kernel).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from helpers import copy_model, test_model
from helpers.parts import STRUCTURED, Part
from helpers.sparsity import prunable_layers

__all__ = ["prune_unstructured", "prune_structured", "remove_filters", "sweep"]


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


def remove_filters(model: nn.Module) -> nn.Module:
    """Return a smaller dense copy of ``model`` (pruned by :func:`prune_structured`): every Conv2d keeps
    only its nonzero filters, and the layers reading them shrink to match (Torch-Pruning's
    dependency graph). ``model`` is not modified."""
    import torch_pruning as tp  # noqa: PLC0415 - about 1 s: only the reference's part 3 needs it
    removed = copy_model(model)
    for m in removed.modules():
        if hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    graph = tp.DependencyGraph().build_dependency(removed, example_inputs=torch.zeros(1, 3, 32, 32))
    for conv in [m for m in removed.modules() if isinstance(m, nn.Conv2d)]:
        dead = (conv.weight.detach().flatten(1) == 0).all(dim=1).nonzero().flatten().tolist()
        if dead:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=dead).prune()
    return removed


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
