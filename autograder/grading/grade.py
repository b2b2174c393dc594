"""Runs in the grader's process: ``python -m autograder grade``, grading every submission of a class.

For each submission, in ``jobs`` parallel slots (:mod:`autograder.runner.slots`):

1. reuse its grade from the journal (:mod:`autograder.grading.journal`) if the notebook, model, data and
   settings are unchanged since it was graded (``--regrade`` turns this off);
2. read a copy of the notebook (invalid JSON -> ``error: ...``) and restore the instructor's
   cells (:mod:`autograder.grading.submission`); the submitted file itself is only ever read;
3. run it in a fresh kernel forked warm inside the slot's sandbox (:mod:`autograder.runner.sandbox`,
   :mod:`autograder.runner.kernels`) under the time, memory and process limits, in the slot's job
   folder with its own copy of the grading data (``data.npz``), of the model and of the export
   code; the hidden-test regions save the student's models there (:mod:`autograder.grading.collect`);
4. score it in this process from those files alone (:mod:`autograder.grading.scoring`);
5. record it in nbgrader's gradebook, write its feedback, and append it to the journal.

Then the scores are written into the gradebook, and ``grades.csv`` and a summary table are
produced. A broken, hanging or hostile submission only ever affects its own row.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..config import REPO_ROOT, GradeConfig
from ..runner.limits import LimitsUnavailable, SlotLimits
from ..runner.sandbox import Sandbox
from ..runner.slots import SlotPool
from .errors import InputError

__all__ = ["grade", "check_writable", "open_slots", "slot_root", "PRELOAD"]

#: Modules each slot's warm kernel server imports before it forks: what every notebook imports. Torch's
#: optimisers import ``torch._dynamo`` (with sympy) when the first one is made, 1.5 s of every notebook's
#: fine-tuning cell on this project's machine, so the server imports it once instead.
PRELOAD = ("torch", "torch.nn.utils.prune", "numpy", "matplotlib", "matplotlib.pyplot", "helpers", "helpers.checks",
           "helpers.notebook", "helpers.plots", "helpers.models", "matplotlib_inline.backend_inline", "ipywidgets",
           "torch._dynamo")
_SLOT_PREFIX = "pgrade-"


def grade(cfg: GradeConfig, progress: bool = True) -> list:
    """Grade all submissions of ``cfg``; write the CSV, feedback, gradebook and journal; return the
    :class:`~autograder.grading.report.StudentGrade` of every student.

    The job slots' kernel servers start first, so that they import torch while this process
    imports its own libraries and prepares the data (:mod:`autograder.grading.batch`).
    Local job slots only: :func:`autograder.cluster.grade.grade_on_cluster` grades on a Dask cluster.
    Raises :class:`~autograder.runner.sandbox.SandboxError` when the sandbox cannot be built here
    and ``cfg.sandbox`` is on (the message says why; ``--no-sandbox`` runs without),
    :class:`~autograder.grading.errors.InputError` when an argument cannot be used and
    :class:`~autograder.grading.errors.PreflightError` when the job slots cannot run a notebook's set-up
    (:mod:`autograder.grading.preflight`): in all three cases before any row is written. A submission the
    machine fails on is retried, then its row says ``not graded`` (:mod:`autograder.grading.jobs`).
    """
    if cfg.cluster is not None:
        raise ValueError(f"cfg.cluster is {cfg.cluster!r}: grade on a cluster with "
                         "autograder.cluster.grade.grade_on_cluster (the command line picks it)")
    start = time.perf_counter()
    check_writable(cfg.out)
    root = slot_root()
    slots = None
    try:
        slots, capped = open_slots(cfg, root)
        from .batch import grade_all  # torch, nbformat, nbgrader: while the servers start
        return grade_all(cfg, start, root, slots, progress, address_space_limit=capped)
    finally:
        if slots is not None:
            slots.close()
        shutil.rmtree(root, ignore_errors=True)


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


def slot_root() -> Path:
    """A new private folder for a process's job slots (stale ones of killed graders are removed first)."""
    _remove_stale_slot_folders()
    root = Path(tempfile.mkdtemp(prefix=f"{_SLOT_PREFIX}{os.getpid()}-"))  # short: socket paths <= 107 bytes
    root.chmod(0o700)
    return root


def open_slots(cfg: GradeConfig, root: Path) -> tuple[SlotPool, bool]:
    """``cfg.jobs`` job slots under ``root``, sandboxed and limited as ``cfg`` says (their servers start now).

    Returns the pool and whether kernels need an address-space cap instead (a sandbox without
    cgroups). Raises
    :class:`~autograder.runner.sandbox.SandboxError` when the sandbox cannot be built here.
    """
    sandbox = _sandbox(cfg) if cfg.sandbox else None
    limits, why = _limits(cfg, sandbox)
    if why:
        print(f"warning: no memory or process limits ({why})", file=sys.stderr)
    pool = SlotPool(root, cfg.jobs, cfg.threads_per_job, sandbox, limits, cfg.warm_kernels, cfg.out, PRELOAD)
    return pool, sandbox is not None and bool(why)


def _sandbox(cfg: GradeConfig) -> Sandbox:
    """The run's sandbox: the Python installation and ``helpers``; none of the course's own files."""
    hidden = [cfg.submissions, cfg.out, cfg.model.parent, Path(cfg.data_root), REPO_ROOT / "autograder",
              REPO_ROOT / "assignment"]
    helpers_dir = Path(importlib.util.find_spec("helpers").origin).resolve().parent  # without importing torch
    cuda = cfg.device == "cuda" or (cfg.device is None and bool(glob.glob("/dev/nvidia[0-9]*")))
    return Sandbox.build(hidden, packages=[helpers_dir], cuda=cuda)


def _limits(cfg: GradeConfig, sandbox: Sandbox | None) -> tuple[list[SlotLimits | None], str | None]:
    """One cgroup per slot, or none and the reason (printed as a warning)."""
    if sandbox is None:
        return [None] * cfg.jobs, None
    made: list[SlotLimits | None] = []
    try:
        for i in range(cfg.jobs):
            made.append(SlotLimits.create(f"pruning-grader-{os.getpid()}-s{i}", cfg.memory_limit, cfg.pids_limit))
    except (LimitsUnavailable, OSError) as exc:
        for limits in made:
            limits.close()
        return [None] * cfg.jobs, str(exc)
    return made, None


def _remove_stale_slot_folders() -> None:
    """Delete slot folders left by graders that were killed (their pid is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SLOT_PREFIX}*-*"):
        pid = folder.name[len(_SLOT_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
