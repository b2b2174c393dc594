"""The notebook's visible checks and the grader give the same verdict on the same stored values.

Each notebook below makes some of the mistakes (and some of the harmless variations) students make, found by a
student-eye review: an accuracy measured on other images or on the whole test split, the unpruned model stored, numbers
stored as tensors, masks left on in ``remove_filters``, a ``remove_filters`` that works in place. Each is run as a
student runs it (a real kernel, a sample of the test split as ``test_data``) and graded by the real grading command;
every check cell must pass in both or fail in both.
"""

from __future__ import annotations

import pytest

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.samples import Sample, load_samples, write_class
from tests.conftest import RELEASE_NB
from tests.e2e.test_grading_app import run_grade
from tests.notebooks import cell_by_id, execute, kernel_env, outputs_of

pytestmark = pytest.mark.slow

# Part 1 measured on the validation images, part 2 on the whole test split (what the grader's test_data is), part 3
# with the masks still on when Torch-Pruning cuts.
OTHER_IMAGES_WHOLE_SPLIT_MASKS_LEFT = {
    "sweep_unstructured": '''
unstructured_results = []
for target in TARGETS:
    pruned = prune_unstructured(model, target)
    unstructured_results.append({"target": target, "model": pruned, "sparsity": global_sparsity(pruned),
                                 "accuracy": test_model(pruned, [data["X_val"], data["y_val"]])})
''',
    "sweep_structured": '''
structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    structured_results.append({"target": target, "model": pruned, "sparsity": global_sparsity(pruned, (nn.Conv2d,)),
                               "accuracy": test_model(pruned, [data["X_test"], data["y_test"]])})
''',
    "remove_filters": '''
def remove_filters(model):
    removed = copy_model(model)
    graph = tp.DependencyGraph().build_dependency(removed, example_inputs=torch.zeros(1, 3, 32, 32))
    for conv in [m for m in removed.modules() if isinstance(m, nn.Conv2d)]:
        dead = (conv.weight.detach().flatten(1) == 0).all(dim=1).nonzero().flatten().tolist()
        if dead:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=dead).prune()
    return removed
''',
}

# Part 1 stores the unpruned model; part 2 stores its numbers as 0-d tensors and numpy floats; part 3 removes the
# filters of the structured model itself.
UNPRUNED_TENSORS_IN_PLACE = {
    "sweep_unstructured": '''
unstructured_results = []
for target in TARGETS:
    pruned = prune_unstructured(model, target)
    unstructured_results.append({"target": target, "model": model, "sparsity": global_sparsity(pruned),
                                 "accuracy": test_model(pruned, test_data)})
''',
    "sweep_structured": '''
structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    zeros = torch.cat([(m.weight == 0).flatten() for m in pruned.modules() if isinstance(m, nn.Conv2d)])
    structured_results.append({"target": target, "model": pruned, "sparsity": zeros.float().mean(),
                               "accuracy": np.float32(test_model(pruned, test_data))})
''',
    "remove_filters": '''
def remove_filters(model):
    for m in model.modules():
        if hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 3, 32, 32))
    for conv in [m for m in model.modules() if isinstance(m, nn.Conv2d)]:
        dead = (conv.weight.detach().flatten(1) == 0).all(dim=1).nonzero().flatten().tolist()
        if dead:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=dead).prune()
    return model
''',
}

CASES = {"other_images_whole_split_masks_left": OTHER_IMAGES_WHOLE_SPLIT_MASKS_LEFT,
         "unpruned_tensors_in_place": UNPRUNED_TENSORS_IN_PLACE}
#: What each case must show, so that agreement is not reached by both passing (or both failing) everything.
MUST_FAIL = {"other_images_whole_split_masks_left": {"test_unstructured_accuracy", "test_removal_function"},
             "unpruned_tensors_in_place": {"test_unstructured_sparsity", "test_removal_function"}}
MUST_PASS = {"other_images_whole_split_masks_left": {"test_structured_accuracy", "test_unstructured_sparsity"},
             "unpruned_tensors_in_place": {"test_structured_accuracy", "test_structured_filters"}}


def _samples():
    reference = load_samples()[0]
    return [Sample(name, set(), "ok", {**reference.cells, **{k: v.strip() + "\n" for k, v in cells.items()}})
            for name, cells in CASES.items()]


def _visible_verdicts(sample, tmp_path, model_path):
    """``{check: passed}`` of the notebook run as a student runs it: ``test_data`` a sample of 100 images of each
    class of the generated test split (300 a class), not the whole split."""
    from autograder.samples import build_notebook
    nb = build_notebook(sample)
    env = kernel_env(tmp_path / sample.name, CINIC10_ROOT="synthetic", PRUNING_MODEL=model_path,
                     CINIC10_EVAL_PER_CLASS="100")
    execute(nb, env, RELEASE_NB.parent, allow_errors=True, timeout=600)
    return {gid: not outputs_of(cell_by_id(nb, gid), "error") for gid in CHECKS}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory, trained_model_path):
    root = tmp_path_factory.mktemp("agree")
    samples = _samples()
    write_class(root / "submitted", samples)
    _, rows = run_grade(root / "submitted", root / "out", trained_model_path, jobs=2)
    points = read_points()
    hidden = {s.name: {gid: float(rows[s.name][gid]) == points[gid] for gid in CHECKS} for s in samples}
    visible = {s.name: _visible_verdicts(s, root, trained_model_path) for s in samples}
    return visible, hidden


@pytest.mark.parametrize("case", sorted(CASES))
def test_visible_and_hidden_checks_give_the_same_verdicts(verdicts, case):
    visible, hidden = verdicts
    differ = {gid: {"visible": visible[case][gid], "grader": hidden[case][gid]}
              for gid in CHECKS if visible[case][gid] != hidden[case][gid]}
    assert not differ, differ
    assert not any(hidden[case][gid] for gid in MUST_FAIL[case]), hidden[case]
    assert all(hidden[case][gid] for gid in MUST_PASS[case]), hidden[case]
