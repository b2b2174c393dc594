"""Runs in the grader's process: ``python -m autograder grade --cluster ADDRESS``, grading a class on a Dask
cluster instead of local job slots. Everything but where notebooks run is :mod:`autograder.grading`'s: the
journal, gradebook, feedback and ``grades.csv`` stay with this process (:func:`autograder.grading.batch.grade_all`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..config import GradeConfig
from ..grading.grade import check_writable

__all__ = ["grade_on_cluster"]


def grade_on_cluster(cfg: GradeConfig, progress: bool = True) -> list:
    """Grade all submissions of ``cfg`` on the cluster ``cfg.cluster``; return every student's grade.

    Connects to the cluster (``local:N``: starts its processes) in a thread while this process imports torch,
    nbformat and nbgrader and what its grading threads would import late
    (:func:`~autograder.grading.imports.import_before_threads`), then grades on it. Raises
    :class:`~autograder.cluster.ClusterError` when the cluster cannot grade, and what
    :func:`autograder.grading.grade.grade` raises for bad input or a failed preflight.
    """
    start = time.perf_counter()
    check_writable(cfg.out)
    from .client import DaskCluster  # light: no torch
    work = Path(tempfile.mkdtemp(prefix="pgrade-client-"))
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgrade-connect") as starter:
            connecting = starter.submit(DaskCluster.connect, cfg.cluster, progress)
            try:
                from ..grading.batch import grade_all
                from ..grading.imports import import_before_threads
                import_before_threads()  # a local:N cluster's fork server imports as much before its workers start
            except BaseException:
                if connecting.exception() is None:
                    connecting.result().close()
                raise
        with connecting.result() as cluster:
            return grade_all(cfg, start, work, None, progress, cluster=cluster)
    finally:
        shutil.rmtree(work, ignore_errors=True)
