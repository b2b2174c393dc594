"""Every grading decision, on inputs made without the code under test, at its boundaries.

Models are pruned here by hand (sorting magnitudes and norms, not ``torch.nn.utils.prune`` and
not the reference solutions); claims are set to known values just inside and just outside each
tolerance; accuracies the grader "measures" are fixed by recording them under the model's digest,
so each decision is seen alone. Messages are asserted whole.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from autograder.config import GradeConfig
from autograder.grading import measure, part12_checks, scoring
from autograder.grading.measure import ReferenceMeasurements, model_digest
from autograder.grading.parts import GRADED_PARTS
from helpers import SmallCNN
from helpers.checks import TARGETS, check_accuracies, check_results, inspect_structured, inspect_unstructured
from helpers.models import plain_state_dict
from helpers.sparsity import zeroed_filters

UNSTRUCTURED, STRUCTURED = GRADED_PARTS
REF_ACCURACY = 0.5
#: A small SmallCNN (18,600 weights): fast, and 1 weight is 0.00005 of them, finer than every tolerance tested.
SMALL = {"channels": (4, 8, 8), "hidden": 128}


# ---- hand-made pruning ---------------------------------------------------------------------

def _weights(model, types=(nn.Conv2d, nn.Linear)):
    return [m.weight for m in model.modules() if isinstance(m, types)]


def zero_smallest(model: nn.Module, fraction: float, extra: int = 0) -> nn.Module:
    """A copy with the ``round(fraction * n) + extra`` smallest-magnitude weights of all layers zeroed."""
    out = copy.deepcopy(model)
    weights = _weights(out)
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


def zero_filters(model: nn.Module, fraction: float) -> nn.Module:
    """A copy with, in every Conv2d, the ``round(fraction * out)`` filters of smallest L2 norm zeroed."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for w in _weights(out, (nn.Conv2d,)):
            norms = w.flatten(1).norm(dim=1)
            w[torch.argsort(norms, stable=True)[:int(round(fraction * w.shape[0]))]] = 0
    return out


def sparsity(model, types=(nn.Conv2d, nn.Linear)) -> float:
    weights = _weights(model, types)
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


# ---- a reference whose accuracies are known ------------------------------------------------

@pytest.fixture(scope="module")
def base():
    torch.manual_seed(1)
    return SmallCNN(**SMALL).eval()


@pytest.fixture()
def ref(base):
    data = [np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.int64)]
    accuracy = {gp.name: dict.fromkeys(TARGETS, REF_ACCURACY) for gp in GRADED_PARTS}
    return ReferenceMeasurements(model=base, arch="SmallCNN", config=SMALL, test_data=data, device="cpu",
                                 accuracy=accuracy, digests={gp.name: {} for gp in GRADED_PARTS})


@pytest.fixture()
def cfg(tmp_path, base):
    from helpers import save_model
    (tmp_path / "subs").mkdir()
    return GradeConfig(submissions=tmp_path / "subs", data_root="synthetic", model=save_model(base, tmp_path / "m.pt"),
                       out=tmp_path / "out")


def entry(model, target, ref, measured=REF_ACCURACY, accuracy=None, claimed_sparsity=None, types=None):
    """One saved results entry whose grader-measured accuracy is ``measured``."""
    ref.remember(model_digest(model), measured)
    types = types or (nn.Conv2d, nn.Linear)
    return {"target": target, "state": plain_state_dict(model), "error": None,
            "accuracy": measured if accuracy is None else accuracy,
            "sparsity": sparsity(model, types) if claimed_sparsity is None else claimed_sparsity}


def record(base, ref, gp=UNSTRUCTURED, prune=zero_smallest, overrides=None, unseen=None):
    types = gp.part.layer_types
    results = [entry(prune(base, t), t, ref, types=types) for t in TARGETS]
    for i, item in (overrides or {}).items():
        results[i] = item
    good = {str(t): {"state": plain_state_dict(prune(base, t)), "error": None, "modified_input": False}
            for t in (0.35, 0.65)}
    return {"results": results, "unseen": {**good, **(unseen or {})}}


def problems(gp, rec, ref, cfg):
    return part12_checks.score_part(gp, rec, ref, cfg)


