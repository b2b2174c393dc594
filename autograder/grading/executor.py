"""Where a grading run's notebooks run: the interface between the run (:mod:`autograder.grading.batch`) and
this machine's job slots (:class:`autograder.grading.local.LocalSlots`) or a Dask cluster's workers
(:class:`autograder.cluster.client.DaskCluster`).

The command line picks one and passes its ``open`` to :func:`autograder.grading.grade.grade`; the run then
talks to it only through :class:`Executor`, so grading never imports the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the run's types; importing them needs torch
    from ..config import GradeConfig
    from .jobs import JobContext
    from .results import StudentGrade
    from .submission import Submission

__all__ = ["Executor", "OpenExecutor"]


class Executor(Protocol):
    """Runs and scores a grading run's notebooks; a context manager (``close`` on exit).

    The run calls, in order: :meth:`prepare` (before its own imports, so that remote workers start meanwhile),
    :meth:`preflight`, :meth:`store` and :meth:`share` (the reference's measurements), :meth:`score` once per
    submission that must run (from several threads), :meth:`restarts` and :meth:`limits_in_force`; the opener's
    caller then closes it.
    """

    #: A private folder for the files the run shares with its jobs (the grading data); removed by :meth:`close`.
    work: Path
    #: Where the notebooks ran, for the run's last line ("with --jobs 2", "on the Dask cluster local:2").
    where: str

    def prepare(self, cfg: GradeConfig, data_file: Path) -> int:
        """Get ready for this run (``data_file``: the grading data); how many submissions to keep in flight."""

    def preflight(self, context: JobContext) -> float | None:
        """Check every slot can run a notebook's set-up (seconds taken), or ``None`` when :meth:`prepare` did.
        Raises :class:`~autograder.grading.errors.PreflightError`."""

    def store(self, device_kind: str):
        """Where measurements on ``device_kind`` are shared with remote workers (a
        :class:`~autograder.grading.measure.ReferenceMeasurements`'s ``shared``), or ``None`` when nothing is remote."""

    def share(self, ref: Future, part3: bool) -> None:
        """Give remote workers the reference's measurements once ``ref`` is done (and, when part 3 is graded,
        its starting models'); nothing for local slots."""

    def score(self, sub: Submission, nb_bytes: bytes, context: JobContext) -> StudentGrade:
        """Run and score one submission (a :data:`~autograder.grading.jobs.Scorer`)."""

    def restarts(self) -> int:
        """Kernel servers restarted so far (a notebook killed one, say)."""

    def limits_in_force(self) -> dict:
        """The memory, process and CPU-time limits the notebooks run under, for ``timings.json``
        (:meth:`LimitsInForce.as_dict <autograder.runner.limits.LimitsInForce.as_dict>`; a cluster's by worker)."""

    def close(self) -> None:
        """Stop what :meth:`prepare` and the opener started and remove :attr:`work`."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...


#: ``(cfg, progress) -> Executor``: opens an executor for ``cfg`` (``LocalSlots.open``, ``DaskCluster.open``).
OpenExecutor = Callable[["GradeConfig", bool], Executor]
