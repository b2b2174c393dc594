"""Every hidden decision of parts 1 and 2 (:mod:`autograder.grading.part12_checks`, :mod:`autograder.grading.scoring`)
against models pruned here by hand (:mod:`tests.pruned_models`), not by the reference solutions.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from autograder.config import GradeConfig
from autograder.grading import part12_checks, scoring
from autograder.grading.measure import model_digest
from helpers.checks import TARGETS
from helpers.models import SmallCNN, plain_state_dict
from tests.pruned_models import (
    REF_ACCURACY,
    SMALL,
    STRUCTURED,
    UNSTRUCTURED,
    layer_weights,
    reference_of,
    sparsity,
    zero_smallest,
)

#: What the grader adds to a stored accuracy that is not its model's (as the visible check does).
OTHER = (" on the grader's test_data: measure that same model on test_data and store it, accuracy = "
         "test_model(pruned, test_data) (a number from other images, such as X_val, or from another model differs)")


def zero_filters(model: nn.Module, fraction: float) -> nn.Module:
    """A copy with, in every Conv2d, the ``round(fraction * out)`` filters of smallest L2 norm zeroed."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for w in layer_weights(out, (nn.Conv2d,)):
            norms = w.flatten(1).norm(dim=1)
            w[torch.argsort(norms, stable=True)[:int(round(fraction * w.shape[0]))]] = 0
    return out


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(1)
    return SmallCNN(**SMALL).eval()


@pytest.fixture()
def ref(base):
    return reference_of(base)


@pytest.fixture()
def cfg(tmp_path, base):
    from helpers.models import save_model
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
    want = f"target 0.20: 'accuracy' says {measured + offset:.4f} but the stored model scores 0.5100" + OTHER
    assert got == ([] if ok else [want])


def test_claiming_the_reference_accuracy_is_not_enough(base, ref, cfg):
    model = zero_smallest(base, 0.2)
    rec = record(base, ref, overrides={1: entry(model, 0.2, ref, measured=0.51, accuracy=REF_ACCURACY)})
    assert problems(UNSTRUCTURED, rec, ref, cfg)["accuracy"] == [
        "target 0.20: 'accuracy' says 0.5000 but the stored model scores 0.5100" + OTHER]


def test_claimed_sparsity_is_compared_with_the_model_not_the_target(base, ref, cfg):
    n = sum(w.numel() for w in layer_weights(base))
    model = zero_smallest(base, 0.3, extra=int(0.003 * n))  # 0.3 + 0.003: inside sparsity_tol 0.005
    measured = sparsity(model)
    assert 0.0025 < measured - 0.3 < 0.0035
    for claim, ok in ((measured, True), (measured + 0.0009, True), (measured - 0.0011, False), (0.3, False)):
        rec = record(base, ref, overrides={2: entry(model, 0.3, ref, claimed_sparsity=claim)})
        got = problems(UNSTRUCTURED, rec, ref, cfg)
        assert got["structure"] == []
        assert got["accuracy"] == ([] if ok else [
            f"target 0.30: 'sparsity' says {claim:.4f} but the stored model's is {measured:.4f}"]), claim


def test_missing_claims_fail(base, ref, cfg):
    model = zero_smallest(base, 0.4)
    item = entry(model, 0.4, ref)
    item.update(accuracy=None, sparsity=None)
    got = problems(UNSTRUCTURED, record(base, ref, overrides={3: item}), ref, cfg)["accuracy"]
    assert got == ["target 0.40: 'accuracy' says no number but the stored model scores 0.5000" + OTHER,
                   f"target 0.40: 'sparsity' says no number but the stored model's is {sparsity(model):.4f}"]


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


@pytest.mark.parametrize("extra, ok", [(0.0049, True), (0.0051, False)])
def test_sparsity_tolerance_of_the_grader(base, ref, cfg, extra, ok):
    n = sum(w.numel() for w in layer_weights(base))
    model = zero_smallest(base, 0.5, extra=int(round(extra * n)))
    got = problems(UNSTRUCTURED, record(base, ref, overrides={4: entry(model, 0.5, ref)}), ref, cfg)["structure"]
    assert got == ([] if ok else [f"target 0.50 gave sparsity {sparsity(model):.3f}: expected 0.500 of all Conv2d "
                                  "and Linear weights to be zero"])
    assert (cfg.sparsity_tol, replace(cfg, sparsity_tol=0.01).sparsity_tol) == (0.005, 0.01)


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
    n = sum(w.numel() for w in layer_weights(base))
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
    unpruned = ("target 0.90: the stored model is the pretrained `model` itself, unpruned: store the pruned copy "
                "prune_unstructured returned")
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
                               "target 0.95: 'accuracy' says 0.1000 but the stored model scores 0.5000" + OTHER]
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


def test_only_the_check_cells_the_source_has_are_graded(tmp_path, base, ref, cfg):
    results = scoring.score_submission(tmp_path, ref, cfg, {"test_unstructured_sparsity": 2, "test_finetuning": 4})
    assert [(r.grade_id, r.max_points, r.points) for r in results] == [
        ("test_unstructured_sparsity", 2.0, 0.0), ("test_finetuning", 4.0, 0.0)]
    assert results[1].messages == ["no results were saved: the notebook stopped before this part's first check cell"]


def test_a_part_is_scored_when_the_source_has_any_of_its_cells(tmp_path, base, ref, cfg):
    results = scoring.score_submission(tmp_path, ref, cfg, {"test_structured_filters": 4})
    assert [(r.grade_id, r.messages) for r in results] == [(
        "test_structured_filters", ["no results were saved: the notebook stopped before this part's first check cell"])]
