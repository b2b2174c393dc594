"""Measuring what pruning did: sparsity, zeroed filters, nonzero counts, storage size.

Every function reads the *effective* weight ``module.weight`` of each ``nn.Conv2d`` and
``nn.Linear``. While ``torch.nn.utils.prune`` masks are active, ``model.parameters()`` yields
the dense ``weight_orig`` instead, so counting zeros there would report no pruning at all.

Example:
    >>> import torch.nn.utils.prune as prune
    >>> from helpers.models import SmallCNN
    >>> m = SmallCNN()
    >>> for _, layer in prunable_layers(m):
    ...     _ = prune.random_unstructured(layer, "weight", amount=0.5)
    >>> round(global_sparsity(m), 2)
    0.5
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["prunable_layers", "effective_weight", "global_sparsity", "layer_sparsity",
           "zeroed_filters", "count_nonzero_parameters", "model_size"]


def prunable_layers(model: nn.Module, types: tuple[type, ...] = (nn.Conv2d, nn.Linear)):
    """Return ``[(name, module)]`` of the Conv2d and Linear layers, in definition order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [(name, m) for name, m in model.named_modules() if isinstance(m, types)]


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with (``weight_orig * weight_mask`` while pruned), detached."""
    if hasattr(module, "weight_orig") and hasattr(module, "weight_mask"):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def global_sparsity(model: nn.Module, types: tuple[type, ...] = (nn.Conv2d, nn.Linear)) -> float:
    """Fraction in [0, 1] of zero weights over all layers of ``types`` together (no biases).

    The default counts every Conv2d and Linear weight, the denominator of global
    unstructured pruning; ``types=(nn.Conv2d,)`` gives the conv-only sparsity of
    structured filter pruning.
    """
    zeros = total = 0
    for _, m in prunable_layers(model, types):
        w = effective_weight(m)
        zeros += int((w == 0).sum())
        total += w.numel()
    if total == 0:
        raise ValueError(f"model has no layers of types {[t.__name__ for t in types]}")
    return zeros / total


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights per Conv2d/Linear layer, keyed by module name."""
    return {name: float((effective_weight(m) == 0).float().mean()) for name, m in prunable_layers(model)}


def zeroed_filters(model: nn.Module) -> dict[str, list[int]]:
    """Indices of output filters (dim 0) whose weights are all zero, per Conv2d layer."""
    out = {}
    for name, m in prunable_layers(model, (nn.Conv2d,)):
        w = effective_weight(m).flatten(1)
        out[name] = torch.nonzero((w == 0).all(dim=1)).flatten().tolist()
    return out


def count_nonzero_parameters(model: nn.Module) -> tuple[int, int]:
    """Return ``(nonzero, total)`` over all parameters, counting pruned weights as zeros.

    Biases and other parameters are counted too; ``weight_orig``/``weight_mask`` pairs count
    once, as their product.
    """
    nonzero = total = 0
    pruned = {id(m): m for _, m in prunable_layers(model) if hasattr(m, "weight_orig")}
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(module) in pruned and pname == "weight_orig":
                p = effective_weight(module)
            nonzero += int((p != 0).sum())
            total += p.numel()
    return nonzero, total


def model_size(model: nn.Module, index_bytes: int = 4) -> dict[str, float]:
    """Storage of the parameters, dense versus sparse, in bytes.

    ``dense``: every parameter stored (float32: 4 bytes each). ``sparse``: only nonzero
    values, each with an ``index_bytes`` index (a COO-like layout), which is what a sparse
    format saves at best; it is larger than dense below 50% sparsity with 4-byte indices.

    Returns:
        dict with ``dense_bytes``, ``sparse_bytes``, ``nonzero``, ``total`` and ``ratio``
        (sparse / dense).
    """
    nonzero, total = count_nonzero_parameters(model)
    value_bytes = 4
    for p in model.parameters():
        value_bytes = p.element_size()
        break
    dense = total * value_bytes
    sparse = nonzero * (value_bytes + index_bytes)
    return {"dense_bytes": dense, "sparse_bytes": sparse, "nonzero": nonzero, "total": total,
            "ratio": sparse / dense if dense else 0.0}
