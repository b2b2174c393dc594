"""What the autograder adds to each pruning kind of :mod:`helpers.parts`.

For every kind: the instructor's reference solution (:mod:`autograder.grading.solutions`, never shipped
to students) and the three graded check cells, one per named check of
:mod:`autograder.grading.scoring` (structure; accuracy and claims; unseen targets). Their points come
from the source notebook.

Runs in the grader's process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from helpers.parts import STRUCTURED, UNSTRUCTURED, Part

from . import solutions

__all__ = ["GradedPart", "GRADED_PARTS", "CHECKS", "CHECK_KINDS", "PART3", "graded_checks"]

#: The three checks of every part, in the notebook's order.
CHECK_KINDS = ("structure", "accuracy", "unseen")


@dataclass(frozen=True)
class GradedPart:
    """A pruning kind as graded: the kind, its reference solution and its check cells.

    Attributes:
        part: the kind (name, layer types, targets, inspection).
        reference: ``(model, amount) -> pruned copy``, the instructor's solution.
        cells: grade_id of the check cell of each of :data:`CHECK_KINDS`, in that order.
    """

    part: Part
    reference: Callable[[nn.Module, float], nn.Module]
    cells: tuple[str, str, str]

    @property
    def name(self) -> str:
        return self.part.name

    def checks(self) -> dict[str, str]:
        """``{grade_id: check kind}`` of this part's cells."""
        return dict(zip(self.cells, CHECK_KINDS))


GRADED_PARTS = (
    GradedPart(UNSTRUCTURED, solutions.prune_unstructured,
               ("test_unstructured_sparsity", "test_unstructured_accuracy", "test_unstructured_function")),
    GradedPart(STRUCTURED, solutions.prune_structured,
               ("test_structured_filters", "test_structured_accuracy", "test_structured_function")),
)

#: Part 3 (filter removal and fine-tuning, :mod:`autograder.grading.part3_checks`): grade_id -> check kind.
PART3 = {"test_removal_models": "removal", "test_removal_function": "removal_unseen",
            "test_finetuning": "finetune"}

#: grade_id of each graded test cell -> (part name, check kind), in the notebook's order.
CHECKS = {**{gid: (gp.name, kind) for gp in GRADED_PARTS for gid, kind in gp.checks().items()},
          **{gid: ("removal", kind) for gid, kind in PART3.items()}}


def graded_checks(points: dict[str, float]) -> list[str]:
    """The check cells this run grades: those of :data:`CHECKS` the source notebook has (an instructor may
    drop part 3 by deleting its cells), in the notebook's order."""
    return [gid for gid in CHECKS if gid in points]
