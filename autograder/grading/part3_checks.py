"""The hidden checks of part 3 (filter removal and fine-tuning).

Like parts 1 and 2, everything is recomputed from saved weights on the grader's own data: the
removed models are rebuilt from their tensors (:func:`helpers.removal.small_cnn_from_state`),
compared with the student's *own* structured models of part 2 (so a mistake there is not
charged twice), and the fine-tuned models with the student's own starting models, measured here
(and fine-tuned here on each split, to tell which one the student trained on:
:mod:`autograder.grading.trained_split`).

Runs in the grader's process (or a cluster worker's).
"""

from __future__ import annotations

from helpers.cost import count_macs
from helpers.models import plain_state_dict
from helpers.parts import STRUCTURED
from helpers.removal import MASKS_LEFT, inspect_removal, small_cnn_from_state, surviving_filters
from helpers.removal_checks import (
    FINETUNE_MARGIN,
    FINETUNE_TARGETS,
    MACS_TOL,
    NO_MASKS,
    STARTS,
    TOO_LITTLE_GAIN,
    gain_required,
    inspect_finetuned,
    removable,
)

from ..config import GradeConfig
from . import solutions as solution
from .kernel_export import UNSEEN_TARGETS
from .measure import model_digest, model_from_state
from .trained_split import replays, split_similarity, trained_on_test, weight_change, with_change

__all__ = ["score_part3", "check_removed", "check_remove_function", "check_finetuned", "required_gain",
           "replayed_accuracy", "REPLAY_GAIN_FACTOR", "measure_reference_starts"]
_COMPARE_IMAGES = 256
#: The gain fine-tuning must have on the grader's own replay before any is asked of a student's (see
#: :func:`required_gain`): this many times :data:`~helpers.removal_checks.FINETUNE_MARGIN`.
REPLAY_GAIN_FACTOR = 3


def _by_target(record) -> dict[float, dict]:
    items = record.get("results") if isinstance(record, dict) else None
    return {round(i["target"], 6): i for i in (items if isinstance(items, list) else [])
            if isinstance(i, dict) and isinstance(i.get("target"), float)}


def _model(state, ref, removed: bool):
    return small_cnn_from_state(state) if removed else model_from_state(state, ref)


def _claims(where: str, item: dict, measured: dict[str, float], tols: dict[str, float],
            whose: dict[str, str] | None = None) -> list[str]:
    """Messages for the stored numbers of ``item`` that are not ``measured`` (within ``tols``), each naming the
    model measured (``whose``; default the stored model)."""
    out = []
    for name, value in measured.items():
        claimed = item.get(name)
        if claimed is None or abs(claimed - value) > tols[name]:
            model = (whose or {}).get(name, "the stored model")
            if name == "macs":  # the visible check's words
                said = "no number" if claimed is None else f"{claimed:,.0f}"
                out.append(f"{where}: 'macs' says {said} but the stored model has {value:,.0f} MACs: store "
                           "count_macs(model)[0], the first of the two numbers count_macs returns")
                continue
            said = "no number" if claimed is None else f"{claimed:.4f}"
            out.append(f"{where}: '{name}' says {said} but {model} gives {value:.4f}")
    return out


def check_removed(removal, structured, ref, cfg: GradeConfig, images) -> list[str]:
    """Is each removed model its part-2 model with the zeroed filters cut, and are its numbers its own?"""
    saved, masked = _by_target(removal), _by_target(structured)
    starts = {}
    for t in [round(t, 6) for t in ref_targets()]:
        start, why = _model((masked.get(t) or {}).get("state"), ref, removed=False)
        if start is None or removable(start):  # a model with a layer of zeros only has nothing to remove to
            starts[t] = (start, why)
    problems = []
    missing = [t for t in starts if t not in saved]
    if missing:
        problems.append(f"removal_results must have one entry per target of structured_results; none for {missing}")
    for t, (start, why) in starts.items():
        item, where = saved.get(t), f"target {t:.2f}"
        if item is None:
            continue
        if item.get("error"):
            problems.append(f"{where}: {item['error']}")
            continue
        if start is None:
            problems.append(f"{where}: structured_results has no usable model at this target ({why})")
            continue
        if item.get("masks_left"):
            problems.append(f"{where}: {MASKS_LEFT.format(layers=', '.join(item['masks_left']))}")
            continue
        removed, why = _model(item.get("state"), ref, removed=True)
        problem = why or inspect_removal(removed, start, images)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        measured = {"macs": count_macs(removed)[0], "accuracy": ref.accuracy_of(removed, model_digest(removed))}
        problems += _claims(where, item, measured, {"macs": MACS_TOL * measured["macs"], "accuracy": cfg.claim_tol})
    return problems


