"""This machine's job slots as a grading run's :class:`~autograder.grading.executor.Executor`.

:meth:`LocalSlots.open` makes a private folder and ``--jobs`` job slots in it, each with its own sandbox,
limits and warm kernel server (:class:`autograder.runner.slots.SlotPool`); the servers start at once
and import torch while the grader imports its own libraries. The limits are the strongest this user may set
(:func:`autograder.runner.limits.choose_limits`: cgroups as root or in a delegated cgroup, else rlimits); the
run's first lines say which (:attr:`LocalSlots.limits`). A cluster worker opens its slots the same way
(:mod:`autograder.cluster.worker`).

Runs in the grader's process (or a cluster worker's). Importing this module imports no torch (the command line
opens the slots first).
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import os
import shutil
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import REPO_ROOT, GradeConfig
from ..runner.limits import LimitsInForce, choose_limits, cpu_seconds
from ..runner.sandbox import Sandbox
from ..runner.slots import SlotPool

if TYPE_CHECKING:  # torch comes with them
    from .jobs import JobContext
    from .results import StudentGrade
    from .submission import Submission

__all__ = ["LocalSlots", "PRELOAD", "private_folder", "open_slots"]

#: Modules each slot's warm kernel server imports before it forks: what every notebook imports. Torch's
#: optimisers import ``torch._dynamo`` (with sympy) when the first one is made, about 1.5 s of every
#: notebook's fine-tuning cell on a 2-core machine, so the server imports it once instead.
PRELOAD = ("torch", "torch.nn.utils.prune", "numpy", "matplotlib", "matplotlib.pyplot", "helpers", "helpers.checks",
           "helpers.notebook", "helpers.plots", "helpers.models", "matplotlib_inline.backend_inline", "ipywidgets",
           "torch._dynamo")
_SLOT_PREFIX = "pgrade-"
#: The lock file a live grader holds in its private folder (:func:`private_folder`).
_LOCK = ".lock"
#: The longest temporary folder the slots may lie in: a kernel's socket path (``<tmp>/pgrade-<pid>-slots-<random>/s<i>/
#: job/ipc-<port>``) must fit the 107 bytes of a Unix socket's name.
_MAX_BASE = 48


class LocalSlots:
    """``cfg.jobs`` sandboxed job slots on this machine (an :class:`~autograder.grading.executor.Executor`).

    Example::

        with LocalSlots.open(cfg) as slots:
            grade_all(cfg, start, slots, progress=True)
    """

    def __init__(self, cfg: GradeConfig, root: Path, lock: int, pool: SlotPool, limits: LimitsInForce):
        self.work, self._lock, self.pool = root, lock, pool
        self.where = f"with --jobs {cfg.jobs}"
        #: The limits the slots' kernels run under (the run's first lines, ``timings.json``).
        self.limits = limits

    @classmethod
    def open(cls, cfg: GradeConfig, progress: bool = True) -> LocalSlots:
        """Start the slots' kernel servers (they keep starting after this returns) and print the limits they
        run under. Raises :class:`~autograder.runner.sandbox.SandboxError` when the sandbox cannot be built here
        and ``cfg.sandbox`` is on, and :class:`ValueError` for a ``cfg`` with a cluster (its workers have the
        slots: :meth:`autograder.cluster.client.DaskCluster.open`)."""
        if cfg.cluster is not None:
            raise ValueError(f"cfg.cluster is {cfg.cluster!r}: grade on a cluster with "
                             "autograder.cluster.client.DaskCluster.open (the command line picks it)")
        root, lock = private_folder("slots")
        try:
            pool, limits = open_slots(cfg, root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            os.close(lock)
            raise
        for line in limits.lines():
            print(line, flush=True)
        return cls(cfg, root, lock, pool, limits)

    def __enter__(self) -> LocalSlots:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self, cfg: GradeConfig, data_file: Path) -> int:
        """Nothing to prepare: the slots are open; ``cfg.jobs`` submissions in flight."""
        return cfg.jobs

    def preflight(self, context: JobContext, where: str = "") -> float:
        """Run the preflight notebook in every slot (:func:`autograder.grading.preflight.preflight`)."""
        from .preflight import preflight  # noqa: PLC0415 - torch: the run has it by now; not when the slots open
        return preflight(self.pool.slots, context, where)

    def store(self, device_kind: str) -> None:
        """Nothing is remote: every measurement stays in this process's cache."""
        return None

    def share(self, ref: Future, part3: bool) -> None:
        """Nothing is remote: the slots' scores read ``ref`` in this process."""

    def score(self, sub: Submission, nb_bytes: bytes, context: JobContext) -> StudentGrade:
        """Run and score ``sub`` in a free slot (:func:`autograder.grading.notebook_job.run_and_score`)."""
        from . import notebook_job  # noqa: PLC0415 - torch: the run has it by now; not when the slots open
        return notebook_job.run_and_score(sub, nb_bytes, context, self.pool)

    def restarts(self) -> int:
        return sum(s.restarts for s in self.pool.slots)

    def limits_in_force(self) -> dict:
        return self.limits.as_dict()

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
            os.close(self._lock)


