"""Runs ``python -m autograder`` with one failure of the grading machine made to happen for real:
``PGRADE_FAULT=<kind> python -m tests.faults grade ...``.

Nothing here fakes a result: each kind breaks the real thing the grader depends on, and the grader
must notice it by itself.

* ``hide-python``: every sandbox also mounts an empty folder over the interpreter's own folder, so bubblewrap
  cannot start the kernels' Python (what a course cloned under ``/tmp`` used to meet).
* ``kill-server``: the warm kernel server of the job slot is killed (SIGKILL) after the job folder is ready
  and before the kernel is asked for, for submission ``PGRADE_FAULT_STUDENT``.
* ``kill-kernel``: the kernel of submission ``PGRADE_FAULT_STUDENT`` is killed (SIGKILL) as soon as it is
  forked, before it answers anything.

``PGRADE_FAULT_TIMES`` (default 1): how many of that submission's jobs are hit; the rest run normally.
Imported by a Dask worker (``dask worker ... --preload tests.faults``) with ``PGRADE_FAULT=kill-worker``, it
makes the worker process kill itself (SIGKILL) when it starts grading ``PGRADE_FAULT_STUDENT``, while the
file ``PGRADE_FAULT_MARK`` exists.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["install", "main"]

_current = threading.local()
_hits = {"n": 0}
_lock = threading.Lock()


def _hit() -> bool:
    """Should this job of the target submission fail (another of ``PGRADE_FAULT_TIMES`` hits)?"""
    if getattr(_current, "student", None) != os.environ.get("PGRADE_FAULT_STUDENT"):
        return False
    with _lock:
        if _hits["n"] >= int(os.environ.get("PGRADE_FAULT_TIMES", "1")):
            return False
        _hits["n"] += 1
        return True


def _track_student() -> None:
    from autograder.grading import jobs
    original = jobs._run_in_slot

    def run_in_slot(sub, *args, **kwargs):
        _current.student = sub.student_id
        try:
            return original(sub, *args, **kwargs)
        finally:
            _current.student = None
    jobs._run_in_slot = run_in_slot


def install(kind: str) -> None:
    """Break the grading machine in the way ``kind`` names (see the module's text)."""
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
        from autograder.grading import jobs
        prepare = jobs.prepare_job

        def prepare_then_kill(slot, nb, run):
            job = prepare(slot, nb, run)
            if slot.server is not None and _hit():
                os.killpg(slot.server._proc.pid, signal.SIGKILL)
                slot.server._proc.wait()
            return job
        jobs.prepare_job = prepare_then_kill
    elif kind == "kill-kernel":
        _track_student()
        from autograder.runner.kernels import ForkServer
        spawn = ForkServer.spawn

        def spawn_then_kill(self, *args, **kwargs):
            pid = spawn(self, *args, **kwargs)
            if _hit():
                os.kill(pid, signal.SIGKILL)
            return pid
        ForkServer.spawn = spawn_then_kill
    elif kind == "kill-worker":
        from autograder.cluster import worker
        task = worker.grade_task

        def grade_or_die(student_id, *args, **kwargs):
            mark = os.environ.get("PGRADE_FAULT_MARK")
            if student_id == os.environ.get("PGRADE_FAULT_STUDENT") and mark and os.path.exists(mark):
                os.kill(os.getpid(), signal.SIGKILL)
            return task(student_id, *args, **kwargs)
        worker.grade_task = grade_or_die
    else:
        raise ValueError(f"unknown PGRADE_FAULT {kind!r}")


def main(argv: list[str]) -> int:
    install(os.environ["PGRADE_FAULT"])
    from autograder.cli import main as grader
    return grader(argv)


if os.environ.get("PGRADE_FAULT") == "kill-worker" and __name__ != "__main__":
    install("kill-worker")  # imported by a Dask worker's --preload

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
