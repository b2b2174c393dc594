"""Part 3: removal, cost measurement, fine-tuning and their checks, against references made by hand.

Removed models are built here by slicing tensors (not with Torch-Pruning, which the solution uses);
masked models with ``torch.nn.utils.prune.custom_from_mask``; MAC counts are compared with a fresh
model of the same widths. Messages are asserted whole.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from helpers import SmallCNN, test_model
from helpers.cost import count_macs, format_cost_table, measure_latency
from helpers.finetune import fine_tune
from helpers.models import copy_model, plain_state_dict
from helpers.removal import (
    inspect_removal,
    mask_random_filters,
    small_cnn_from_state,
    surviving_filters,
    without_dead_biases,
)
from helpers.removal_checks import FINETUNE_MARGIN, NO_MASKS, check_finetuning, check_removal, inspect_finetuned

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


def test_a_model_removed_by_hand_passes_and_computes_the_masked_model_without_dead_biases():
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    assert surviving_filters(m) == {"conv1": 3, "conv2": 4, "conv3": 5}
    assert inspect_removal(r, m, IMAGES) is None
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(r(x), without_dead_biases(m)(x), atol=1e-5)
    assert not torch.allclose(r(x), m(x), atol=1e-5), "the dead filters' biases matter: the test would be blind"


def test_removal_mistakes_get_their_messages():
    m = masked(base(), DEAD)
    assert inspect_removal(base(), m, IMAGES) == (
        "conv1 has 4 filters, expected 3 (its nonzero ones): remove exactly the filters whose weights are all zero")
    wrong = removed_by_hand(m, DEAD)
    with torch.no_grad():  # conv2 reads conv1's surviving channels in the wrong order
        wrong.conv2.weight.copy_(wrong.conv2.weight[:, [1, 0, 2]])
    assert inspect_removal(wrong, m, IMAGES).startswith(
        "removing changed what the model computes (largest difference of the outputs, the logits: ")
    assert inspect_removal(wrong, m, IMAGES).endswith(
        "): remove each zeroed filter together with the input channels that read it in the next layer "
        "(Torch-Pruning's DependencyGraph does both)")
    kept_zero = removed_by_hand(m, DEAD)
    with torch.no_grad():
        kept_zero.conv2.weight[0] = 0
    assert inspect_removal(kept_zero, m, IMAGES) == (
        "zeroed filters are still there ({'conv1': 0, 'conv2': 1, 'conv3': 0}), so filters that were not zero were "
        "removed instead: remove exactly the filters whose weights are all zero (zeroed_filters(model) lists them)")
    assert inspect_removal("model", m, IMAGES) == "expected a torch.nn.Module, got str"
    assert inspect_removal(None, m, IMAGES) == (
        "got None instead of a model: does the function end with `return` and the smaller copy?")
    cannot_run = removed_by_hand(m, DEAD)
    cannot_run.conv2 = torch.nn.Conv2d(cannot_run.conv2.in_channels + 1, cannot_run.conv2.out_channels, 3, padding=1)
    assert inspect_removal(cannot_run, m, IMAGES).startswith("the removed model cannot run on an image (RuntimeError: ")


def test_small_differences_within_the_output_tolerance_pass():
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    with torch.no_grad():
        r.fc2.bias += 5e-5
    assert inspect_removal(r, m, IMAGES) is None
    with torch.no_grad():
        r.fc2.bias += 1e-4
    assert inspect_removal(r, m, IMAGES) is not None


def test_removed_models_are_rebuilt_from_their_tensors_only():
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    rebuilt, why = small_cnn_from_state(plain_state_dict(r))
    assert why is None and [c.out_channels for c in (rebuilt.conv1, rebuilt.conv2, rebuilt.conv3)] == [3, 4, 5]
    assert small_cnn_from_state(None) == (None, "no model was saved")
    assert small_cnn_from_state({"conv1.weight": "x"}) == (None, "no model was saved")
    bad = plain_state_dict(r)
    bad["fc1.weight"] = bad["fc1.weight"][:, :10]
    model, why = small_cnn_from_state(bad)
    assert model is None and why.startswith("the model is not the course's CNN with some filters removed (")


def test_macs_count_what_is_computed():
    m = base()
    macs, params = count_macs(m)
    assert params == sum(p.numel() for p in m.parameters())
    assert count_macs(masked(m, DEAD)) == (macs, params), "masked zeros are still multiplied"
    r = removed_by_hand(masked(m, DEAD), DEAD)
    assert count_macs(r) == count_macs(SmallCNN(channels=(3, 4, 5), hidden=16))
    assert count_macs(r)[0] < macs
    m.train()
    count_macs(m)
    assert m.training, "the mode is restored"


def test_latency_is_a_positive_time_and_inputs_are_checked():
    m = base()
    seconds = measure_latency(m, batch_size=2, threads=1, min_run_time=0.01)
    assert seconds > 0 and not m.training
    seen = []

    class Spy(nn.Module):  # what the timed model is given (test_model's layout), eagerly
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            seen.append((tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last), self.training))
            return x.sum()
    spy = Spy().train()
    measure_latency(spy, batch_size=3, threads=1, min_run_time=0.01, optimize=False)
    assert set(seen) == {((3, 3, 32, 32), torch.float32, True, False)} and spy.training  # a copy was timed
    seen.clear()
    measure_latency(spy, batch_size=3, threads=1, min_run_time=0.01)  # optimized: traced (and checked), then a graph
    assert {(tuple(int(n) for n in s), *rest) for s, *rest in seen} == {((3, 3, 32, 32), torch.float32, True, False)}
    assert 1 <= len(seen) <= 3 and spy.training
    u = unstructured_90()  # a masked model is timed with its masks applied once, and is left as it was
    assert measure_latency(u, batch_size=2, threads=1, min_run_time=0.01) > 0 and hasattr(u.conv2, "weight_mask")

    class Untraceable(nn.Module):
        def forward(self, x):
            return {"logits": x.sum()} if x.sum() > 0 else None
    with pytest.raises(ValueError, match="could not be traced for optimized timing .*; time it with optimize=False"):
        measure_latency(Untraceable(), batch_size=1, threads=1, min_run_time=0.01)
    for bad, message in (({"batch_size": 0}, "batch_size must be a positive int, got 0"),
                         ({"threads": 0}, "threads must be a positive int or None, got 0"),
                         ({"min_run_time": 0}, "min_run_time must be > 0 seconds, got 0")):
        with pytest.raises(ValueError) as err:
            measure_latency(m, **bad)
        assert str(err.value) == message


def test_the_cost_table_gives_ratios_to_the_first_row():
    rows = [{"name": "pretrained", "accuracy": 0.5, "macs": 4e6, "params": 1000, "latency_1": 0.002},
            {"name": "removed", "accuracy": 0.4, "macs": 1e6, "params": 250, "latency_1": 0.001}]
    lines = format_cost_table(rows).splitlines()
    assert lines[0].split() == ["model", "accuracy", "MMACs", "params", "ms", "@1", "speed-up", "MACs", "cut"]
    assert lines[3].split() == ["removed", "0.4000", "1.00", "250", "1.000", "2.00x", "4.00x"]
    assert format_cost_table([]) == "(no models measured)"


def test_random_filter_masks_zero_exactly_the_fraction():
    m = mask_random_filters(base(), 0.5, seed=1)
    assert surviving_filters(m) == {"conv1": 2, "conv2": 3, "conv3": 4}
    assert all(float(c.bias.detach().abs().sum()) > 0 for c in (m.conv1, m.conv2, m.conv3)), "biases untouched"
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\], got 1.5"):
        mask_random_filters(base(), 1.5)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)]


def test_fine_tuning_with_masks_attached_keeps_the_zeros_and_without_loses_them():
    start = masked(base(), DEAD)
    unstructured = copy_model(base())
    prune.global_unstructured([(unstructured.conv2, "weight"), (unstructured.fc1, "weight")],
                              prune.L1Unstructured, amount=0.5)
    tuned = fine_tune(copy_model(unstructured), _data(), epochs=1, lr=1e-2, batch_size=16, progress=False)
    assert not tuned.training
    assert inspect_finetuned("unstructured", tuned, unstructured) is None
    assert not torch.equal(plain_state_dict(tuned)["fc1.weight"], plain_state_dict(unstructured)["fc1.weight"])
    dropped = copy_model(unstructured)
    for m in (dropped.conv2, dropped.fc1):
        prune.remove(m, "weight")
    fine_tune(dropped, _data(), epochs=1, lr=1e-2, batch_size=16, progress=False)
    plain = plain_state_dict(unstructured)
    n = int((plain["fc1.weight"] == 0).sum() + (plain["conv2.weight"] == 0).sum())
    msg = inspect_finetuned("unstructured", dropped, unstructured)
    lost = int(msg.split(" of the ")[0])
    assert 0 < lost <= n and msg.startswith(f"{lost} of the {n} pruned weights are no longer zero (sparsity ")
    assert msg.endswith("): keep the masks attached while fine-tuning (no prune.remove before it), so that only "
                        "the surviving weights train")
    r = removed_by_hand(start, DEAD)
    assert inspect_finetuned("structured", fine_tune(copy_model(r), _data(), progress=False), r) is None
    assert inspect_finetuned("structured", base(), r) == (
        "the fine-tuned model's filters per layer are {'conv1': 4, 'conv2': 6, 'conv3': 8}, expected "
        "{'conv1': 3, 'conv2': 4, 'conv3': 5} (the removed model's): "
        "fine-tune a copy of the removed model (removal_results at 0.5), not the masked one of structured_results")


def test_fine_tune_checks_its_arguments():
    for kwargs, message in (({"epochs": 0}, "epochs must be a positive int, got 0"),
                            ({"lr": 0}, "lr must be > 0, got 0"),
                            ({"batch_size": True}, "batch_size must be a positive int, got True")):
        with pytest.raises(ValueError) as err:
            fine_tune(base(), _data(), **kwargs)
        assert str(err.value) == message
    with pytest.raises(ValueError, match="train_data must be"):
        fine_tune(base(), _data()[0])


# ---- the visible checks ---------------------------------------------------------------------

def _structured_results():
    return [{"target": 0.5, "model": masked(base(), DEAD)}]


def test_check_removal_of_a_right_and_a_wrong_list():
    from helpers import test_model
    test = [IMAGES, np.arange(16) % 10]
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    good = [{"target": 0.5, "model": r, "macs": count_macs(r)[0], "accuracy": test_model(r, test, verbose=False)}]
    assert check_removal(good, _structured_results(), test) == ""
    off = [{**good[0], "macs": good[0]["macs"] * 1.02, "accuracy": 0.99}]
    assert check_removal(off, _structured_results(), test).splitlines() == [
        f"target 0.50: 'macs' says {off[0]['macs']!r} but the stored model has {good[0]['macs']:,.0f} MACs: store "
        "count_macs(model)[0], the first of the two numbers count_macs returns",
        f"target 0.50: 'accuracy' says 0.99 but the stored model gives {good[0]['accuracy']:.4f}"]
    assert check_removal([], _structured_results(), test) == (
        "removal_results is empty: build one dict per model of structured_results with target, model (what "
        "remove_filters returned for it), macs (count_macs(model)[0]) and accuracy (test_model of it)")
    assert check_removal([{"target": 0.3, "model": r, "macs": 1, "accuracy": 1}], _structured_results(), test) == (
        "removal_results[0]: structured_results has no model at target 0.3 (finish part 2 first; targets are numbers "
        "like 0.5)")
    assert check_removal(["x"], _structured_results(), test) == (
        "removal_results[0] is a str, not a dict: every entry needs the keys target, model, macs and accuracy")


def _finetune_case(monkeypatch, start_acc: float, tuned_acc: float, unpruned: float = 0.7):
    """Start models and tuned copies whose measured accuracies are fixed (``test_model`` replaced); the
    pretrained model (scoring ``unpruned``) is returned last."""
    import helpers.removal_checks as rc
    pretrained = base()
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    tuned = {"structured": copy_model(r), "unstructured": copy_model(u)}
    accuracy = {id(r): start_acc, id(u): start_acc, id(pretrained): unpruned,
                **{id(m): tuned_acc for m in tuned.values()}}
    monkeypatch.setattr(rc, "test_model", lambda model, data, verbose=True: accuracy[id(model)])
    entries = [{"kind": k, "target": 0.5 if k == "structured" else 0.9, "model": m, "before": start_acc,
                "after": tuned_acc} for k, m in tuned.items()]
    return entries, [{"target": 0.5, "model": r}], [{"target": 0.9, "model": u}], pretrained


@pytest.mark.parametrize("start, tuned, unpruned, ok", [
    (0.5, 0.5 + FINETUNE_MARGIN, 0.7, True), (0.5, 0.5 + FINETUNE_MARGIN - 1e-4, 0.7, False),  # the margin
    (0.149, 0.149, 0.7, True), (0.151, 0.151, 0.7, False),  # at chance: nothing asked
    (0.5, 0.5, 0.5 + 2 * FINETUNE_MARGIN - 1e-4, True), (0.5, 0.5, 0.5 + 2 * FINETUNE_MARGIN + 1e-4, False),
])  # little lost to pruning: nothing asked
def test_check_finetuning_asks_for_a_gain_where_there_is_one_to_make(monkeypatch, start, tuned, unpruned, ok):
    entries, removal, unstructured, pretrained = _finetune_case(monkeypatch, start, tuned, unpruned)
    got = check_finetuning(entries, removal, unstructured, None, pretrained).splitlines()
    assert got == ([] if ok else [
        f"{k}: fine-tuning took the accuracy from {start:.4f} to {tuned:.4f}; at least {start + FINETUNE_MARGIN:.4f} "
        "is expected (train on the training split, for the epochs the cell sets)" for k in ("structured",
                                                                                             "unstructured")])


def test_check_finetuning_asks_for_copies_and_both_kinds(monkeypatch):
    test = None
    same, removal, unstructured, _ = _finetune_case(monkeypatch, 0.5, 0.6)
    r = removal[0]["model"]
    in_place = [{**same[0], "model": r}]
    assert check_finetuning(same, removal, unstructured, test) == ""
    assert check_finetuning(in_place, removal, unstructured, test).splitlines()[0] == (
        "structured: the fine-tuned model is the one in the results above: fine-tune a copy (copy_model), so that "
        "the model before fine-tuning stays there to compare with")
    assert check_finetuning([], removal, unstructured, test).splitlines() == [
        "finetune_results needs a dict with kind 'structured', target 0.5, model, before and after",
        "finetune_results needs a dict with kind 'unstructured', target 0.9, model, before and after"]


# ---- the hidden checks, from saved weights ------------------------------------------------------

@pytest.fixture()
def ref():
    from autograder.grading.measure import ReferenceMeasurements
    data = [IMAGES, np.arange(16) % 10]
    return ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=data, device="cpu", accuracy={})


@pytest.fixture()
def cfg(tmp_path):
    from autograder.config import GradeConfig
    from helpers import save_model
    (tmp_path / "subs").mkdir()
    return GradeConfig(submissions=tmp_path / "subs", data_root="synthetic",
                       model=save_model(base(), tmp_path / "m.pt"), out=tmp_path / "out")


def test_hidden_removal_check_compares_with_the_students_own_part2_model(monkeypatch, ref, cfg):
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import model_digest
    monkeypatch.setattr(hidden, "ref_targets", lambda: (0.5, 0.9))
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    everything = masked(base(), {"conv1": [0, 1, 2, 3]})  # no filter left in conv1: nothing to remove to
    structured = {"results": [{"target": 0.5, "state": plain_state_dict(m)},
                              {"target": 0.9, "state": plain_state_dict(everything)}]}
    acc = ref.accuracy_of(r, model_digest(r))
    item = {"target": 0.5, "state": plain_state_dict(r), "macs": count_macs(r)[0], "accuracy": acc, "error": None}
    assert hidden.check_removed({"results": [item]}, structured, ref, cfg, IMAGES) == []
    wrong = {**item, "state": plain_state_dict(removed_by_hand(m, {"conv1": [0]})), "accuracy": 0.0}
    assert hidden.check_removed({"results": [wrong]}, structured, ref, cfg, IMAGES) == [
        "target 0.50: conv2 has 6 filters, expected 4 (its nonzero ones): remove exactly the filters whose weights "
        "are all zero"]
    assert hidden.check_removed({"results": []}, structured, ref, cfg, IMAGES) == [
        "removal_results must have one entry per target of structured_results; none for [0.5]"]
    claims = {**item, "macs": item["macs"] * 1.02, "accuracy": None}
    assert hidden.check_removed({"results": [claims]}, structured, ref, cfg, IMAGES) == [
        f"target 0.50: 'macs' says {claims['macs']} but the stored model gives {item['macs']:.4f}",
        f"target 0.50: 'accuracy' says None but the stored model gives {acc:.4f}"]


def test_hidden_removal_function_check(ref):
    from autograder.grading import part3_checks as hidden
    dead35 = {"conv1": [0], "conv2": [1, 2], "conv3": [0, 5, 6]}
    m = masked(base(), dead35)
    good = {"masked": plain_state_dict(m), "state": plain_state_dict(removed_by_hand(m, dead35)), "error": None,
            "modified_input": False}
    call = "remove_filters(a model with {:.0%} of its filters zeroed)"
    assert hidden.check_remove_function({"unseen": {"0.35": good, "0.65": good}}, ref, IMAGES) == []
    got = hidden.check_remove_function({"unseen": {"0.35": {**good, "modified_input": True},
                                                   "0.65": {"state": None, "error": "TypeError: no"}}}, ref, IMAGES)
    assert got == [call.format(0.35) + " changed the model it was given: work on a copy (copy_model) and return it",
                   call.format(0.65) + " failed: TypeError: no"]
    unmasked = {**good, "masked": plain_state_dict(base())}
    assert hidden.check_remove_function({"unseen": {"0.35": unmasked, "0.65": good}}, ref, IMAGES) == [
        call.format(0.35) + ": the model given to remove_filters was not saved with its zeroed filters"]
    assert hidden.check_remove_function(None, ref, IMAGES) == [
        call.format(t) + " failed: no result" for t in (0.35, 0.65)]


def test_hidden_finetuning_check(ref, cfg):
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import model_digest
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    tuned_r = fine_tune(copy_model(r), _data(), progress=False)
    tuned_u = fine_tune(copy_model(u), _data(), progress=False)
    for model, acc in ((ref.model, 0.7), (r, 0.4), (u, 0.5), (tuned_r, 0.45), (tuned_u, 0.5 + 0.0099)):
        rebuilt = hidden._model(plain_state_dict(model), ref, removed=model is r or model is tuned_r)[0]
        ref.remember(model_digest(rebuilt), acc)
    removal = {"results": [{"target": 0.5, "state": plain_state_dict(r)}]}
    unstructured = {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}
    finetune = {"results": [{"kind": "structured", "target": 0.5, "state": plain_state_dict(tuned_r), "before": 0.4,
                             "after": 0.45, "error": None},
                            {"kind": "unstructured", "target": 0.9, "state": plain_state_dict(tuned_u),
                             "before": 0.5, "after": 0.5099, "error": None}]}
    assert hidden.check_finetuned(finetune, removal, unstructured, ref, cfg) == [
        "unstructured: fine-tuning took the accuracy from 0.5000 to 0.5099 on the grader's data; at least 0.5100 is "
        "expected (train a copy on the training split for the epochs the cell sets)"]
    assert hidden.check_finetuned({"results": []}, removal, unstructured, ref, cfg) == [
        "structured: finetune_results has no entry of kind 'structured'",
        "unstructured: finetune_results has no entry of kind 'unstructured'"]
    lost = copy_model(u)
    for m in (lost.conv2, lost.fc1):
        prune.remove(m, "weight")
    fine_tune(lost, _data(), lr=1e-2, progress=False)
    finetune["results"][1]["state"] = plain_state_dict(lost)
    got = hidden.check_finetuned(finetune, removal, unstructured, ref, cfg)
    assert len(got) == 1 and got[0].startswith("unstructured: ") and "pruned weights are no longer zero" in got[0]


# ---- edges of every decision (mutation testing found these untested) ---------------------------

class StrictAccuracy:
    """A stand-in for ``test_model`` that insists on the test data and on silence, with fixed accuracies."""

    def __init__(self, data, accuracy: dict):
        self.data, self.accuracy = data, accuracy

    def __call__(self, model, data, verbose=True):
        if data is not self.data or verbose is not False:
            raise AssertionError(f"test_model called with other data or verbose={verbose!r}")
        return self.accuracy[id(model)]


def test_visible_finetuning_check_line_by_line(monkeypatch):
    import helpers.removal_checks as rc
    data = _data(8)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    hand = copy_model(base())  # zeroed by hand: no masks
    with torch.no_grad():
        hand.fc1.weight[:, :8] = 0
    pretrained, tuned_r, tuned_u = base(), copy_model(r), copy_model(u)
    lost = copy_model(u)
    for m in (lost.conv2, lost.fc1):
        prune.remove(m, "weight")
    with torch.no_grad():
        lost.fc1.weight.add_(1.0)
    lost_hand = copy_model(hand)
    with torch.no_grad():
        lost_hand.fc1.weight.add_(1.0)
    acc = {id(pretrained): 0.7, id(r): 0.4, id(u): 0.5, id(tuned_r): 0.45, id(tuned_u): 0.55, id(hand): 0.5}
    monkeypatch.setattr(rc, "test_model", StrictAccuracy(data, acc))
    removal, unstructured = [{"target": 0.5, "model": r}], [{"target": 0.9, "model": u}]
    good = [{"kind": "structured", "target": 0.5, "model": tuned_r, "before": 0.4, "after": 0.45},
            {"kind": "unstructured", "target": 0.9, "model": tuned_u, "before": 0.5, "after": 0.55}]
    assert check_finetuning(good, removal, unstructured, data, pretrained) == ""
    claims = [{**good[0], "before": 0.41, "after": 0.4500009}, {**good[1], "after": 0.5500011}]
    assert check_finetuning(claims, removal, unstructured, data, pretrained).splitlines() == [
        "structured: 'before' says 0.41 but the model you started from (removal_results at 0.5) gives 0.4000",
        "unstructured: 'after' says 0.5500011 but the fine-tuned model gives 0.5500"]
    masks_lost = [{**good[0], "model": base()}, {**good[1], "model": lost}]
    got = check_finetuning(masks_lost, removal, unstructured, data, pretrained).splitlines()
    assert got[0] == ("structured: the fine-tuned model's filters per layer are {'conv1': 4, 'conv2': 6, 'conv3': 8}, "
                      "expected {'conv1': 3, 'conv2': 4, 'conv3': 5} (the removed model's): "
        "fine-tune a copy of the removed model (removal_results at 0.5), not the masked one of structured_results")
    assert len(got) == 2 and got[1].startswith("unstructured: ") and "no longer zero" in got[1]
    by_hand = check_finetuning([good[0], {**good[1], "model": lost_hand}], removal,
                               [{"target": 0.9, "model": hand}], data, pretrained).splitlines()
    assert by_hand[1:] == [f"unstructured: {NO_MASKS}"]
    assert NO_MASKS.startswith("the model you started from has no masks (its zeros were set directly), so nothing "
                               "kept them zero: attach masks of its zeros")
    assert check_finetuning([{"kind": "structured", "target": 0.5}, good[1]], [], unstructured, data,
                            pretrained).splitlines() == [
        "finetune_results needs a dict with kind 'structured', target 0.5, model, before and after"]
    assert check_finetuning(good, [], unstructured, data, pretrained).splitlines() == [
        "structured: no model at target 0.5 to start from (finish the parts above first)"]


def test_visible_removal_check_line_by_line(monkeypatch):
    import helpers.removal_checks as rc
    data = [IMAGES, np.arange(16) % 10]
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    monkeypatch.setattr(rc, "test_model", StrictAccuracy(data, {id(r): 0.25}))
    macs = count_macs(r)[0]
    good = {"target": 0.5, "model": r, "macs": macs * 1.0099, "accuracy": 0.25}
    structured = [{"target": 0.5, "model": m}, {"target": 0.9, "model": masked(base(), {"conv1": [0, 1, 2, 3]})},
                  {"target": 0.7, "model": m}]
    listed = [good, "x", {**good, "target": "0.5"}, {**good, "target": 0.3}, {**good, "model": base()},
              {**good, "target": 0.7, "macs": macs * 1.0101}]
    assert check_removal(listed, structured, data).splitlines() == [
        "removal_results[1] is a str, not a dict: every entry needs the keys target, model, macs and accuracy",
        "removal_results[2]: structured_results has no model at target '0.5' (finish part 2 first; targets are "
        "numbers like 0.5)",
        "removal_results[3]: structured_results has no model at target 0.3 (finish part 2 first; targets are "
        "numbers like 0.5)",
        "target 0.50: conv1 has 4 filters, expected 3 (its nonzero ones): remove exactly the filters whose weights "
        "are all zero",
        f"target 0.70: 'macs' says {macs * 1.0101!r} but the stored model has {macs:,.0f} MACs: store "
        "count_macs(model)[0], the first of the two numbers count_macs returns"]
    assert check_removal([good], structured, data).splitlines() == [
        "removal_results has 1 entries; expected one per model of structured_results, 2 (leaving out 1 with a Conv2d "
        "layer that lost every filter)"]
    assert check_removal([good, {**good, "target": 0.9}, {**good, "target": 0.7}], structured,
                         data).splitlines()[0] == (
        "removal_results[1]: structured_results' model at target 0.9 has a Conv2d layer that lost every filter, so "
        "nothing would be left to compute: leave that target out")


def test_hidden_part3_through_score_submission(monkeypatch, tmp_path, ref, cfg):
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import model_digest
    from autograder.grading.scoring import score_submission
    monkeypatch.setattr(hidden, "ref_targets", lambda: (0.5,))
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    u = unstructured_90()
    tuned_r, tuned_u = copy_model(r), copy_model(u)
    with torch.no_grad():
        tuned_r.fc2.bias.add_(0.5)
        tuned_u.fc2.bias.add_(0.5)
    accuracy = {}
    for model, acc, removed in ((ref.model, 0.7, False), (r, 0.4, True), (u, 0.5, False), (tuned_r, 0.45, True),
                                (tuned_u, 0.55, False)):
        rebuilt = hidden._model(plain_state_dict(model), ref, removed=removed)[0]
        ref.remember(model_digest(rebuilt), acc)
        accuracy[id(model)] = acc
    dead35 = {"conv1": [0], "conv2": [1, 2], "conv3": [0, 5, 6]}
    m35 = masked(base(), dead35)
    unseen = {"masked": plain_state_dict(m35), "state": plain_state_dict(removed_by_hand(m35, dead35)), "error": None,
              "modified_input": False}
    records = {
        "structured": {"results": [{"target": 0.5, "state": plain_state_dict(m)}]},
        "unstructured": {"results": [{"target": 0.9, "state": plain_state_dict(u)}]},
        "removal": {"results": [{"target": 0.5, "state": plain_state_dict(r), "macs": count_macs(r)[0],
                                 "accuracy": 0.4, "error": None}], "unseen": {"0.35": unseen, "0.65": unseen}},
        "finetune": {"results": [{"kind": "structured", "target": 0.5, "state": plain_state_dict(tuned_r),
                                  "before": 0.4, "after": 0.45, "error": None},
                                 {"kind": "unstructured", "target": 0.9, "state": plain_state_dict(tuned_u),
                                  "before": 0.5, "after": 0.55, "error": None}]}}
    for name, record in records.items():
        torch.save(record, tmp_path / f"{name}.pt")
    points = {"test_removal_models": 4, "test_removal_function": 3, "test_finetuning": 4}
    got = {c.grade_id: (c.points, c.messages) for c in score_submission(tmp_path, ref, cfg, points)}
    assert got == {g: (float(p), []) for g, p in points.items()}
    (tmp_path / "removal.pt").unlink()
    got = {c.grade_id: (c.points, c.messages) for c in score_submission(tmp_path, ref, cfg, points)}
    missing = "no results were saved: the notebook stopped before this part's first check cell"
    assert got["test_removal_models"] == got["test_removal_function"] == (0.0, [missing])
    assert got["test_finetuning"] == (0.0, ["structured: no model at target 0.5 to start from (no model was saved)"])
    torch.save(records["removal"], tmp_path / "removal.pt")
    (tmp_path / "structured.pt").unlink()
    got = {c.grade_id: c.messages for c in score_submission(tmp_path, ref, cfg, points)}
    assert got["test_removal_models"] == [
        "target 0.50: structured_results has no usable model at this target (no model was saved)"]
    assert got["test_finetuning"] == []


def test_hidden_checks_of_entries_one_by_one(monkeypatch, ref, cfg):
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import model_digest
    monkeypatch.setattr(hidden, "ref_targets", lambda: (0.3, 0.5, 0.7))
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    ref.remember(model_digest(hidden._model(plain_state_dict(r), ref, removed=True)[0]), 0.4)
    macs = count_macs(r)[0]
    structured = {"results": [{"target": t, "state": plain_state_dict(m)} for t in (0.3, 0.5, 0.7)] + ["junk"]}
    item = {"state": plain_state_dict(r), "macs": macs, "accuracy": 0.4, "error": None}
    removal = {"results": [{**item, "target": 0.3, "error": "removal_results[0]: KeyError: 'model'"},
                           {**item, "target": 0.5, "macs": macs * 1.0099, "accuracy": 0.4 + 0.99 * cfg.claim_tol},
                           {**item, "target": 0.7, "macs": macs * 0.9899}]}
    assert hidden.check_removed(removal, structured, ref, cfg, IMAGES) == [
        "target 0.30: removal_results[0]: KeyError: 'model'",
        f"target 0.70: 'macs' says {macs * 0.9899} but the stored model gives {macs:.4f}"]
    u = unstructured_90()
    finetune = {"results": [{"kind": "structured", "error": "finetune_results[0]: KeyError: 'model'"}, "junk"]}
    assert hidden.check_finetuned(finetune, removal, {"results": []}, ref, cfg) == [
        "structured: finetune_results[0]: KeyError: 'model'",
        "unstructured: finetune_results has no entry of kind 'unstructured'"]
    wrong_start = {"results": [{"kind": "unstructured", "target": 0.9, "state": plain_state_dict(u), "error": None}]}
    got = hidden.check_finetuned(wrong_start, {"results": [{"target": 0.5, "state": None}]},
                                 {"results": [{"target": 0.9, "state": plain_state_dict(r)}]}, ref, cfg)
    assert got[0] == "structured: finetune_results has no entry of kind 'structured'"
    assert got[1].startswith("unstructured: no model at target 0.9 to start from (the model does not have the "
                             "pretrained model's layers and shapes (")
    state = {"masked": plain_state_dict(m), "state": plain_state_dict(r), "error": "RuntimeError: late",
             "modified_input": False}
    assert hidden.check_remove_function({"unseen": {"0.35": state, "0.65": ["junk"]}}, ref, IMAGES) == [
        "remove_filters(a model with 35% of its filters zeroed) failed: RuntimeError: late",
        "remove_filters(a model with 65% of its filters zeroed) failed: no result"]
    removed_as_input = {**state, "error": None, "masked": plain_state_dict(r)}
    got = hidden.check_remove_function({"unseen": {"0.35": removed_as_input, "0.65": {**state, "error": None}}},
                                       ref, IMAGES)
    assert got[0].startswith("remove_filters(a model with 35% of its filters zeroed): the model does not have the "
                             "pretrained model's layers and shapes (") and len(got) == 1


def test_small_helpers_at_their_edges():
    from helpers.removal_checks import at_chance, gain_required, removable
    one_each = masked(base(), {"conv1": [0, 1, 2], "conv2": [0, 1, 2, 3, 4], "conv3": [0, 1, 2, 3, 4, 5, 6]})
    assert removable(one_each) and not removable("model")
    assert at_chance(base(), 0.1499) and not at_chance(base(), 0.1501)
    five = SmallCNN(channels=(2, 2, 2), hidden=4, num_classes=5)
    assert at_chance(five, 0.2499) and not at_chance(five, 0.2501)
    assert at_chance(nn.Sequential(nn.Conv2d(3, 1, 1)), 0.1499), "no Linear layer: ten classes"
    assert gain_required(0.7, 0.5, base()) == FINETUNE_MARGIN and gain_required(0.7, 0.1, base()) == 0.0
    state = plain_state_dict(removed_by_hand(masked(base(), DEAD), DEAD))
    model, why = small_cnn_from_state({**state, "extra.weight": torch.zeros(1)})
    assert model is None and why == ("the model is not the course's CNN with some filters removed (Error(s) in "
                                     "loading state_dict for SmallCNN:)")
    model, why = small_cnn_from_state({k: v for k, v in state.items() if k != "fc2.bias"})
    assert model is None and why == ("the model is not the course's CNN with some filters removed (Error(s) in "
                                     "loading state_dict for SmallCNN:)")
    model, why = small_cnn_from_state({k: v for k, v in state.items() if k != "fc2.weight"})
    assert model is None and why == "the model is not the course's CNN with some filters removed ('fc2.weight')"
    for fraction in (0.0, 1.0):
        counts = surviving_filters(mask_random_filters(base(), fraction))
        assert counts == ({"conv1": 4, "conv2": 6, "conv3": 8} if fraction == 0 else dict.fromkeys(counts, 0))
    a, b, c = (mask_random_filters(base(), 0.5, seed=s) for s in (3, 3, 4))
    pick = [tuple(_dead_rows(x)) for x in (a, b, c)]
    assert pick[0] == pick[1] and pick[0] != pick[2]
    odd = nn.Sequential(nn.Conv2d(3, 2, 1))
    assert inspect_removal(odd, masked(base(), DEAD), IMAGES) == (
        "the model has conv layers ['0'], expected ['conv1', 'conv2', 'conv3']")


def _dead_rows(model):
    return [tuple((conv.weight.detach().flatten(1) == 0).all(dim=1).nonzero().flatten().tolist())
            for conv in (model.conv1, model.conv2, model.conv3)]


def test_hidden_part3_checks_survive_records_of_any_shape(ref, cfg):
    from autograder.grading import part3_checks as hidden
    for record in ({}, [], {"results": None, "unseen": None}, {"results": ["junk"], "unseen": ["junk"]}):
        assert hidden.check_remove_function(record, ref, IMAGES) == [
            f"remove_filters(a model with {t:.0%} of its filters zeroed) failed: no result" for t in (0.35, 0.65)]
        assert hidden.check_finetuned(record, record, record, ref, cfg) == [
            "structured: finetune_results has no entry of kind 'structured'",
            "unstructured: finetune_results has no entry of kind 'unstructured'"]
        assert hidden.check_removed(record, record, ref, cfg, IMAGES)[0].startswith(
            "removal_results must have one entry per target of structured_results; none for [0.1, 0.2,")


def test_hidden_checks_measure_what_is_not_known_and_report_every_target(monkeypatch, ref, cfg):
    from autograder.grading import part3_checks as hidden
    from helpers import test_model
    monkeypatch.setattr(hidden, "ref_targets", lambda: (0.3, 0.5, 0.7))
    m = masked(base(), DEAD)
    r = removed_by_hand(m, DEAD)
    measured = test_model(r, ref.test_data, verbose=False)  # nothing remembered: the grader measures
    macs = count_macs(r)[0]
    item = {"state": plain_state_dict(r), "macs": macs, "accuracy": measured, "error": None}
    structured = {"results": [{"target": t, "state": plain_state_dict(m)} for t in (0.5, 0.7)]}
    removal = {"results": [{**item, "target": 0.5, "state": plain_state_dict(base())},
                           {**item, "target": 0.7, "accuracy": measured + 0.01}]}
    assert hidden.check_removed(removal, structured, ref, cfg, IMAGES) == [
        "removal_results must have one entry per target of structured_results; none for [0.3]",
        "target 0.50: conv1 has 4 filters, expected 3 (its nonzero ones): remove exactly the filters whose "
        "weights are all zero",
        f"target 0.70: 'accuracy' says {measured + 0.01} but the stored model gives {measured:.4f}"]
    structured["results"].append({"target": 0.3, "state": None})
    removal["results"].append({**item, "target": 0.3})
    assert hidden.check_removed(removal, structured, ref, cfg, IMAGES)[0] == (
        "target 0.30: structured_results has no usable model at this target (no model was saved)")
    u = unstructured_90()
    tuned_u = copy_model(u)
    with torch.no_grad():
        tuned_u.fc2.bias.add_(0.01)  # moved a little (a model that did not move is charged for that alone)
    before_u = test_model(hidden._model(plain_state_dict(u), ref, removed=False)[0], ref.test_data, verbose=False)
    after_u = test_model(hidden._model(plain_state_dict(tuned_u), ref, removed=False)[0], ref.test_data, verbose=False)
    finetune = {"results": [{"kind": "structured", "target": 0.5, "state": plain_state_dict(base()), "error": None},
                            {"kind": "unstructured", "target": 0.9, "state": plain_state_dict(tuned_u), "before": 0.9,
                             "after": after_u, "error": None}]}
    got = hidden.check_finetuned(finetune, {"results": [{"target": 0.5, "state": plain_state_dict(r)}]},
                                 {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}, ref, cfg)
    assert got[0] == ("structured: the fine-tuned model's filters per layer are {'conv1': 4, 'conv2': 6, 'conv3': 8}, "
                      "expected {'conv1': 3, 'conv2': 4, 'conv3': 5} (the removed model's): "
        "fine-tune a copy of the removed model (removal_results at 0.5), not the masked one of structured_results")
    assert got[1] == ("unstructured: 'before' says 0.9 but the model you started from (unstructured_results at 0.9) "
                      f"gives {before_u:.4f}")
    got = hidden.check_finetuned(finetune, {"results": []},
                                 {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}, ref, cfg)
    assert got[0] == "structured: no model at target 0.5 to start from (no model was saved)"
    assert got[1] == ("unstructured: 'before' says 0.9 but the model you started from (unstructured_results at 0.9) "
                      f"gives {before_u:.4f}")


def test_visible_checks_of_broken_entries_and_of_both_kinds(monkeypatch):
    import helpers.removal_checks as rc
    data = _data(8)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    tuned_u = copy_model(u)
    monkeypatch.setattr(rc, "test_model", StrictAccuracy(data, {id(u): 0.5, id(tuned_u): 0.55}))
    assert check_removal([{"target": 0.5, "model": r}], [{"target": 0.5, "model": masked(base(), DEAD)}],
                         data) == ("removal_results[0] lacks 'macs', 'accuracy' (it has 'target', 'model'): "
                                   "every entry needs the keys target, model, macs and accuracy")
    good_u = {"kind": "unstructured", "target": 0.9, "model": tuned_u, "before": 0.5, "after": 0.55}
    assert check_finetuning([{"kind": "structured", "target": 0.5, "model": r, "before": 0, "after": 0}, good_u],
                            ["junk", {"target": 0.5, "model": r}], [{"target": 0.9, "model": u}, "junk"],
                            data).splitlines() == [
        "structured: the fine-tuned model is the one in the results above: fine-tune a copy (copy_model), so that "
        "the model before fine-tuning stays there to compare with"]
    assert inspect_finetuned("unstructured", removed_by_hand(masked(base(), DEAD), DEAD), u) == (
        "the fine-tuned model does not have the pretrained model's layers")
    assert inspect_finetuned("unstructured", nn.Sequential(nn.ReLU()), u) == (
        "the fine-tuned model does not have the pretrained model's layers")


def test_a_problem_with_one_kind_does_not_hide_the_other(monkeypatch, ref, cfg):
    import helpers.removal_checks as rc
    from autograder.grading import part3_checks as hidden
    data = _data(8)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    tuned_u = copy_model(u)
    monkeypatch.setattr(rc, "test_model", StrictAccuracy(data, {id(u): 0.5, id(tuned_u): 0.55}))
    wrong_u = {"kind": "unstructured", "target": 0.9, "model": tuned_u, "before": 0.4, "after": 0.55}
    claim = ("unstructured: 'before' says 0.4 but the model you started from (unstructured_results at 0.9) "
             "gives 0.5000")
    in_place = {"kind": "structured", "target": 0.5, "model": r, "before": 0, "after": 0}
    assert check_finetuning([in_place, wrong_u], [{"target": 0.5, "model": r}], [{"target": 0.9, "model": u}],
                            data).splitlines()[1:] == [claim]
    assert check_finetuning([in_place, wrong_u], [], [{"target": 0.9, "model": u}], data).splitlines() == [
        "structured: no model at target 0.5 to start from (finish the parts above first)", claim]
    # hidden: every target is reported after one without a usable part-2 model; a measured fine-tuned model
    monkeypatch.setattr(hidden, "ref_targets", lambda: (0.3, 0.5))
    structured = {"results": [{"target": 0.3, "state": None}, {"target": 0.5, "state": plain_state_dict(base())}]}
    removal = {"results": [{"target": t, "state": plain_state_dict(r), "macs": 1.0, "accuracy": 0.0, "error": None}
                           for t in (0.3, 0.5)]}
    got = hidden.check_removed(removal, structured, ref, cfg, IMAGES)
    assert got[0] == "target 0.30: structured_results has no usable model at this target (no model was saved)"
    assert len(got) == 2 and got[1].startswith("target 0.50: conv1 has 3 filters, expected 4")
    tuned = copy_model(u)
    with torch.no_grad():
        tuned.fc2.bias.add_(1.0)
    finetune = {"results": [{"kind": "unstructured", "target": 0.9, "state": plain_state_dict(tuned),
                             "before": None, "after": None, "error": None}]}
    got = hidden.check_finetuned(finetune, {}, {"results": [{"target": 0.9, "state": plain_state_dict(u)}]},
                                 ref, cfg)
    assert got[1].startswith("unstructured: 'before' says None")
    assert got[2].startswith("unstructured: 'after' says None")


def test_a_malformed_entry_does_not_hide_a_wrong_model_after_it():
    from helpers.checks import check_results
    m = base()
    results = [{"target": 0.1, "model": copy_model(m)},
               {"target": 0.2, "model": copy_model(m), "sparsity": 0.0, "accuracy": 0.1}]
    lines = check_results(results, m, "unstructured", targets=(0.1, 0.2)).splitlines()
    assert lines == ["unstructured_results[0] lacks 'sparsity', 'accuracy' (it has 'target', 'model'): "
        "every entry needs the keys target, model, sparsity and accuracy",
                     "target 0.20 gave sparsity 0.000: expected 0.200 of all Conv2d and Linear weights to be zero"]


def test_a_wrong_target_does_not_hide_a_wrong_model_after_it():
    from helpers.checks import check_results
    m = base()
    results = [{"target": 0.15, "model": copy_model(m), "sparsity": 0.0, "accuracy": 0.1}] + [
        {"target": t, "model": copy_model(m), "sparsity": 0.0, "accuracy": 0.1} for t in (0.2,)]
    lines = check_results(results, m, "unstructured", targets=(0.1, 0.2)).splitlines()
    assert lines == ["unstructured_results[0]['target'] is 0.15, expected 0.1",
                     "target 0.20 gave sparsity 0.000: expected 0.200 of all Conv2d and Linear weights to be zero"]


def test_fine_tuning_on_the_test_split_is_told_apart_by_the_weights_alone(cfg):
    """The grader fine-tunes each starting model on its own training and test splits and compares the
    directions the weights moved in: with the notebook's fine_tune call the student's split is the same
    run. (Other seeds, learning rates and epochs are measured on a trained model and real-looking data by
    the part-3 bench: on noise images with random labels, as here, no split has anything to teach.)"""
    from autograder.grading import part3_checks as hidden
    from autograder.grading import trained_split
    from autograder.grading.measure import ReferenceMeasurements, model_digest
    train, test = _data(256, seed=1), _data(256, seed=2)
    ref = ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=test, device="cpu", accuracy={},
                                train_data=train)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    start_u = hidden._model(plain_state_dict(u), ref, removed=False)[0]  # as the grader rebuilds it: no masks
    for start, masked_start, kind in ((r, False, "structured"), (start_u, True, "unstructured")):
        for data, name in ((train, "train"), (test, "test")):
            mine = _with_masks_like(start) if masked_start else copy_model(start)
            tuned = fine_tune(mine, data, device="cpu", progress=False)  # the grader's device
            sims = trained_split.split_similarity(ref, start, model_digest(start), tuned, masked_start)
            assert trained_split.trained_on_test(sims) == (name == "test"), (kind, name, sims)
            assert sims[name] > 0.99 and sims["train" if name == "test" else "test"] < 0.9, (kind, name, sims)
    # made once per starting model and split (4 here), whatever the number of submissions asking
    assert sum(isinstance(k, tuple) for k in ref._known) == 4
    assert trained_split.split_similarity(ref, r, model_digest(r), copy_model(r), False) is None  # nothing moved
    moved = fine_tune(copy_model(r), train, device="cpu", progress=False)
    assert trained_split.split_similarity(replace(ref, train_data=None), r, "d", moved, False) is None
    assert not trained_split.trained_on_test(None)
    assert trained_split.trained_on_test({"train": 0.30, "test": 0.33})
    assert not trained_split.trained_on_test({"train": 0.30, "test": 0.31})
    assert not trained_split.trained_on_test({"train": 0.0, "test": trained_split.TEST_SPLIT_MARGIN})
    # the hidden check: 4 points lost with the reason, before any accuracy is measured
    tuned_r = fine_tune(copy_model(r), test, device="cpu", progress=False)
    finetune = {"results": [{"kind": "structured", "target": 0.5, "state": plain_state_dict(tuned_r), "before": 0.0,
                             "after": 0.0, "error": None}]}
    got = hidden.check_finetuned(finetune, {"results": [{"target": 0.5, "state": plain_state_dict(r)}]},
                                 {"results": []}, ref, cfg)
    sims = trained_split.split_similarity(ref, r, model_digest(r), tuned_r, False)
    assert got[0] == ("structured: your fine-tuning looks like training on the test split: the weights changed as "
                      "the grader's fine-tuning on the test split changes them, more than as on the training split "
                      f"(how alike the changes are, from -1 to 1: {sims['test']:.2f} against {sims['train']:.2f}); "
                      "fine-tune on train_data, since a model trained on the test split makes its test accuracy "
                      "meaningless")
    assert sims["test"] > 0.99 and len(got) == 2 and got[1].startswith("unstructured: ")


def _with_masks_like(model):
    out = copy_model(model)
    for m in out.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.custom_from_mask(m, "weight", m.weight.detach() != 0)
    return out


class DictStore:
    """A shared store in one dict (as :class:`autograder.cluster.store.SchedulerStore` is in the scheduler),
    recording which keys were asked for and not there."""

    def __init__(self):
        self.values, self.missed = {}, []

    def get(self, key):
        if key not in self.values:
            self.missed.append(key)
        return self.values.get(key)

    def put(self, key, value):
        self.values[key] = value


def test_a_worker_measures_nothing_of_a_correct_part3_that_the_grader_measured_for_it(cfg):
    """The grader's ``measure_reference_starts`` leaves in the shared store everything the part-3 checks
    measure for a submission made with the reference solution, except its own fine-tuned models."""
    from autograder.grading import part3_checks as hidden
    from autograder.grading import solutions as solution
    from autograder.grading.measure import build_reference, model_digest, reference_from
    from helpers.parts import STRUCTURED
    from helpers.removal_checks import FINETUNE_TARGETS
    train, test = _data(128, seed=1), _data(128, seed=2)
    store = DictStore()
    grader = build_reference(base(), "SmallCNN", SMALL, test, "cpu", train, shared=store)
    measured = hidden.measure_reference_starts(grader)
    removable_targets = [t for t in STRUCTURED.targets if hidden.removable(solution.prune_structured(base(), t))]
    # unpruned; removed; each start's 2 replays and its training-split replay's accuracy
    assert measured == 1 + len(removable_targets) + 2 * 3
    assert sum(isinstance(k, tuple) for k in store.values) == 4  # the replays went to the store
    from autograder.grading.trained_split import with_change
    for key, change in [(k, v) for k, v in store.values.items() if isinstance(k, tuple) and k[2] == "train"]:
        start = next(m for m in (hidden._model(plain_state_dict(solution.remove_filters(solution.prune_structured(
            base(), FINETUNE_TARGETS["structured"]))), grader, removed=True)[0],
            hidden._model(plain_state_dict(solution.prune_unstructured(base(), FINETUNE_TARGETS["unstructured"])),
                          grader, removed=False)[0]) if model_digest(m) == key[1])
        assert model_digest(with_change(start, change)) in store.values  # and each replay's accuracy
    # the worker: the grader's sweeps adopted, the rest from the store
    worker = reference_from(base(), "SmallCNN", SMALL, test, "cpu", grader.measurements(), train, shared=store)
    structured = {t: solution.prune_structured(base(), t) for t in STRUCTURED.targets}
    removed = {t: solution.remove_filters(structured[t]) for t in removable_targets}
    u = solution.prune_unstructured(base(), FINETUNE_TARGETS["unstructured"])
    tuned_r = fine_tune(copy_model(removed[FINETUNE_TARGETS["structured"]]), train, progress=False)
    tuned_u = fine_tune(copy_model(u), train, progress=False)
    records = {
        "structured": ({"results": [{"target": t, "state": plain_state_dict(m)} for t, m in structured.items()]}, None),
        "unstructured": ({"results": [{"target": FINETUNE_TARGETS["unstructured"], "state": plain_state_dict(u)}]},
                         None),
        "removal": ({"results": [{"target": t, "state": plain_state_dict(m)} for t, m in removed.items()]}, None),
        "finetune": ({"results": [{"kind": "structured", "state": plain_state_dict(tuned_r)},
                                  {"kind": "unstructured", "state": plain_state_dict(tuned_u)}]}, None)}
    store.missed.clear()
    messages = hidden.score_part3(records, worker, cfg)
    assert all("the stored model gives" in m for m in messages["test_removal_models"])  # only the claims left out
    rebuilt = [hidden._model(plain_state_dict(m), worker, removed=m is tuned_r)[0] for m in (tuned_r, tuned_u)]
    # measured: at most the tuned models (each is also the grader's training-split replay, made by the same call
    # on the same device, so its accuracy is in the store where start + change gives its weights bit for bit)
    assert set(store.missed) <= {model_digest(m) for m in rebuilt}


def test_each_starting_model_is_replayed_under_its_own_digest_and_masks_and_quietly(cfg, capsys):
    """The grader's fine-tuning replays are kept per starting model (its digest) and per kind (masks attached
    for the unstructured model only), so another student's start of other widths gets its own, and making
    them prints nothing in the grader's log."""
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import ReferenceMeasurements, model_digest
    train, test = _data(64, seed=1), _data(64, seed=2)
    ref = ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=test, device="cpu", accuracy={},
                                train_data=train)
    u = unstructured_90()
    start_u = hidden._model(plain_state_dict(u), ref, removed=False)[0]
    tuned_u = fine_tune(_with_masks_like(start_u), train, progress=False)
    keys = set()
    for dead in (DEAD, {"conv1": [0, 1], "conv2": [5], "conv3": [0]}):  # two students, other widths
        r = removed_by_hand(masked(base(), dead), dead)
        tuned_r = fine_tune(copy_model(r), train, progress=False)
        finetune = {"results": [{"kind": "structured", "state": plain_state_dict(tuned_r)},
                                {"kind": "unstructured", "state": plain_state_dict(tuned_u)}]}
        got = hidden.check_finetuned(finetune, {"results": [{"target": 0.5, "state": plain_state_dict(r)}]},
                                     {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}, ref, cfg)
        assert not any("test split" in m for m in got), got
        keys |= {(model_digest(hidden._model(plain_state_dict(r), ref, removed=True)[0]), split, False)
                 for split in ("train", "test")}
    keys |= {(model_digest(start_u), split, True) for split in ("train", "test")}
    assert {k[1:] for k in ref._known if isinstance(k, tuple)} == keys
    assert capsys.readouterr() == ("", "")


