"""The notebook's visible checks of a whole results list, with messages that teach.

Used by the notebook's check cells (instant feedback in seconds on a CPU). The autograder runs
the same inspections (:mod:`helpers.inspection`) in a clean process on the models a notebook
produced, plus accuracy measurements and calls at targets the student never saw.
``inspect_unstructured``, ``inspect_structured``, ``compounded`` and ``TARGETS`` are those of
:mod:`helpers.inspection`, here for the notebook's imports.
"""

from __future__ import annotations

import math

from torch import nn

from ._values import as_number, number_text
from .evaluate import test_model
from .inspection import TARGETS, compounded, inspect_structured, inspect_unstructured
from .parts import Part, get_part
from .sparsity import global_sparsity

__all__ = ["TARGETS", "RESULT_KEYS", "CLAIM_TOL", "SPARSITY_CLAIM_TOL", "OTHER_IMAGES", "compounded",
           "inspect_unstructured", "inspect_structured", "check_results", "check_accuracies", "shared_models",
           "entry_problem"]

#: Keys every results entry must have.
RESULT_KEYS = ("target", "model", "sparsity", "accuracy")
#: Allowed distance of a stored accuracy from what ``test_model`` gives for the stored model (the grader's too).
CLAIM_TOL = 0.005
#: Allowed distance of a stored sparsity from the stored model's (the grader's too).
SPARSITY_CLAIM_TOL = 0.001
#: What a stored accuracy that is not its model's on ``test_data`` most likely is, and what to store instead (the
#: grader says the same).
OTHER_IMAGES = ("measure that same model on test_data and store it, accuracy = test_model(pruned, test_data) (a "
                 "number from other images, such as X_val, or from another model differs)")


_PRUNED_ORIGINAL = ("the pretrained `model` itself is pruned: prune a copy (copy.deepcopy(model)) so that "
                    "every target starts from the original weights; to start over, run the cell under "
                    "'0. Data and the pretrained model' again (it loads the model afresh), then your cells")


def shared_models(results, kind: str | Part, original: nn.Module | None = None) -> str:
    """``""``, or a message when an entry of ``results`` holds the pretrained ``original`` itself, or several entries
    hold one and the same model object.

    One object pruned again for every target ends up holding only the last pruning, so every
    stored number but the last looks wrong; this names the cause instead.
    """
    part = kind if isinstance(kind, Part) else get_part(kind)
    groups: dict[int, list] = {}
    for entry in results if isinstance(results, (list, tuple)) else ():
        if isinstance(entry, dict) and original is not None and entry.get("model") is original:
            target = _target_text(entry.get("target"))
            return (f"{part.results_name} stores the pretrained `model` itself (target {target}), not the pruned "
                    f"copy {part.function_name} returned: store the copy, pruned = {part.function_name}(model, "
                    "target); {'model': pruned, ...}")
        if isinstance(entry, dict) and isinstance(entry.get("model"), nn.Module):
            groups.setdefault(id(entry["model"]), []).append(entry.get("target"))
    shared = [targets for targets in groups.values() if len(targets) > 1]
    if not shared:
        return ""
    listed = "; ".join(", ".join(_target_text(t) for t in targets) for targets in shared)
    return (f"the entries of {part.results_name} for targets {listed} hold one and the same model object, which "
            f"therefore only shows the last pruning: store a separate pruned copy per target ({part.function_name} "
            "must return a new model, for example copy.deepcopy(model) pruned)")


def _list_problem(results, original: nn.Module, part: Part, empty: str) -> str:
    """What is wrong with the list as a whole (not a list, ``empty``, a pruned original, shared
    model objects), or ``""``: each makes the entries' own checks meaningless."""
    if not isinstance(results, (list, tuple)):
        return f"{part.results_name} must be a list of dicts, got {type(results).__name__}"
    if len(results) == 0:
        return empty
    if global_sparsity(original) > 0:
        return _PRUNED_ORIGINAL
    return shared_models(results, part, original)


def entry_problem(where: str, entry, keys) -> str | None:
    """``None`` when ``entry`` is a dict with every key of ``keys``, else a message naming what is wrong with it
    (``where``: how to call it, e.g. ``"unstructured_results[4]"``): not a dict, or which keys it lacks.

    >>> entry_problem("results[0]", {"target": 0.1, "acc": 0.5}, ("target", "accuracy"))
    "results[0] lacks 'accuracy' (it has 'target', 'acc'): every entry needs the keys target and accuracy"
    """
    needed = " and ".join([", ".join(keys[:-1]), keys[-1]] if len(keys) > 1 else keys)
    if not isinstance(entry, dict):
        return f"{where} is a {type(entry).__name__}, not a dict: every entry needs the keys {needed}"
    missing = [k for k in keys if k not in entry]
    if missing:
        has = ", ".join(repr(k) for k in entry) or "no keys"
        lacks = ", ".join(repr(k) for k in missing)
        return f"{where} lacks {lacks} (it has {has}): every entry needs the keys {needed}"
    return None


def _target_text(target) -> str:
    number = as_number(target)
    return f"{number:.2f}" if number is not None else repr(target)


def _said_once(problems: list[str]) -> list[str]:
    """Lines that end in the same long advice (``"<facts>: <advice>"``) merged into one that gives it once."""
    by_advice: dict[str, list[str]] = {}
    for line in problems:
        facts, sep, advice = line.partition(": ")
        if sep and len(advice) > 80:
            by_advice.setdefault(advice, []).append(facts)
    out, done = [], set()
    for line in problems:
        facts, _, advice = line.partition(": ")
        if len(by_advice.get(advice, ())) > 1:
            if advice not in done:
                out.append("; ".join(by_advice[advice]) + ": " + advice)
                done.add(advice)
        else:
            out.append(line)
    return out


