"""The visible checks' and inspections' messages of parts 1 and 2 (:mod:`helpers.checks`, :mod:`helpers.inspection`),
at their boundaries, against models pruned here by hand (:mod:`tests.pruned_models`).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from helpers.checks import TARGETS, check_accuracies, check_results, inspect_structured, inspect_unstructured
from helpers.models import SmallCNN
from helpers.sparsity import zeroed_filters
from tests.pruned_models import SMALL, UNSTRUCTURED, layer_weights, sparsity, zero_smallest


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(1)
    return SmallCNN(**SMALL).eval()


class Tiny(nn.Module):
    """One conv of 4 filters over 2 channels, one linear layer; weights set by hand."""

    def __init__(self, conv: torch.Tensor, fc: torch.Tensor):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 1, bias=False)
        self.fc = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.conv1.weight.copy_(conv.view(4, 2, 1, 1))
            self.fc.weight.copy_(fc)


def tiny(conv, fc=((1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 1.0))):
    return Tiny(torch.tensor(conv, dtype=torch.float32), torch.tensor(fc, dtype=torch.float32))


def test_ties_in_magnitude_may_go_either_way():
    conv = ((0.5, 0.5), (0.5, 0.5), (2.0, 2.0), (3.0, 3.0))  # with the eight 1.0s of fc: 16 weights
    original = tiny(conv)
    assert inspect_unstructured(tiny(((0, 0), (0, 0), (2.0, 2.0), (3.0, 3.0))), original, 0.25) is None
    per_layer = tiny(conv, ((0, 0, 0, 0), (1, 1, 1, 1)))  # fc's own smallest (all equal), not the global ones
    assert inspect_unstructured(per_layer, original, 0.25) == (
        "target 0.25: a weight of magnitude 1 was pruned while one of 0.5 was kept: each layer lost its own "
        "smallest weights: that is per-layer pruning; use prune.global_unstructured over all layers at once")
    random = tiny(((0.5, 0.5), (0.5, 0.5), (0, 0), (0, 0)))  # conv's largest
    assert inspect_unstructured(random, original, 0.25) == (
        "target 0.25: a weight of magnitude 3 was pruned while one of 0.5 was kept: the weights set to zero are "
        "not the smallest in magnitude (random selection?); use L1 (magnitude) pruning")
    equal = tiny(((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0)))
    half = tiny(((1.0, 1.0), (0, 0), (1.0, 0), (0, 1.0)), ((1, 1, 1, 1), (0, 0, 0, 0)))
    assert inspect_unstructured(half, equal, 0.5) is None, "any half of equal magnitudes is right"


def test_ties_in_filter_norm_may_go_either_way():
    original = tiny(((1.0, 0.0), (0.0, 1.0), (3.0, 3.0), (4.0, 4.0)))  # filters 0 and 1: equal norms
    for zeroed in (0, 1):
        conv = [list(r) for r in ((1.0, 0.0), (0.0, 1.0), (3.0, 3.0), (4.0, 4.0))]
        conv[zeroed] = [0.0, 0.0]
        assert inspect_structured(tiny(conv), original, 0.25) is None
    conv = [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (4.0, 4.0)]
    assert inspect_structured(tiny(conv), original, 0.25) == (
        "target 0.25: conv1 zeroed a filter of L2 norm 4.243 but kept one of 1: prune the filters of smallest "
        "L2 norm (ln_structured with n=2, dim=0)")


def test_zeroing_input_channels_is_named_dim_1():
    original = tiny(((1.0, 2.0), (1.0, 2.0), (1.0, 2.0), (1.0, 2.0)))
    wrong = tiny(((0.0, 2.0), (0.0, 2.0), (0.0, 2.0), (0.0, 2.0)))
    assert inspect_structured(wrong, original, 0.5) == (
        "target 0.50: conv1 has 0 of 4 filters zeroed, expected 2: you zeroed input channels (dim=1); a filter is "
        "an output channel, prune along dim=0")
    scattered = tiny(((0.0, 2.0), (1.0, 0.0), (1.0, 2.0), (1.0, 2.0)))
    assert inspect_structured(scattered, original, 0.5) == (
        "target 0.50: conv1 has 0 of 4 filters zeroed, expected 2: weights were zeroed one by one, not as whole "
        "filters (use ln_structured, dim=0)")


def test_a_filter_with_one_zero_is_not_a_zeroed_filter():
    model = tiny(((0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0)))
    assert zeroed_filters(model) == {"conv1": [0, 3]}


def test_structured_pruning_leaves_linear_layers_alone():
    original = tiny(((1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)))
    pruned = tiny(((0.0, 0.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)), ((0, 1, 1, 1), (1, 1, 1, 1)))
    assert inspect_structured(pruned, original, 0.25) == (
        "target 0.25: Linear layer fc was changed; structured pruning in this assignment touches the Conv2d "
        "layers only")


def visible_results(base, fraction_fn=zero_smallest):
    return [{"target": t, "model": fraction_fn(base, t), "sparsity": sparsity(fraction_fn(base, t)), "accuracy": 0.5}
            for t in TARGETS]


def test_visible_check_boundaries(base):
    """The stored numbers are the accuracy check's (as in the grader); the list's own check looks at the models."""
    from helpers import test_model
    images = np.random.default_rng(1).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    data = [images, np.zeros(12, dtype=np.int64)]
    results = visible_results(base)
    for r in results:
        r["accuracy"] = test_model(r["model"], data, verbose=False)
    assert check_results(results, base, "unstructured") == ""
    assert check_accuracies(results, base, "unstructured", data) == ""
    measured = results[0]["sparsity"]
    for claim, ok in ((measured + 0.0009, True), (measured + 0.0011, False)):
        results[0] = {**results[0], "sparsity": claim}
        assert check_results(results, base, "unstructured") == ""
        assert check_accuracies(results, base, "unstructured", data) == ("" if ok else (
            f"target 0.10: 'sparsity' says {claim:.4f} but the model's zeros over all Conv2d and Linear weights "
            f"give {measured:.4f}"))
    results[0] = {**results[0], "sparsity": measured}
    for acc, ok in ((1.0, True), (0.0, True), (1.0001, False), (65.3, False), (-0.1, False), (True, False),
                    (torch.tensor(0.5), True), (np.float32(0.5), True), ("0.5", False)):
        results[1] = {**results[1], "accuracy": acc}  # with every=3 entry 1 is not evaluated: only its range
        assert check_results(results, base, "unstructured") == ""
        shown = repr(acc) if isinstance(acc, (bool, str)) else f"{float(acc):.4f}"
        assert check_accuracies(results, base, "unstructured", data, every=3) == ("" if ok else (
            f"target 0.20: 'accuracy' must be test_model's number in [0, 1], got {shown}"))
    # By default (as in the notebook) every entry's accuracy is measured, as the grader does.
    own = test_model(results[1]["model"], data, verbose=False)
    for off, ok in ((0.0049, True), (0.0051, False)):  # CLAIM_TOL, the grader's claim_tol too
        wrong = own + off if own < 0.5 else own - off
        results[1] = {**results[1], "accuracy": wrong}
        assert check_accuracies(results, base, "unstructured", data, every=3) == ""
        assert check_accuracies(results, base, "unstructured", data) == ("" if ok else (
            f"target 0.20: 'accuracy' says {wrong:.4f} but test_model(model, test_data) gives {own:.4f} for the model "
            "stored with it: measure that same model on test_data and store it, accuracy = test_model(pruned, "
            "test_data) (a number from other images, such as X_val, or from another model differs)"))
    # an accuracy of the whole test split is the grader's test_data: accepted when the check is given the split
    whole = [np.concatenate([images, images[:6]]), np.zeros(18, dtype=np.int64)]
    results[1] = {**results[1], "accuracy": test_model(results[1]["model"], whole, verbose=False) + 0.02}
    assert check_accuracies(results, base, "unstructured", data, whole=whole) != ""
    results[1] = {**results[1], "accuracy": own}
    assert check_accuracies(results, base, "unstructured", data, whole=whole) == ""


def test_visible_check_of_the_list_itself(base):
    results = visible_results(base)
    assert check_results(results[:7], base, "unstructured") == (
        "unstructured_results has 7 entries, expected 11 (targets [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, "
        "0.98])")
    assert check_results(["x"] + results[1:], base, "unstructured") == (
        "unstructured_results[0] is a str, not a dict: "
        "every entry needs the keys target, model, sparsity and accuracy")
    assert check_results([], base, "structured") == (
        "structured_results is empty: fill it in the cell above, one dict per target "
        "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98]")
    assert check_results({}, base, "unstructured") == "unstructured_results must be a list of dicts, got dict"
    assert check_results(results, zero_smallest(base, 0.1), "unstructured").startswith(
        "the pretrained `model` itself is pruned")


def test_one_model_object_in_every_entry_is_named_as_the_cause(base):
    working = copy.deepcopy(base)
    results = []
    for t in TARGETS[:3]:  # one working copy, pruned again each time and stored each time
        working.load_state_dict(zero_smallest(base, t).state_dict())
        results.append({"target": t, "model": working, "sparsity": sparsity(working), "accuracy": 0.5})
    want = ("the entries of unstructured_results for targets 0.10, 0.20, 0.30 hold one and the same model object, "
            "which therefore only shows the last pruning: store a separate pruned copy per target "
            "(prune_unstructured must return a new model, for example copy.deepcopy(model) pruned)")
    assert check_results(results, base, "unstructured", targets=TARGETS[:3]) == want
    test_data = [np.zeros((4, 32, 32, 3), dtype=np.uint8), np.zeros(4, dtype=np.int64)]
    assert check_accuracies(results, base, "unstructured", test_data) == want
    results[1] = {**results[1], "model": copy.deepcopy(working)}
    assert check_results(results, base, "unstructured", targets=TARGETS[:3]).startswith(
        "the entries of unstructured_results for targets 0.10, 0.30 hold one and the same model object")


def test_compounding_advice_is_given_once_with_every_sparsity(base):
    working, results = copy.deepcopy(base), []
    kept = 1.0
    for t in TARGETS[:3]:  # each step prunes t of what is left: 0.1, 0.28, 0.496
        kept *= 1 - t
        working = zero_smallest(base, 1 - kept)
        results.append({"target": t, "model": copy.deepcopy(working), "sparsity": sparsity(working), "accuracy": 0.5})
    got = check_results(results, base, "unstructured", targets=TARGETS[:3]).splitlines()
    assert got == [f"target 0.20 gave sparsity {sparsity(results[1]['model']):.3f}; target 0.30 gave sparsity "
                   f"{sparsity(results[2]['model']):.3f}: pruning compounds when applied again to an already pruned "
                   "model; prune a fresh copy of the pretrained model for each target (copy.deepcopy(model) or "
                   "helpers.copy_model), or compute the amount relative to what remains"]


def test_stored_accuracies_are_compared_rounded(base):
    images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    test_data = [images, np.zeros(20, dtype=np.int64)]
    from helpers import test_model
    results = visible_results(base)
    for r in results:
        r["accuracy"] = test_model(r["model"], test_data, verbose=False)
    assert check_accuracies(results, base, "unstructured", test_data) == ""
    true = results[3]["accuracy"]
    results[3] = {**results[3], "accuracy": 0.5223333333333333}
    assert check_accuracies(results, base, "unstructured", test_data) == (
        f"target 0.40: 'accuracy' says 0.5223 but test_model(model, test_data) gives {true:.4f} for the model stored "
        "with it: measure that same model on test_data and store it, accuracy = test_model(pruned, test_data) (a "
        "number from other images, such as X_val, or from another model differs)")
    results[2] = {**results[2], "accuracy": 0.0}  # with every=3, entries off the every-3rd path are not evaluated
    assert check_accuracies(results, base, "unstructured", test_data, every=3).startswith("target 0.40:")
    assert check_accuracies(results, base, "unstructured", test_data).startswith("target 0.30:")  # by default, all


def test_every_problem_of_a_list_is_reported_on_its_own_line(base):
    results = visible_results(base)
    results[0] = {**results[0], "target": 0.15}
    results[2] = {**results[2], "sparsity": "0.3"}
    results[4] = {k: v for k, v in results[4].items() if k != "accuracy"}
    assert check_results(results, base, UNSTRUCTURED.part) == "\n".join([  # the stored sparsity: check_accuracies
        "unstructured_results[0]['target'] is 0.15, expected 0.1",
        "unstructured_results[4] lacks 'accuracy' (it has 'target', 'model', 'sparsity'): "
        "every entry needs the keys target, model, sparsity and accuracy"])


def test_a_model_that_cannot_be_inspected_gets_a_message(base):
    results = visible_results(base)
    results[1] = {**results[1], "model": nn.Sequential(nn.Linear(2, 2))}
    assert check_results(results, base, "unstructured").startswith(
        "target 0.20: the pruned model has layers ['0'], the pretrained model")

    class Broken(nn.Module):
        def named_modules(self, *args, **kwargs):
            raise RuntimeError("no modules here")
    results[1] = {**results[1], "model": Broken()}
    assert check_results(results, base, "unstructured") == (
        "target 0.20: the stored 'model' is not a pruned copy of the course's model (inspecting it failed: "
        "RuntimeError: no modules here)")


def test_long_advice_is_merged_and_short_lines_are_not(base):
    from helpers.checks import _said_once
    advice = "x" * 81
    assert _said_once([f"target 0.10 gave a: {advice}", f"target 0.20 gave b: {advice}"]) == [
        f"target 0.10 gave a; target 0.20 gave b: {advice}"]
    assert _said_once([f"a: {'y' * 80}", f"b: {'y' * 80}"]) == [f"a: {'y' * 80}", f"b: {'y' * 80}"]
    assert _said_once([f"only: {advice}"]) == [f"only: {advice}"]
    assert _said_once([f"a: b: {advice}", f"c: b: {advice}"]) == [f"a; c: b: {advice}"]
    assert _said_once(["no separator " + advice, "no separator " + advice]) == ["no separator " + advice] * 2


def test_the_accuracy_check_message_by_message(base, capsys):
    from helpers import test_model
    images = np.random.default_rng(1).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    data = [images, np.zeros(12, dtype=np.int64)]
    results = visible_results(base)
    for r in results:
        r["accuracy"] = test_model(r["model"], data, verbose=False)
    capsys.readouterr()
    assert check_accuracies(results, base, UNSTRUCTURED.part, data) == ""
    assert capsys.readouterr().out == ""  # quiet: the cell prints its own OK line
    assert check_accuracies({}, base, "unstructured", data) == "unstructured_results must be a list of dicts, got dict"
    assert check_accuracies([], base, "unstructured", data) == (
        "unstructured_results is empty: fill it in the cell with your code above")
    assert check_accuracies(results, zero_smallest(base, 0.1), "unstructured", data).startswith(
        "the pretrained `model` itself is pruned")
    wrong = [dict(r) for r in results]
    wrong[0]["accuracy"], wrong[3]["accuracy"] = "high", 0.99
    lines = [
        "target 0.10: 'accuracy' must be test_model's number in [0, 1], got 'high'",
        f"target 0.40: 'accuracy' says 0.9900 but test_model(model, test_data) gives {results[3]['accuracy']:.4f} "
        "for the model stored with it: measure that same model on test_data and store it, accuracy = "
        "test_model(pruned, test_data) (a number from other images, such as X_val, or from another model differs)"]
    assert check_accuracies(wrong, base, "unstructured", data) == "\n".join(lines)
    wrong[6] = {"target": 0.7}
    assert check_accuracies(wrong, base, "unstructured", data) == "\n".join([*lines, (
        "unstructured_results[6] lacks 'model', 'sparsity', 'accuracy' (it has 'target'): "
        "every entry needs the keys target, model, sparsity and accuracy")])
    wrong[0]["target"] = "ten"
    assert check_accuracies(wrong[:1], base, "unstructured", data) == (
        "target 'ten': 'accuracy' must be test_model's number in [0, 1], got 'high'")


def test_structured_diagnoses_at_their_edges():
    original = tiny(((1.0, 2.0), (1.0, 2.0), (1.0, 2.0), (1.0, 2.0)))
    one_zero = tiny(((0.0, 2.0), (1.0, 2.0), (1.0, 2.0), (1.0, 2.0)))  # a single zero weight is enough
    assert inspect_structured(one_zero, original, 0.5) == (
        "target 0.50: conv1 has 0 of 4 filters zeroed, expected 2: weights were zeroed one by one, not as whole "
        "filters (use ln_structured, dim=0)")
    spread = ((1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (4.0, 0.0))
    three = tiny(((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (4.0, 0.0)))  # 3 of 4 where 1 was asked: compounding
    assert inspect_structured(three, tiny(spread), 0.25) == (
        "target 0.25: conv1 has 3 of 4 filters zeroed, expected 1: pruning compounds when applied again to an "
        "already pruned model; prune a fresh copy of the pretrained model for each target (copy.deepcopy(model) "
        "or helpers.copy_model), or compute the amount relative to what remains")
    norms = tiny(((1.0, 0.0), (0.0, 1.5), (3.0, 3.0), (4.0, 4.0)))  # norms 1 and 1.5: zeroing 1.5 is wrong
    assert inspect_structured(tiny(((1.0, 0.0), (0.0, 0.0), (3.0, 3.0), (4.0, 4.0))), norms, 0.25) == (
        "target 0.25: conv1 zeroed a filter of L2 norm 1.5 but kept one of 1: prune the filters of smallest "
        "L2 norm (ln_structured with n=2, dim=0)")


def _wide(values):
    """One conv of 20 filters over 2 channels (1x1), weights given per filter."""
    m = nn.Sequential(nn.Conv2d(2, 20, 1, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor(values, dtype=torch.float32).view(20, 2, 1, 1))
    return m


def test_inspection_messages_whole_and_their_edge_cases():
    values = [(1.0, float(i + 2)) for i in range(20)]  # norms all differ; one weight of exactly 1 per filter
    original = _wide(values)
    assert inspect_structured(original, original, 0.5) == "target 0.50: 0 has 0 of 20 filters zeroed, expected 10"
    changed = _wide([(0.0, 0.0)] * 10 + [(1.0, float(i + 100)) for i in range(10)])
    assert inspect_structured(changed, original, 0.5) == (
        "weights of 0 that were not pruned have changed: pruning must only set weights to zero, keep the others "
        "exactly as in the pretrained model")
    assert inspect_unstructured(original, original, 0.0) is None
    assert inspect_unstructured(_wide([(0.0, 0.0)] * 20), original, 1.0) is None
    other = nn.Sequential(nn.Conv2d(2, 20, 1, bias=False), nn.Linear(2, 2))
    assert inspect_unstructured(other, original, 0.5) == (
        "the pruned model has layers ['0', '1'], the pretrained model ['0']: prune a copy of the pretrained model "
        "instead of building a new one")
    assert inspect_unstructured(nn.Sequential(nn.Conv2d(2, 19, 1, bias=False)), original, 0.5) == (
        "layer 0 has weight shape (19, 2, 1, 1), expected (20, 2, 1, 1): pruning here zeroes weights, it does not "
        "remove them")
    assert inspect_unstructured([1, 2], original, 0.5) == "expected a torch.nn.Module, got list"


def test_a_sparsity_near_a_compounded_one_but_at_its_own_target_is_not_compounding(base):
    n = sum(w.numel() for w in layer_weights(base))
    off = zero_smallest(base, 0.1, extra=int(round(0.006 * n)))  # 0.106: off target, nearest compounded 0.1 itself
    assert inspect_unstructured(off, base, 0.1) == (
        f"target 0.10 gave sparsity {sparsity(off):.3f}: expected 0.100 of all Conv2d and Linear weights to be zero")


def test_shared_model_objects_are_named_by_kind_name_and_in_groups(base):
    from helpers.checks import shared_models
    a, b = zero_smallest(base, 0.1), zero_smallest(base, 0.2)
    results = [{"target": 0.1, "model": a}, {"target": 0.2, "model": a}, {"target": 0.3, "model": b},
               {"target": 0.4, "model": b}, {"target": 0.5, "model": zero_smallest(base, 0.5)}]
    assert shared_models(results, "structured") == (
        "the entries of structured_results for targets 0.10, 0.20; 0.30, 0.40 hold one and the same model object, "
        "which therefore only shows the last pruning: store a separate pruned copy per target (prune_structured must "
        "return a new model, for example copy.deepcopy(model) pruned)")
    assert shared_models(None, "unstructured") == "" and shared_models(results[:1], "unstructured") == ""


def test_every_wrong_model_of_a_list_is_named(base):
    results = visible_results(base)
    results[0] = {**results[0], "model": copy.deepcopy(base)}
    results[1] = {**results[1], "model": copy.deepcopy(base)}
    lines = check_results(results, base, "unstructured").splitlines()
    assert lines == ["target 0.10 gave sparsity 0.000: expected 0.100 of all Conv2d and Linear weights to be zero",
                     "target 0.20 gave sparsity 0.000: expected 0.200 of all Conv2d and Linear weights to be zero"]
