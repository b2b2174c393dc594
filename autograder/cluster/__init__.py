"""Grading on a Dask cluster (``python -m autograder grade --cluster ADDRESS``).

:mod:`autograder.cluster.client` runs in the grader's process (connects, prepares the workers,
sends one task per submission); :mod:`autograder.cluster.worker` runs in each Dask worker
process (prepares once per run, then grades in its own sandboxed slots). The journal, gradebook,
feedback and ``grades.csv`` stay with the grader (:mod:`autograder.grading.batch`).
"""

__all__ = ["ClusterError", "ClusterLost", "WorkerLost"]


class ClusterError(RuntimeError):
    """The cluster cannot grade (no scheduler, no workers, a worker that cannot prepare); says why."""


class WorkerLost(RuntimeError):
    """Every worker that ran a submission's task died before it finished: a failure of the grading machine
    (``machine``), so the row is not graded and a rerun tries again."""

    machine = True


class ClusterLost(ClusterError):
    """The grader lost its scheduler mid-run: the run stops (``fatal``); what finished is journaled."""

    fatal = True
