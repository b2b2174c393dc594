"""The hidden checks: scores computed in the grader's own process from saved weights.

Nothing here runs student code. The notebook's hidden-test regions saved, for each part,
the weights of every model in the results list and of the student's function applied at
unseen targets (:mod:`autograder.collect`). Each saved state is loaded into a fresh model
of the reference architecture and checked against the grader's own reference model, with
accuracies the grader measures itself on its own copy of the grading data.
"""

from __future__ import annotations

import hashlib
import math
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers import build_model, global_sparsity, test_model
from helpers.checks import TARGETS, inspect_structured, inspect_unstructured
from helpers.models import plain_state_dict

from . import reference
from .collect import UNSEEN_TARGETS
from .config import GradeConfig

__all__ = ["CHECKS", "CheckResult", "Reference", "build_reference", "model_digest", "score_submission"]

#: grade_id of each graded test cell -> (part, what it checks).
CHECKS = {
    "test_unstructured_sparsity": ("unstructured", "structure"),
    "test_unstructured_accuracy": ("unstructured", "accuracy"),
    "test_unstructured_function": ("unstructured", "unseen"),
    "test_structured_filters": ("structured", "structure"),
    "test_structured_accuracy": ("structured", "accuracy"),
    "test_structured_function": ("structured", "unseen"),
}

_MAX_EXPORT_BYTES = 200_000_000


@dataclass
class CheckResult:
    """Outcome of one graded cell: points earned of ``max_points`` and messages for the student."""

    grade_id: str
    points: float
    max_points: float
    messages: list[str] = field(default_factory=list)


def model_digest(model: nn.Module) -> str:
    """Digest of every tensor in ``model.state_dict()`` (names, dtypes, shapes and bytes).

    Negative zeros count as zeros: pruning by ``weight * mask`` leaves ``-0.0`` where a
    negative weight was cut, zeroing by assignment leaves ``+0.0``, and both are the same
    model. Two models with the same digest compute the same function, so they score the same
    accuracy on the same data and device.
    """
    h = hashlib.blake2b(digest_size=32)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t + 0.0  # -0.0 + 0.0 == +0.0 (IEEE 754, round to nearest); every other value is kept
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class Reference:
    """What every submission is compared with, computed once per grading run.

    ``digests[part][target]`` identifies the reference solution's model at each target.
    :meth:`accuracy_of` measures a model once per grading run: a model identical to the
    reference solution's, or to one another submission already stored, reuses that
    accuracy (most correct submissions are identical to the reference; several students
    using the same other method often are identical to each other). Thread-safe.
    """

    model: nn.Module
    arch: str
    config: dict
    test_data: list
    device: str | None
    accuracy: dict[str, dict[float, float]]
    digests: dict[str, dict[float, str]] = field(default_factory=dict)
    _known: dict[str, Future] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def matches(self, part: str, target: float, digest: str) -> bool:
        """Is the model with ``digest`` exactly the reference solution's model at ``target``?"""
        return self.digests.get(part, {}).get(target) == digest

    def remember(self, digest: str, accuracy: float) -> None:
        """Record the measured accuracy of the model with ``digest``."""
        done: Future = Future()
        done.set_result(accuracy)
        with self._lock:
            self._known.setdefault(digest, done)

    def accuracy_of(self, model: nn.Module, digest: str) -> float:
        """Accuracy of ``model`` on the grading data, measured at most once per digest."""
        with self._lock:
            pending = self._known.get(digest)
            mine = pending is None
            if mine:
                pending = self._known[digest] = Future()
        if mine:
            try:
                pending.set_result(test_model(model, self.test_data, device=self.device, verbose=False))
            except BaseException as exc:
                with self._lock:
                    del self._known[digest]
                pending.set_exception(exc)
        return pending.result()


def build_reference(model: nn.Module, arch: str, config: dict, test_data, device=None) -> Reference:
    """Run the reference solution's sweeps on the grading data and keep their accuracies and digests."""
    ref = Reference(model=model, arch=arch, config=config, test_data=test_data, device=device, accuracy={})
    for part, fn in (("unstructured", reference.prune_unstructured), ("structured", reference.prune_structured)):
        ref.accuracy[part], ref.digests[part] = {}, {}
        for t in TARGETS:
            pruned, _ = _model_from_state(plain_state_dict(fn(model, t)), ref)
            digest = model_digest(pruned)
            ref.accuracy[part][t] = test_model(pruned, test_data, device=device, verbose=False)
            ref.digests[part][t] = digest
            ref.remember(digest, ref.accuracy[part][t])
    return ref


def _load_export(path: Path):
    if not path.is_file():
        return None, "no results were saved: the notebook stopped before this part's first check cell"
    if path.stat().st_size > _MAX_EXPORT_BYTES:
        return None, "the saved results are too large to be this assignment's models"
    try:
        return torch.load(path, map_location="cpu", weights_only=True), None
    except Exception as exc:  # noqa: BLE001 - a tampered file
        return None, f"the saved results could not be read ({type(exc).__name__})"


