"""Imported by a Dask worker when it starts (``distributed.worker.preload``): the libraries grading needs.

A ``local:N`` cluster's workers are forked from one server that imported this module once
(:mod:`autograder.cluster.client`), instead of each importing it when the run's
:class:`~autograder.cluster.worker.GradingPlugin` arrives; a hand-started worker imports it as it starts
with ``dask worker ADDRESS --preload autograder.cluster.preload``. Importing it imports the grading code,
torch, and what the task threads would otherwise import late, and renders one small page
(:func:`~autograder.grading.warm_imports.import_before_threads`: a worker renders each executed notebook for
its feedback page); it has no other effect.
"""

import nbformat  # noqa: F401
import torch  # noqa: F401

import helpers  # noqa: F401
from autograder.grading import batch, local, notebook_job  # noqa: F401
from autograder.grading.warm_imports import import_before_threads

import_before_threads()
