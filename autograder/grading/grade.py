"""``python -m autograder grade``: grading every submission of a class.

For each submission, in ``--jobs`` parallel slots (:mod:`autograder.grading.local`) or on a cluster's workers
(:mod:`autograder.cluster`):

1. reuse its grade from the journal (:mod:`autograder.grading.journal`) if the notebook, model, data and
   settings are unchanged since it was graded (``--regrade`` turns this off);
2. read a copy of the notebook (invalid JSON -> ``error: ...``) and restore the instructor's
   cells (:mod:`autograder.grading.submission`); the submitted file itself is only ever read;
3. run it in a fresh kernel forked warm inside the slot's sandbox (:mod:`autograder.runner.sandbox`,
   :mod:`autograder.runner.kernels`) under the time, memory and process limits, in the slot's job
   folder with its own copy of the grading data (``data.npz``), of the model and of the export
   code; the hidden-test regions save the student's models there (:mod:`autograder.grading.kernel_export`);
4. score it in this process from those files alone (:mod:`autograder.grading.scoring`);
5. record it in nbgrader's gradebook, write its feedback, and append it to the journal.

Then the scores are written into the gradebook, and ``grades.csv`` and a summary table are
produced. A broken, hanging or hostile submission only ever affects its own row.

Runs in the grader's process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import GradeConfig
from .errors import InputError
from .executor import OpenExecutor
from .local import LocalSlots

__all__ = ["grade", "check_writable"]


def grade(cfg: GradeConfig, open_executor: OpenExecutor = LocalSlots.open, progress: bool = True) -> list:
    """Grade all submissions of ``cfg``; write the CSV, feedback, gradebook and journal; return the
    :class:`~autograder.grading.results.StudentGrade` of every student.

    ``open_executor(cfg, progress)`` opens where the notebooks run: this machine's job slots
    (:meth:`LocalSlots.open <autograder.grading.local.LocalSlots.open>`, the default) or a Dask cluster
    (:meth:`autograder.cluster.client.DaskCluster.open`, which the command line picks for ``--cluster``).
    The slots' kernel servers (or the cluster's workers) start first, so that they import torch while this
    process imports its own libraries and prepares the data (:mod:`autograder.grading.batch`).
    Raises :class:`~autograder.runner.sandbox.SandboxError` when the sandbox cannot be built here
    and ``cfg.sandbox`` is on (the message says why; ``--no-sandbox`` runs without),
    :class:`~autograder.grading.errors.InputError` when an argument cannot be used,
    :class:`~autograder.grading.errors.PreflightError` when the job slots cannot run a notebook's set-up
    (:mod:`autograder.grading.preflight`) and what the executor raises when it cannot start (a
    :class:`~autograder.cluster.ClusterError`): in every case before any row is written. A submission the
    machine fails on is retried, then its row says ``not graded`` (:mod:`autograder.grading.notebook_job`).
    """
    start = time.perf_counter()
    check_writable(cfg.out)
    with open_executor(cfg, progress) as executor:
        from .batch import grade_all  # noqa: PLC0415 - torch, nbformat, nbgrader: while the executor starts
        return grade_all(cfg, start, executor, progress)


def check_writable(out: Path) -> None:
    """Make ``out`` and check this process can write there (:class:`InputError` if not), before anything runs."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".pgrade-write-check-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {out} cannot be written ({exc.strerror or exc}): give a folder this user can "
                         "write to") from None
