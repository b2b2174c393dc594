"""One prepared notebook in its own kernel, with time and output limits.

:func:`run_notebook` drives the kernel with nbclient from the calling thread (every cell
runs even after errors, like nbgrader's Execute). The kernel is forked by the run's warm
:class:`~autograder.runner.kernels.ForkServer` when one is given, or spawned the usual way
otherwise; either way it lives in its own process session, which is killed as a whole when
the notebook ends or its time is up. Whatever the student's code does (hang, exit, flood
output, ignore interrupts, start children), the grader gets back a status: ``ok``,
``timeout`` or ``error: ...``, and the executed notebook is written to ``dst``.

Runs in the grader's process.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_event_loop
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .channels import SteadyKernelManager
from .kernels import ForkServer
from .provisioning import ForkedKernelManager

__all__ = ["run_notebook", "cell_seconds", "StopRun", "MAX_CELL_OUTPUT_CHARS", "MAX_CELL_DISPLAY_CHARS", "STOPPED_HERE"]

#: Text output (streams, tracebacks) one cell may keep, in characters; the rest is dropped.
STOPPED_HERE = "autograder_stopped_here"
"""Cell metadata key the executed notebook gets on the cell that was running when the run stopped early."""
MAX_CELL_OUTPUT_CHARS = 20_000
#: Rich output (figures, HTML, widgets) one cell may keep, in characters of its JSON.
MAX_CELL_DISPLAY_CHARS = 5_000_000


def _kind_and_size(msg: dict) -> tuple[str, int]:
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return "text", len(content.get("text", ""))
    if msg.get("msg_type") == "error":
        return "text", sum(len(line) for line in content.get("traceback", []))
    return "display", len(json.dumps(content.get("data", {}), default=str))


class StopRun(Exception):  # noqa: N818 - not an error: a verdict
    """A ``stop_when`` verdict (:func:`run_notebook`): the run ends after this cell with :attr:`status`."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class _LimitedClient(NotebookClient):
    """nbclient that stops keeping a cell's outputs past the limits above, and stops the run after a cell
    that ``stop_when`` gives a status.

    Outputs are cut while they arrive, so a notebook printing or plotting in a loop cannot
    fill the grader's memory before its time is up.
    """

    def __init__(self, *args, stop_when: Callable[[nbformat.NotebookNode], str | None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._output_chars: dict[tuple[int, str], int] = {}
        self._stop_when = stop_when
        self.running: int | None = None  # the index of the cell being executed, None between cells

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.running = cell_index
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self.running = None
        status = self._stop_when(cell) if self._stop_when is not None else None
        if status:
            raise StopRun(status)
        return cell

    def output(self, outs, msg, display_id, cell_index):
        kind, size = _kind_and_size(msg)
        limit = MAX_CELL_OUTPUT_CHARS if kind == "text" else MAX_CELL_DISPLAY_CHARS
        used = self._output_chars.get((cell_index, kind), 0)
        if used > limit:
            return None
        used += size
        self._output_chars[(cell_index, kind)] = used
        if used > limit:
            note = nbformat.v4.new_output("stream", name="stderr",
                                          text=f"\n... {kind} output truncated by the autograder\n")
            outs.append(note)
            return note
        return super().output(outs, msg, display_id, cell_index)


def cell_seconds(nb) -> dict[str, float]:
    """Seconds each executed code cell ran, from nbclient's timing metadata, by nbgrader grade_id
    (``cell-<index>`` for cells without one)."""
    out = {}
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            gid = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell-{i}"
            out[gid] = round((end - start).total_seconds(), 3)
    return out


def _kill_group(pid: int | None) -> None:
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _cancel_pending_tasks() -> None:
    """End what an interrupted execution left in this thread's event loop (nbclient's output polling)."""
    loop = ensure_event_loop()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run_notebook(src: Path, dst: Path, env: dict[str, str], cell_timeout: float, timeout: float,
                 server: ForkServer | None = None, km: AsyncKernelManager | None = None,
                 after_kernel: Callable[[], None] | None = None,
                 stop_when: Callable[[nbformat.NotebookNode], str | None] | None = None) -> dict:
    """Execute ``src`` into ``dst`` in a fresh kernel; return ``{"status", "seconds", "cells", "notebook",
    "kernel_exit"}``.

    ``seconds`` is the whole run (kernel start to kernel end); ``cells`` is :func:`cell_seconds`;
    ``notebook`` is the executed notebook (what ``dst`` holds): a cell that never ran has no
    ``execution_count``, and the cell that was running when the run stopped early (the kernel died, a time or
    limit ran out) has ``metadata[STOPPED_HERE] = True``, whether or not its start was reported;
    ``kernel_exit`` is how the kernel ended, ``{"signal": int | None, "code": int | None}``
    (``None`` when its kernel manager cannot tell; a kernel killed at the end says ``SIGKILL``).

    Args:
        src: prepared notebook; its folder is the kernel's working folder.
        dst: where the executed notebook is written (also after errors and timeouts).
        env: the kernel's environment (``OMP_NUM_THREADS`` sets torch's threads).
        cell_timeout: seconds one cell may run.
        timeout: seconds the whole notebook may run, kernel start included; then the
            kernel's process group is killed and the status is ``timeout``.
        server: warm fork server to take the kernel from (``None``: spawn one).
        km: the kernel manager to use instead (e.g. a sandboxed spawning one); it wins over ``server``.
        after_kernel: called once the kernel and its process group are dead, before ``dst`` is written.
        stop_when: called with each executed cell; a status it returns ends the run there (the kernel is
            killed, the cells after it do not run, as when the kernel dies).
    """
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:  # only this run may say where it stopped
        cell.metadata.pop(STOPPED_HERE, None)
    if km is None and server is not None:
        km = ForkedKernelManager.for_server(server, log=dst.with_suffix(".kernel.log"), job=src.parent)
    client = _LimitedClient(nb, km=km, kernel_manager_class=SteadyKernelManager, timeout=int(cell_timeout),
                            kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=False, record_timing=True, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(src.parent)}}, stop_when=stop_when)
    status = "ok"
    expired = threading.Event()

    def kernel_pid() -> int | None:
        return getattr(getattr(client.km, "provisioner", None), "pid", None)

    def expire() -> None:
        expired.set()
        _kill_group(kernel_pid())

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    pids: list[int] = []
    started: list = []  # the kernel's provisioner: it knows how the kernel ended

    def on_start(**_) -> None:
        pids.append(kernel_pid())
        started.append(getattr(client.km, "provisioner", None))

    client.on_notebook_start = on_start
    start = time.perf_counter()
    try:
        watchdog.start()
        client.execute(env=env, cleanup_kc=True)
    except StopRun as exc:
        status = exc.status
    except CellTimeoutError:
        status = "timeout"
    except DeadKernelError:
        status = "timeout" if expired.is_set() else "error: the kernel died (did the notebook exit?)"
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        status = "timeout" if expired.is_set() else f"error: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        watchdog.cancel()
        atexit.unregister(client._cleanup_kernel)  # nbclient leaves it registered when the kernel never started
        for pid in pids:
            _kill_group(pid)  # whatever the notebook started dies with it
        _cancel_pending_tasks()
    seconds = round(time.perf_counter() - start, 2)
    if status != "ok" and client.running is not None:
        client.nb.cells[client.running].metadata[STOPPED_HERE] = True
    if after_kernel is not None:
        after_kernel()
    nbformat.write(client.nb, dst)
    return {"status": status, "seconds": seconds, "cells": cell_seconds(client.nb), "notebook": client.nb,
            "kernel_exit": started[0].ended() if started and hasattr(started[0], "ended") else None}
