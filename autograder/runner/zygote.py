"""Runs as its own process, inside a job slot's sandbox: the warm kernel server ("zygote").

This file is executed by path (``python zygote.py [MODULE ...]``), never imported from the
repository by student code: the sandbox shows the kernel this one file, not the ``autograder``
package. It imports only the standard library until the modules named on its command line
(and ipykernel's own, :data:`PRELOAD`).

The server imports those modules once (the grader names torch, numpy, matplotlib, ``helpers``),
then, on request,
forks a child that becomes an ordinary ipykernel on the connection file it is given. In the
sandbox it is PID 1 of the slot's PID namespace (bubblewrap ``--as-pid-1``), which makes it
immune to the notebook: signals from inside the namespace reach PID 1 only for signals it
handles (it handles SIGCHLD alone), ``kill(-1)`` skips it, and it is not dumpable, so neither
``ptrace`` nor ``/proc/1/mem`` reach its memory. Every child is a fresh copy of it: what one
notebook changes never reaches another.

Protocol (stdin/stdout, one JSON object per line). The server first writes ``{"ready": true}``.
Requests:

* ``{"argv", "env", "cwd", "log"}`` (optionally ``"limits"``: the run's
  :class:`~autograder.runner.limits.KernelRlimits` as a dict): fork a kernel; answered
  ``{"pid": int}`` (the pid in the server's namespace) or ``{"error": str}``;
* ``{"ended": pid}``: how that kernel ended; answered ``{"ended": {"signal": int | None, "code": int |
  None}}``, or ``{"ended": null}`` while it runs (or when it is not one of this server's kernels);
* ``{"reset": true, "keep": [folder, ...]}``: kill every other process the server can see (the
  last notebook, its children and daemons), reap them, empty ``/tmp`` and ``/dev/shm`` except the
  ``keep`` folders (the slot's job folder is bound inside ``/tmp``); answered ``{"reset": n}``
  with the number of processes killed. Only meaningful as PID 1 of a sandbox.

Limits are set by the kernel on itself, after the fork and before any student code
(:func:`apply_limits`): the address-space limit is the kernel's own size then (the server's, with
everything preloaded) plus the allowance, so it measures what the notebook adds. A spawned kernel gets
the same from ``python zygote.py --kernel LIMITS MODULE ... -- ARGS`` (:func:`run_kernel`): it imports the
modules, sets the limits, then becomes ``ipykernel_launcher ARGS`` without forking.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sys
import time

__all__ = ["main", "run_kernel", "apply_limits", "PRELOAD"]

#: Imported by every server before it forks: what ipykernel imports anyway.
PRELOAD = ("IPython", "ipykernel.kernelapp", "ipykernel.ipkernel")

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_SCRATCH = ("/tmp", "/dev/shm")


def _set_dumpable(flag: int) -> None:
    """``prctl(PR_SET_DUMPABLE)``: 0 keeps same-user processes out of this one's memory."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, flag, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _die_with(server: int) -> None:
    """In the forked child: be killed when the server goes, with no window for a race.

    ``prctl(PR_SET_PDEATHSIG)`` asks the kernel to send SIGKILL when the parent exits; a server
    that exited before the call is caught by the ``getppid`` check after it. ipykernel's own
    parent poller is not enough alone: it starts a second after the fork and, once the parent is
    gone, only notices a parent of pid 1 (not a subreaper, as under a container's init).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != server:
        os._exit(1)


def _become_kernel(request: dict) -> None:
    """In the forked child: take the job's session, files, environment and limits, then run ipykernel."""
    os.setsid()
    _set_dumpable(1)  # the kernel itself is an ordinary process again
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # ipykernel's interrupt, as in a fresh python
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    apply_limits(request.get("limits"))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = ""  # like ``python -m ipykernel_launcher`` started in ``cwd``
    argv = list(request["argv"])
    if os.getppid() != 1:  # the kernel exits when the server does (as a spawned kernel with its launcher)
        argv.append(f"--IPKernelApp.parent_handle={os.getppid()}")
    sys.argv = ["ipykernel_launcher", *argv]
    torch = sys.modules.get("torch")  # preloaded: OpenMP read OMP_NUM_THREADS at the server's start, not now
    if torch is not None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from ipykernel.kernelapp import IPKernelApp
    IPKernelApp.launch_instance(argv=argv)


def _vm_size() -> int:
    """This process's address space in bytes (``VmSize``)."""
    with open("/proc/self/status") as fh:
        return next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)


