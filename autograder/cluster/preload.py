"""Imported by a Dask worker when it starts (``distributed.worker.preload``): the libraries grading needs.

A ``local:N`` cluster's workers import them while the grader imports its own and loads the grading
data, instead of when the run's :class:`~autograder.cluster.worker.GradingPlugin` arrives; a
hand-started worker does the same with ``dask worker ADDRESS --preload autograder.cluster.preload``.
Importing this module has no other effect than imports: these, and what the grading threads would
otherwise import late (:func:`~autograder.grading.imports.import_before_threads`).
"""

import nbformat  # noqa: F401
import torch  # noqa: F401

import helpers  # noqa: F401
from autograder.grading import grade, jobs, scoring  # noqa: F401
from autograder.grading.imports import import_before_threads

import_before_threads(feedback=False)  # the grader writes the feedback

__all__: list[str] = []
