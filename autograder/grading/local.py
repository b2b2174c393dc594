"""This machine's job slots as a grading run's :class:`~autograder.grading.executor.Executor`.

:meth:`LocalSlots.open` makes a private folder and ``--jobs`` job slots in it, each with its own sandbox,
cgroup limits and warm kernel server (:class:`autograder.runner.slots.SlotPool`); the servers start at once
and import torch while the grader imports its own libraries. A cluster worker opens its slots the same way
(:mod:`autograder.cluster.worker`).

Runs in the grader's process (or a cluster worker's). Importing this module imports no torch (the command line
opens the slots first).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import REPO_ROOT, GradeConfig
from ..runner.limits import LimitsUnavailable, SlotLimits
from ..runner.sandbox import Sandbox
from ..runner.slots import SlotPool

if TYPE_CHECKING:  # torch comes with them
    from .jobs import JobContext
    from .results import StudentGrade
    from .submission import Submission

__all__ = ["LocalSlots", "PRELOAD", "slot_root", "open_slots", "address_space_cap"]

#: Modules each slot's warm kernel server imports before it forks: what every notebook imports. Torch's
#: optimisers import ``torch._dynamo`` (with sympy) when the first one is made, about 1.5 s of every
#: notebook's fine-tuning cell on a 2-core machine, so the server imports it once instead.
PRELOAD = ("torch", "torch.nn.utils.prune", "numpy", "matplotlib", "matplotlib.pyplot", "helpers", "helpers.checks",
           "helpers.notebook", "helpers.plots", "helpers.models", "matplotlib_inline.backend_inline", "ipywidgets",
           "torch._dynamo")
_SLOT_PREFIX = "pgrade-"


class LocalSlots:
    """``cfg.jobs`` sandboxed job slots on this machine (an :class:`~autograder.grading.executor.Executor`).

    Example::

        with LocalSlots.open(cfg) as slots:
            grade_all(cfg, start, slots, progress=True)
    """

    def __init__(self, cfg: GradeConfig, root: Path, pool: SlotPool, capped: bool):
        self.work, self.pool, self._capped = root, pool, capped
        self.where = f"with --jobs {cfg.jobs}"
        #: The kernels' address-space cap in bytes (a sandbox without cgroups, on the CPU), set by :meth:`prepare`.
        self.rlimit_as: int | None = None

    @classmethod
    def open(cls, cfg: GradeConfig, progress: bool = True) -> LocalSlots:
        """Start the slots' kernel servers (they keep starting after this returns). Raises
        :class:`~autograder.runner.sandbox.SandboxError` when the sandbox cannot be built here and
        ``cfg.sandbox`` is on, and :class:`ValueError` for a ``cfg`` with a cluster (its workers have the slots:
        :meth:`autograder.cluster.client.DaskCluster.open`)."""
        if cfg.cluster is not None:
            raise ValueError(f"cfg.cluster is {cfg.cluster!r}: grade on a cluster with "
                             "autograder.cluster.client.DaskCluster.open (the command line picks it)")
        root = slot_root()
        try:
            pool, capped = open_slots(cfg, root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(cfg, root, pool, capped)

    def __enter__(self) -> LocalSlots:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self, cfg: GradeConfig, data_file: Path) -> int:
        """Set the kernels' address-space cap if they need one; ``cfg.jobs`` submissions in flight."""
        import torch  # noqa: PLC0415 - loaded by the run by now; not when the slots open (start-up)

        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.rlimit_as = address_space_cap(cfg) if self._capped and device == "cpu" else None
        return cfg.jobs

    def preflight(self, context: JobContext, where: str = "") -> float:
        """Run the preflight notebook in every slot (:func:`autograder.grading.preflight.preflight`)."""
        from .preflight import preflight  # noqa: PLC0415 - torch: the run has it by now; not when the slots open
        return preflight(self.pool.slots, context, self.rlimit_as, where)

    def store(self, device_kind: str) -> None:
        """Nothing is remote: every measurement stays in this process's cache."""
        return None

    def share(self, ref: Future, part3: bool) -> None:
        """Nothing is remote: the slots' scores read ``ref`` in this process."""

    def score(self, sub: Submission, nb_bytes: bytes, context: JobContext) -> StudentGrade:
        """Run and score ``sub`` in a free slot (:func:`autograder.grading.notebook_job.run_and_score`)."""
        from . import notebook_job  # noqa: PLC0415 - torch: the run has it by now; not when the slots open
        return notebook_job.run_and_score(sub, nb_bytes, context, self.pool, self.rlimit_as)

    def restarts(self) -> int:
        return sum(s.restarts for s in self.pool.slots)

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


def address_space_cap(cfg: GradeConfig) -> int:
    """Without cgroups, on CPU only: the kernel's address space may grow by the memory limit (bytes)."""
    with open("/proc/self/status") as fh:
        vm = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)
    return vm + cfg.memory_limit


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
