"""The hidden checks of parts 1 and 2 (models pruned by masks), from the saved weights alone.

For each part the notebook's hidden-test region saved the weights of every model in the results list and of
the student's function applied at unseen targets (:mod:`autograder.grading.kernel_export`). Each is loaded
into a fresh model of the reference architecture (:func:`~autograder.grading.measure.model_from_state`) and
checked three ways: its structure (:func:`check_structure`), its accuracy against the reference solution's
and the numbers the student stored (:func:`check_accuracy`), and the function at unseen targets
(:func:`check_unseen`); :func:`score_part` gives every check's messages.

Runs in the grader's process (or a cluster worker's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from helpers.checks import OTHER_IMAGES, SPARSITY_CLAIM_TOL

from ..config import GradeConfig
from .kernel_export import UNSEEN_TARGETS
from .measure import ReferenceMeasurements, model_digest, model_from_state
from .parts import GradedPart

__all__ = ["score_part", "check_structure", "check_accuracy", "check_unseen"]


@dataclass
class _Entry:
    """One target's saved entry of a results list: the stored model (or why there is none) and claims."""

    target: float
    model: nn.Module | None
    problem: str | None  # why there is no model
    claimed_accuracy: float | None
    claimed_sparsity: float | None
    saved: bool = True  # False: the notebook's entry itself could not be saved (nothing to test)
    digest: str | None = None  # of ``model``, computed once for both checks


def _entries(gp: GradedPart, record, ref: ReferenceMeasurements) -> tuple[list[_Entry], str | None]:
    """The saved entries matched to the part's targets, and a message if the list is not one per target."""
    targets = gp.part.targets
    results = record.get("results", []) if isinstance(record, dict) else []
    results = results if isinstance(results, list) else []
    by_target = {}
    for item in results:
        target = item.get("target") if isinstance(item, dict) else None
        if isinstance(target, float) and any(math.isclose(target, t) for t in targets):
            by_target.setdefault(min(targets, key=lambda t: abs(t - target)), item)
    missing = [t for t in targets if t not in by_target]
    shape = None
    if missing or len(results) != len(targets):
        shape = (f"{gp.part.results_name} must have one entry per target {list(targets)} in order; "
                 f"got {len(results)} entries" + (f", none for {missing}" if missing else ""))
    entries = []
    for target in targets:
        item = by_target.get(target)
        if item is None:
            continue
        if item.get("error"):
            entries.append(_Entry(target, None, item["error"], None, None, saved=False))
            continue
        model, problem = model_from_state(item.get("state"), ref)
        entries.append(_Entry(target, model, problem, item.get("accuracy"), item.get("sparsity"),
                              digest=model_digest(model) if model is not None else None))
    return entries, shape


def check_structure(gp: GradedPart, entries: list[_Entry], ref: ReferenceMeasurements, cfg: GradeConfig) -> list[str]:
    """Is every saved model the pretrained one correctly pruned to its target? One message per wrong target."""
    problems = []
    pretrained = model_digest(ref.model)
    for e in entries:
        if e.model is None:
            problems.append(f"target {e.target:.2f}: {e.problem}")
        elif e.digest == pretrained:
            problems.append(f"target {e.target:.2f}: the stored model is the pretrained `model` itself, unpruned: "
                            f"store the pruned copy {gp.part.function_name} returned")
        elif not ref.matches(gp.name, e.target, e.digest):  # the reference itself needs no look
            msg = gp.part.inspect(e.model, ref.model, e.target, tol=cfg.sparsity_tol)
            if msg:
                problems.append(msg if msg.startswith("target") else f"target {e.target:.2f}: {msg}")
    return problems


def check_accuracy(gp: GradedPart, entries: list[_Entry], ref: ReferenceMeasurements, cfg: GradeConfig) -> list[str]:
    """Does every saved model score like the reference solution's, and are the stored numbers its own?"""
    problems = []
    for e in entries:
        if e.model is None:
            problems.append(f"target {e.target:.2f}: {e.problem if e.saved else 'no model to test'}")
            continue
        expected = ref.accuracy[gp.name][e.target]
        measured = ref.accuracy_of(e.model, e.digest)
        if abs(measured - expected) > cfg.accuracy_band:
            problems.append(f"target {e.target:.2f}: the model scores {measured:.4f}, the reference solution "
                            f"{expected:.4f} (allowed difference {cfg.accuracy_band})")
        if e.claimed_accuracy is None or abs(e.claimed_accuracy - measured) > cfg.claim_tol:
            said = "no number" if e.claimed_accuracy is None else f"{e.claimed_accuracy:.4f}"
            problems.append(f"target {e.target:.2f}: 'accuracy' says {said} but the stored model scores "
                            f"{measured:.4f} on the grader's test_data: {OTHER_IMAGES}")
        measured_s = gp.part.sparsity(e.model)
        if e.claimed_sparsity is None or abs(e.claimed_sparsity - measured_s) > SPARSITY_CLAIM_TOL:
            said = "no number" if e.claimed_sparsity is None else f"{e.claimed_sparsity:.4f}"
            problems.append(f"target {e.target:.2f}: 'sparsity' says {said} but the stored model's is "
                            f"{measured_s:.4f}")
    return problems


def check_unseen(gp: GradedPart, record, ref: ReferenceMeasurements, cfg: GradeConfig) -> list[str]:
    """Is the student's function right at targets the notebook never uses, and does it leave its input alone?"""
    problems, fn = [], gp.part.function_name
    unseen = record.get("unseen", {}) if isinstance(record, dict) else {}
    unseen = unseen if isinstance(unseen, dict) else {}
    for target in UNSEEN_TARGETS:
        item = unseen.get(str(target)) or {}
        item = item if isinstance(item, dict) else {}
        if item.get("error") or not item.get("state"):
            problems.append(f"{fn}(model, {target}) failed: {item.get('error') or 'no result'}")
        elif item.get("modified_input"):
            problems.append(f"{fn}(model, {target}) changed the model it was given: prune a copy and return it")
        else:
            model, problem = model_from_state(item["state"], ref)
            msg = problem or gp.part.inspect(model, ref.model, target, tol=cfg.sparsity_tol)
            if msg:
                problems.append(f"{fn}(model, {target}): {msg}")
    return problems


def score_part(gp: GradedPart, record, ref: ReferenceMeasurements, cfg: GradeConfig) -> dict[str, list[str]]:
    """``{check kind: messages}`` for the part's three checks (an empty list: passed)."""
    entries, shape = _entries(gp, record, ref)
    return {"structure": ([shape] if shape else []) + check_structure(gp, entries, ref, cfg),
            "accuracy": ([shape] if shape else []) + check_accuracy(gp, entries, ref, cfg),
            "unseen": check_unseen(gp, record, ref, cfg)}
