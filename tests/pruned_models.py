"""Models for parts 1-2's tests, pruned here by hand (not by the reference solutions): the smallest weights or
filters zeroed, and the records a notebook's hidden-test region would save for them.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from autograder.grading.parts import GRADED_PARTS

UNSTRUCTURED = GRADED_PARTS[0]


STRUCTURED = GRADED_PARTS[1]


REF_ACCURACY = 0.5


#: A small SmallCNN (18,600 weights): fast, and 1 weight is 0.00005 of them, finer than every tolerance tested.
SMALL = {"channels": (4, 8, 8), "hidden": 128}


def layer_weights(model, types=(nn.Conv2d, nn.Linear)):
    return [m.weight for m in model.modules() if isinstance(m, types)]


def zero_smallest(model: nn.Module, fraction: float, extra: int = 0) -> nn.Module:
    """A copy with the ``round(fraction * n) + extra`` smallest-magnitude weights of all layers zeroed."""
    out = copy.deepcopy(model)
    weights = layer_weights(out)
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    k = int(round(fraction * flat.numel())) + extra
    keep = torch.ones_like(flat)
    keep[torch.argsort(flat, stable=True)[:k]] = 0
    with torch.no_grad():
        start = 0
        for w in weights:
            w.mul_(keep[start:start + w.numel()].view_as(w))
            start += w.numel()
    return out


def sparsity(model, types=(nn.Conv2d, nn.Linear)) -> float:
    weights = layer_weights(model, types)
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def reference_of(base):
    """A reference for ``base`` whose every accuracy is :data:`REF_ACCURACY` and which knows no model yet."""
    from autograder.grading.measure import ReferenceMeasurements
    from helpers.checks import TARGETS
    data = [np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.int64)]
    accuracy = {gp.name: dict.fromkeys(TARGETS, REF_ACCURACY) for gp in GRADED_PARTS}
    return ReferenceMeasurements(model=base, arch="SmallCNN", config=SMALL, test_data=data, device="cpu",
                                 accuracy=accuracy, digests={gp.name: {} for gp in GRADED_PARTS})
