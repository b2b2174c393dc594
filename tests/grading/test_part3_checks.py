"""Part 3's hidden checks (:mod:`autograder.grading.part3_checks`, :mod:`autograder.grading.trained_split`),
against models removed, masked and fine-tuned by hand (:mod:`tests.part3_models`). Messages are asserted whole.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.nn.utils import prune

from helpers import test_model
from helpers.cost import count_macs
from helpers.finetune import fine_tune
from helpers.models import copy_model, plain_state_dict
from helpers.removal_checks import FINETUNE_MARGIN, NO_MASKS, TOO_LITTLE_GAIN, check_finetuning
from tests.part3_models import (
    DEAD,
    IMAGES,
    SMALL,
    StrictAccuracy,
    base,
    grade_config,
    masked,
    reference,
    removed_by_hand,
    small_data,
    unstructured_90,
    with_masks_like,
)


@pytest.fixture()
def ref():
    return reference()


@pytest.fixture()
def cfg(tmp_path):
    return grade_config(tmp_path)


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
        f"target 0.50: 'macs' says {claims['macs']:,.0f} but the stored model has {item['macs']:,.0f} MACs: store "
        "count_macs(model)[0], the first of the two numbers count_macs returns",
        f"target 0.50: 'accuracy' says no number but the stored model gives {acc:.4f}"]


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
    tuned_r = fine_tune(copy_model(r), small_data(), progress=False)
    tuned_u = fine_tune(copy_model(u), small_data(), progress=False)
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
        f"expected: {TOO_LITTLE_GAIN}"]
    assert hidden.check_finetuned({"results": []}, removal, unstructured, ref, cfg) == [
        "structured: finetune_results has no entry of kind 'structured'",
        "unstructured: finetune_results has no entry of kind 'unstructured'"]
    said = "it holds kind 'Structured' with keys kind, target, model, before, after"
    assert hidden.check_finetuned({"results": [], "holds": said}, removal, unstructured, ref, cfg)[0] == (
        f"structured: finetune_results has no entry of kind 'structured' ({said})")
    lost = copy_model(u)
    for m in (lost.conv2, lost.fc1):
        prune.remove(m, "weight")
    fine_tune(lost, small_data(), lr=1e-2, progress=False)
    finetune["results"][1]["state"] = plain_state_dict(lost)
    got = hidden.check_finetuned(finetune, removal, unstructured, ref, cfg)
    assert len(got) == 1 and got[0].startswith("unstructured: ") and "pruned weights are no longer zero" in got[0]


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
        f"target 0.70: 'macs' says {macs * 0.9899:,.0f} but the stored model has {macs:,.0f} MACs: store "
        "count_macs(model)[0], the first of the two numbers count_macs returns"]
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
        f"target 0.70: 'accuracy' says {measured + 0.01:.4f} but the stored model gives {measured:.4f}"]
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
    assert got[1] == ("unstructured: 'before' says 0.9000 but the model you started from (unstructured_results at 0.9) "
                      f"gives {before_u:.4f}")
    got = hidden.check_finetuned(finetune, {"results": []},
                                 {"results": [{"target": 0.9, "state": plain_state_dict(u)}]}, ref, cfg)
    assert got[0] == "structured: no model at target 0.5 to start from (no model was saved)"
    assert got[1] == ("unstructured: 'before' says 0.9000 but the model you started from (unstructured_results at 0.9) "
                      f"gives {before_u:.4f}")


def test_a_problem_with_one_kind_does_not_hide_the_other(monkeypatch, ref, cfg):
    import helpers.removal_checks as rc
    from autograder.grading import part3_checks as hidden
    data = small_data(8)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    tuned_u = copy_model(u)
    monkeypatch.setattr(rc, "test_model", StrictAccuracy(data, {id(u): 0.5, id(tuned_u): 0.55}))
    wrong_u = {"kind": "unstructured", "target": 0.9, "model": tuned_u, "before": 0.4, "after": 0.55}
    claim = ("unstructured: 'before' says 0.4000 but the model you started from (unstructured_results at 0.9) "
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
    assert got[1].startswith("unstructured: 'before' says no number")
    assert got[2].startswith("unstructured: 'after' says no number")


def test_fine_tuning_on_the_test_split_is_told_apart_by_the_weights_alone(cfg):
    """The grader fine-tunes each starting model on its own training and test splits and compares the
    directions the weights moved in: with the notebook's fine_tune call the student's split is the same
    run. (Other seeds, learning rates and epochs are measured on a trained model and real-looking data by
    the part-3 bench: on noise images with random labels, as here, no split has anything to teach.)"""
    from autograder.grading import part3_checks as hidden
    from autograder.grading import trained_split
    from autograder.grading.measure import ReferenceMeasurements, model_digest
    train, test = small_data(256, seed=1), small_data(256, seed=2)
    ref = ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=test, device="cpu", accuracy={},
                                train_data=train)
    r = removed_by_hand(masked(base(), DEAD), DEAD)
    u = unstructured_90()
    start_u = hidden._model(plain_state_dict(u), ref, removed=False)[0]  # as the grader rebuilds it: no masks
    for start, masked_start, kind in ((r, False, "structured"), (start_u, True, "unstructured")):
        for data, name in ((train, "train"), (test, "test")):
            mine = with_masks_like(start) if masked_start else copy_model(start)
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
    train, test = small_data(64, seed=1), small_data(64, seed=2)
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
    train, test = small_data(64, seed=1), small_data(64, seed=2)
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


def test_masks_left_on_a_removed_model_are_named_by_the_grader_as_by_the_notebook(monkeypatch, ref, cfg):
    """The export records the layers that still carry prune's masks; the grader says what the visible check says."""
    from autograder.grading import part3_checks as hidden
    from helpers.removal import MASKS_LEFT
    monkeypatch.setattr(hidden, "ref_targets", lambda: (0.5,))
    m = masked(base(), DEAD)
    structured = {"results": [{"target": 0.5, "state": plain_state_dict(m)}]}
    item = {"target": 0.5, "state": plain_state_dict(m), "macs": 1.0, "accuracy": 0.1, "error": None,
            "masks_left": ["conv1", "conv2"]}
    told = MASKS_LEFT.format(layers="conv1, conv2")
    assert hidden.check_removed({"results": [item]}, structured, ref, cfg, IMAGES) == [f"target 0.50: {told}"]
    unseen = {"masked": plain_state_dict(m), "state": plain_state_dict(m), "error": None, "modified_input": False,
              "masks_left": ["conv1", "conv2"]}
    assert hidden.check_remove_function({"unseen": {"0.35": unseen, "0.65": unseen}}, ref, IMAGES)[0] == (
        f"remove_filters(a model with 35% of its filters zeroed): {told}")


