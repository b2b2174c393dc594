"""Part 3's measurements shared between the grader and a cluster's workers: a worker measures nothing the grader
measured for it, and each starting model is replayed once under its own digest.
"""

from __future__ import annotations

import pytest

from helpers.finetune import fine_tune
from helpers.models import copy_model, plain_state_dict
from tests.part3_models import (
    DEAD,
    SMALL,
    base,
    grade_config,
    masked,
    removed_by_hand,
    small_data,
    unstructured_90,
    with_masks_like,
)


@pytest.fixture()
def cfg(tmp_path):
    return grade_config(tmp_path)


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
    train, test = small_data(128, seed=1), small_data(128, seed=2)
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
    assert all("says no number" in m for m in messages["test_removal_models"])  # only the claims left out
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
    train, test = small_data(64, seed=1), small_data(64, seed=2)
    ref = ReferenceMeasurements(model=base(), arch="SmallCNN", config=SMALL, test_data=test, device="cpu", accuracy={},
                                train_data=train)
    u = unstructured_90()
    start_u = hidden._model(plain_state_dict(u), ref, removed=False)[0]
    tuned_u = fine_tune(with_masks_like(start_u), train, progress=False)
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