def _model_from_state(state, ref: Reference):
    if not isinstance(state, dict):
        return None, "no model was saved"
    model = build_model(ref.arch, **ref.config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).splitlines()[0][:200]
        return None, f"the model does not have the pretrained model's layers and shapes ({first})"
    return model.eval(), None


def _inspect(part: str, model, ref: Reference, target: float, cfg: GradeConfig):
    if part == "unstructured":
        return inspect_unstructured(model, ref.model, target, tol=cfg.sparsity_tol)
    return inspect_structured(model, ref.model, target)


def _score_part(part: str, record, ref: Reference, cfg: GradeConfig) -> dict[str, list[str]]:
    """Return ``{kind: messages}`` for kinds structure, accuracy, unseen (empty list = passed)."""
    problems = {"structure": [], "accuracy": [], "unseen": []}
    results = record.get("results", []) if isinstance(record, dict) else []
    results = results if isinstance(results, list) else []
    entries = {}
    for item in results:
        target = item.get("target") if isinstance(item, dict) else None
        if isinstance(target, float) and any(math.isclose(target, t) for t in TARGETS):
            key = min(TARGETS, key=lambda t: abs(t - target))
            entries.setdefault(key, item)
    missing = [t for t in TARGETS if t not in entries]
    if missing or len(results) != len(TARGETS):
        msg = (f"{part}_results must have one entry per target {list(TARGETS)} in order; "
               f"got {len(results)} entries" + (f", none for {missing}" if missing else ""))
        problems["structure"].append(msg)
        problems["accuracy"].append(msg)
    types = (nn.Conv2d, nn.Linear) if part == "unstructured" else (nn.Conv2d,)
    for target in TARGETS:
        item = entries.get(target)
        if item is None:
            continue
        if item.get("error"):
            problems["structure"].append(f"target {target:.2f}: {item['error']}")
            problems["accuracy"].append(f"target {target:.2f}: no model to test")
            continue
        model, problem = _model_from_state(item.get("state"), ref)
        if problem:
            problems["structure"].append(f"target {target:.2f}: {problem}")
            problems["accuracy"].append(f"target {target:.2f}: {problem}")
            continue
        expected = ref.accuracy[part][target]
        digest = model_digest(model)
        if not ref.matches(part, target, digest):  # the reference model itself needs no inspection
            msg = _inspect(part, model, ref, target, cfg)
            if msg:
                problems["structure"].append(msg if msg.startswith("target") else f"target {target:.2f}: {msg}")
        measured = ref.accuracy_of(model, digest)
        if abs(measured - expected) > cfg.accuracy_band:
            problems["accuracy"].append(
                f"target {target:.2f}: the model scores {measured:.4f}, the reference solution {expected:.4f} "
                f"(allowed difference {cfg.accuracy_band})")
        claimed = item.get("accuracy")
        if claimed is None or abs(claimed - measured) > cfg.claim_tol:
            problems["accuracy"].append(
                f"target {target:.2f}: 'accuracy' says {claimed} but the stored model scores {measured:.4f}")
        claimed_s = item.get("sparsity")
        measured_s = global_sparsity(model, types)
        if claimed_s is None or abs(claimed_s - measured_s) > 0.001:
            problems["accuracy"].append(
                f"target {target:.2f}: 'sparsity' says {claimed_s} but the stored model's is {measured_s:.4f}")
    unseen = record.get("unseen", {}) if isinstance(record, dict) else {}
    for target in UNSEEN_TARGETS:
        item = unseen.get(str(target)) or {}
        if item.get("error") or not item.get("state"):
            problems["unseen"].append(f"prune_{part}(model, {target}) failed: {item.get('error') or 'no result'}")
            continue
        if item.get("modified_input"):
            problems["unseen"].append(f"prune_{part}(model, {target}) changed the model it was given: "
                                      "prune a copy and return it")
            continue
        model, problem = _model_from_state(item["state"], ref)
        msg = problem or _inspect(part, model, ref, target, cfg)
        if msg:
            problems["unseen"].append(f"prune_{part}(model, {target}): {msg}")
    return problems


def score_submission(export_dir: Path, ref: Reference, cfg: GradeConfig,
                     points: dict[str, float]) -> list[CheckResult]:
    """Score every graded test cell from the files in ``export_dir``.

    Each check is all or nothing; its messages list every target that failed, so the
    student sees all problems at once.
    """
    out = []
    by_part = {}
    for part in ("unstructured", "structured"):
        record, problem = _load_export(Path(export_dir) / f"{part}.pt")
        if problem:
            by_part[part] = {k: [problem] for k in ("structure", "accuracy", "unseen")}
        else:
            by_part[part] = _score_part(part, record, ref, cfg)
    for gid, (part, kind) in CHECKS.items():
        messages = by_part[part][kind]
        max_points = float(points.get(gid, 0.0))
        out.append(CheckResult(gid, 0.0 if messages else max_points, max_points, messages))
    return out


def grading_subset(data_root: str, per_class: int) -> dict[str, np.ndarray]:
    """The fixed stratified grading data: ``per_class`` images of each class in every split."""
    from helpers import get_CINIC10_data
    data = get_CINIC10_data(data_root, n_per_class=per_class, progress=False)
    return {k: np.array(v) for k, v in data.items()}