def test_the_export_reads_numbers_as_the_visible_checks_do():
    """0-d tensors and numpy scalars are the numbers they hold, in the grader's export as in the notebook's checks."""
    import numpy as np

    from autograder.grading.kernel_export import _number
    assert [_number(v) for v in (0.25, np.float32(0.5), torch.tensor(0.75), torch.tensor([1.0]))] == [0.25, 0.5, 0.75,
                                                                                                      1.0]
    assert [_number(v) for v in (True, "0.5", float("nan"), torch.tensor([0.1, 0.2]), None)] == [None] * 5


def test_the_export_says_what_finetune_results_holds_when_a_kind_is_missing(ref, cfg):
    """The grader's message shows the kinds and keys the student stored, as the visible check does."""
    from autograder.grading.kernel_export import _finetune
    from helpers.removal_checks import holds
    stored = [{"kind": "Structured", "target": 0.5, "model": unstructured_90(), "before": 0.4, "after": 0.5}]
    record = _finetune({"finetune_results": stored})
    assert record["holds"] == holds(stored) == "it holds kind 'Structured' with keys kind, target, model, before, after"
    assert hidden_finetuned(record, ref, cfg)[0] == (
        "structured: finetune_results has no entry of kind 'structured' (it holds kind 'Structured' with keys kind, "
        "target, model, before, after)")
    assert _finetune({})["holds"] == "it is not defined"
    assert _finetune({"finetune_results": None})["holds"] == "it is NoneType, not a list"


def hidden_finetuned(record, ref, cfg):
    from autograder.grading import part3_checks as hidden
    return hidden.check_finetuned(record, {"results": []}, {"results": []}, ref, cfg)