# ---- accuracy band and claims ----------------------------------------------------------------

def test_correct_records_pass(base, ref, cfg):
    assert problems(UNSTRUCTURED, record(base, ref), ref, cfg) == {"structure": [], "accuracy": [], "unseen": []}
    assert problems(STRUCTURED, record(base, ref, STRUCTURED, zero_filters), ref, cfg) == {
        "structure": [], "accuracy": [], "unseen": []}


@pytest.mark.parametrize("measured, ok", [(0.519, True), (0.481, True), (0.521, False), (0.479, False)])
def test_accuracy_band_is_002_around_the_reference(base, ref, cfg, measured, ok):
    model = zero_smallest(base, 0.1)
    rec = record(base, ref, overrides={0: entry(model, 0.1, ref, measured=measured)})
    got = problems(UNSTRUCTURED, rec, ref, cfg)["accuracy"]
    assert got == ([] if ok else [f"target 0.10: the model scores {measured:.4f}, the reference solution 0.5000 "
                                  "(allowed difference 0.02)"])


@pytest.mark.parametrize("offset, ok", [(0.0049, True), (-0.0049, True), (0.0051, False), (-0.0051, False)])
def test_claimed_accuracy_is_compared_with_the_graders_measurement(base, ref, cfg, offset, ok):
    model = zero_smallest(base, 0.2)
    measured = 0.51  # inside the band, but not the reference's 0.5
    rec = record(base, ref, overrides={1: entry(model, 0.2, ref, measured=measured, accuracy=measured + offset)})
    got = problems(UNSTRUCTURED, rec, ref, cfg)["accuracy"]
    want = f"target 0.20: 'accuracy' says {measured + offset} but the stored model scores 0.5100"
    assert got == ([] if ok else [want])


def test_claiming_the_reference_accuracy_is_not_enough(base, ref, cfg):
    model = zero_smallest(base, 0.2)
    rec = record(base, ref, overrides={1: entry(model, 0.2, ref, measured=0.51, accuracy=REF_ACCURACY)})
    assert problems(UNSTRUCTURED, rec, ref, cfg)["accuracy"] == [
        "target 0.20: 'accuracy' says 0.5 but the stored model scores 0.5100"]


def test_claimed_sparsity_is_compared_with_the_model_not_the_target(base, ref, cfg):
    n = sum(w.numel() for w in _weights(base))
    model = zero_smallest(base, 0.3, extra=int(0.003 * n))  # 0.3 + 0.003: inside sparsity_tol 0.005
    measured = sparsity(model)
    assert 0.0025 < measured - 0.3 < 0.0035
    for claim, ok in ((measured, True), (measured + 0.0009, True), (measured - 0.0011, False), (0.3, False)):
        rec = record(base, ref, overrides={2: entry(model, 0.3, ref, claimed_sparsity=claim)})
        got = problems(UNSTRUCTURED, rec, ref, cfg)
        assert got["structure"] == []
        assert got["accuracy"] == ([] if ok else [
            f"target 0.30: 'sparsity' says {claim} but the stored model's is {measured:.4f}"]), claim


def test_missing_claims_fail(base, ref, cfg):
    model = zero_smallest(base, 0.4)
    item = entry(model, 0.4, ref)
    item.update(accuracy=None, sparsity=None)
    got = problems(UNSTRUCTURED, record(base, ref, overrides={3: item}), ref, cfg)["accuracy"]
    assert got == ["target 0.40: 'accuracy' says None but the stored model scores 0.5000",
                   f"target 0.40: 'sparsity' says None but the stored model's is {sparsity(model):.4f}"]


# ---- the structure of the results list --------------------------------------------------------

def test_one_entry_per_target(base, ref, cfg):
    rec = record(base, ref)
    short = {**rec, "results": rec["results"][:7]}
    want = ("unstructured_results must have one entry per target [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, "
            "0.98] in order; got 7 entries, none for [0.8, 0.9, 0.95, 0.98]")
    got = problems(UNSTRUCTURED, short, ref, cfg)
    assert got["structure"] == [want] and got["accuracy"] == [want]
    long = {**rec, "results": rec["results"] + rec["results"][:1]}
    want = ("unstructured_results must have one entry per target [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, "
            "0.98] in order; got 12 entries")
    assert problems(UNSTRUCTURED, long, ref, cfg)["structure"] == [want]
    odd = {**rec, "results": ["not a dict"] + rec["results"][1:]}
    assert problems(UNSTRUCTURED, odd, ref, cfg)["structure"][0].endswith("got 11 entries, none for [0.1]")


