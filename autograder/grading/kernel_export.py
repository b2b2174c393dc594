"""Saves what the student's notebook produced.

The grader copies this file into each job folder and names the copy in
``$PRUNING_EXPORT_CODE``; the source notebook's hidden-test regions run it with ``runpy`` and
call :func:`export` (the sandboxed kernel cannot see the ``autograder`` package, and an
instructor running the source notebook needs no ``autograder`` on the path). It imports
nothing but the standard library, torch and ``helpers``. It writes, under
``$PRUNING_EXPORT_DIR``, the weights of every model in the results list (pruning folded
in), the numbers the student claims, and the output of the student's pruning function on
fresh copies of the pretrained model at targets the notebook never uses. No score is
computed here: student code shares this kernel and could tamper with anything in it. The
grader recomputes everything in its own process from these files, checking every tensor
against the reference model, so a tampered export can only produce a correctly pruned
model, which is the work itself.

Without ``PRUNING_EXPORT_DIR`` (a student running the notebook) it does nothing. It never
raises and never writes to stderr. Its imports of torch and ``helpers`` are inside its functions: the grader
imports this module for its names (:data:`ENV_EXPORT`) without them.

Runs inside the student's kernel during grading.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["export", "UNSEEN_TARGETS", "ENV_EXPORT", "ENV_EXPORT_CODE"]

ENV_EXPORT = "PRUNING_EXPORT_DIR"
#: Path of this file's copy in the job folder, run by the hidden-test regions.
ENV_EXPORT_CODE = "PRUNING_EXPORT_CODE"
#: Targets the notebook never uses; the student's function is called with these.
UNSEEN_TARGETS = (0.35, 0.65)


def _number(value):
    """A stored value as the float it holds (a Python number, a numpy scalar, a one-number tensor), else ``None``:
    what the notebook's visible checks accept (:func:`helpers._values.as_number`)."""
    from helpers._values import as_number
    return as_number(value)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def export(part: str, namespace: dict) -> None:
    """Save ``<part>_results`` and ``prune_<part>`` outputs from ``namespace`` (the notebook's globals)."""
    folder = os.environ.get(ENV_EXPORT)
    if not folder:
        return
    import torch

    from helpers.parts import PARTS
    kind = next((p for p in PARTS if p.name == part), None)
    if kind is None and part not in _SECTIONS:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind is None:
            record = _SECTIONS[part](namespace)
        else:
            results = namespace.get(kind.results_name)
            record = {"part": part, "results": _results(kind, results),
                      "unseen": _unseen(kind, namespace.get(kind.function_name)),
                      "errors": [] if isinstance(results, (list, tuple)) else [f"{kind.results_name} is not a list"]}
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{part}.pt.tmp"
        try:
            torch.save(record, tmp)
            os.replace(tmp, out / f"{part}.pt")
        except Exception:  # noqa: BLE001 - the grader reports the missing file
            pass


def _results(kind, results) -> list[dict]:
    """Each entry's numbers and model weights (pruning folded in), or why it could not be saved."""
    from helpers.models import plain_state_dict
    if not isinstance(results, (list, tuple)):
        return []
    saved = []
    for i, entry in enumerate(list(results)[:20]):
        item = {"target": None, "sparsity": None, "accuracy": None, "state": None, "error": None}
        try:
            item.update(target=_number(entry.get("target")), sparsity=_number(entry.get("sparsity")),
                        accuracy=_number(entry.get("accuracy")))
            item["state"] = plain_state_dict(entry["model"])
            # whether pruning masks were attached (the state above folds them in): only chooses a message
            item["masked"] = any(hasattr(m, "weight_mask") for m in entry["model"].modules())
        except Exception as exc:  # noqa: BLE001 - anything a student stored
            item["error"] = f"{kind.results_name}[{i}]: {_describe(exc)}"
        saved.append(item)
    return saved