def apply_limits(limits: dict | None) -> None:
    """Set the run's limits on this process (its children inherit them); it cannot raise them again.

    ``limits``: ``memory`` (bytes of address space beyond this process's own now), ``processes``
    (``RLIMIT_NPROC``: processes and threads of this user namespace), ``cpu_seconds`` (``RLIMIT_CPU``; the
    hard limit ``cpu_grace`` seconds later); a missing or ``None`` value sets nothing.
    """
    import resource
    limits = limits or {}
    if limits.get("memory"):
        cap = _vm_size() + int(limits["memory"])
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if limits.get("processes"):
        resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["processes"]),) * 2)
    if limits.get("cpu_seconds"):
        soft = int(limits["cpu_seconds"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + int(limits.get("cpu_grace") or 0)))


#: Kernels this server forked that are still running, and how the others ended (their wait statuses).
_KERNELS: set[int] = set()
_ENDED: dict[int, int] = {}


def _record(pid: int, status: int) -> None:
    if pid in _KERNELS:
        _KERNELS.discard(pid)
        _ENDED[pid] = status


def _ended(pid: int) -> dict | None:
    """How the kernel ``pid`` ended: ``{"signal", "code"}``, or ``None`` (running, or not a kernel of ours)."""
    status = _ENDED.pop(pid, None)
    if status is None:
        return None
    return {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}


def _reap(_signum=None, _frame=None) -> int:
    """Reap exited children without blocking; return how many."""
    n = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        _record(pid, status)
        n += 1


def _reset(keep: list[str]) -> int:
    """Kill and reap every other process of the namespace; empty the scratch folders except ``keep``.

    ``keep``: folders (the slot's job folder, bound inside ``/tmp``) left alone with their parents.
    """
    if os.getpid() != 1:
        return 0
    killed = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(-1, signal.SIGKILL)  # as PID 1: every other process of this namespace
        except ProcessLookupError:
            pass
        try:
            _record(*os.waitpid(-1, 0))
        except ChildProcessError:
            break
        killed += 1
    keep = [os.path.realpath(k) for k in keep]
    for folder in _SCRATCH:
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for name in entries:
            path = os.path.join(folder, name)
            if any(k == path or k.startswith(path + os.sep) for k in keep) or os.path.ismount(path):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    return killed


def _answer(out, obj: dict) -> None:
    out.write((json.dumps(obj) + "\n").encode())
    out.flush()


def _preload(modules: list[str]) -> None:
    import importlib
    for name in (*modules, *PRELOAD):
        try:
            importlib.import_module(name)
        except ImportError:  # only a head start: the kernel imports what it needs itself
            pass


def run_kernel(argv: list[str]) -> None:
    """``--kernel LIMITS MODULE ... -- ARGS``: import the modules, set the limits (JSON) on this process, then
    run ``ipykernel_launcher ARGS`` in it, as ``python -m ipykernel_launcher ARGS`` would."""
    limits, rest = json.loads(argv[0]), argv[1:]
    cut = rest.index("--") if "--" in rest else len(rest)
    _preload(rest[:cut])
    apply_limits(limits)
    sys.path[0] = ""  # the working folder, as with ``python -m``
    sys.argv = ["ipykernel_launcher", *rest[cut + 1:]]
    from ipykernel.kernelapp import IPKernelApp
    IPKernelApp.launch_instance()


def main() -> int:
    """Run the server on stdin/stdout (see the module docstring), or one kernel (``--kernel``)."""
    if sys.argv[1:2] == ["--kernel"]:
        run_kernel(sys.argv[2:])
        return 0
    _set_dumpable(0)
    # As PID 1 these are dropped unless handled: leave them unhandled (SIGINT would raise otherwise).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)
    _preload(sys.argv[1:])
    signal.signal(signal.SIGCHLD, _reap)
    out = sys.stdout.buffer
    _answer(out, {"ready": True})
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            if request.get("reset"):
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                try:
                    _answer(out, {"reset": _reset(request.get("keep", []))})
                finally:
                    signal.signal(signal.SIGCHLD, _reap)
                continue
            if "ended" in request:
                _answer(out, {"ended": _ended(int(request["ended"]))})
                continue
            server = os.getpid()
            # SIGCHLD waits until the new kernel is in _KERNELS: one that ends at once is still recorded
            pid = -1
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            try:
                pid = os.fork()
                if pid > 0:
                    _KERNELS.add(pid)
            finally:
                if pid != 0:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        except Exception as exc:  # noqa: BLE001 - answered, the server keeps serving
            _answer(out, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        if pid == 0:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                _die_with(server)
                _become_kernel(request)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:  # noqa: BLE001 - the child must never return into the server loop
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        _answer(out, {"pid": pid})
    out.flush()
    os._exit(0)  # input closed: done. No interpreter teardown (about 0.9 s with torch loaded)


if __name__ == "__main__":
    raise SystemExit(main())
