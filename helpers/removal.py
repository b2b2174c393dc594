"""Part 3: checking a model whose zeroed filters were removed, and rebuilding one from its weights.

``remove_filters`` (the student's, with Torch-Pruning) turns a model pruned by
``prune_structured`` into a smaller dense one: every Conv2d keeps only its nonzero filters, and
the layers that read those channels (the next Conv2d's inputs, the first Linear's inputs)
shrink with them. A filter is its weights *and its bias*: ``ln_structured`` zeroes only the
weights, so a zeroed filter still outputs ``ReLU(bias)``, a constant map. Removing the filter
removes that constant too, so the removed model computes exactly what the masked model computes
once those biases are zero (:func:`without_dead_biases`); that is what :func:`inspect_removal`
compares with.

Example:
    >>> from helpers.models import SmallCNN
    >>> m = SmallCNN(channels=(4, 8, 8), hidden=16)
    >>> surviving_filters(m)
    {'conv1': 4, 'conv2': 8, 'conv3': 8}
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from ._batches import to_model_input
from .models import SmallCNN, copy_model
from .sparsity import effective_weight

__all__ = ["mask_random_filters", "surviving_filters", "masks_left", "without_dead_biases", "inspect_removal",
           "small_cnn_from_state", "OUTPUT_TOL", "MASKS_LEFT"]

#: Why a model still carrying pruning masks is not removed, and what to do (the visible and the hidden checks).
MASKS_LEFT = ("the removed model still has pruning masks (weight_orig and weight_mask) on {layers}: call "
              "prune.remove(layer, 'weight') on every pruned layer of the copy before Torch-Pruning; with a mask "
              "attached, Torch-Pruning cuts `weight` but the mask computes it again from the uncut `weight_orig`")
#: Largest allowed difference between the logits of a removed model and of its masked model
#: (float32 sums in another order differ by about 1e-6 here; a wrongly removed channel by 1e-2 or more).
OUTPUT_TOL = 1e-4


def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _dead(conv: nn.Conv2d) -> torch.Tensor:
    """Boolean ``(out_channels,)``: filters whose weights are all zero."""
    return (effective_weight(conv).flatten(1) == 0).all(dim=1)


def mask_random_filters(model: nn.Module, fraction: float, seed: int = 0) -> nn.Module:
    """Mask ``round(fraction * n)`` randomly chosen filters of every Conv2d of ``model`` (in place; returned).

    Uses ``prune.custom_from_mask``, so the result looks like ``prune_structured``'s output (masks
    attached, biases untouched) without its choice of filters: it tests removal on its own.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    for _, conv in _convs(model):
        mask = torch.ones_like(conv.weight)
        mask[torch.randperm(conv.out_channels, generator=generator)[:round(fraction * conv.out_channels)]] = 0
        prune.custom_from_mask(conv, "weight", mask)
    return model


def masks_left(model: nn.Module) -> list[str]:
    """The layers of ``model`` that still carry a pruning mask (``torch.nn.utils.prune``'s ``weight_mask``)."""
    return [name for name, m in model.named_modules() if hasattr(m, "weight_mask")]


def surviving_filters(model: nn.Module) -> dict[str, int]:
    """``{conv layer name: filters with a nonzero weight}`` (masks applied)."""
    return {name: int((~_dead(conv)).sum()) for name, conv in _convs(model)}


def without_dead_biases(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (masks kept) whose zeroed filters also have a zero bias: what removal computes."""
    out = copy_model(model)
    with torch.no_grad():
        for (_, conv), (_, src) in zip(_convs(out), _convs(model)):
            if conv.bias is not None:
                conv.bias[_dead(src)] = 0.0
    return out.eval()


def _config_of(state: dict) -> dict:
    return {"channels": tuple(int(state[f"conv{i}.weight"].shape[0]) for i in (1, 2, 3)),
            "hidden": int(state["fc1.weight"].shape[0]), "num_classes": int(state["fc2.weight"].shape[0])}


def small_cnn_from_state(state) -> tuple[SmallCNN | None, str | None]:
    """Rebuild a :class:`SmallCNN` of whatever width ``state`` has (a removed model); ``(model, None)``
    or ``(None, why not)``. Only tensors are read: nothing in ``state`` can run code."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None, "no model was saved"
    try:
        model = SmallCNN(**_config_of(state))
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return None, f"the model is not the course's CNN with some filters removed ({first})"
    return model.eval(), None


def inspect_removal(removed: nn.Module, masked: nn.Module, images: np.ndarray) -> str | None:
    """``None`` when ``removed`` is ``masked`` with exactly its zeroed filters removed, else why not.

    Args:
        removed: the smaller model (any width).
        masked: the model it was made from (pruned by ``prune_structured``; masks may be attached).
        images: uint8 ``(N, 32, 32, 3)`` images to compare the logits on (a few hundred suffice).
    """
    if removed is None:
        return "got None instead of a model: does the function end with `return` and the smaller copy?"
    if not isinstance(removed, nn.Module):
        return f"expected a torch.nn.Module, got {type(removed).__name__}"
    left = masks_left(removed)
    if left:
        return MASKS_LEFT.format(layers=", ".join(left))
    want = surviving_filters(masked)
    got = {name: conv.out_channels for name, conv in _convs(removed)}
    if list(got) != list(want):
        return f"the model has conv layers {list(got)}, expected {list(want)}"
    for name, n in want.items():
        if got[name] != n:
            return (f"{name} has {got[name]} filters, expected {n} (its nonzero ones): remove exactly the filters "
                    "whose weights are all zero")
    zeros = {name: int(_dead(conv).sum()) for name, conv in _convs(removed)}
    if any(zeros.values()):
        return (f"zeroed filters are still there ({zeros}), so filters that were not zero were removed instead: "
                "remove exactly the filters whose weights are all zero (zeroed_filters(model) lists them)")
    x = to_model_input(np.asarray(images))
    try:
        with torch.inference_mode():
            out = removed.eval()(x)
    except Exception as exc:  # noqa: BLE001 - a student's broken model gets a message, not a traceback
        return (f"the removed model cannot run on an image ({type(exc).__name__}: {str(exc)[:160]}): a layer still "
                "expects the channels of the filters removed before it; remove each zeroed filter together with the "
                "input channels that read it in the next layer (Torch-Pruning's DependencyGraph does both)")
    with torch.inference_mode():
        diff = float((out - without_dead_biases(masked)(x)).abs().max())
    if not diff <= OUTPUT_TOL:
        return (f"removing changed what the model computes (largest difference of the outputs, the logits: "
                f"{diff:.3g}): remove each "
                "zeroed filter together with the input channels that read it in the next layer (Torch-Pruning's "
                "DependencyGraph does both)")
    return None
