"""The job slots of a grading run, each with its own sandbox.

A run has ``--jobs`` slots. Each slot is a folder (bound, alone, as the writable part of its
sandbox), a private folder beside it for the grader's own files of the job, the limits
(:mod:`autograder.runner.limits`: a cgroup, or rlimits each kernel sets on itself), and a warm
kernel server running as PID 1 of its own sandbox (:mod:`autograder.runner.kernels`). Jobs take a
slot, run in ``<slot>/job``, and give it back. Once a job's kernel has ended, :meth:`Slot.settle` has
the slot's server kill whatever the job left and takes the folder back (:func:`reclaim`); after the job,
:meth:`Slot.clean` empties the slot folder, so the next job starts clean and finds nothing of the last.
A server that died (killed by a memory limit, say) is started again.

Without a sandbox (``--no-sandbox``) slots are plain folders and kernels are killed by
process group, as before.

Runs in the grader's process.
"""

from __future__ import annotations

import os
import queue
import shutil
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .cgroups import SlotCgroup
from .kernels import ForkServer
from .limits import KernelRlimits
from .sandbox import Sandbox

__all__ = ["Slot", "SlotPool", "reclaim"]


def reclaim(folder: Path) -> None:
    """Take ``folder`` back from a notebook that has ended: every folder in it searchable and writable by this
    user again, every file readable and writable, every symbolic link removed.

    A notebook may change the modes of its own folder and files, which root ignores but an ordinary user
    does not, or leave links to files of the grader's user, which the grader must never read or change in
    the notebook's name. Errors are ignored: what cannot be taken back is then missing to the grader.
    """
    try:
        if folder.is_symlink() or not folder.is_dir():
            return
        os.chmod(folder, 0o700)
    except OSError:
        return
    for top, dirs, files in os.walk(folder):  # top down: each folder's mode is set before it is listed
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    os.unlink(path)
                elif stat.S_ISDIR(mode):
                    os.chmod(path, 0o700)
                elif stat.S_ISREG(mode):
                    os.chmod(path, stat.S_IMODE(mode) | 0o600)
            except OSError:
                pass
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]


def _empty(folder: Path) -> None:
    """Remove everything inside ``folder`` (taken back first), and keep the folder."""
    reclaim(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except OSError:
                pass


@dataclass
class Slot:
    """One job slot: its folders, limits and (warm kernels) server.

    Attributes:
        folder: the slot folder, the one writable folder of its sandbox (``job`` lies inside).
        private: the grader's own folder for the slot's jobs (the executed notebook), outside every sandbox.
        cgroup: the slot's cgroup, or ``None``.
        rlimits: the limits each of its kernels sets on itself, or ``None``.
    """

    index: int
    folder: Path
    log: Path
    threads: int
    sandbox: Sandbox | None
    cgroup: SlotCgroup | None
    warm: bool
    preload: tuple[str, ...] = ()
    rlimits: KernelRlimits | None = None
    server: ForkServer | None = None
    restarts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def job(self) -> Path:
        """The job folder (inside the slot folder, recreated for each job)."""
        return self.folder / "job"

    @property
    def private(self) -> Path:
        """The grader's own folder for this slot's jobs (beside the slot folder; no sandbox shows it)."""
        return self.folder.with_name(self.folder.name + "-grader")

    def start(self) -> Slot:
        """Start the slot's server (if warm kernels are used), without waiting for it."""
        self.folder.mkdir(parents=True, exist_ok=True)  # the server's sandbox is built on it
        if self.warm and ForkServer.supported():
            self.server = ForkServer.for_threads(self.threads, self.log, self.sandbox, self.folder, self.cgroup,
                                                 self.preload)
        elif self.cgroup is not None:
            self.cgroup.arm()  # spawned kernels: the limit also covers their own imports
        return self

    def fresh_job(self) -> Path:
        """An empty job folder in an otherwise empty slot folder, and a live server (restarted if it died, or if
        the slot folder its sandbox was built on is gone)."""
        lost = not self.folder.is_dir()
        _empty(self.folder)
        _empty(self.private)
        self.private.mkdir(exist_ok=True)
        self.job.mkdir(parents=True)
        if self.server is not None and (lost or not self.server.alive()):
            self.restart()
        return self.job

    def restart(self) -> None:
        if self.server is not None:
            self.server.close()
        self.restarts += 1
        self.start()

    def settle(self) -> None:
        """Once a job's kernel has ended: kill whatever the job left in the sandbox (a server that cannot is
        stopped, with its sandbox), then take the slot folder back (:func:`reclaim`), so that nothing of the
        notebook's runs, or changes its files, while the grader reads them."""
        if self.server is not None:
            try:
                self.server.reset()
            except (OSError, RuntimeError, ValueError):
                self.server.close()  # clean() starts a new one
        reclaim(self.folder)

    def clean(self) -> None:
        """After a job: kill what it left (sandboxed), empty the slot folder."""
        if self.server is not None:
            try:
                self.server.reset()
            except (OSError, RuntimeError, ValueError):
                self.restart()
        _empty(self.folder)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        _empty(self.folder)
        if self.cgroup is not None:
            self.cgroup.close()


class SlotPool:
    """``n`` slots under ``root``; :meth:`take` and :meth:`give` them back. Thread-safe.

    ``cgroups``: one per slot (or ``None``); ``rlimits``: what every kernel sets on itself (or ``None``).
    """

    def __init__(self, root: Path, n: int, threads: int, sandbox: Sandbox | None,
                 cgroups: list[SlotCgroup | None], warm: bool, log_dir: Path, preload: tuple[str, ...] = (),
                 rlimits: KernelRlimits | None = None):
        self.slots = []
        for i in range(n):
            folder = root / f"s{i}"
            folder.mkdir(parents=True, exist_ok=True)
            slot = Slot(i, folder, log_dir / f"kernels-{i}.log", threads, sandbox, cgroups[i], warm, preload,
                        rlimits)
            slot.private.mkdir(exist_ok=True)
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
