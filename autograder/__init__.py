"""Instructor and TA tools for the pruning assignment: reference solutions, release, grading.

Not part of what students install (``pyproject.toml`` ships only ``helpers``). Layers:

* :mod:`autograder.runner`: runs notebooks safely (sandbox, warm kernels, limits); knows nothing
  about pruning;
* :mod:`autograder.grading`: the pruning assignment's grading over it (parts, scoring, journal,
  gradebook, feedback);
* :mod:`autograder.config`, :mod:`autograder.cli` (``python -m autograder``), :mod:`autograder.demo`,
  :mod:`autograder.samples`: the run's settings, the command line, the demo and sample submissions.

Importing it changes nothing process-wide (the entry point, :mod:`autograder.__main__`, does).
"""
