"""The kinds of pruning the assignment teaches, one object each.

A :class:`Part` holds what the notebook, its visible checks and the autograder need to know of
one kind: its name (which names the notebook's ``<name>_results`` list and ``prune_<name>``
function), the layer types it prunes, the targets of its sweep, and the inspection that
explains a wrong model. Adding a kind means adding one instance to :data:`PARTS`.

Example:
    >>> UNSTRUCTURED.results_name, UNSTRUCTURED.function_name
    ('unstructured_results', 'prune_unstructured')
    >>> [p.name for p in PARTS]
    ['unstructured', 'structured']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .inspection import SPARSITY_TOL, TARGETS, inspect_structured, inspect_unstructured
from .sparsity import global_sparsity

__all__ = ["Part", "UNSTRUCTURED", "STRUCTURED", "PARTS", "get_part"]


@dataclass(frozen=True)
class Part:
    """One kind of pruning.

    Attributes:
        name: ``"unstructured"`` or ``"structured"``.
        layer_types: the layer types it prunes (and over which its sparsity is measured).
        layers_text: those layers in words, for messages.
        inspector: ``(pruned, original, target, tol) -> message or None``.
        targets: the targets of the notebook's sweep, fractions in order.
    """

    name: str
    layer_types: tuple[type[nn.Module], ...]
    layers_text: str
    inspector: Callable[..., str | None]
    targets: tuple[float, ...] = TARGETS

    @property
    def results_name(self) -> str:
        """The notebook variable holding the sweep's results."""
        return f"{self.name}_results"

    @property
    def function_name(self) -> str:
        """The student's pruning function."""
        return f"prune_{self.name}"

    def sparsity(self, model: nn.Module) -> float:
        """Fraction of zero weights over this kind's layers (masks applied)."""
        return global_sparsity(model, self.layer_types)

    def inspect(self, pruned: nn.Module, original: nn.Module, target: float,
                tol: float = SPARSITY_TOL) -> str | None:
        """``None`` when ``pruned`` is ``original`` correctly pruned to ``target``, else why not."""
        return self.inspector(pruned, original, target, tol=tol)


UNSTRUCTURED = Part("unstructured", (nn.Conv2d, nn.Linear), "all Conv2d and Linear weights", inspect_unstructured)
STRUCTURED = Part("structured", (nn.Conv2d,), "the Conv2d weights", inspect_structured)
#: Every kind, in the notebook's order.
PARTS = (UNSTRUCTURED, STRUCTURED)


def get_part(name: str) -> Part:
    """The kind called ``name``; ``ValueError`` naming the kinds there are otherwise."""
    for part in PARTS:
        if part.name == name:
            return part
    raise ValueError(f"kind must be one of {[p.name for p in PARTS]}, got {name!r}")