def test_fine_tuning_that_gains_exactly_the_margin_passes(ref, cfg):
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import model_digest
    u = unstructured_90()
    tuned_u = copy_model(u)
    with torch.no_grad():
        tuned_u.fc2.bias.add_(0.25)
    for model, acc in ((ref.model, 0.7), (u, 0.5), (tuned_u, 0.5 + FINETUNE_MARGIN)):
        ref.remember(model_digest(hidden._model(plain_state_dict(model), ref, removed=False)[0]), acc)
    finetune = {"results": [{"kind": "unstructured", "state": plain_state_dict(tuned_u), "before": 0.5,
                             "after": 0.5 + FINETUNE_MARGIN}]}
    unstructured = {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}
    got = hidden.check_finetuned(finetune, {"results": []}, unstructured, ref, cfg)
    assert got == ["structured: finetune_results has no entry of kind 'structured'"]  # unstructured: "at least" met


def test_a_fine_tuned_model_that_did_not_move_is_told_so(ref, cfg):
    from autograder.grading import part3_checks as hidden
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    finetune = {"results": [{"kind": "structured", "state": plain_state_dict(r), "before": 0.5, "after": 0.5},
                            {"kind": "unstructured", "state": plain_state_dict(u), "before": 0.5, "after": 0.5}]}
    got = hidden.check_finetuned(finetune, {"results": [{"target": 0.5, "state": plain_state_dict(r)}]},
                                 {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}, ref, cfg)
    assert got == [f"{kind}: the fine-tuned model's weights are exactly the starting model's: nothing was trained "
                   "(fine_tune the copy you store, on train_data, for the epochs the cell sets)"
                   for kind in ("structured", "unstructured")]