def _unseen(kind, fn) -> dict[str, dict]:
    """The student's function on fresh copies of the model at :data:`UNSEEN_TARGETS`, and whether it
    changed its input."""
    import torch

    from helpers.config import ENV_MODEL
    from helpers.models import load_model, plain_state_dict
    out = {}
    for target in UNSEEN_TARGETS:
        try:
            if not callable(fn):
                raise TypeError(f"{kind.function_name} is not defined as a function")
            fresh = load_model(os.environ.get(ENV_MODEL))
            before = plain_state_dict(fresh)
            state = plain_state_dict(fn(fresh, target))
            after = plain_state_dict(fresh)
            modified = any(not torch.equal(before[k], after[k]) for k in before)
            out[str(target)] = {"state": state, "error": None, "modified_input": modified}
        except Exception as exc:  # noqa: BLE001
            out[str(target)] = {"state": None, "error": _describe(exc)}
    return out


def _entries(name: str, results, numbers: tuple[str, ...], limit: int) -> list[dict]:
    """Each entry's named numbers and model weights (pruning folded in), or why it could not be saved."""
    from helpers.models import plain_state_dict
    saved = []
    for i, entry in enumerate(list(results)[:limit] if isinstance(results, (list, tuple)) else []):
        item = {"state": None, "error": None, **dict.fromkeys(numbers)}
        try:
            item.update({k: _number(entry.get(k)) for k in numbers})
            item["state"] = plain_state_dict(entry["model"])
            item["masks_left"] = _masks_left(entry["model"])
        except Exception as exc:  # noqa: BLE001 - anything a student stored
            item["error"] = f"{name}[{i}]: {_describe(exc)}"
        saved.append(item)
    return saved


def _masks_left(model) -> list[str]:
    """The layers of ``model`` still carrying a pruning mask (a removal made before ``prune.remove``)."""
    return [name for name, m in model.named_modules() if hasattr(m, "weight_mask")] if hasattr(model, "named_modules") \
        else []


def _removal(namespace: dict) -> dict:
    """Part 3's removed models, and ``remove_filters`` applied at :data:`UNSEEN_TARGETS` to fresh copies of
    the model with that fraction of filters masked (chosen at random here, so that the check does not
    depend on part 2), input and output both saved."""
    import torch

    from helpers.config import ENV_MODEL
    from helpers.models import load_model, plain_state_dict
    from helpers.removal import mask_random_filters
    unseen = {}
    fn = namespace.get("remove_filters")
    for i, target in enumerate(UNSEEN_TARGETS):
        try:
            if not callable(fn):
                raise TypeError("remove_filters is not defined as a function")
            masked = mask_random_filters(load_model(os.environ.get(ENV_MODEL)), target, seed=i)
            before = plain_state_dict(masked)
            removed = fn(masked)
            state = plain_state_dict(removed)
            after = plain_state_dict(masked)
            modified = before.keys() != after.keys() or any(
                before[k].shape != after[k].shape or not torch.equal(before[k], after[k]) for k in before)
            unseen[str(target)] = {"masked": before, "state": state, "error": None, "modified_input": modified,
                                   "masks_left": _masks_left(removed)}
        except Exception as exc:  # noqa: BLE001
            unseen[str(target)] = {"masked": None, "state": None, "error": _describe(exc)}
    return {"part": "removal", "unseen": unseen,
            "results": _entries("removal_results", namespace.get("removal_results"), ("target", "macs", "accuracy"),
                                20)}


def _finetune(namespace: dict) -> dict:
    """Part 3's fine-tuned models, their kinds and the accuracies the student stored."""
    results = namespace.get("finetune_results")
    saved = _entries("finetune_results", results, ("target", "before", "after"), 4)
    for item, entry in zip(saved, results if isinstance(results, (list, tuple)) else []):
        kind = entry.get("kind") if isinstance(entry, dict) else None
        item["kind"] = kind if kind in ("structured", "unstructured") else None
    try:
        from helpers.removal_checks import holds
        said = holds(results)[:300] if "finetune_results" in namespace else "it is not defined"
    except Exception as exc:  # noqa: BLE001 - a description only; the grade does not depend on it
        said = _describe(exc)
    return {"part": "finetune", "results": saved, "holds": said}


#: Exports of the sections that are not a pruning kind: name -> ``f(namespace) -> record``.
_SECTIONS = {"removal": _removal, "finetune": _finetune}
