"""Runs ``python -m autograder`` with failures of the grading machine made to happen for real:
``PGRADE_FAULT=<kind>[:<student>[:<times>]],... python -m tests.faults grade ...``.

Nothing here fakes a result: each kind breaks the real thing the grader depends on, and the grader
must notice it by itself.

* ``hide-python``: every sandbox also mounts an empty folder over the interpreter's own folder, so bubblewrap
  cannot start the kernels' Python (what a course cloned under ``/tmp`` used to meet).
* ``kill-server:<student>``: the warm kernel server of the job slot (bubblewrap and everything in it) is
  killed (SIGKILL) after the job folder is ready and before the kernel is asked for.
* ``kill-kernel:<student>``: the kernel is killed (SIGKILL) as soon as it is forked, before it answers anything.
* ``drop-limits``: the warm kernel servers fork every kernel without the limits the grader asked for.
* ``delete-slot[:<student>]``: the job slot's folder is deleted (by "another program") once the kernel has
  ended; without a student, in the preflight's runs.

``<times>`` (default 1): how many of that submission's jobs are hit; the later ones run normally.
Imported by a Dask worker (``dask worker ... --preload tests.faults``) with ``PGRADE_FAULT=kill-worker:<student>``,
it makes the worker process kill itself (SIGKILL) when it starts grading ``<student>``, while the file
``PGRADE_FAULT_MARK`` exists.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading

__all__ = ["install", "main"]

_current = threading.local()
_lock = threading.Lock()


class _Target:
    """The submission a fault hits, and how many of its jobs are left to hit."""

    def __init__(self, student: str | None, times: int):
        self.student, self.left = student, times

    def hit(self) -> bool:
        if getattr(_current, "student", None) != self.student:
            return False
        with _lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, as this process sees them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _track_student() -> None:
    from autograder.grading import notebook_job as jobs
    original = jobs._run_in_slot

    def run_in_slot(sub, *args, **kwargs):
        _current.student = sub.student_id
        try:
            return original(sub, *args, **kwargs)
        finally:
            _current.student = None
    jobs._run_in_slot = run_in_slot


def install(spec: str) -> None:
    """Break the grading machine in the ways ``spec`` names (``kind[:student[:times]],...``; the module's text)."""
    for one in filter(None, spec.split(",")):
        kind, student, times = (one.split(":") + [None, "1"])[:3]
        _install(kind, _Target(student or None, int(times or 1)))


def _install(kind: str, target: _Target) -> None:
    if kind == "hide-python":
        from autograder.runner.sandbox import Sandbox
        command = Sandbox.command

        def hiding(self, cmd, *args, **kwargs):
            argv = command(self, cmd, *args, **kwargs)
            cut = argv.index("--")
            return [*argv[:cut], "--tmpfs", os.path.dirname(os.path.abspath(sys.executable)), *argv[cut:]]
        Sandbox.command = hiding
    elif kind == "kill-server":
        _track_student()
        from autograder.grading import notebook_job as jobs
        prepare = jobs.prepare_job

        def prepare_then_kill(slot, nb, run):
            job = prepare(slot, nb, run)
            if slot.server is not None and target.hit():
                for pid in [slot.server._proc.pid, *_descendants(slot.server._proc.pid)]:
                    os.kill(pid, signal.SIGKILL)  # bubblewrap and the server it runs in its own session
                slot.server._proc.wait()
            return job
        jobs.prepare_job = prepare_then_kill
    elif kind == "kill-kernel":
        _track_student()
        from autograder.runner.kernels import ForkServer
        spawn = ForkServer.spawn

        def spawn_then_kill(self, *args, **kwargs):
            pid = spawn(self, *args, **kwargs)
            if target.hit():
                os.kill(pid, signal.SIGKILL)
            return pid
        ForkServer.spawn = spawn_then_kill
    elif kind == "drop-limits":
        from autograder.runner.kernels import ForkServer
        spawn = ForkServer.spawn

        def spawn_without_limits(self, argv, env, cwd, log, limits=None):
            return spawn(self, argv, env, cwd, log, limits=None)
        ForkServer.spawn = spawn_without_limits
    elif kind == "delete-slot":
        _track_student()
        from autograder.runner.slots import Slot
        settle = Slot.settle

        def delete_then_settle(self):
            if target.hit():
                shutil.rmtree(self.folder)
            settle(self)
        Slot.settle = delete_then_settle
    elif kind == "kill-worker":
        from autograder.cluster import worker
        task = worker.grade_task

        def grade_or_die(student_id, *args, **kwargs):
            mark = os.environ.get("PGRADE_FAULT_MARK")
            if student_id == target.student and mark and os.path.exists(mark):
                os.kill(os.getpid(), signal.SIGKILL)
            return task(student_id, *args, **kwargs)
        worker.grade_task = grade_or_die
    else:
        raise ValueError(f"unknown PGRADE_FAULT {kind!r}")


def main(argv: list[str]) -> int:
    install(os.environ["PGRADE_FAULT"])
    from autograder.cli import main as grader
    return grader(argv)


if os.environ.get("PGRADE_FAULT", "").startswith("kill-worker") and __name__ != "__main__":
    install(os.environ["PGRADE_FAULT"])  # imported by a Dask worker's --preload

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