def test_a_model_changed_by_a_flat_change_gives_that_change_back():
    from autograder.grading.trained_split import weight_change, with_change
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    change = torch.linspace(-1, 1, sum(p.numel() for p in r.parameters()))
    moved = with_change(r, change)
    assert torch.allclose(weight_change(moved, r), change, atol=1e-6)
    fresh = removed_by_hand(masked(base(), DEAD), DEAD)
    assert torch.equal(weight_change(r, fresh), torch.zeros_like(change))  # r itself is not changed
    for wrong in (change[:-1], torch.cat([change, change[:1]])):
        with pytest.raises(ValueError, match=f"a change of {wrong.numel()} values does not fit a model with "
                                             f"{change.numel()} weights"):
            with_change(r, wrong)


@pytest.mark.parametrize("replay_gain, need", [(0.029, 0.0), (0.03, FINETUNE_MARGIN), (0.2, FINETUNE_MARGIN)])
def test_the_gain_asked_is_the_margin_only_where_the_graders_own_fine_tuning_gains_three_times_it(replay_gain, need):
    """Pruning cost 0.2 here, so the visible check's rule asks for the margin; the grader asks for it only where
    its own fine-tuning of the same start on its training split gained at least three times the margin."""
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import ReferenceMeasurements, model_digest
    from autograder.grading.trained_split import replays, with_change
    train, test = _data(64, seed=1), _data(64, seed=2)
    ref = ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=test, device="cpu", accuracy={},
                                train_data=train)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    digest = model_digest(r)
    replayed = with_change(r, replays(ref, r, digest, False)["train"])
    ref.remember(model_digest(replayed), 0.5 + replay_gain)
    assert hidden.required_gain(ref, 0.7, 0.5, r, digest, masked=False) == need
    # not known beforehand: the replayed model itself is measured on the grader's images
    measured = replace(ref, accuracy={})
    measured._known.clear()
    accuracy = test_model(replayed, test, verbose=False)
    assert hidden.required_gain(measured, 0.7, 0.3, r, digest, masked=False) == (
        FINETUNE_MARGIN if accuracy - 0.3 >= 0.03 else 0.0)
    assert measured._known[model_digest(replayed)].result() == accuracy
    # where pruning cost under twice the margin, or the model is at chance, nothing is asked and nothing replayed
    fresh = replace(ref, train_data=train)
    fresh._known.clear()
    assert hidden.required_gain(fresh, 0.7, 0.69, r, digest, masked=False) == 0.0
    assert hidden.required_gain(fresh, 0.7, 0.12, r, digest, masked=False) == 0.0
    assert not fresh._known
    # without a training split to replay on (an old reference), the visible check's rule alone
    assert hidden.required_gain(replace(ref, train_data=None), 0.7, 0.5, r, digest, masked=False) == FINETUNE_MARGIN


