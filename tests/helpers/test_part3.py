"""Part 3 in the students' library: removal, cost measurement, fine-tuning and their visible checks,
against references made by hand.

Removed models are built here by slicing tensors (not with Torch-Pruning, which the solution uses);
masked models with ``torch.nn.utils.prune.custom_from_mask``; MAC counts are compared with a fresh
model of the same widths. Messages are asserted whole.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from helpers import test_model
from helpers.cost import count_macs, format_cost_table, measure_latency
from helpers.finetune import fine_tune
from helpers.models import SmallCNN, copy_model, plain_state_dict
from helpers.removal import (
    inspect_removal,
    mask_random_filters,
    small_cnn_from_state,
    surviving_filters,
    without_dead_biases,
)
from helpers.removal_checks import (
    FINETUNE_MARGIN,
    NO_MASKS,
    TOO_LITTLE_GAIN,
    check_finetuning,
    check_removal,
    inspect_finetuned,
)
from tests.part3_models import (
    DEAD,
    IMAGES,
    StrictAccuracy,
    base,
    masked,
    removed_by_hand,
    small_data,
    unstructured_90,
)


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


def test_fine_tuning_with_masks_attached_keeps_the_zeros_and_without_loses_them():
    start = masked(base(), DEAD)
    unstructured = copy_model(base())
    prune.global_unstructured([(unstructured.conv2, "weight"), (unstructured.fc1, "weight")],
                              prune.L1Unstructured, amount=0.5)
    tuned = fine_tune(copy_model(unstructured), small_data(), epochs=1, lr=1e-2, batch_size=16, progress=False)
    assert not tuned.training
    assert inspect_finetuned("unstructured", tuned, unstructured) is None
    assert not torch.equal(plain_state_dict(tuned)["fc1.weight"], plain_state_dict(unstructured)["fc1.weight"])
    dropped = copy_model(unstructured)
    for m in (dropped.conv2, dropped.fc1):
        prune.remove(m, "weight")
    fine_tune(dropped, small_data(), epochs=1, lr=1e-2, batch_size=16, progress=False)
    plain = plain_state_dict(unstructured)
    n = int((plain["fc1.weight"] == 0).sum() + (plain["conv2.weight"] == 0).sum())
    msg = inspect_finetuned("unstructured", dropped, unstructured)
    lost = int(msg.split(" of the ")[0])
    assert 0 < lost <= n and msg.startswith(f"{lost} of the {n} pruned weights are no longer zero (sparsity ")
    assert msg.endswith("): keep the masks attached while fine-tuning (no prune.remove before it), so that only "
                        "the surviving weights train")
    r = removed_by_hand(start, DEAD)
    assert inspect_finetuned("structured", fine_tune(copy_model(r), small_data(), progress=False), r) is None
    assert inspect_finetuned("structured", base(), r) == (
        "the fine-tuned model's filters per layer are {'conv1': 4, 'conv2': 6, 'conv3': 8}, expected "
        "{'conv1': 3, 'conv2': 4, 'conv3': 5} (the removed model's): "
        "fine-tune a copy of the removed model (removal_results at 0.5), not the masked one of structured_results")


def test_fine_tune_checks_its_arguments():
    for kwargs, message in (({"epochs": 0}, "epochs must be a positive int, got 0"),
                            ({"lr": 0}, "lr must be > 0, got 0"),
                            ({"batch_size": True}, "batch_size must be a positive int, got True")):
        with pytest.raises(ValueError) as err:
            fine_tune(base(), small_data(), **kwargs)
        assert str(err.value) == message
    with pytest.raises(ValueError, match="train_data must be"):
        fine_tune(base(), small_data()[0])


def _structured_results():
    return [{"target": 0.5, "model": masked(base(), DEAD)}]


def test_check_removal_of_a_right_and_a_wrong_list():
    test = [IMAGES, np.arange(16) % 10]
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    good = [{"target": 0.5, "model": r, "macs": count_macs(r)[0], "accuracy": test_model(r, test, verbose=False)}]
    assert check_removal(good, _structured_results(), test) == ""
    off = [{**good[0], "macs": good[0]["macs"] * 1.02, "accuracy": 0.99}]
    assert check_removal(off, _structured_results(), test).splitlines() == [
        f"target 0.50: 'macs' says {off[0]['macs']!r} but the stored model has {good[0]['macs']:,.0f} MACs: store "
        "count_macs(model)[0], the first of the two numbers count_macs returns",
        f"target 0.50: 'accuracy' says 0.9900 but the stored model gives {good[0]['accuracy']:.4f}"]
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
        f"is expected: {TOO_LITTLE_GAIN}" for k in ("structured", "unstructured")])


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
        "finetune_results needs a dict with kind 'structured', target 0.5, model, before and after (it is empty)",
        "finetune_results needs a dict with kind 'unstructured', target 0.9, model, before and after (it is empty)"]
    # Kinds spelt otherwise: the message shows what is there.
    misspelt = [{**same[0], "kind": "Structured"}, {"kind": "unstructured", "acc": 0.5}]
    assert check_finetuning(misspelt, removal, unstructured, test).splitlines() == [
        "finetune_results needs a dict with kind 'structured', target 0.5, model, before and after (it holds kind "
        "'Structured' with keys kind, target, model, before, after; kind 'unstructured' with keys kind, acc)",
        "finetune_results needs a dict with kind 'unstructured', target 0.9, model, before and after (it holds kind "
        "'Structured' with keys kind, target, model, before, after; kind 'unstructured' with keys kind, acc)"]
    assert "(it is dict, not a list)" in check_finetuning({"kind": "structured"}, removal, unstructured, test)


def test_visible_finetuning_check_line_by_line(monkeypatch):
    import helpers.removal_checks as rc
    data = small_data(8)
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
    claims = [{**good[0], "before": 0.41, "after": 0.4549}, {**good[1], "after": 0.5551}]  # CLAIM_TOL 0.005
    assert check_finetuning(claims, removal, unstructured, data, pretrained).splitlines() == [
        "structured: 'before' says 0.4100 but the model you started from (removal_results at 0.5) gives 0.4000",
        "unstructured: 'after' says 0.5551 but the fine-tuned model gives 0.5500"]
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
        "finetune_results needs a dict with kind 'structured', target 0.5, model, before and after (it holds kind "
        "'structured' with keys kind, target; kind 'unstructured' with keys kind, target, model, before, after)"]
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


def test_visible_checks_of_broken_entries_and_of_both_kinds(monkeypatch):
    import helpers.removal_checks as rc
    data = small_data(8)
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


def test_removal_with_the_masks_still_attached_is_named_for_what_it_is():
    """Torch-Pruning on a copy that still carries prune's masks: it cuts `weight`, but the mask computes it again from
    the uncut `weight_orig` (the model no longer runs). The check names the missing prune.remove, not the filters."""
    import torch_pruning as tp
    masked_model = mask_random_filters(SmallCNN(channels=(4, 8, 8), hidden=16), 0.25)
    removed = copy_model(masked_model)  # the mistake: no prune.remove on the copy
    graph = tp.DependencyGraph().build_dependency(removed, example_inputs=torch.zeros(1, 3, 32, 32))
    for conv in [m for m in removed.modules() if isinstance(m, nn.Conv2d)]:
        dead = (conv.weight.detach().flatten(1) == 0).all(dim=1).nonzero().flatten().tolist()
        if dead:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=dead).prune()
    message = inspect_removal(removed, masked_model, IMAGES)
    assert message.startswith("the removed model still has pruning masks (weight_orig and weight_mask) on conv1")
    assert "call prune.remove(layer, 'weight') on every pruned layer of the copy before Torch-Pruning" in message


def test_an_in_place_removal_passes_its_models_check_with_a_note(capsys):
    """remove_filters that cut the model it was given: the removed models are right (no points lost here, as in the
    grader), but structured_results now holds them too; the check says so instead of passing silently."""
    source = masked(base(), DEAD)
    removed = removed_by_hand(source, DEAD)
    structured = [{"target": 0.5, "model": removed}]  # the in-place removal replaced part 2's model
    test = [IMAGES, np.arange(16) % 10]
    entry = {"target": 0.5, "model": removed, "macs": count_macs(removed)[0],
             "accuracy": test_model(removed, test, verbose=False)}
    assert check_removal([entry], structured, test) == ""
    printed = capsys.readouterr().out
    assert printed.startswith("note: removal_results' model at target 0.50 is structured_results' own model object")
    assert "remove_filters changed the model it was given" in printed
