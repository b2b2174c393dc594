"""Which split a fine-tuned model was trained on.

A model fine-tuned on the test split scores higher on the test split, which is the split the
grader measures accuracy on, so its accuracy cannot give the mistake away. Its weights can. The
grader fine-tunes the same starting model itself, once on its training split and once on its
test split (:func:`helpers.finetune.fine_tune` with its defaults, one epoch, masks attached where
the model is masked), and compares the direction in which each of those runs moved the weights
with the direction in which the student's run moved them (cosine similarity of the flat weight
changes). Runs over the same images move the weights alike even with another seed, learning
rate, batch size or number of epochs; runs over different images of the same distribution much
less (:data:`TEST_SPLIT_MARGIN` says by how much, as measured).

The grader's two runs depend only on the starting model, so they are made once per grading run
for each distinct starting model (:meth:`autograder.grading.measure.ReferenceMeasurements.once`): for a
class that starts from the reference models, once.

Runs in the grader's process.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from helpers import copy_model
from helpers.finetune import fine_tune
from helpers.models import plain_state_dict

__all__ = ["SPLITS", "TEST_SPLIT_MARGIN", "weight_change", "with_change", "replayed_change", "replays",
           "split_similarity", "trained_on_test"]

#: The splits the grader fine-tunes on, as ``Reference`` attributes ``<split>_data``.
SPLITS = ("train", "test")
#: How much closer (cosine similarity) the test split's run must be than the training split's before a
#: model counts as fine-tuned on the test split. Calibrated by ``make bench`` (step ``part3``, 48 runs of
#: known split, six ways of fine-tuning, generated data and the real sample): runs on the training split
#: were closer to it by at least 0.077, runs on the test split closer to that by at least 0.035. The
#: margin sits nearer the second, so that a correct run is never charged; a model about as close to
#: both is given the benefit of the doubt.
TEST_SPLIT_MARGIN = 0.02


def weight_change(tuned: nn.Module, start: nn.Module) -> torch.Tensor:
    """``tuned``'s floating-point weights minus ``start``'s, flattened in the order of their names
    (float32, 1-D, on the CPU). Both models must have the same tensors (names and shapes)."""
    a, b = plain_state_dict(tuned), plain_state_dict(start)
    return torch.cat([(a[k].detach().float().cpu() - b[k].detach().float().cpu()).flatten()
                      for k in sorted(a) if a[k].is_floating_point()])


def with_change(start: nn.Module, change: torch.Tensor) -> nn.Module:
    """A copy of ``start`` (a model without masks) whose floating-point weights are moved by ``change``, a
    flat tensor in :func:`weight_change`'s order: ``weight_change(with_change(start, c), start)`` is ``c``.

    Raises ``ValueError`` when ``change`` does not have one value per floating-point weight of ``start``.
    """
    model = copy_model(start)
    state = model.state_dict()
    names = [name for name in sorted(state) if state[name].is_floating_point()]
    sizes = [state[name].numel() for name in names]
    if change.numel() != sum(sizes):
        raise ValueError(f"a change of {change.numel()} values does not fit a model with {sum(sizes)} weights")
    parts = torch.split(change, sizes)
    moved = {name: state[name] + part.view(state[name].shape).to(state[name].device, state[name].dtype)
             for name, part in zip(names, parts)}
    model.load_state_dict(moved, strict=False)
    return model


def _masked_like(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose Conv2d and Linear weights keep their zeros while training (masks attached)."""
    model = copy_model(model)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.custom_from_mask(m, "weight", m.weight.detach() != 0)
    return model


def replayed_change(start: nn.Module, data, device, masked: bool) -> torch.Tensor:
    """How one epoch of :func:`~helpers.finetune.fine_tune` (its defaults) on ``data`` moves the weights of a
    copy of ``start`` (``masked``: its zero weights stay zero, as the notebook's masked model's do)."""
    model = _masked_like(start) if masked else copy_model(start)
    fine_tune(model, data, device=device, progress=False)
    return weight_change(model, start)


def split_similarity(ref, start: nn.Module, start_digest: str, tuned: nn.Module,
                     masked: bool) -> dict[str, float] | None:
    """``{split: cosine similarity}`` of ``tuned``'s change from ``start`` with the grader's fine-tuning of
    ``start`` on each of :data:`SPLITS`; ``None`` when the weights did not move or ``ref`` has no
    training split."""
    if ref.train_data is None:
        return None
    moved = weight_change(tuned, start)
    if not bool(moved.any()):
        return None
    return {split: float(nn.functional.cosine_similarity(moved, replay, dim=0))
            for split, replay in replays(ref, start, start_digest, masked).items()}


def replays(ref, start: nn.Module, start_digest: str, masked: bool) -> dict[str, torch.Tensor]:
    """``{split: replayed_change(start, ...)}`` for each of :data:`SPLITS`, made once per grading run for each
    starting model (``ref.once``; ``start_digest``: its digest) and shared where ``ref`` shares."""
    return {split: ref.once(("fine-tune", start_digest, split, masked),
                            lambda data=getattr(ref, f"{split}_data"): replayed_change(start, data, ref.device, masked))
            for split in SPLITS}


def trained_on_test(sims: dict[str, float] | None) -> bool:
    """Did the weights move clearly more as fine-tuning on the test split moves them than as on the training
    split (by more than :data:`TEST_SPLIT_MARGIN`)?"""
    return sims is not None and sims["test"] - sims["train"] > TEST_SPLIT_MARGIN
