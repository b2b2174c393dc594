"""Running one prepared notebook in a fresh Jupyter kernel, with time limits.

:func:`run_notebook` (grader side) starts ``python -m autograder.execute`` as a child process
in its own session and waits for it with a wall-clock limit; that child drives the kernel
with nbclient (every cell runs even after errors, like nbgrader's Execute), limits each
cell, kills the kernel when the notebook's time is up, and writes the executed notebook and
a status file. Whatever the student's code does (hang, exit, flood output, ignore
interrupts), the grader gets back a status: ``ok``, ``timeout`` or ``error: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["run_notebook", "main"]

_MAX_OUTPUT_CHARS = 20_000


def _limit_outputs(nb) -> None:
    """Trim huge text outputs so one noisy notebook cannot exhaust memory or the gradebook."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and len(out.get("text", "")) > _MAX_OUTPUT_CHARS:
                out["text"] = out["text"][:_MAX_OUTPUT_CHARS] + "\n... output truncated by the autograder\n"


def _execute(src: Path, dst: Path, status_path: Path, cell_timeout: float, timeout: float) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=int(cell_timeout), kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=False, record_timing=True,
                            resources={"metadata": {"path": str(src.parent)}})
    status = {"status": "ok", "seconds": None}
    expired = threading.Event()
    pid_file = status_path.with_suffix(".kernel-pid")

    def record_pid(**_kwargs) -> None:
        pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
        if pid:
            pid_file.write_text(str(pid))

    client.on_notebook_start = record_pid

    def kill_kernel() -> None:
        expired.set()
        pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    watchdog = threading.Timer(timeout, kill_kernel)
    watchdog.daemon = True
    start = time.perf_counter()
    try:
        watchdog.start()
        client.execute()
    except CellTimeoutError:
        status["status"] = "timeout"
    except DeadKernelError:
        status["status"] = "timeout" if expired.is_set() else "error: the kernel died (did the notebook exit?)"
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        status["status"] = "timeout" if expired.is_set() else f"error: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        watchdog.cancel()
        if expired.is_set() or status["status"] != "ok":
            kill_kernel()
    status["seconds"] = round(time.perf_counter() - start, 2)
    _limit_outputs(nb)
    nbformat.write(nb, dst)
    status_path.write_text(json.dumps(status))


def _kill_recorded_kernel(pid_file: Path) -> None:
    """Kill the kernel the runner started (it lives in its own session)."""
    try:
        pid = int(pid_file.read_text())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def run_notebook(src: Path, dst: Path, env: dict[str, str], cell_timeout: float,
                 timeout: float) -> dict:
    """Execute ``src`` into ``dst`` in a child process; return ``{"status", "seconds"}``.

    The child gets ``timeout`` seconds for the whole notebook plus a grace period; past
    that its whole process group is killed and the status is ``timeout``.
    """
    status_path = dst.with_suffix(".status.json")
    status_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "autograder.execute", str(src), str(dst), str(status_path),
           "--cell-timeout", str(cell_timeout), "--timeout", str(timeout)]
    log = dst.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=str(src.parent))
        try:
            proc.wait(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            _kill_recorded_kernel(status_path.with_suffix(".kernel-pid"))
            return {"status": "timeout", "seconds": round(time.perf_counter() - start, 2)}
    if status_path.is_file():
        try:
            return json.loads(status_path.read_text())
        except ValueError:
            pass
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
    return {"status": f"error: notebook runner failed ({tail[0][:200] if tail else proc.returncode})",
            "seconds": round(time.perf_counter() - start, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.execute")
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("status", type=Path)
    parser.add_argument("--cell-timeout", type=float, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    _execute(args.src, args.dst, args.status, args.cell_timeout, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