def test_a_correct_fine_tuning_of_a_model_that_pruning_barely_hurt_is_not_charged(cfg):
    """A start that pruning cost more than twice the margin, whose one epoch on the grader's training split
    gains nothing (the case of the 90% model of some well-trained models): the student's correct run is the
    grader's replay and is not charged; a run that did not move the weights is."""
    from autograder.grading import part3_checks as hidden
    from autograder.grading.measure import ReferenceMeasurements, model_digest
    from autograder.grading.trained_split import replays, with_change
    train, test = _data(64, seed=1), _data(64, seed=2)
    ref = ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=test, device="cpu", accuracy={},
                                train_data=train)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    tuned = fine_tune(copy_model(r), train, device="cpu", progress=False)
    replayed = with_change(r, replays(ref, r, model_digest(r), False)["train"])
    for model, acc in ((ref.model, 0.6), (r, 0.57), (tuned, 0.57), (replayed, 0.57)):
        ref.remember(model_digest(model), acc)
    starts = {"results": [{"target": 0.5, "state": plain_state_dict(r)}]}
    entry = {"kind": "structured", "before": 0.57, "after": 0.57}
    got = hidden.check_finetuned({"results": [{**entry, "state": plain_state_dict(tuned)}]}, starts, {"results": []},
                                 ref, cfg)
    assert got == ["unstructured: finetune_results has no entry of kind 'unstructured'"]
    # the gain's replay is the split check's own: made once, under the start's digest, without masks
    assert {k for k in ref._known if isinstance(k, tuple)} == {("fine-tune", model_digest(r), s, False)
                                                              for s in ("train", "test")}
    got = hidden.check_finetuned({"results": [{**entry, "state": plain_state_dict(r)}]}, starts, {"results": []},
                                 ref, cfg)
    assert got[0].startswith("structured: the fine-tuned model's weights are exactly the starting model's")


