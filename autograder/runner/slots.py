"""The job slots of a grading run, each with its own sandbox.

A run has ``--jobs`` slots. Each slot is a folder (bound, alone, as the writable part of its
sandbox), a cgroup with the memory and process limits (:mod:`autograder.runner.limits`), and a warm
kernel server running as PID 1 of its own sandbox (:mod:`autograder.runner.kernels`). Jobs take a
slot, run in ``<slot>/job``, and give it back; the slot's server then kills whatever the job
left and empties the sandbox's scratch folders, and the job folder is deleted, so the next
job starts clean. A server that died (killed by a memory limit, say) is started again.

Without a sandbox (``--no-sandbox``) slots are plain folders and kernels are killed by
process group, as before.

Runs in the grader's process.
"""

from __future__ import annotations

import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .kernels import ForkServer
from .limits import SlotLimits
from .sandbox import Sandbox

__all__ = ["Slot", "SlotPool"]


@dataclass
class Slot:
    """One job slot: its folder, limits and (warm kernels) server."""

    index: int
    folder: Path
    log: Path
    threads: int
    sandbox: Sandbox | None
    limits: SlotLimits | None
    warm: bool
    preload: tuple[str, ...] = ()
    server: ForkServer | None = None
    restarts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def job(self) -> Path:
        """The job folder (inside the slot folder, recreated for each job)."""
        return self.folder / "job"

    def start(self) -> Slot:
        """Start the slot's server (if warm kernels are used), without waiting for it."""
        if self.warm and ForkServer.supported():
            self.server = ForkServer.for_threads(self.threads, self.log, self.sandbox, self.folder, self.limits,
                                                 self.preload)
        elif self.limits is not None:
            self.limits.arm()  # spawned kernels: the limit also covers their own imports
        return self

    def fresh_job(self) -> Path:
        """An empty job folder, and a live server (restarted if it died)."""
        shutil.rmtree(self.job, ignore_errors=True)
        self.job.mkdir(parents=True)
        if self.server is not None and not self.server.alive():
            self.restart()
        return self.job

    def restart(self) -> None:
        if self.server is not None:
            self.server.close()
        self.restarts += 1
        self.start()

    def clean(self) -> None:
        """After a job: kill what it left (sandboxed), delete its folder."""
        if self.server is not None:
            try:
                self.server.reset()
            except (OSError, RuntimeError, ValueError):
                self.restart()
        shutil.rmtree(self.job, ignore_errors=True)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        shutil.rmtree(self.job, ignore_errors=True)
        if self.limits is not None:
            self.limits.close()


class SlotPool:
    """``n`` slots under ``root``; :meth:`take` and :meth:`give` them back. Thread-safe."""

    def __init__(self, root: Path, n: int, threads: int, sandbox: Sandbox | None,
                 limits: list[SlotLimits | None], warm: bool, log_dir: Path, preload: tuple[str, ...] = ()):
        self.slots = []
        for i in range(n):
            folder = root / f"s{i}"
            folder.mkdir(parents=True, exist_ok=True)
            slot = Slot(i, folder, log_dir / f"kernels-{i}.log", threads, sandbox, limits[i], warm, preload)
            self.slots.append(slot.start())
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in self.slots:
            self._free.put(slot)

    def take(self) -> Slot:
        return self._free.get()

    def give(self, slot: Slot) -> None:
        self._free.put(slot)

    def close(self) -> None:
        for slot in self.slots:  # all servers exit at once, then each is waited for
            if slot.server is not None:
                slot.server.stop()
        for slot in self.slots:
            slot.close()