def test_an_entry_that_could_not_be_saved(base, ref, cfg):
    rec = record(base, ref)
    rec["results"][4] = {"target": 0.5, "state": None, "accuracy": None, "sparsity": None,
                         "error": "unstructured_results[4]: KeyError: 'model'"}
    got = problems(UNSTRUCTURED, rec, ref, cfg)
    assert got["structure"] == ["target 0.50: unstructured_results[4]: KeyError: 'model'"]
    assert got["accuracy"] == ["target 0.50: no model to test"]


# ---- unseen targets -------------------------------------------------------------------------

def test_unseen_outputs_are_inspected(base, ref, cfg):
    cases = {
        "unpruned": ({"state": plain_state_dict(base), "error": None, "modified_input": False},
                     "prune_unstructured(model, 0.35): target 0.35 gave sparsity 0.000: expected 0.350 of all "
                     "Conv2d and Linear weights to be zero"),
        "modified": ({"state": plain_state_dict(zero_smallest(base, 0.35)), "error": None, "modified_input": True},
                     "prune_unstructured(model, 0.35) changed the model it was given: prune a copy and return it"),
        "raised": ({"state": None, "error": "ValueError: no"},
                   "prune_unstructured(model, 0.35) failed: ValueError: no"),
        "missing": ({}, "prune_unstructured(model, 0.35) failed: no result"),
    }
    for name, (item, message) in cases.items():
        got = problems(UNSTRUCTURED, record(base, ref, unseen={"0.35": item}), ref, cfg)
        assert got == {"structure": [], "accuracy": [], "unseen": [message]}, name


# ---- inspections of one model -----------------------------------------------------------------

@pytest.mark.parametrize("extra, ok", [(0.0049, True), (0.0051, False)])
def test_sparsity_tolerance_of_the_grader(base, ref, cfg, extra, ok):
    n = sum(w.numel() for w in _weights(base))
    model = zero_smallest(base, 0.5, extra=int(round(extra * n)))
    got = problems(UNSTRUCTURED, record(base, ref, overrides={4: entry(model, 0.5, ref)}), ref, cfg)["structure"]
    assert got == ([] if ok else [f"target 0.50 gave sparsity {sparsity(model):.3f}: expected 0.500 of all Conv2d "
                                  "and Linear weights to be zero"])
    assert (cfg.sparsity_tol, replace(cfg, sparsity_tol=0.01).sparsity_tol) == (0.005, 0.01)


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


# ---- the notebook's visible check of a whole list --------------------------------------------

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
            f"target 0.10: 'sparsity' says {claim!r} but the model's zeros over all Conv2d and Linear weights "
            f"give {measured:.4f}"))
    results[0] = {**results[0], "sparsity": measured}
    for acc, ok in ((1.0, True), (0.0, True), (1.0001, False), (65.3, False), (-0.1, False), (True, False)):
        results[1] = {**results[1], "accuracy": acc}  # with every=3 entry 1 is not evaluated: only its range
        assert check_results(results, base, "unstructured") == ""
        assert check_accuracies(results, base, "unstructured", data, every=3) == ("" if ok else (
            f"target 0.20: 'accuracy' must be test_model's number in [0, 1], got {acc!r}"))
    # By default (as in the notebook) every entry's accuracy is measured, as the grader does.
    own = test_model(results[1]["model"], data, verbose=False)
    wrong = own + 0.01 if own < 0.5 else own - 0.01
    results[1] = {**results[1], "accuracy": wrong}
    assert check_accuracies(results, base, "unstructured", data, every=3) == ""
    assert check_accuracies(results, base, "unstructured", data) == (
        f"target 0.20: 'accuracy' says {wrong:.4f} but test_model gives {own:.4f} for the model stored with it: "
        "store the accuracy of that same pruned model")


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


