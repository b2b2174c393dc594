"""Imported by a Dask worker when it starts (``distributed.worker.preload``): the libraries grading needs.

A ``local:N`` cluster's workers import them while the grader imports its own and loads the grading
data, instead of when the run's :class:`~autograder.cluster.worker.GradingPlugin` arrives; a
hand-started worker does the same with ``dask worker ADDRESS --preload autograder.cluster.preload``.
Importing this module has no other effect; with more than one task thread, the worker also imports what
they would otherwise import late (:func:`dask_setup`).
"""

import nbformat  # noqa: F401
import torch  # noqa: F401

import helpers  # noqa: F401
from autograder.grading import grade, jobs, scoring  # noqa: F401
from autograder.grading.imports import import_before_threads

__all__ = ["dask_setup"]


def dask_setup(worker) -> None:
    """Called by Dask when the worker starts: a worker with several task threads imports what they would
    import late, at once (one thread imports alone; the grader writes the feedback)."""
    if worker.state.nthreads > 1:
        import_before_threads(feedback=False)
