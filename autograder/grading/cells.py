"""The notebook's cells as people meet them: each check cell's title, the cells students write code in, and which
of those each check depends on (for feedback pages that start from the cause).

Runs anywhere (plain values; no torch).
"""

from __future__ import annotations

__all__ = ["TITLES", "STUDENT_CELLS", "DEPENDS"]

#: Each check cell as the notebook's table names it, for people (feedback pages, reports).
TITLES = {"test_unstructured_sparsity": "Part 1: each target's sparsity, of the smallest weights",
          "test_unstructured_accuracy": "Part 1: the stored sparsity and accuracy",
          "test_unstructured_function": "Part 1: prune_unstructured at other amounts",
          "test_structured_filters": "Part 2: the filters zeroed at each target",
          "test_structured_accuracy": "Part 2: the stored sparsity and accuracy",
          "test_structured_function": "Part 2: prune_structured at other amounts",
          "test_removal_models": "Part 3: the removed models",
          "test_removal_function": "Part 3: remove_filters on other zeroed filters",
          "test_finetuning": "Part 3: fine-tuning"}
#: The cells students write code in, and what each is, for people.
STUDENT_CELLS = {"prune_unstructured": "part 1's function", "sweep_unstructured": "part 1's sweep",
                 "prune_structured": "part 2's function", "sweep_structured": "part 2's sweep",
                 "remove_filters": "part 3's function", "sweep_removal": "part 3's removal loop",
                 "finetune": "part 3's fine-tuning"}
_PART1, _PART2 = ("prune_unstructured", "sweep_unstructured"), ("prune_structured", "sweep_structured")
#: The student cells each check's result depends on: one of them failing explains the check failing.
DEPENDS = {"test_unstructured_function": ("prune_unstructured",),
           "test_unstructured_sparsity": _PART1, "test_unstructured_accuracy": _PART1,
           "test_structured_function": ("prune_structured",),
           "test_structured_filters": _PART2, "test_structured_accuracy": _PART2,
           "test_removal_function": ("remove_filters",),
           "test_removal_models": (*_PART2, "remove_filters", "sweep_removal"),
           "test_finetuning": (*_PART1, *_PART2, "remove_filters", "sweep_removal", "finetune")}