# ---- the visible checks' messages for one object reused, compounding, and stored accuracies ------

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
        f"target 0.40: 'accuracy' says 0.5223 but test_model gives {true:.4f} for the model stored with it: "
        "store the accuracy of that same pruned model")
    results[2] = {**results[2], "accuracy": 0.0}  # with every=3, entries off the every-3rd path are not evaluated
    assert check_accuracies(results, base, "unstructured", test_data, every=3).startswith("target 0.40:")
    assert check_accuracies(results, base, "unstructured", test_data).startswith("target 0.30:")  # by default, all


# ---- tolerances are inclusive (values exact in binary, so the boundary itself is tested) ----------

def test_every_tolerance_includes_its_boundary(base, ref, cfg):
    cfg.accuracy_band, cfg.claim_tol = 0.25, 0.125
    model = zero_smallest(base, 0.1)
    at_band = record(base, ref, overrides={0: entry(model, 0.1, ref, measured=0.75)})  # |0.75 - 0.5| == 0.25
    assert problems(UNSTRUCTURED, at_band, ref, cfg)["accuracy"] == []
    at_claim = record(base, ref, overrides={0: entry(model, 0.1, ref, measured=0.5, accuracy=0.625)})
    assert problems(UNSTRUCTURED, at_claim, ref, cfg)["accuracy"] == []
    exact = sparsity(model)
    item = entry(model, 0.1, ref, measured=0.75)  # the accuracy this model was given above
    item["sparsity"] = exact + 0.0009765625  # 2**-10: the fixed 0.001 has no exact binary boundary
    assert problems(UNSTRUCTURED, record(base, ref, overrides={0: item}), ref, cfg)["accuracy"] == []


# ---- reading what the kernel saved -----------------------------------------------------------------

def test_what_was_saved_is_read_safely_with_messages(tmp_path, base, ref):
    assert scoring.load_export(tmp_path / "missing.pt") == (
        None, "no results were saved: the notebook stopped before this part's first check cell")
    big = tmp_path / "big.pt"
    with open(big, "wb") as fh:
        fh.truncate(scoring._MAX_EXPORT_BYTES + 1)
    assert scoring.load_export(big) == (None, "the saved results are too large to be this assignment's models")
    at_limit = tmp_path / "limit.pt"
    torch.save({"results": []}, at_limit)
    with open(at_limit, "ab") as fh:
        fh.truncate(scoring._MAX_EXPORT_BYTES)
    assert scoring.load_export(at_limit)[1] != "the saved results are too large to be this assignment's models"

    class Evil:
        def __reduce__(self):
            return (print, ("code ran while loading",))
    pickled = tmp_path / "evil.pt"
    torch.save({"results": [Evil()]}, pickled)
    assert scoring.load_export(pickled) == (None, "the saved results could not be read (UnpicklingError)")
    good = tmp_path / "good.pt"
    torch.save({"results": [{"state": plain_state_dict(base)}]}, good)
    loaded, why = scoring.load_export(good)
    assert why is None and set(loaded["results"][0]["state"]) == set(plain_state_dict(base))


def test_a_saved_state_must_fit_the_architecture_exactly(base, ref):
    assert measure.model_from_state(None, ref) == (None, "no model was saved")
    state = plain_state_dict(base)
    model, why = measure.model_from_state(state, ref)
    assert why is None and not model.training
    extra = {**state, "bonus.weight": torch.zeros(1)}
    model, why = measure.model_from_state(extra, ref)
    assert model is None and why == ("the model does not have the pretrained model's layers and shapes "
                                     "(Error(s) in loading state_dict for SmallCNN:)")


# ---- the visible checks, message by message ------------------------------------------------------

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
        f"target 0.40: 'accuracy' says 0.9900 but test_model gives {results[3]['accuracy']:.4f} for the model "
        "stored with it: store the accuracy of that same pruned model"]
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


# ---- exports that are not what the hidden cells write ---------------------------------------------

