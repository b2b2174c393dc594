"""The visible checks of part 3 (filter removal and fine-tuning), as the notebook calls them.

Each check returns ``""`` when everything is right, else one line per problem; the notebook's
check cell asserts that the report is empty. The autograder recomputes the same decisions from
the saved weights on its own data, out of the kernel's reach.

What the notebook builds:

* ``removal_results``: one dict per target of ``structured_results``, in the same order, with
  ``target``, ``model`` (``remove_filters`` of that target's model), ``macs`` (``count_macs``) and
  ``accuracy`` (``test_model``).
* ``finetune_results``: two dicts, ``kind`` ``"structured"`` (the removed model at
  :data:`FINETUNE_TARGETS` ``["structured"]``) and ``"unstructured"`` (the masked model at
  ``["unstructured"]``), each with ``target``, ``model`` (fine-tuned), ``before`` and ``after``
  (``test_model`` accuracies before and after fine-tuning).
"""

from __future__ import annotations

import torch
from torch import nn

from ._values import as_number, number_text
from .checks import CLAIM_TOL, entry_problem
from .cost import count_macs
from .evaluate import test_model
from .removal import inspect_removal, surviving_filters
from .sparsity import effective_weight, global_sparsity, prunable_layers

__all__ = ["check_removal", "check_finetuning", "holds", "FINETUNE_TARGETS", "STARTS", "NO_MASKS", "TOO_LITTLE_GAIN",
           "FINETUNE_MARGIN", "MACS_TOL",
           "CHANCE_BAND", "inspect_finetuned", "at_chance", "removable", "gain_required"]

#: The model of each kind that part 3 fine-tunes, by target.
FINETUNE_TARGETS = {"structured": 0.5, "unstructured": 0.9}
#: Why a model without masks lost its zeros while fine-tuning, and what to do (visible and hidden checks).
NO_MASKS = ("the model you started from has no masks (its zeros were set directly), so nothing kept them zero: "
            "attach masks of its zeros to the copy before fine-tuning, prune.custom_from_mask(m, 'weight', "
            "(m.weight != 0).float()) for every Conv2d and Linear layer m")
#: What to do when fine-tuning gained too little (the visible and the hidden checks).
TOO_LITTLE_GAIN = ("fine_tune a copy on train_data for the epochs the cell sets; a training loop of your own must "
                   "feed the model to_model_input(X[idx]), the normalized (B, 3, 32, 32) input test_model feeds it")
#: Where each fine-tuning starts from: the results list of the model at its target.
STARTS = {"structured": "removal_results", "unstructured": "unstructured_results"}
#: Accuracy (fraction) fine-tuning must add to the model it starts from (calibrated on the course model: the
#: design page of the documentation).
FINETUNE_MARGIN = 0.01
#: Accuracy above chance (1 / classes) below which a starting model counts as broken (no gain asked).
CHANCE_BAND = 0.05
#: Allowed relative difference between a stored MAC count and the count of the stored model.
MACS_TOL = 0.01
_COMPARE_IMAGES = 256


def _by_target(results) -> dict[float, dict]:
    return {round(as_number(r["target"]), 6): r for r in results or []
            if isinstance(r, dict) and as_number(r.get("target")) is not None}


def _claim(name: str, claimed, measured: float, tol: float, whose: str = "the stored model") -> str | None:
    """A message when ``claimed`` is not ``measured`` (within ``tol``), naming the model measured (``whose``)."""
    number = as_number(claimed)
    if number is None or abs(number - measured) > tol:
        if name == "macs":
            return (f"'macs' says {claimed!r} but the stored model has {measured:,.0f} MACs: store "
                    "count_macs(model)[0], the first of the two numbers count_macs returns")
        return f"'{name}' says {number_text(claimed)} but {whose} gives {measured:.4f}"
    return None


def removable(model) -> bool:
    """Does ``model`` keep at least one filter in every Conv2d (else removal would leave nothing to compute)?"""
    return isinstance(model, nn.Module) and all(n > 0 for n in surviving_filters(model).values())


