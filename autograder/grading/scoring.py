"""Runs in the grader's process: the hidden checks, scores computed from saved weights alone.

Nothing here runs student code. The notebook's hidden-test regions saved, for each part,
the weights of every model in the results list and of the student's function applied at
unseen targets (:mod:`autograder.grading.collect`). Each saved state is loaded into a fresh model
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

from helpers import build_model, test_model
from helpers.evaluate import default_device
from helpers.models import plain_state_dict

from ..config import GradeConfig
from .collect import UNSEEN_TARGETS
from .parts import CHECK_KINDS, CHECKS, GRADED_PARTS, SECTION3, GradedPart, graded_checks

__all__ = ["CHECKS", "CheckResult", "Reference", "Measurements", "build_reference", "reference_from",
           "measuring_device", "model_digest", "score_submission", "check_structure", "check_accuracy",
           "check_unseen"]

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

    ``shared``: where the processes grading one run (a cluster's workers and the grader) share what
    :meth:`once` computes, or ``None``: an object with ``get(key)`` (the value, or ``None`` when it
    has none or cannot answer) and ``put(key, value)`` (never raises);
    :class:`autograder.cluster.store.SchedulerStore` keeps them in the Dask scheduler.
    """

    model: nn.Module
    arch: str
    config: dict
    test_data: list
    device: str | None
    accuracy: dict[str, dict[float, float]]
    digests: dict[str, dict[float, str]] = field(default_factory=dict)
    train_data: list | None = None  # the grader's training split, for replaying fine-tuning (None: not checked)
    shared: object | None = None
    _known: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def matches(self, part: str, target: float, digest: str) -> bool:
        """Is the model with ``digest`` exactly the reference solution's model at ``target``?"""
        return self.digests.get(part, {}).get(target) == digest

    def remember(self, key, value) -> None:
        """Record ``value`` as what :meth:`once` gives for ``key`` (a model's digest: its measured accuracy)."""
        done: Future = Future()
        done.set_result(value)
        with self._lock:
            self._known.setdefault(key, done)

    def measurements(self) -> Measurements:
        """The reference sweeps' figures, to send to cluster workers (:func:`reference_from`)."""
        return Measurements(measuring_device(self.device), self.accuracy, self.digests)

    def accuracy_of(self, model: nn.Module, digest: str) -> float:
        """Accuracy of ``model`` on the grading data, measured at most once per digest."""
        return self.once(digest, lambda: test_model(model, self.test_data, device=self.device, verbose=False))

    def once(self, key, compute):
        """``compute()``, called at most once per ``key`` in this run, also from several threads at once
        (they wait for the first); a call that raised is made again by the next caller. With a ``shared``
        store, a value another process put there is taken instead of computing, and a computed one is
        put there.

        ``key``: a model's digest (its accuracy) or a tuple of strings, booleans and numbers."""
        with self._lock:
            pending = self._known.get(key)
            mine = pending is None
            if mine:
                pending = self._known[key] = Future()
        if mine:
            try:
                pending.set_result(self._shared_or(key, compute))
            except BaseException as exc:
                with self._lock:
                    del self._known[key]
                pending.set_exception(exc)
        return pending.result()

    def _shared_or(self, key, compute):
        value = self.shared.get(key) if self.shared is not None else None
        if value is None:
            value = compute()
            if self.shared is not None:
                self.shared.put(key, value)
        return value


@dataclass(frozen=True)
class Measurements:
    """The reference solution's figures, as :func:`build_reference` measured them.

    ``device``: where they were measured (:func:`measuring_device`); ``accuracy[part][target]``:
    accuracy in [0, 1]; ``digests[part][target]``: :func:`model_digest` of the reference model.
    """

    device: str
    accuracy: dict[str, dict[float, float]]
    digests: dict[str, dict[float, str]]


def measuring_device(device: str | None) -> str:
    """Which kind of device ``device`` measures on: ``"cpu"``, or ``"cuda:"`` and the GPU's name
    (``None``: CUDA when available, as :func:`helpers.test_model` does)."""
    kind = torch.device(device) if device else default_device()
    return f"cuda:{torch.cuda.get_device_name(kind)}" if kind.type == "cuda" else kind.type


def reference_from(model: nn.Module, arch: str, config: dict, test_data, device, measured: Measurements,
                   train_data=None, shared=None) -> Reference:
    """The reference for grading on ``device`` with the figures ``measured`` elsewhere (by the grader, for
    a cluster worker) when they were measured on the same kind of device; otherwise measured here
    (:func:`build_reference`), since another kind of device may round differently. ``shared``: as
    :class:`Reference`'s (a store of this kind of device's measurements)."""
    if measured.device != measuring_device(device):
        return build_reference(model, arch, config, test_data, device, train_data, shared)
    ref = Reference(model=model, arch=arch, config=config, test_data=test_data, device=device, train_data=train_data,
                    shared=shared,
                    accuracy={part: dict(acc) for part, acc in measured.accuracy.items()},
                    digests={part: dict(d) for part, d in measured.digests.items()})
    for part, digests in ref.digests.items():
        for target, digest in digests.items():
            ref.remember(digest, ref.accuracy[part][target])
    return ref