def test_exports_of_the_wrong_shape_fail_every_check_with_a_message(base, ref, cfg):
    fn = "prune_unstructured"
    no_unseen = [f"{fn}(model, 0.35) failed: no result", f"{fn}(model, 0.65) failed: no result"]
    want_list = ("unstructured_results must have one entry per target [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, "
                 "0.95, 0.98] in order; got 0 entries, none for [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, "
                 "0.98]")
    for rec in (["a list"], {}, {"results": "text", "unseen": ["a list"]}, {"results": None, "unseen": None}):
        assert problems(UNSTRUCTURED, rec, ref, cfg) == {
            "structure": [want_list], "accuracy": [want_list], "unseen": no_unseen}, rec
    rec = record(base, ref, unseen={"0.35": "not a dict", "0.65": ["nor", "this"]})
    assert problems(UNSTRUCTURED, rec, ref, cfg)["unseen"] == no_unseen


def test_an_unseen_target_that_raised_fails_even_with_a_model(base, ref, cfg):
    item = {"state": plain_state_dict(zero_smallest(base, 0.35)), "error": "RuntimeError: late",
            "modified_input": False}
    got = problems(UNSTRUCTURED, record(base, ref, unseen={"0.35": item}), ref, cfg)["unseen"]
    assert got == ["prune_unstructured(model, 0.35) failed: RuntimeError: late"]


def test_unseen_targets_use_the_graders_sparsity_tolerance(base, ref, cfg):
    n = sum(w.numel() for w in _weights(base))
    off = zero_smallest(base, 0.35, extra=int(0.003 * n))  # 0.003 over: inside 0.005, outside 0.001
    item = {"state": plain_state_dict(off), "error": None, "modified_input": False}
    rec = record(base, ref, unseen={"0.35": item})
    assert problems(UNSTRUCTURED, rec, ref, cfg)["unseen"] == []
    strict = replace(cfg, sparsity_tol=0.001)
    assert problems(UNSTRUCTURED, rec, ref, strict)["unseen"] == [
        f"prune_unstructured(model, 0.35): target 0.35 gave sparsity {sparsity(off):.3f}: expected 0.350 of all "
        "Conv2d and Linear weights to be zero"]


def test_a_gap_in_the_list_does_not_hide_later_mistakes(base, ref, cfg):
    wrong = entry(base, 0.9, ref)  # unpruned at 0.9
    unpruned = "target 0.90 gave sparsity 0.000: expected 0.900 of all Conv2d and Linear weights to be zero"
    good = record(base, ref)["results"]
    rec = record(base, ref, overrides={8: wrong})
    rec["results"] = [r for i, r in enumerate(rec["results"]) if i != 4]
    got = problems(UNSTRUCTURED, rec, ref, cfg)
    assert got["structure"][1:] == [unpruned] and len(got["structure"]) == 2
    failed = {"target": 0.5, "state": None, "accuracy": None, "sparsity": None, "error": "boom"}
    rec = record(base, ref, overrides={4: failed, 8: wrong, 9: {**good[9], "accuracy": 0.1}})
    got = problems(UNSTRUCTURED, rec, ref, cfg)
    assert got["structure"] == ["target 0.50: boom", unpruned]
    assert got["accuracy"] == ["target 0.50: no model to test",
                               "target 0.95: 'accuracy' says 0.1 but the stored model scores 0.5000"]
    assert part12_checks._entries(UNSTRUCTURED, record(base, ref), ref)[1] is None


def test_a_saved_model_that_does_not_fit_is_named_in_both_checks(base, ref, cfg):
    item = {"target": 0.5, "state": {"conv1.weight": torch.zeros(1)}, "error": None, "accuracy": 0.5,
            "sparsity": 0.5}
    got = problems(UNSTRUCTURED, record(base, ref, overrides={4: item}), ref, cfg)
    why = ("target 0.50: the model does not have the pretrained model's layers and shapes (Error(s) in loading "
           "state_dict for SmallCNN:)")
    assert got["structure"] == [why] and got["accuracy"] == [why]


def test_a_message_not_about_the_target_is_prefixed_with_it(base, ref, cfg):
    changed = zero_smallest(base, 0.5)
    with torch.no_grad():
        changed.fc2.weight.mul_(2.0)  # zeros stay zeros, survivors change
    got = problems(UNSTRUCTURED, record(base, ref, overrides={4: entry(changed, 0.5, ref)}), ref, cfg)["structure"]
    assert len(got) == 1 and got[0].startswith("target 0.50: ") and not got[0].startswith("target 0.50: target")


