"""Warm Jupyter kernels forked by a server that has imported torch.

Starting a kernel the usual way costs a new Python, ``ipykernel`` and then the notebook's own
``import torch`` (about 3 seconds of CPU per notebook on the course machine, more than the
rest of the grading overhead together). A :class:`ForkServer` starts the warm kernel server
(:mod:`autograder.runner.zygote`, a separate script) once per job slot, inside the slot's sandbox
(:mod:`autograder.runner.sandbox`) and cgroup (:mod:`autograder.runner.cgroups`); on request it forks a child
that becomes an ordinary ipykernel on the connection file it is given. After each notebook,
:meth:`ForkServer.reset` has the server kill everything that notebook left (it is PID 1 of the
slot's PID namespace) and empty the sandbox's scratch folders, so the slot is clean for the
next job.

:mod:`autograder.runner.provisioning` plugs this into ``jupyter_client``/``nbclient``, so
notebooks are still executed by nbclient over the Jupyter protocol exactly as with a spawned
kernel.

Runs in the grader's process.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .cgroups import SlotCgroup
from .limits import KernelRlimits
from .sandbox import KERNEL_HOME, SLOT_INSIDE, ZYGOTE_INSIDE, Sandbox

__all__ = ["ForkServer", "kernel_environment", "limited_kernel_command", "ZYGOTE"]

#: The warm kernel server's script (run by path, also inside sandboxes).
ZYGOTE = Path(__file__).with_name("zygote.py")
#: Variables of the grader's own environment a kernel may see (nothing else is passed).
_PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
           "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def kernel_environment(threads: int, home: Path | None = None, sandbox: Sandbox | None = None) -> dict[str, str]:
    """The environment every kernel of a run starts from (a job adds its own variables).

    ``threads``: CPU threads the kernel's math libraries may use. ``home``: its home folder
    (default: inside a sandbox, its private ``/tmp``). Only a few variables of the grader's own
    environment are passed (:data:`_PASSED`): no tokens, and ``PYTHONPATH`` only as the
    sandbox gives it (:attr:`Sandbox.pythonpath`).
    """
    env = {k: os.environ[k] for k in _PASSED if k in os.environ}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    env.update({"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads)})
    if sandbox is not None:
        home = Path(KERNEL_HOME)
        env["TMPDIR"] = "/tmp"
        if sandbox.pythonpath:
            env["PYTHONPATH"] = sandbox.pythonpath
    if home is not None:
        env.update({"HOME": str(home), "MPLCONFIGDIR": str(home / ".matplotlib"),
                    "IPYTHONDIR": str(home / ".ipython"), "XDG_CACHE_HOME": str(home / ".cache"),
                    "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime")})
    return env


def limited_kernel_command(cmd: list[str], limits: KernelRlimits, preload: tuple[str, ...] = ()) -> list[str]:
    """The kernel command ``cmd`` (``python -m ipykernel_launcher ARGS``, as seen inside the sandbox) made to
    import ``preload`` and set ``limits`` on itself first: ``python ZYGOTE --kernel LIMITS PRELOAD -- ARGS``
    (:func:`autograder.runner.zygote.run_kernel`; the sandbox must show :data:`ZYGOTE` at ``ZYGOTE_INSIDE``).
    The address-space limit then measures what the notebook adds to a kernel with those imports done."""
    if "ipykernel_launcher" not in cmd:
        raise ValueError(f"expected an ipykernel_launcher command, got {cmd}")
    at = cmd.index("ipykernel_launcher")
    return [cmd[0], ZYGOTE_INSIDE, "--kernel", json.dumps(limits.request()), *preload, "--", *cmd[at + 1:]]


def _outer_pid(parent: int, inner: int) -> int | None:
    """The pid, as this process sees it, of the child of ``parent`` whose pid in its own namespace is ``inner``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
        except OSError:
            continue
        nspid = fields.get("NSpid", "").split()
        if fields.get("PPid") == str(parent) and nspid and nspid[-1] == str(inner):
            return int(entry)
    return None


