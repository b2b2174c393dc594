"""Models for part 3's tests, made by hand: a small CNN, its filters masked with ``torch.nn.utils.prune`` or
removed by slicing tensors, a 90% unstructured model, and small datasets.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from helpers.models import SmallCNN, copy_model, plain_state_dict

SMALL = {"channels": (4, 6, 8), "hidden": 16}


IMAGES = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)


def base():
    torch.manual_seed(3)
    return SmallCNN(**SMALL).eval()


def masked(model, dead: dict[str, list[int]]):
    """A copy with the given filters of each conv masked (biases untouched)."""
    out = copy_model(model)
    for name, idx in dead.items():
        conv = getattr(out, name)
        mask = torch.ones_like(conv.weight)
        mask[idx] = 0
        prune.custom_from_mask(conv, "weight", mask)
    return out


def removed_by_hand(model, dead: dict[str, list[int]]):
    """Slice the surviving filters out by hand: each conv's rows, the next layer's columns, the biases."""
    state = plain_state_dict(model)
    keep = {n: [i for i in range(getattr(model, n).out_channels) if i not in dead.get(n, [])]
            for n in ("conv1", "conv2", "conv3")}
    state["conv1.weight"] = state["conv1.weight"][keep["conv1"]]
    state["conv1.bias"] = state["conv1.bias"][keep["conv1"]]
    for prev, conv in (("conv1", "conv2"), ("conv2", "conv3")):
        state[f"{conv}.weight"] = state[f"{conv}.weight"][keep[conv]][:, keep[prev]]
        state[f"{conv}.bias"] = state[f"{conv}.bias"][keep[conv]]
    cols = torch.tensor([c * 16 + p for c in keep["conv3"] for p in range(16)])
    state["fc1.weight"] = state["fc1.weight"][:, cols]
    out = SmallCNN(channels=tuple(len(keep[n]) for n in ("conv1", "conv2", "conv3")), hidden=SMALL["hidden"])
    out.load_state_dict(state)
    return out.eval()


DEAD = {"conv1": [1], "conv2": [0, 4], "conv3": [2, 3, 7]}


def unstructured_90():
    """A copy of the base model with 90% of conv2's and fc1's weights masked by global L1 pruning."""
    u = copy_model(base())
    prune.global_unstructured([(u.conv2, "weight"), (u.fc1, "weight")], prune.L1Unstructured, amount=0.9)
    return u


def small_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)]


class StrictAccuracy:
    """A stand-in for ``test_model`` that insists on the test data and on silence, with fixed accuracies."""

    def __init__(self, data, accuracy: dict):
        self.data, self.accuracy = data, accuracy

    def __call__(self, model, data, verbose=True):
        if data is not self.data or verbose is not False:
            raise AssertionError(f"test_model called with other data or verbose={verbose!r}")
        return self.accuracy[id(model)]


def with_masks_like(model):
    out = copy_model(model)
    for m in out.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.custom_from_mask(m, "weight", m.weight.detach() != 0)
    return out


def reference():
    """The grader's reference for these tests: the small CNN, measured on :data:`IMAGES` on the CPU."""
    from autograder.grading.measure import ReferenceMeasurements
    data = [IMAGES, np.arange(16) % 10]
    return ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=data, device="cpu", accuracy={})


def grade_config(tmp_path):
    """A grading configuration over the small CNN, saved under ``tmp_path``."""
    from autograder.config import GradeConfig
    from helpers.models import save_model
    (tmp_path / "subs").mkdir()
    return GradeConfig(submissions=tmp_path / "subs", data_root="synthetic",
                       model=save_model(base(), tmp_path / "m.pt"), out=tmp_path / "out")