def test_the_reference_solutions_models_are_trusted_without_inspection(base, ref, cfg):
    seen = []

    def spy(pruned, original, target, tol=0.001):
        seen.append(target)
        return None
    gp = replace(UNSTRUCTURED, part=replace(UNSTRUCTURED.part, inspector=spy))
    rec = record(base, ref)
    entries, _ = part12_checks._entries(gp, rec, ref)
    ref.digests["unstructured"][0.2] = entries[1].digest
    ref.digests["structured"][0.3] = entries[2].digest  # another part's reference is no excuse
    assert part12_checks.check_structure(gp, entries, ref, cfg) == []
    assert seen == [t for t in TARGETS if t != 0.2]
    assert ref.matches("unstructured", 0.2, entries[1].digest)
    assert not ref.matches("unstructured", 0.3, entries[1].digest)
    assert not replace(ref, digests={}).matches("unstructured", 0.2, entries[1].digest)


def test_build_reference_measures_quietly_and_knows_its_models(base, capsys):
    from autograder.grading import solutions
    data = [np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
            np.arange(20) % 10]
    ref = measure.build_reference(base, "SmallCNN", SMALL, data, device="cpu")
    assert capsys.readouterr().out == ""
    for gp, fn in ((UNSTRUCTURED, solutions.prune_unstructured), (STRUCTURED, solutions.prune_structured)):
        for t in (0.1, 0.5, 0.98):
            model, _ = measure.model_from_state(plain_state_dict(fn(base, t)), ref)
            assert ref.matches(gp.name, t, model_digest(model))
            assert ref.accuracy_of(model, model_digest(model)) == ref.accuracy[gp.name][t]
    assert capsys.readouterr().out == ""


def test_a_worker_adopts_the_graders_reference_figures_only_from_the_same_kind_of_device(base, monkeypatch):
    from autograder.grading import solutions
    data = [np.random.default_rng(1).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10]
    measured = measure.build_reference(base, "SmallCNN", SMALL, data, device="cpu").measurements()
    assert measured.device == "cpu" == measure.measuring_device("cpu")
    # Figures no measurement here could give: adopted as they are, measured nowhere.
    forged = measure.Measurements("cpu", {p: {t: 0.123 for t in a} for p, a in measured.accuracy.items()},
                                  measured.digests)
    calls = []
    monkeypatch.setattr(measure, "test_model", lambda *a, **k: calls.append(1) or 0.5)
    train = [data[0][::-1].copy(), data[1][::-1].copy()]
    store = _Recorder()
    monkeypatch.setattr(measure, "default_device", lambda: torch.device("meta"))  # the worker's own device counts
    adopted = measure.reference_from(base, "SmallCNN", SMALL, data, "cpu", forged, train, shared=store)
    assert (adopted.model, adopted.arch, adopted.config, adopted.test_data, adopted.train_data, adopted.device,
            adopted.shared) == (base, "SmallCNN", SMALL, data, train, "cpu", store)
    assert adopted.digests == measured.digests and adopted.measurements() == forged
    model, _ = measure.model_from_state(plain_state_dict(solutions.prune_structured(base, 0.5)), adopted)
    assert adopted.matches("structured", 0.5, model_digest(model))
    assert adopted.accuracy_of(model, model_digest(model)) == 0.123 == adopted.accuracy["structured"][0.5]
    assert calls == []
    # Measured on a GPU: a CPU worker measures its own (every target of every part, once).
    gpu = replace(forged, device="cuda:NVIDIA H100 80GB HBM3")
    own = measure.reference_from(base, "SmallCNN", SMALL, data, "cpu", gpu, train, shared=store)
    assert (own.model, own.arch, own.config, own.test_data, own.train_data, own.device, own.shared) == (
        base, "SmallCNN", SMALL, data, train, "cpu", store)
    monkeypatch.undo()  # the device rule itself, below
    assert len(calls) == sum(len(a) for a in measured.accuracy.values())
    assert all(acc == 0.5 for a in own.accuracy.values() for acc in a.values())
    assert own.digests == measured.digests
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert measure.measuring_device(None) == "cuda:NVIDIA H100 80GB HBM3" == measure.measuring_device("cuda")
    assert measure.measuring_device("cpu") == "cpu"