def check_removal(removal_results, structured_results, test_data) -> str:
    """Is each entry's model its structured model with the zeroed filters removed, and are its numbers its own?"""
    if not isinstance(removal_results, (list, tuple)) or not removal_results:
        return ("removal_results is empty: build one dict per model of structured_results with target, model (what "
                "remove_filters returned for it), macs (count_macs(model)[0]) and accuracy (test_model of it)")
    every = _by_target(structured_results)
    masked = {t: r for t, r in every.items() if removable(r.get("model"))}
    lines = []
    if len(removal_results) < len(masked):
        left_out = len(every) - len(masked)
        lines.append(f"removal_results has {len(removal_results)} entries; expected one per model of "
                     f"structured_results, {len(masked)}"
                     + (f" (leaving out {left_out} with a Conv2d layer that lost every filter)" if left_out else ""))
    in_place = False
    for i, entry in enumerate(removal_results):
        malformed = entry_problem(f"removal_results[{i}]", entry, ("target", "model", "macs", "accuracy"))
        if malformed:
            lines.append(malformed)
            continue
        key = round(as_number(entry["target"]), 6) if as_number(entry["target"]) is not None else None
        source = masked.get(key)
        if source is None:
            lines.append(f"removal_results[{i}]: " + (
                f"structured_results' model at target {entry['target']!r} has a Conv2d layer that lost every "
                "filter, so nothing would be left to compute: leave that target out" if key in every else
                f"structured_results has no model at target {entry['target']!r} (finish part 2 first; targets are "
                "numbers like 0.5)"))
            continue
        where = f"target {as_number(entry['target']):.2f}"
        if entry["model"] is source["model"] and not in_place:
            in_place = True  # correct removals: no points lost here, but part 2's models are gone
            print(f"note: removal_results' model at {where} is structured_results' own model object: remove_filters "
                  "changed the model it was given instead of returning a smaller copy, so structured_results now holds "
                  "removed models too (the cost table's 'masked' rows among them); the function check below says the "
                  "same. Return a copy (copy_model), then run part 2's cells and this one again.")
        problem = inspect_removal(entry["model"], source["model"], test_data[0][:_COMPARE_IMAGES])
        if problem:
            lines.append(f"{where}: {problem}")
            continue
        macs, _ = count_macs(entry["model"])
        for msg in (_claim("macs", entry["macs"], macs, MACS_TOL * macs),
                    _claim("accuracy", entry["accuracy"], test_model(entry["model"], test_data, verbose=False),
                           CLAIM_TOL)):
            if msg:
                lines.append(f"{where}: {msg}")
    return "\n".join(lines)


def _zero_mask(model: nn.Module) -> torch.Tensor:
    return torch.cat([effective_weight(m).flatten() == 0 for _, m in prunable_layers(model)])


def inspect_finetuned(kind: str, tuned: nn.Module, start: nn.Module) -> str | None:
    """``None`` when fine-tuning kept ``start``'s pruning, else why not.

    ``"structured"``: the same number of filters in every conv layer as the (removed) model it started
    from. ``"unstructured"``: every weight that was zero in ``start`` is still zero (the masks were kept).
    """
    if kind == "structured":
        want, got = ({n: m.out_channels for n, m in prunable_layers(x, (nn.Conv2d,))} for x in (start, tuned))
        if got != want:
            return (f"the fine-tuned model's filters per layer are {got}, expected {want} (the removed model's): "
                    "fine-tune a copy of the removed model (removal_results at 0.5), not the masked one of "
                    "structured_results")
        return None
    try:
        before, after = _zero_mask(start), _zero_mask(tuned)
    except (RuntimeError, ValueError):  # no Conv2d or Linear layer at all
        return "the fine-tuned model does not have the pretrained model's layers"
    if before.shape != after.shape:
        return "the fine-tuned model does not have the pretrained model's layers"
    lost = int((before & ~after).sum())
    if lost:
        return (f"{lost} of the {int(before.sum())} pruned weights are no longer zero (sparsity "
                f"{global_sparsity(tuned):.3f}, was {global_sparsity(start):.3f}): keep the masks attached while "
                "fine-tuning (no prune.remove before it), so that only the surviving weights train")
    return None