def check_accuracies(results, original: nn.Module, kind: str | Part, test_data, every: int = 1,
                     tol: float = SPARSITY_CLAIM_TOL, whole=None) -> str:
    """Check that the numbers stored with each model are that model's own: its ``sparsity`` (every entry), that its
    ``accuracy`` is a number in ``[0, 1]`` (every entry), and that it is what :func:`helpers.test_model` gives
    (every entry, or every ``every``-th), within :data:`CLAIM_TOL`. The grader's accuracy check covers the same
    claims, for every entry, with the same tolerances, so a wrong stored number costs the same cell's points in
    both. A number stored as a numpy scalar or a one-number tensor counts as the number it holds.

    Args:
        results, original, kind: as for :func:`check_results`.
        test_data: ``[X_test, y_test]``, as given to ``test_model``.
        every: test the accuracy of every ``every``-th entry (1: all; 3: the first, the fourth, ...).
        tol: allowed distance of a stored sparsity from the model's.
        whole: ``[X, y]`` of the whole test split: an accuracy measured on it is accepted too (in grading
            ``test_data`` is the whole split of the grader's images, so the grader cannot tell the two apart).

    Returns:
        ``""`` when they match, else the problems, one per line, numbers rounded to 4 decimals.
    """
    part = kind if isinstance(kind, Part) else get_part(kind)
    name = part.results_name
    broken = _list_problem(results, original, part, f"{name} is empty: fill it in the cell with your code above")
    if broken:
        return broken
    problems = []
    for i, entry in enumerate(results):
        malformed = entry_problem(f"{name}[{i}]", entry, RESULT_KEYS)
        if malformed:
            problems.append(malformed)
            continue
        target = _target_text(entry["target"])
        problems += _sparsity_claim(part, entry, target, tol)
        acc = as_number(entry["accuracy"])
        if acc is None or not 0.0 <= acc <= 1.0:
            problems.append(f"target {target}: 'accuracy' must be test_model's number in [0, 1], got "
                            f"{number_text(entry['accuracy'])}")
            continue
        if i % every:
            continue
        try:
            measured = test_model(entry["model"], test_data, verbose=False)
            if abs(measured - acc) > CLAIM_TOL and whole is not None:
                if abs(test_model(entry["model"], whole, verbose=False) - acc) <= CLAIM_TOL:
                    continue  # the whole test split: what the grader's test_data is
        except Exception:  # noqa: BLE001 - the model's own check (the cell above) says what is wrong with it
            continue
        if abs(measured - acc) > CLAIM_TOL:
            problems.append(f"target {target}: 'accuracy' says {acc:.4f} but test_model(model, test_data) gives "
                            f"{measured:.4f} for the model stored with it: {OTHER_IMAGES}")
    return "\n".join(_said_once(problems))


def _sparsity_claim(part: Part, entry: dict, target: str, tol: float) -> list[str]:
    """A message when the entry's stored ``sparsity`` is not its model's (none when the model cannot be measured:
    its own check says why)."""
    try:
        measured = part.sparsity(entry["model"])
    except Exception:  # noqa: BLE001 - a broken student object
        return []
    claimed = as_number(entry["sparsity"])
    if claimed is not None and abs(claimed - measured) <= tol:
        return []
    hint = ""
    if claimed is not None and part.name == "structured" and abs(claimed - global_sparsity(entry["model"])) <= tol:
        hint = (": that is the fraction over all layers; for structured pruning store "
                "global_sparsity(pruned, (nn.Conv2d,))")
    elif claimed is not None and abs(claimed / 100 - measured) <= tol:
        hint = ": store it as a fraction (0.3 for 30%), as global_sparsity returns it"
    return [f"target {target}: 'sparsity' says {number_text(entry['sparsity'])} but the model's zeros over "
            f"{part.layers_text} give {measured:.4f}{hint}"]


def check_results(results, original: nn.Module, kind: str | Part, targets=None) -> str:
    """Check a notebook's ``unstructured_results`` or ``structured_results`` list: its length and targets, and each
    model's pruning. The numbers stored with the models are :func:`check_accuracies`'s, as in the grader.

    Args:
        results: list of dicts with keys ``target``, ``model``, ``sparsity``, ``accuracy``.
        original: the pretrained model (must itself be unpruned).
        kind: the pruning kind (:mod:`helpers.parts`) or its name, ``"unstructured"`` or ``"structured"``.
        targets: the targets the list must follow (default: the kind's).

    Returns:
        ``""`` when everything is right, else the problems, one per line.
    """
    part = kind if isinstance(kind, Part) else get_part(kind)
    targets = part.targets if targets is None else targets
    name = part.results_name
    whole = _list_problem(results, original, part,
                          f"{name} is empty: fill it in the cell above, one dict per target {list(targets)}")
    if whole:
        return whole
    problems = []
    if len(results) != len(targets):
        problems.append(f"{name} has {len(results)} entries, expected {len(targets)} (targets {list(targets)})")
    for i, (entry, target) in enumerate(zip(results, targets)):
        malformed = entry_problem(f"{name}[{i}]", entry, RESULT_KEYS)
        if malformed:
            problems.append(malformed)
            continue
        stored = as_number(entry["target"])
        if stored is None or not math.isclose(stored, target):
            problems.append(f"{name}[{i}]['target'] is {entry['target']!r}, expected {target}")
            continue
        try:
            msg = part.inspect(entry["model"], original, target)
        except Exception as exc:  # a broken student object must give a message, not a traceback
            msg = (f"the stored 'model' is not a pruned copy of the course's model (inspecting it failed: "
                   f"{type(exc).__name__}: {exc})")
        if msg:
            problems.append(msg if msg.startswith("target") else f"target {target:.2f}: {msg}")
    return "\n".join(_said_once(problems))
