"""The grader's measurements (:mod:`autograder.grading.measure`): building the reference, adopting a grader's
figures on a worker, sharing what is measured, and rebuilding saved states.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from autograder.grading import measure
from autograder.grading.measure import ReferenceMeasurements, model_digest
from helpers.models import SmallCNN, plain_state_dict
from tests.pruned_models import SMALL, STRUCTURED, UNSTRUCTURED, reference_of, zero_smallest


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(1)
    return SmallCNN(**SMALL).eval()


@pytest.fixture()
def ref(base):
    return reference_of(base)


def test_a_saved_state_must_fit_the_architecture_exactly(base, ref):
    assert measure.model_from_state(None, ref) == (None, "no model was saved")
    state = plain_state_dict(base)
    model, why = measure.model_from_state(state, ref)
    assert why is None and not model.training
    extra = {**state, "bonus.weight": torch.zeros(1)}
    model, why = measure.model_from_state(extra, ref)
    assert model is None and why == ("the model does not have the pretrained model's layers and shapes "
                                     "(Error(s) in loading state_dict for SmallCNN:)")


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


def test_measuring_a_new_model_prints_nothing(base, ref, capsys):
    ref.test_data = [np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64)]
    fresh = zero_smallest(base, 0.33)
    accuracy = ref.accuracy_of(fresh, model_digest(fresh))
    assert 0.0 <= accuracy <= 1.0 and capsys.readouterr().out == ""


class _Recorder:
    def __init__(self, values=None, fail=False):
        self.values, self.fail, self.puts = dict(values or {}), fail, []

    def get(self, key):
        return None if self.fail else self.values.get(key)

    def put(self, key, value):
        self.puts.append(key)
        self.values[key] = value


def test_a_reference_takes_shared_values_and_shares_what_it_computes():
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


def test_digest_ignores_the_sign_of_zero_and_nothing_else():
    from autograder.grading.measure import model_digest
    torch.manual_seed(0)
    a = SmallCNN()
    with torch.no_grad():
        a.fc1.weight.view(-1)[:10] = 0.0
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    with torch.no_grad():
        b.fc1.weight.view(-1)[:10] = -0.0   # as `weight * mask` leaves a cut negative weight
        c.fc1.weight.view(-1)[10] = torch.nextafter(c.fc1.weight.view(-1)[10], torch.tensor(1.0))
    assert torch.signbit(b.fc1.weight.view(-1)[:10]).all()
    assert model_digest(a) == model_digest(b)
    assert model_digest(a) != model_digest(c), "a one-ulp change is a different model"
    with torch.no_grad():
        b.fc1.weight.view(-1)[10] = 0.0
    assert model_digest(a) != model_digest(b), "a zero in another place is a different model"
