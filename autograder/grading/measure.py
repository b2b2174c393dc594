"""The grader's own measurements: which model a saved state is, and how the reference solution scores.

:func:`model_digest` identifies a model by its tensors; :class:`ReferenceMeasurements` holds the reference
solution's accuracies and digests at every target (:func:`build_reference`) and measures any other model at
most once per run (:meth:`ReferenceMeasurements.once`, shared with a cluster's workers through ``shared``);
:func:`reference_from` adopts figures measured by the grader on a cluster worker.

Runs in the grader's process (or a cluster worker's); runs no student code: models are rebuilt from their
saved tensors.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from torch import nn

from helpers import test_model
from helpers.evaluate import default_device
from helpers.models import build_model, plain_state_dict

from .parts import GRADED_PARTS

__all__ = ["ReferenceMeasurements", "Measurements", "build_reference", "reference_from", "measuring_device",
           "model_digest", "model_from_state"]


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
class ReferenceMeasurements:
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
                   train_data=None, shared=None) -> ReferenceMeasurements:
    """The reference for grading on ``device`` with the figures ``measured`` elsewhere (by the grader, for
    a cluster worker) when they were measured on the same kind of device; otherwise measured here
    (:func:`build_reference`), since another kind of device may round differently. ``shared``: as
    :class:`ReferenceMeasurements`'s (a store of this kind of device's measurements)."""
    if measured.device != measuring_device(device):
        return build_reference(model, arch, config, test_data, device, train_data, shared)
    ref = ReferenceMeasurements(model=model, arch=arch, config=config, test_data=test_data, device=device,
                                train_data=train_data, shared=shared,
                                accuracy={part: dict(acc) for part, acc in measured.accuracy.items()},
                                digests={part: dict(d) for part, d in measured.digests.items()})
    for part, digests in ref.digests.items():
        for target, digest in digests.items():
            ref.remember(digest, ref.accuracy[part][target])
    return ref


def build_reference(model: nn.Module, arch: str, config: dict, test_data, device=None, train_data=None,
                    shared=None) -> ReferenceMeasurements:
    """Run the reference solution's sweeps on the grading data and keep their accuracies and digests.

    ``test_data`` / ``train_data``: ``[images, labels]`` of the grading data's test and training
    splits (the training split only replays fine-tuning: :mod:`autograder.grading.trained_split`).
    ``shared``: as :class:`ReferenceMeasurements`'s.
    """
    ref = ReferenceMeasurements(model=model, arch=arch, config=config, test_data=test_data, device=device, accuracy={},
                                train_data=train_data, shared=shared)
    for gp in GRADED_PARTS:
        part = gp.name
        ref.accuracy[part], ref.digests[part] = {}, {}
        for t in gp.part.targets:
            pruned, _ = model_from_state(plain_state_dict(gp.reference(model, t)), ref)
            digest = model_digest(pruned)
            ref.accuracy[part][t] = test_model(pruned, test_data, device=device, verbose=False)
            ref.digests[part][t] = digest
            ref.remember(digest, ref.accuracy[part][t])
    return ref


def model_from_state(state, ref: ReferenceMeasurements):
    """A fresh model of the reference's architecture holding the tensors ``state`` (in eval mode), and ``None``;
    or ``None`` and why ``state`` cannot be one (not a dict, other layers or shapes)."""
    if not isinstance(state, dict):
        return None, "no model was saved"
    model = build_model(ref.arch, **ref.config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).splitlines()[0][:200]
        return None, f"the model does not have the pretrained model's layers and shapes ({first})"
    return model.eval(), None