def build_reference(model: nn.Module, arch: str, config: dict, test_data, device=None, train_data=None,
                    shared=None) -> Reference:
    """Run the reference solution's sweeps on the grading data and keep their accuracies and digests.

    ``test_data`` / ``train_data``: ``[images, labels]`` of the grading data's test and training
    splits (the training split only replays fine-tuning: :mod:`autograder.grading.split`).
    ``shared``: as :class:`Reference`'s.
    """
    ref = Reference(model=model, arch=arch, config=config, test_data=test_data, device=device, accuracy={},
                    train_data=train_data, shared=shared)
    for gp in GRADED_PARTS:
        part = gp.name
        ref.accuracy[part], ref.digests[part] = {}, {}
        for t in gp.part.targets:
            pruned, _ = _model_from_state(plain_state_dict(gp.reference(model, t)), ref)
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


def _entries(gp: GradedPart, record, ref: Reference) -> tuple[list[_Entry], str | None]:
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
        model, problem = _model_from_state(item.get("state"), ref)
        entries.append(_Entry(target, model, problem, item.get("accuracy"), item.get("sparsity"),
                              digest=model_digest(model) if model is not None else None))
    return entries, shape


def check_structure(gp: GradedPart, entries: list[_Entry], ref: Reference, cfg: GradeConfig) -> list[str]:
    """Is every saved model the pretrained one correctly pruned to its target? One message per wrong target."""
    problems = []
    for e in entries:
        if e.model is None:
            problems.append(f"target {e.target:.2f}: {e.problem}")
        elif not ref.matches(gp.name, e.target, e.digest):  # the reference itself needs no look
            msg = gp.part.inspect(e.model, ref.model, e.target, tol=cfg.sparsity_tol)
            if msg:
                problems.append(msg if msg.startswith("target") else f"target {e.target:.2f}: {msg}")
    return problems


def check_accuracy(gp: GradedPart, entries: list[_Entry], ref: Reference, cfg: GradeConfig) -> list[str]:
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
            problems.append(f"target {e.target:.2f}: 'accuracy' says {e.claimed_accuracy} but the stored model "
                            f"scores {measured:.4f}")
        measured_s = gp.part.sparsity(e.model)
        if e.claimed_sparsity is None or abs(e.claimed_sparsity - measured_s) > 0.001:
            problems.append(f"target {e.target:.2f}: 'sparsity' says {e.claimed_sparsity} but the stored model's "
                            f"is {measured_s:.4f}")
    return problems


def check_unseen(gp: GradedPart, record, ref: Reference, cfg: GradeConfig) -> list[str]:
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
            model, problem = _model_from_state(item["state"], ref)
            msg = problem or gp.part.inspect(model, ref.model, target, tol=cfg.sparsity_tol)
            if msg:
                problems.append(f"{fn}(model, {target}): {msg}")
    return problems


def _score_part(gp: GradedPart, record, ref: Reference, cfg: GradeConfig) -> dict[str, list[str]]:
    """``{check kind: messages}`` for the part's three checks (an empty list: passed)."""
    entries, shape = _entries(gp, record, ref)
    return {"structure": ([shape] if shape else []) + check_structure(gp, entries, ref, cfg),
            "accuracy": ([shape] if shape else []) + check_accuracy(gp, entries, ref, cfg),
            "unseen": check_unseen(gp, record, ref, cfg)}


def score_submission(export_dir: Path, ref: Reference, cfg: GradeConfig,
                     points: dict[str, float]) -> list[CheckResult]:
    """Score every graded test cell from the files in ``export_dir``.

    Each check is all or nothing; its messages list every target that failed, so the
    student sees all problems at once.
    """
    from .removal import score_section3
    records = {name: _load_export(Path(export_dir) / f"{name}.pt")
               for name in [gp.name for gp in GRADED_PARTS] + ["removal", "finetune"]}
    messages = {}
    for gp in GRADED_PARTS:
        if not any(gid in points for gid in gp.cells):
            continue  # the instructor's notebook has no such part
        record, problem = records[gp.name]
        kinds = {k: [problem] for k in CHECK_KINDS} if problem else _score_part(gp, record, ref, cfg)
        messages.update({gid: kinds[kind] for gid, kind in gp.checks().items()})
    if any(gid in points for gid in SECTION3):
        messages.update(score_section3(records, ref, cfg))
    out = []
    for gid in graded_checks(points):
        max_points = float(points[gid])
        out.append(CheckResult(gid, 0.0 if messages[gid] else max_points, max_points, messages[gid]))
    return out


def grading_subset(data_root: str, per_class: int) -> dict[str, np.ndarray]:
    """The fixed stratified grading data: ``per_class`` images of each class in every split."""
    from helpers import get_CINIC10_data
    data = get_CINIC10_data(data_root, n_per_class=per_class, progress=False)
    return {k: np.array(v) for k, v in data.items()}