def private_folder(kind: str) -> tuple[Path, int]:
    """A new private folder for this process's job slots (``kind``: what for, in its name), and the file
    descriptor of the lock it holds on it until it closes it. Folders of graders that were killed are removed
    first (:func:`_remove_stale_folders`)."""
    _remove_stale_folders()
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) > _MAX_BASE:  # the kernels' Unix sockets lie in it: their paths have at most 107 bytes
        if not os.access("/tmp", os.W_OK):
            raise OSError(f"the temporary folder {base} (TMPDIR) is too long a path for the kernels' sockets, and /tmp "
                          f"cannot be written: set TMPDIR to a folder of at most {_MAX_BASE} bytes")
        base = "/tmp"
    root = Path(tempfile.mkdtemp(prefix=f"{_SLOT_PREFIX}{os.getpid()}-{kind}-", dir=base))
    root.chmod(0o700)
    lock = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    return root, lock


def open_slots(cfg: GradeConfig, root: Path) -> tuple[SlotPool, LimitsInForce]:
    """``cfg.jobs`` job slots under ``root``, sandboxed and limited as ``cfg`` says (their servers start now),
    and the limits they run under. Raises :class:`~autograder.runner.sandbox.SandboxError` when the sandbox
    cannot be built here."""
    sandbox = _sandbox(cfg) if cfg.sandbox else None
    names = [f"pruning-grader-{os.getpid()}-s{i}" for i in range(cfg.jobs)]
    cgroups, rlimits, limits = choose_limits(names, cfg.memory_limit, cfg.pids_limit,
                                             cpu_seconds(cfg.timeout, cfg.threads_per_job), sandbox is not None,
                                             cuda=sandbox is not None and sandbox.cuda)
    pool = SlotPool(root, cfg.jobs, cfg.threads_per_job, sandbox, cgroups, cfg.warm_kernels, cfg.out, PRELOAD,
                    rlimits)
    return pool, limits


def _sandbox(cfg: GradeConfig) -> Sandbox:
    """The run's sandbox: the Python installation and ``helpers``; none of the course's own files."""
    hidden = [cfg.submissions, cfg.out, cfg.model.parent, Path(cfg.data_root), REPO_ROOT / "autograder",
              REPO_ROOT / "assignment"]
    helpers_dir = Path(importlib.util.find_spec("helpers").origin).resolve().parent  # without importing torch
    cuda = (cfg.device or "").startswith("cuda") or (cfg.device is None and bool(glob.glob("/dev/nvidia[0-9]*")))
    return Sandbox.build(hidden, packages=[helpers_dir], cuda=cuda)


def _remove_stale_folders() -> None:
    """Delete the private folders of graders and workers that were killed: a folder whose lock nobody holds
    (``flock`` works across PID namespaces, so a grader in a container never takes a live one for dead), or,
    for a folder without a lock, one whose process is gone and that has not changed for a day."""
    for folder in {p for base in {tempfile.gettempdir(), "/tmp"} for p in Path(base).glob(f"{_SLOT_PREFIX}*-*")}:
        try:
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.geteuid():
                continue
            lock = folder / _LOCK
            if lock.exists():
                fd = os.open(lock, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use
                finally:
                    os.close(fd)
                if time.time() - folder.stat().st_mtime < 60:
                    continue  # perhaps made a moment ago, its lock not taken yet
            else:
                pid = folder.name[len(_SLOT_PREFIX):].split("-", 1)[0]
                if not pid.isdigit() or Path(f"/proc/{pid}").exists() or time.time() - folder.stat().st_mtime < 86400:
                    continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
