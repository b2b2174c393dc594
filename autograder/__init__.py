"""Instructor and TA tools for the pruning assignment: reference solutions, training, release, grading.

Not part of what students install (``pyproject.toml`` ships only ``helpers``). Layers, each importing only
those below it (import-linter checks it in ``make lint``):

* :mod:`autograder.cli` (``python -m autograder``): the command line; for ``grade`` it picks where notebooks run;
* :mod:`autograder.cluster`: grading on a Dask cluster (:class:`~autograder.cluster.client.DaskCluster`);
* :mod:`autograder.grading`: the pruning assignment's grading (the run, this machine's job slots, scoring,
  journal, gradebook, feedback);
* :mod:`autograder.runner`: runs notebooks safely (sandbox, warm kernels, limits); knows nothing about pruning.

Beside them: :mod:`autograder.config` (every setting), :mod:`autograder.train` (the reference model),
:mod:`autograder.release` (the student bundle), :mod:`autograder.demo` and :mod:`autograder.samples` (the demo
and the sample submissions).

Importing it changes nothing process-wide (the entry point, :mod:`autograder.__main__`, does).
"""
