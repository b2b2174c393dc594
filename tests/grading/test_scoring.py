"""Scoring a submission from the files its hidden-test regions saved (:mod:`autograder.grading.scoring`), with a
reference measured on generated data; and the grading configuration's checks of its values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder.config import GradeConfig
from autograder.grading import solutions
from autograder.grading.gradebook import read_points
from autograder.grading.measure import build_reference
from autograder.grading.parts import CHECKS
from autograder.grading.scoring import score_submission
from helpers.checks import TARGETS
from helpers.models import SmallCNN, plain_state_dict


@pytest.fixture(scope="module")
def ref_setup(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=60).astype(np.int64)
    ref = build_reference(model, "SmallCNN", {}, [X, y], "cpu")
    folder = tmp_path_factory.mktemp("subs")
    (folder / "s").mkdir()
    path = tmp_path_factory.mktemp("m") / "m.pt"
    from helpers.models import save_model
    save_model(model, path)
    cfg = GradeConfig(submissions=folder, data_root="synthetic", model=path, out=folder / "out")
    return model, ref, cfg


def record_for(part, fn, model, ref, accuracy_shift=0.0):
    from torch import nn

    from helpers import global_sparsity, test_model
    types = (nn.Conv2d, nn.Linear) if part == "unstructured" else (nn.Conv2d,)
    results = []
    for t in TARGETS:
        pruned = fn(model, t)
        results.append({"target": t, "sparsity": global_sparsity(pruned, types), "error": None,
                        "accuracy": test_model(pruned, ref.test_data, verbose=False) + accuracy_shift,
                        "state": plain_state_dict(pruned)})
    unseen = {str(t): {"state": plain_state_dict(fn(model, t)), "error": None, "modified_input": False}
              for t in (0.35, 0.65)}
    return {"part": part, "results": results, "unseen": unseen, "errors": []}


def write_records(folder, model, ref, **shift):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(record_for("unstructured", solutions.prune_unstructured, model, ref, shift.get("u", 0.0)),
               folder / "unstructured.pt")
    torch.save(record_for("structured", solutions.prune_structured, model, ref), folder / "structured.pt")


def parts12_points():
    """Points of the check cells of parts 1 and 2 (part 3's exports are not written by these tests)."""
    return {g: p for g, p in read_points().items() if g in CHECKS and CHECKS[g][0] != "removal"}


def test_reference_records_get_full_points(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    checks = score_submission(tmp_path, ref, cfg, parts12_points())
    assert [c.points for c in checks] == [c.max_points for c in checks]
    assert all(not c.messages for c in checks)


def test_claimed_accuracy_that_the_model_does_not_have(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref, u=0.1)
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert by_id["test_unstructured_accuracy"].points == 0
    assert "'accuracy' says" in by_id["test_unstructured_accuracy"].messages[0]
    assert by_id["test_unstructured_sparsity"].points == 4 and by_id["test_structured_accuracy"].points == 3


def test_missing_or_tampered_files(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    (tmp_path / "structured.pt").write_bytes(b"not a torch file")
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert by_id["test_structured_filters"].points == 0
    assert "could not be read" in by_id["test_structured_filters"].messages[0]
    assert by_id["test_unstructured_sparsity"].points == 4
    (tmp_path / "unstructured.pt").unlink()
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert "no results were saved" in by_id["test_unstructured_function"].messages[0]


def test_other_architecture_is_refused(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    record = torch.load(tmp_path / "unstructured.pt", weights_only=True)
    other = plain_state_dict(SmallCNN(channels=(8, 8, 8)))
    for item in record["results"]:
        item["state"] = other
    torch.save(record, tmp_path / "unstructured.pt")
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert "layers and shapes" in by_id["test_unstructured_sparsity"].messages[0]


def test_grade_config_validation(tmp_path, ref_setup):
    _, _, cfg = ref_setup
    with pytest.raises(ValueError, match="--jobs"):
        GradeConfig(submissions=cfg.submissions, data_root="synthetic", model=cfg.model, out=tmp_path, jobs=0)
    with pytest.raises(FileNotFoundError, match="submissions folder or zip .* does not exist"):
        GradeConfig(submissions=tmp_path / "none", data_root="synthetic", model=cfg.model, out=tmp_path)


def test_exact_reference_models_skip_evaluation(tmp_path, ref_setup, monkeypatch):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    calls = []
    import autograder.grading.measure as measure
    real = measure.test_model
    monkeypatch.setattr(measure, "test_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    checks = score_submission(tmp_path, ref, cfg, parts12_points())
    assert all(c.points == c.max_points for c in checks)
    assert calls == [], "identical weights must reuse the reference accuracy"
    record = torch.load(tmp_path / "unstructured.pt", weights_only=True)
    weight = record["results"][0]["state"]["fc1.weight"]
    weight.view(-1)[int(torch.nonzero(weight.view(-1))[0])] *= 2
    torch.save(record, tmp_path / "unstructured.pt")
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert len(calls) == 1, "a model that differs is evaluated"
    score_submission(tmp_path, ref, cfg, read_points())
    assert len(calls) == 1, "a model measured before (same digest) is not evaluated again"
    assert by_id["test_unstructured_sparsity"].points == 0
    assert "not pruned have changed" in by_id["test_unstructured_sparsity"].messages[0]


def test_the_reports_figures_are_the_graders_measurements_of_the_records_scored(tmp_path, ref_setup):
    from autograder.grading.figures import reference_figures, submission_figures
    from autograder.grading.scoring import load_records
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref, u=0.1)  # the stored accuracies are 0.1 too high: not what is plotted
    records = load_records(tmp_path)
    assert score_submission(tmp_path, ref, cfg, parts12_points(), records) == \
        score_submission(tmp_path, ref, cfg, parts12_points())
    figures = submission_figures(records, ref)
    expected = reference_figures(ref)
    assert set(figures) == {"unstructured", "structured"}  # part 3's records were not saved
    for part in ("unstructured", "structured"):
        assert figures[part] == expected[part], part