def ref_targets() -> tuple[float, ...]:
    return STRUCTURED.targets


def check_remove_function(removal, ref, images) -> list[str]:
    """``remove_filters`` at targets the notebook never uses, on models whose filters the export masked at random."""
    unseen = removal.get("unseen", {}) if isinstance(removal, dict) else {}
    unseen = unseen if isinstance(unseen, dict) else {}
    problems = []
    for target in UNSEEN_TARGETS:
        item = unseen.get(str(target))
        item = item if isinstance(item, dict) else {}
        call = f"remove_filters(a model with {target:.0%} of its filters zeroed)"
        if item.get("error") or not item.get("state"):
            problems.append(f"{call} failed: {item.get('error') or 'no result'}")
            continue
        if item.get("modified_input"):
            problems.append(f"{call} changed the model it was given: work on a copy (copy_model) and return it")
            continue
        if item.get("masks_left"):
            problems.append(f"{call}: {MASKS_LEFT.format(layers=', '.join(item['masks_left']))}")
            continue
        masked, why = _model(item.get("masked"), ref, removed=False)
        if masked is not None and not _zeroes_a_filter(masked):
            why = "the model given to remove_filters was not saved with its zeroed filters"
        removed, why = (None, why) if why else _model(item["state"], ref, removed=True)
        problem = why or inspect_removal(removed, masked, images)
        if problem:
            problems.append(f"{call}: {problem}")
    return problems


def _zeroes_a_filter(model) -> bool:
    counts = surviving_filters(model)
    return any(counts[name] < m.out_channels for name, m in model.named_modules() if name in counts)


def check_finetuned(finetune, removal, unstructured, ref, cfg: GradeConfig) -> list[str]:
    """Did fine-tuning keep each model's pruning and gain what ``gain_required`` asks, on the grader's data?"""
    items = finetune.get("results") if isinstance(finetune, dict) else None
    entries = {i.get("kind"): i for i in (items if isinstance(items, list) else []) if isinstance(i, dict)}
    starts = {"structured": (_by_target(removal), True), "unstructured": (_by_target(unstructured), False)}
    problems = []
    unpruned = ref.accuracy_of(ref.model, model_digest(ref.model))  # once per submission, cached after the first
    for kind, target in FINETUNE_TARGETS.items():
        item = entries.get(kind)
        if item is None or item.get("error"):
            said = finetune.get("holds") if isinstance(finetune, dict) else None
            why = item["error"] if item else (f"finetune_results has no entry of kind '{kind}'"
                                              + (f" ({said[:300]})" if isinstance(said, str) and said else ""))
            problems.append(f"{kind}: {why}")
            continue
        saved, removed = starts[kind]
        start, why = _model((saved.get(round(target, 6)) or {}).get("state"), ref, removed)
        if start is None:
            problems.append(f"{kind}: no model at target {target} to start from ({why})")
            continue
        tuned, why = _model(item.get("state"), ref, removed)
        problem = why or inspect_finetuned(kind, tuned, start)
        if problem:
            problems.append(f"{kind}: {problem}")
            if not why and not removed and (saved.get(round(target, 6)) or {}).get("masked") is False:
                problems.append(f"{kind}: {NO_MASKS}")  # the cause: there were no masks to keep
            continue
        if not bool(weight_change(tuned, start).any()):
            problems.append(f"{kind}: the fine-tuned model's weights are exactly the starting model's: nothing was "
                            "trained (fine_tune the copy you store, on train_data, for the epochs the cell sets)")
            continue
        start_digest = model_digest(start)
        sims = split_similarity(ref, start, start_digest, tuned, masked=not removed)
        if trained_on_test(sims):
            problems.append(f"{kind}: your fine-tuning looks like training on the test split: the weights changed "
                            "as the grader's fine-tuning on the test split changes them, more than as on the "
                            f"training split (how alike the changes are, from -1 to 1: {sims['test']:.2f} against "
                            f"{sims['train']:.2f}); fine-tune on train_data, since a model trained on the test "
                            "split makes its test accuracy meaningless")
            continue
        before = ref.accuracy_of(start, start_digest)
        after = ref.accuracy_of(tuned, model_digest(tuned))
        problems += _claims(kind, item, {"before": before, "after": after},
                            {"before": cfg.claim_tol, "after": cfg.claim_tol},
                            {"before": f"the model you started from ({STARTS[kind]} at {FINETUNE_TARGETS[kind]})",
                             "after": "the fine-tuned model"})
        need = required_gain(ref, unpruned, before, start, start_digest, masked=not removed)
        if need and after < before + need:
            problems.append(f"{kind}: fine-tuning took the accuracy from {before:.4f} to {after:.4f} on the grader's "
                            f"data; at least {before + need:.4f} is expected: {TOO_LITTLE_GAIN}")
    return problems


