"""Inspections of one pruned model against the pretrained one, with messages that teach.

Each ``inspect_*`` function returns ``None`` when the pruned model is right, else one
message saying what is wrong and how to fix it. Nothing here modifies a model. The notebook's
visible checks (:mod:`helpers.checks`) and the autograder's hidden ones call them through the
pruning kinds of :mod:`helpers.parts`.

Example (the 20% smallest weights of each layer on its own: a known mistake, explained):
    >>> from torch.nn.utils import prune
    >>> from helpers import copy_model
    >>> from helpers.models import SmallCNN
    >>> from helpers.sparsity import prunable_layers
    >>> base = SmallCNN(); pruned = copy_model(base)
    >>> for _, layer in prunable_layers(pruned):
    ...     _ = prune.l1_unstructured(layer, "weight", amount=0.2)
    >>> "all layers at once" in inspect_unstructured(pruned, base, 0.2)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from .sparsity import effective_weight, prunable_layers

__all__ = ["TARGETS", "SPARSITY_TOL", "compounded", "inspect_unstructured", "inspect_structured"]

#: Targets of both sweeps, in order. Up to 0.8 accuracy barely moves on the course model; the last
#: three show where it falls (unstructured, real CINIC-10 sample, 8-epoch model: 0.668 unpruned,
#: 0.653 at 0.8, 0.600 at 0.9, 0.229 at 0.98), so the students' own plots show the cliff.
TARGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)

#: Allowed distance of an unstructured model's sparsity from its target, in the notebook's checks and the grader's
#: (the exact solution is within 1 / the number of weights; ties in magnitude may add a few).
SPARSITY_TOL = 0.005

_COMPOUND_HINT = ("pruning compounds when applied again to an already pruned model; prune a fresh "
                  "copy of the pretrained model for each target (copy.deepcopy(model) or "
                  "helpers.copy_model), or compute the amount relative to what remains")


def compounded(targets=TARGETS) -> list[float]:
    """Sparsities reached by re-applying each amount to the already pruned model.

    >>> [round(s, 2) for s in compounded((0.1, 0.2, 0.3))]
    [0.1, 0.28, 0.5]
    """
    out, kept = [], 1.0
    for t in targets:
        kept *= 1.0 - t
        out.append(1.0 - kept)
    return out


def _layers(pruned: nn.Module, original: nn.Module, types=(nn.Conv2d, nn.Linear)):
    """Pair up the layers of both models; a message if the architecture differs."""
    if pruned is None:
        return None, "got None instead of a model: does the function end with `return` and the pruned copy?"
    if not isinstance(pruned, nn.Module):
        return None, f"expected a torch.nn.Module, got {type(pruned).__name__}"
    a = prunable_layers(pruned, types)
    b = prunable_layers(original, types)
    names_a = [n for n, _ in a]
    names_b = [n for n, _ in b]
    if names_a != names_b:
        return None, (f"the pruned model has layers {names_a}, the pretrained model {names_b}: "
                      "prune a copy of the pretrained model instead of building a new one")
    pairs = []
    for (name, ma), (_, mb) in zip(a, b):
        wa, wb = effective_weight(ma).float().cpu(), effective_weight(mb).float().cpu()
        if wa.shape != wb.shape:
            return None, (f"layer {name} has weight shape {tuple(wa.shape)}, expected {tuple(wb.shape)}: "
                          "pruning here zeroes weights, it does not remove them")
        pairs.append((name, wa, wb))
    return pairs, None


def _changed_survivors(pairs) -> str | None:
    for name, wa, wb in pairs:
        kept = wa != 0
        if not torch.equal(wa[kept], wb[kept]):
            return (f"weights of {name} that were not pruned have changed: pruning must only set "
                    "weights to zero, keep the others exactly as in the pretrained model")
    return None


def _smallest_zeroed(pruned_w: torch.Tensor, original_w: torch.Tensor) -> bool:
    """Within one layer, are the zeroed weights the smallest in magnitude (ties allowed)?"""
    zero = pruned_w == 0
    if not zero.any() or zero.all():
        return True
    mags = original_w.abs()
    return float(mags[zero].max()) <= float(mags[~zero].min())


def inspect_unstructured(pruned: nn.Module, original: nn.Module, target: float,
                         tol: float = SPARSITY_TOL) -> str | None:
    """Is ``pruned`` the pretrained model with the ``target`` fraction of smallest weights zeroed,
    over all Conv2d and Linear weights together? Ties in magnitude are tolerated."""
    pairs, problem = _layers(pruned, original)
    if problem:
        return problem
    total = sum(wb.numel() for _, _, wb in pairs)
    zeros = sum(int((wa == 0).sum()) for _, wa, _ in pairs)
    sparsity = zeros / total
    if abs(sparsity - target) > tol:
        msg = f"target {target:.2f} gave sparsity {sparsity:.3f}"
        for s in compounded():
            if abs(s - sparsity) <= max(tol, 0.002) and abs(s - target) > tol:
                return f"{msg}: {_COMPOUND_HINT}"
        return f"{msg}: expected {target:.3f} of all Conv2d and Linear weights to be zero"
    changed = _changed_survivors(pairs)
    if changed:
        return changed
    mags = torch.cat([wb.abs().flatten() for _, _, wb in pairs])
    zero_mask = torch.cat([(wa == 0).flatten() for _, wa, _ in pairs])
    if zero_mask.any() and (~zero_mask).any():
        largest_pruned = float(mags[zero_mask].max())
        smallest_kept = float(mags[~zero_mask].min())
        if largest_pruned > smallest_kept:
            per_layer = all(_smallest_zeroed(wa, wb) for _, wa, wb in pairs)
            why = ("each layer lost its own smallest weights: that is per-layer pruning; "
                   "use prune.global_unstructured over all layers at once" if per_layer else
                   "the weights set to zero are not the smallest in magnitude (random selection?); "
                   "use L1 (magnitude) pruning")
            return (f"target {target:.2f}: a weight of magnitude {largest_pruned:.4g} was pruned while one "
                    f"of {smallest_kept:.4g} was kept: {why}")
    return None


def inspect_structured(pruned: nn.Module, original: nn.Module, target: float, tol: float = 0.0) -> str | None:
    """Is ``pruned`` the pretrained model with, in every Conv2d, exactly
    ``round(target * out_channels)`` output filters of smallest L2 norm zeroed, and every
    Linear layer untouched? Ties in norm are tolerated. Filter counts are whole numbers, so
    ``tol`` is not used (it is there so both inspections take the same arguments)."""
    pairs, problem = _layers(pruned, original)
    if problem:
        return problem
    for name, wa, wb in pairs:
        if wa.dim() == 2 and not torch.equal(wa, wb):
            return (f"target {target:.2f}: Linear layer {name} was changed; structured pruning in this "
                    "assignment touches the Conv2d layers only")
    changed = _changed_survivors(pairs)
    if changed:
        return changed
    for name, wa, wb in pairs:
        if wa.dim() != 4:
            continue
        out_ch = wa.shape[0]
        want = int(round(target * out_ch))
        zero_rows = (wa.flatten(1) == 0).all(dim=1)
        got = int(zero_rows.sum())
        if got != want:
            msg = f"target {target:.2f}: {name} has {got} of {out_ch} filters zeroed, expected {want}"
            zero_in = int((wa.transpose(0, 1).flatten(1) == 0).all(dim=1).sum())
            if got == 0 and zero_in > 0:
                return (f"{msg}: you zeroed input channels (dim=1); a filter is an output channel, "
                        "prune along dim=0")
            if got == 0 and int((wa == 0).sum()) > 0:
                return f"{msg}: weights were zeroed one by one, not as whole filters (use ln_structured, dim=0)"
            for s in compounded():
                if got == int(round(s * out_ch)) and got != want:
                    return f"{msg}: {_COMPOUND_HINT}"
            convs = [(wc.shape[0], int((wc.flatten(1) == 0).all(dim=1).sum())) for _, wc, _ in pairs if wc.dim() == 4]
            total = sum(n for n, _ in convs)
            if len(convs) > 1 and sum(z for _, z in convs) in (int(round(target * total)),
                                                              sum(int(round(target * n)) for n, _ in convs)):
                return (f"{msg}: the filters of all Conv2d layers were ranked together; prune each Conv2d by its "
                        "own fraction (ln_structured on every layer with the same amount)")
            return msg
        norms = wb.flatten(1).norm(dim=1)
        if got and got < out_ch and float(norms[zero_rows].max()) > float(norms[~zero_rows].min()) * (1 + 1e-6):
            return (f"target {target:.2f}: {name} zeroed a filter of L2 norm {float(norms[zero_rows].max()):.4g} "
                    f"but kept one of {float(norms[~zero_rows].min()):.4g}: prune the filters of smallest "
                    "L2 norm (ln_structured with n=2, dim=0)")
    return None
