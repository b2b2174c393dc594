"""The messages of the checks, on models pruned with each known mistake (no kernel needed)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from autograder.grading import solutions
from helpers.checks import check_accuracies, check_results, compounded, inspect_structured, inspect_unstructured
from helpers.models import SmallCNN
from helpers.sparsity import prunable_layers


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return SmallCNN().eval()


def test_correct_pruning_passes(base):
    for t in (0.1, 0.35, 0.8):
        assert inspect_unstructured(solutions.prune_unstructured(base, t), base, t) is None
        assert inspect_structured(solutions.prune_structured(base, t), base, t) is None


def test_compounding_is_named(base):
    m = solutions.prune_unstructured(base, 0.1)
    params = [(mod, "weight") for _, mod in prunable_layers(m)]
    prune.global_unstructured(params, prune.L1Unstructured, amount=0.2)
    assert "compounds" in inspect_unstructured(m, base, 0.2)
    assert [round(s, 2) for s in compounded()][:3] == [0.1, 0.28, 0.5]


def test_per_layer_and_random_get_different_messages(base):
    per_layer = copy.deepcopy(base)
    for _, mod in prunable_layers(per_layer):
        prune.l1_unstructured(mod, "weight", amount=0.5)
    assert "per-layer pruning" in inspect_unstructured(per_layer, base, 0.5)
    torch.manual_seed(1)
    rand = copy.deepcopy(base)
    prune.global_unstructured([(mod, "weight") for _, mod in prunable_layers(rand)], prune.RandomUnstructured,
                              amount=0.5)
    message = inspect_unstructured(rand, base, 0.5)
    assert "random selection" in message and "per-layer" not in message


def test_structured_mistakes(base):
    wrong_dim = copy.deepcopy(base)
    for _, mod in prunable_layers(wrong_dim, (nn.Conv2d,)):
        prune.ln_structured(mod, "weight", amount=0.5, n=2, dim=1)
    assert "dim=0" in inspect_structured(wrong_dim, base, 0.5)
    linear = copy.deepcopy(base)
    for _, mod in prunable_layers(linear):
        prune.ln_structured(mod, "weight", amount=0.5, n=2, dim=0)
    assert "Linear layer" in inspect_structured(linear, base, 0.5)


def test_check_results_messages(base):
    assert "is empty" in check_results([], base, "unstructured")
    pruned_base = solutions.prune_unstructured(base, 0.1)
    assert "itself is pruned" in check_results([{"x": 1}], pruned_base, "unstructured")
    good = [{"target": t, "model": solutions.prune_unstructured(base, t), "sparsity": t, "accuracy": 0.5}
            for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)]
    assert check_results(good, base, "unstructured") == ""
    good[2]["sparsity"] = 0.9  # a stored number: the accuracy check's, as in the grader
    assert check_results(good, base, "unstructured") == ""
    data = [np.zeros((4, 32, 32, 3), dtype=np.uint8), np.zeros(4, dtype=np.int64)]
    assert "target 0.30: 'sparsity' says 0.9" in check_accuracies(good, base, "unstructured", data)
    with pytest.raises(ValueError, match="kind"):
        check_results(good, base, "sideways")


def test_a_pruning_kind_is_one_object(base):
    from dataclasses import replace

    from autograder.grading.parts import CHECKS, GRADED_PARTS, PART3
    from helpers.parts import PARTS, STRUCTURED, UNSTRUCTURED, get_part
    assert [p.name for p in PARTS] == ["unstructured", "structured"]
    assert get_part("structured") is STRUCTURED
    with pytest.raises(ValueError, match=r"one of \['unstructured', 'structured'\], got 'filters'"):
        get_part("filters")
    assert (STRUCTURED.results_name, STRUCTURED.function_name) == ("structured_results", "prune_structured")
    # structured sparsity is over Conv2d weights only: a model whose Linear layers were zeroed is not sparser
    m = copy.deepcopy(base)
    with torch.no_grad():
        for _, layer in prunable_layers(m, (nn.Linear,)):
            layer.weight.zero_()
    assert STRUCTURED.sparsity(m) == 0.0 and UNSTRUCTURED.sparsity(m) > 0.0
    # every graded cell belongs to exactly one part and check
    assert list(CHECKS) == [gid for gp in GRADED_PARTS for gid in gp.cells] + list(PART3)
    # a new kind is a new instance: the visible checks follow its targets and inspection
    half = replace(UNSTRUCTURED, name="half", targets=(0.5,))
    results = [{"target": 0.5, "model": solutions.prune_unstructured(base, 0.5), "sparsity": 0.5, "accuracy": 0.1}]
    assert check_results(results, base, half) == ""
    assert "half_results has 1 entries, expected 2" in check_results(results, base, replace(half, targets=(0.5, 0.6)))


def test_filters_ranked_over_all_conv_layers_together_are_named(base):
    """One ranking of every conv filter by L2 norm (instead of each layer by its own fraction): the message says so."""
    m = copy.deepcopy(base)
    convs = [mod for _, mod in prunable_layers(m, (nn.Conv2d,))]
    norms = torch.cat([c.weight.detach().flatten(1).norm(dim=1) for c in convs])
    cut = norms.sort().values[int(round(0.5 * len(norms))) - 1]
    with torch.no_grad():
        for c in convs:
            c.weight[c.weight.flatten(1).norm(dim=1) <= cut] = 0
    message = inspect_structured(m, base, 0.5)
    assert message.endswith(": the filters of all Conv2d layers were ranked together; prune each Conv2d by its own "
                            "fraction (ln_structured on every layer with the same amount)"), message
    assert "filters zeroed, expected" in message


def test_a_structured_sparsity_over_all_layers_is_named(base):
    """Part 2's commonest slip: global_sparsity(pruned) (all layers) stored instead of over the Conv2d layers."""
    from helpers import global_sparsity
    from helpers.inspection import TARGETS
    models = {t: solutions.prune_structured(base, t) for t in TARGETS}
    results = [{"target": t, "model": m, "sparsity": global_sparsity(m), "accuracy": 0.5} for t, m in models.items()]
    assert check_results(results, base, "structured") == ""
    data = [np.zeros((4, 32, 32, 3), dtype=np.uint8), np.zeros(4, dtype=np.int64)]
    lines = [line for line in check_accuracies(results, base, "structured", data).splitlines() if "'sparsity'" in line]
    assert len(lines) == len(TARGETS) and all(
        line.endswith(": that is the fraction over all layers; for structured pruning store "
                      "global_sparsity(pruned, (nn.Conv2d,))") for line in lines), lines