def required_gain(ref, unpruned: float, before: float, start, start_digest: str, masked: bool) -> float:
    """Accuracy a fine-tuned ``start`` (scoring ``before``; ``unpruned``: the pretrained model) must gain on the
    grader's data: :data:`~helpers.removal_checks.FINETUNE_MARGIN`, or nothing.

    Nothing where :func:`~helpers.removal_checks.gain_required` asks nothing (pruning cost little, or the
    model is at chance), and nothing where the grader's own fine-tuning of ``start`` on its training split
    (the replay of :func:`~.split.replays`, made once per starting model) gains less than
    :data:`REPLAY_GAIN_FACTOR` times the margin. What one epoch on the grader's small training split gains
    depends on the model: over ten models trained like the demo's (generated data, seeds 0-9, CPU), the
    90% models that pruning cost 0.022-0.045 gained 0.011-0.038 with the reference solution's fine-tuning,
    so a fixed margin charged correct solutions of some models (on a GPU it did). A correct run is the
    replay, or close to it where its seed or device differs: five seeds fell at most 0.008 below the
    replay, so where the replay gains three times the margin, a correct run gains the margin. A run that
    trained nothing is charged before this (its weights did not move).
    """
    need = gain_required(unpruned, before, start)
    if not need or ref.train_data is None:
        return need
    gained = replayed_accuracy(ref, start, start_digest, masked) - before
    return need if gained >= REPLAY_GAIN_FACTOR * FINETUNE_MARGIN else 0.0


def replayed_accuracy(ref, start, start_digest: str, masked: bool) -> float:
    """Accuracy on the grader's data of ``start`` after the grader's own fine-tuning of it on its training
    split (the replay of :func:`~.split.replays`, made once per starting model), measured once per run."""
    replayed = with_change(start, replays(ref, start, start_digest, masked)["train"])
    return ref.accuracy_of(replayed, model_digest(replayed))


def score_part3(records: dict, ref, cfg: GradeConfig) -> dict[str, list[str]]:
    """``{grade_id: messages}`` of part 3's check cells from the exports ``records[part] = (record, problem)``."""
    images = ref.test_data[0][:_COMPARE_IMAGES]
    (removal, r_problem), (finetune, f_problem) = records["removal"], records["finetune"]
    structured, unstructured = records["structured"][0], records["unstructured"][0]
    return {
        "test_removal_models": [r_problem] if r_problem else check_removed(removal, structured, ref, cfg, images),
        "test_removal_function": [r_problem] if r_problem else check_remove_function(removal, ref, images),
        "test_finetuning": [f_problem] if f_problem else check_finetuned(finetune, removal, unstructured, ref, cfg),
    }


def measure_reference_starts(ref) -> int:
    """Measure now, through ``ref.once``, what these checks measure for every submission whose parts 2 and 3
    are the reference solution's: the unpruned model's accuracy, each removed reference model's accuracy,
    the fine-tuning replays of both reference starting models (:func:`~.split.replays`) and the accuracy of
    each one's training-split replay (:func:`replayed_accuracy`, which :func:`required_gain` asks for).

    With a shared store (``ref.shared``) the grader does this once for every worker of a cluster while
    the first notebooks run, instead of each worker doing it for itself. Returns how many values it
    measured or found.
    """
    values = [ref.accuracy_of(ref.model, model_digest(ref.model))]
    removed = {}
    for t in ref_targets():
        pruned = solution.prune_structured(ref.model, t)
        if removable(pruned):  # as check_removed: a layer of zeros only has nothing to remove to
            small = plain_state_dict(solution.remove_filters(pruned))
            removed[round(t, 6)] = model = _model(small, ref, removed=True)[0]
            values.append(ref.accuracy_of(model, model_digest(model)))
    unstructured = solution.prune_unstructured(ref.model, FINETUNE_TARGETS["unstructured"])
    starts = [(_model(plain_state_dict(unstructured), ref, removed=False)[0], True)]
    if round(FINETUNE_TARGETS["structured"], 6) in removed:
        starts.insert(0, (removed[round(FINETUNE_TARGETS["structured"], 6)], False))
    for start, masked in starts:  # their accuracies are measured above (structured) or in the sweeps (unstructured)
        if ref.train_data is not None:
            digest = model_digest(start)
            values += [*replays(ref, start, digest, masked).values(), replayed_accuracy(ref, start, digest, masked)]
    return len(values)