def test_the_grader_names_a_start_without_masks_as_the_cause_of_lost_zeros(ref, cfg):
    """A part-1 model whose zeros were set directly (exported with ``masked`` False) that lost them while
    fine-tuning: the hidden check says there were no masks to keep, as the visible one does."""
    from autograder.grading import part3_checks as hidden
    u = unstructured_90()
    hand = copy_model(u)
    for layer in (hand.conv2, hand.fc1):
        prune.remove(layer, "weight")  # the zeros stay, the masks go
    lost = copy_model(hand)
    with torch.no_grad():
        lost.fc1.weight.add_(0.01)
    finetune = {"results": [{"kind": "unstructured", "target": 0.9, "state": plain_state_dict(lost), "before": 0.5,
                             "after": 0.5, "error": None}]}
    for masked_start, hint in ((False, True), (True, False), (None, False)):
        start = {"target": 0.9, "state": plain_state_dict(hand)}
        if masked_start is not None:
            start["masked"] = masked_start
        got = [line for line in hidden.check_finetuned(finetune, {"results": []}, {"results": [start]}, ref, cfg)
               if line.startswith("unstructured: ")]
        assert "no longer zero" in got[0]
        assert (got[1:] == [f"unstructured: {NO_MASKS}"]) is hint, (masked_start, got)