def at_chance(model: nn.Module, accuracy: float) -> bool:
    """Is ``accuracy`` within :data:`CHANCE_BAND` of guessing? Such a model (broken by a mistake in part 1 or
    2, whose checks already cost points) cannot recover in one epoch, so no gain is asked of it."""
    classes = next((m.out_features for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), 10)
    return accuracy < 1.0 / classes + CHANCE_BAND


def gain_required(unpruned: float, before: float, model: nn.Module) -> float:
    """Accuracy fine-tuning must add to a model scoring ``before`` whose unpruned model scored ``unpruned``.

    :data:`FINETUNE_MARGIN` where pruning cost at least twice that; nothing where it cost less (there
    is little to recover, and one epoch cannot be told from none) or where the model is at chance
    (:func:`at_chance`: broken by a mistake that parts 1 and 2 already charge).
    """
    if unpruned - before < 2 * FINETUNE_MARGIN or at_chance(model, before):
        return 0.0
    return FINETUNE_MARGIN


def holds(finetune_results) -> str:
    """What ``finetune_results`` holds, said briefly: its type, or each dict's kind and keys."""
    if not isinstance(finetune_results, (list, tuple)):
        return f"it is {type(finetune_results).__name__}, not a list"
    if not finetune_results:
        return "it is empty"
    said = []
    for e in finetune_results[:4]:
        if isinstance(e, dict):
            said.append(f"kind {e.get('kind')!r} with keys {', '.join(map(str, e))}")
        else:
            said.append(type(e).__name__)
    return "it holds " + "; ".join(said) + ("; ..." if len(finetune_results) > 4 else "")


def check_finetuning(finetune_results, removal_results, unstructured_results, test_data, model=None) -> str:
    """Did fine-tuning keep each model's pruning and recover what :func:`gain_required` asks; are the numbers its own?

    ``model`` is the pretrained model (its accuracy is what pruning started from).
    """
    starts = {"structured": _by_target(removal_results), "unstructured": _by_target(unstructured_results)}
    entries = {e.get("kind"): e for e in finetune_results or [] if isinstance(e, dict)}
    lines = []
    for kind, target in FINETUNE_TARGETS.items():
        entry = entries.get(kind)
        if entry is None or not {"target", "model", "before", "after"} <= set(entry):
            lines.append(f"finetune_results needs a dict with kind '{kind}', target {target}, model, before and after"
                         f" ({holds(finetune_results)})")
            continue
        start = starts[kind].get(target)
        if start is None:
            lines.append(f"{kind}: no model at target {target} to start from (finish the parts above first)")
            continue
        if entry["model"] is start["model"]:
            lines.append(f"{kind}: the fine-tuned model is the one in the results above: fine-tune a copy "
                         "(copy_model), so that the model before fine-tuning stays there to compare with")
            continue
        problem = inspect_finetuned(kind, entry["model"], start["model"])
        if problem:
            lines.append(f"{kind}: {problem}")
            if kind == "unstructured" and not any(hasattr(m, "weight_mask") for m in start["model"].modules()):
                lines.append(f"{kind}: {NO_MASKS}")
            continue
        before = test_model(start["model"], test_data, verbose=False)
        after = test_model(entry["model"], test_data, verbose=False)
        started = f"the model you started from ({STARTS[kind]} at {target})"
        for msg in (_claim("before", entry["before"], before, CLAIM_TOL, started),
                    _claim("after", entry["after"], after, CLAIM_TOL, "the fine-tuned model")):
            if msg:
                lines.append(f"{kind}: {msg}")
        unpruned = test_model(model, test_data, verbose=False) if model is not None else 1.0
        need = gain_required(unpruned, before, start["model"])
        if need and after < before + need:
            lines.append(f"{kind}: fine-tuning took the accuracy from {before:.4f} to {after:.4f}; at least "
                         f"{before + need:.4f} is expected: {TOO_LITTLE_GAIN}")
    return "\n".join(lines)