class ForkServer:
    """Grader side of one warm kernel server: start it, ask it for kernels, reset it, stop it.

    POSIX only (see :meth:`supported`). ``env`` is the server's environment; variables read
    once at interpreter start (``PYTHONHASHSEED``, ``OMP_NUM_THREADS``) must be set here, since
    the kernels inherit the interpreter rather than start one. With ``sandbox`` the server runs
    as PID 1 of its own bubblewrap sandbox whose one writable folder is ``slot``; with
    ``cgroup`` it and all its kernels run in that cgroup. ``preload``: modules the server imports
    before it forks (what every notebook would import anyway). Thread-safe.
    """

    @staticmethod
    def supported() -> bool:
        """Can this platform fork kernels (``os.fork`` and ``os.setsid``; not Windows)?"""
        return hasattr(os, "fork") and hasattr(os, "setsid")

    @classmethod
    def for_threads(cls, threads: int, log: Path, sandbox: Sandbox | None = None, slot: Path | None = None,
                    cgroup: SlotCgroup | None = None, preload: tuple[str, ...] = ()) -> ForkServer:
        """A server for kernels that may use ``threads`` CPU threads each."""
        return cls(kernel_environment(threads, sandbox=sandbox), log, sandbox, slot, cgroup, preload)

    def __init__(self, env: dict[str, str], log: Path, sandbox: Sandbox | None = None, slot: Path | None = None,
                 cgroup: SlotCgroup | None = None, preload: tuple[str, ...] = ()):
        self._lock = threading.Lock()
        self._log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.sandbox, self.slot, self.cgroup, self.preload = sandbox, slot, cgroup, tuple(preload)
        cmd = [sys.executable, str(ZYGOTE), *preload]
        info_r = info_w = None
        if sandbox is not None:
            if slot is None:
                raise ValueError("a sandboxed server needs its slot folder")
            info_r, info_w = os.pipe()
            cmd = sandbox.command([sys.executable, ZYGOTE_INSIDE, *preload], slot, env, pid1=True,
                                  files={ZYGOTE_INSIDE: ZYGOTE}, info_fd=info_w)
        if cgroup is not None:
            cmd = cgroup.wrap(cmd)
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      start_new_session=True, pass_fds=() if info_w is None else (info_w,))
        self._info = info_r
        if info_w is not None:
            os.close(info_w)
        self._inner_parent: int | None = None  # the server's own pid as seen here (sandboxed)
        self._inner: dict[int, int] = {}  # kernel pids as seen here -> as the server sees them
        self._ready = False

    def _reply(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the kernel fork server stopped (exit code {self._proc.poll()}); "
                               f"see {self._log.name}")
        return json.loads(line)

    def _await_ready(self) -> None:
        if self._ready:
            return
        self._ready = bool(self._reply().get("ready"))
        if self._info is not None:
            self._inner_parent = _read_child_pid(self._info)
            os.close(self._info)
            self._info = None
        if self.cgroup is not None:
            self.cgroup.arm()

    def wait_ready(self) -> ForkServer:
        """Block until the server has imported everything (its memory limit is set then)."""
        with self._lock:
            self._await_ready()
        return self

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _ask(self, request: dict) -> dict:
        with self._lock:
            self._await_ready()
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
            return self._reply()

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
              limits: KernelRlimits | None = None) -> int:
        """Fork a kernel running ``ipykernel`` with ``argv``; return its pid (also its process group).

        Like a spawned kernel, it takes torch's thread count from ``OMP_NUM_THREADS`` in ``env``.
        ``limits``: what the kernel sets on itself before any of its code runs.
        """
        reply = self._ask({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log),
                           "limits": limits.request() if limits else None})
        if "pid" not in reply:
            raise RuntimeError(f"the kernel fork server could not start a kernel: {reply.get('error')}")
        pid = int(reply["pid"])
        if self._inner_parent is None:
            self._inner[pid] = pid
            return pid
        outer = _outer_pid(self._inner_parent, pid)
        if outer is None:
            raise RuntimeError(f"the sandboxed kernel {pid} exited at once; see {log}")
        self._inner[outer] = pid
        return outer

    def ended(self, pid: int) -> dict | None:
        """How the kernel ``pid`` (as :meth:`spawn` returned it) ended: ``{"signal": int | None, "code": int |
        None}``, or ``None`` when that is not known (it runs, or the server is gone)."""
        inner = self._inner.pop(pid, None)
        if inner is None:
            return None
        try:
            return self._ask({"ended": inner}).get("ended")
        except (OSError, RuntimeError, ValueError):
            return None

    def reset(self) -> int:
        """Kill whatever the last notebook left in the sandbox and empty its scratch folders.

        Returns the number of processes killed. Unsandboxed servers have nothing to reset
        (their kernels are killed by process group). Raises ``RuntimeError`` if the server is gone.
        """
        if self.sandbox is None:
            return 0
        return int(self._ask({"reset": True, "keep": [str(SLOT_INSIDE)]}).get("reset", 0))

    def stop(self) -> None:
        """Ask the server to exit (its input is closed); :meth:`close` waits for it."""
        with self._lock:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def close(self, grace: float = 5.0) -> None:
        """Stop the server (and with it, in a sandbox, every process of the sandbox).

        It is asked first (its input is closed) and killed after ``grace`` seconds: a server
        that exits by itself is waited for by bubblewrap, so its CPU time reaches this process's
        children totals, which the benchmarks read.
        """
        self.stop()
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self._proc.wait()
        if self._info is not None:
            os.close(self._info)
            self._info = None
        self._log.close()


def _read_child_pid(fd: int, timeout: float = 30.0) -> int:
    """Read bubblewrap's ``--info-fd`` JSON and return ``child-pid``."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            if not chunk:
                break
    raise RuntimeError(f"bubblewrap did not report its sandbox's pid (got {data[:200]!r})")