def test_a_failed_measurement_raises_and_is_measured_again(base, ref):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("broken model")
    with pytest.raises(RuntimeError, match="broken model"):
        ref.accuracy_of(Broken(), "d1")
    with pytest.raises(RuntimeError, match="broken model"):
        ref.accuracy_of(Broken(), "d1")


def test_only_the_check_cells_the_source_has_are_graded(tmp_path, base, ref, cfg):
    results = scoring.score_submission(tmp_path, ref, cfg, {"test_unstructured_sparsity": 2, "test_finetuning": 4})
    assert [(r.grade_id, r.max_points, r.points) for r in results] == [
        ("test_unstructured_sparsity", 2.0, 0.0), ("test_finetuning", 4.0, 0.0)]
    assert results[1].messages == ["no results were saved: the notebook stopped before this part's first check cell"]


# ---- inspections at their remaining edges ---------------------------------------------------------

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
    n = sum(w.numel() for w in _weights(base))
    off = zero_smallest(base, 0.1, extra=int(round(0.0015 * n)))  # 0.1015: off target, near compounded 0.1
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


def test_measuring_a_new_model_prints_nothing(base, ref, capsys):
    ref.test_data = [np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64)]
    fresh = zero_smallest(base, 0.33)
    accuracy = ref.accuracy_of(fresh, model_digest(fresh))
    assert 0.0 <= accuracy <= 1.0 and capsys.readouterr().out == ""


def test_a_part_is_scored_when_the_source_has_any_of_its_cells(tmp_path, base, ref, cfg):
    results = scoring.score_submission(tmp_path, ref, cfg, {"test_structured_filters": 4})
    assert [(r.grade_id, r.messages) for r in results] == [(
        "test_structured_filters", ["no results were saved: the notebook stopped before this part's first check cell"])]


def test_every_wrong_model_of_a_list_is_named(base):
    results = visible_results(base)
    results[0] = {**results[0], "model": copy.deepcopy(base)}
    results[1] = {**results[1], "model": copy.deepcopy(base)}
    lines = check_results(results, base, "unstructured").splitlines()
    assert lines == ["target 0.10 gave sparsity 0.000: expected 0.100 of all Conv2d and Linear weights to be zero",
                     "target 0.20 gave sparsity 0.000: expected 0.200 of all Conv2d and Linear weights to be zero"]


class _Recorder:
    def __init__(self, values=None, fail=False):
        self.values, self.fail, self.puts = dict(values or {}), fail, []

    def get(self, key):
        return None if self.fail else self.values.get(key)

    def put(self, key, value):
        self.puts.append(key)
        self.values[key] = value


def test_a_reference_takes_shared_values_and_shares_what_it_computes():
    from autograder.grading.measure import ReferenceMeasurements
    calls = []

    def compute(value):
        return lambda: calls.append(value) or value

    store = _Recorder({"known": 0.25})
    ref = ReferenceMeasurements(model=None, arch="SmallCNN", config={}, test_data=[], device="cpu", accuracy={},
                                shared=store)
    assert ref.once("known", compute(0.5)) == 0.25 and calls == [] and store.puts == []  # another process measured it
    assert ref.once(("fine-tune", "d", "test", True), compute(0.75)) == 0.75 and calls == [0.75]
    assert store.values[("fine-tune", "d", "test", True)] == 0.75  # shared for the others
    assert ref.once(("fine-tune", "d", "test", True), compute(0.1)) == 0.75 and calls == [0.75]  # and kept here
    silent = _Recorder({"known": 0.25}, fail=True)  # a store that cannot answer: measured here
    ref = ReferenceMeasurements(model=None, arch="SmallCNN", config={}, test_data=[], device="cpu", accuracy={},
                                shared=silent)
    assert ref.once("known", compute(0.5)) == 0.5 and calls == [0.75, 0.5]


def test_the_measurements_name_the_device_the_reference_measured_on(monkeypatch):
    import torch

    from autograder.grading import measure
    monkeypatch.setattr(measure, "default_device", lambda: torch.device("meta"))  # what None would pick
    ref = measure.ReferenceMeasurements(model=None, arch="SmallCNN", config={}, test_data=[], device="cpu", accuracy={})
    assert ref.measurements().device == "cpu" and measure.measuring_device(None) == "meta"
