"""Sparsity measurement checked against masks made by torch.nn.utils.prune."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from helpers import global_sparsity, layer_sparsity, zeroed_filters
from helpers.models import SmallCNN
from helpers.sparsity import count_nonzero_parameters, model_size, prunable_layers


def fresh():
    torch.manual_seed(0)
    return SmallCNN()


def mask_fraction(model, types=(nn.Conv2d, nn.Linear)):
    masks = [m.weight_mask for _, m in prunable_layers(model, types) if hasattr(m, "weight_mask")]
    zeros = sum(int((mk == 0).sum()) for mk in masks)
    return zeros / sum(mk.numel() for mk in masks)


@pytest.mark.parametrize("amount", [0.1, 0.35, 0.8])
def test_global_unstructured_matches_masks_before_and_after_remove(amount):
    model = fresh()
    layers = prunable_layers(model)
    prune.global_unstructured([(m, "weight") for _, m in layers], prune.L1Unstructured, amount=amount)
    expected = mask_fraction(model)
    assert global_sparsity(model) == pytest.approx(expected, abs=0)
    per_layer = layer_sparsity(model)
    for name, m in layers:
        assert per_layer[name] == pytest.approx(float((m.weight_mask == 0).float().mean()))
    # model.parameters() still shows the dense weight_orig: measuring there is wrong.
    dense_zeros = sum(int((p == 0).sum()) for n, p in model.named_parameters() if n.endswith("weight_orig"))
    assert dense_zeros == 0
    for _, m in layers:
        prune.remove(m, "weight")
    assert global_sparsity(model) == pytest.approx(expected, abs=0)


def test_structured_matches_masks_before_and_after_remove():
    model = fresh()
    convs = prunable_layers(model, (nn.Conv2d,))
    for _, m in convs:
        prune.ln_structured(m, "weight", amount=0.3, n=2, dim=0)
    expected = {name: torch.nonzero((m.weight_mask.flatten(1) == 0).all(1)).flatten().tolist()
                for name, m in convs}
    assert zeroed_filters(model) == expected
    for name, m in convs:
        assert len(expected[name]) == round(0.3 * m.out_channels)
    assert global_sparsity(model, (nn.Conv2d,)) == pytest.approx(mask_fraction(model, (nn.Conv2d,)))
    assert layer_sparsity(model)["fc1"] == 0.0
    for _, m in convs:
        prune.remove(m, "weight")
    assert zeroed_filters(model) == expected


def test_nonzero_count_and_size():
    model = fresh()
    nz0, total = count_nonzero_parameters(model)
    assert nz0 == total == sum(p.numel() for p in model.parameters())
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    nz, total2 = count_nonzero_parameters(model)
    assert total2 == total, "weight_orig/weight_mask must count once"
    assert nz == total - int((model.fc1.weight_mask == 0).sum())
    size = model_size(model)
    assert size["dense_bytes"] == 4 * total
    assert size["sparse_bytes"] == 8 * nz
    assert size["ratio"] == pytest.approx(size["sparse_bytes"] / size["dense_bytes"])


def test_rejects_non_models():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        global_sparsity("model")
    with pytest.raises(ValueError, match="no layers"):
        global_sparsity(nn.Sequential(nn.ReLU()))
