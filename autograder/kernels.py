"""Warm Jupyter kernels: a fork server that has imported torch before any notebook arrives.

Starting a kernel the usual way costs a new Python, ``ipykernel`` and then the notebook's own
``import torch`` (about 3 seconds of CPU per notebook on the course machine, more than the
rest of the grading overhead together). The fork server (``python -m autograder.kernels``) is
started once per grading run; it imports torch, numpy, matplotlib, ``helpers`` and ipykernel
and then, on request, forks a child that becomes an ordinary ipykernel on the connection
file it is given. The child:

* starts its own session (``setsid``), so the grader can kill it and everything it spawned;
* gets the job's environment, working folder and log file, and torch's thread count;
* is a fresh copy of the server's memory: what one notebook changes (monkey-patched modules,
  globals, random state) never reaches another.

:class:`ForkedKernelManager` plugs this into ``jupyter_client``/``nbclient`` through a kernel
provisioner, so notebooks are still executed by nbclient over the Jupyter protocol exactly as
with a spawned kernel.

Protocol (stdin/stdout of the server, one JSON object per line): the server first writes
``{"ready": true}``; each request ``{"argv", "env", "cwd", "log"}`` is answered with
``{"pid": int}`` or ``{"error": str}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import DottedObjectName, Type

from .channels import SteadyKernelClient

__all__ = ["ForkServer", "ForkedKernelManager", "PromptKernelClient", "kernel_environment", "main"]

#: Imported by the server before it forks: what the notebook and ipykernel would import anyway.
_PRELOAD = ("torch", "torch.nn.utils.prune", "numpy", "matplotlib", "matplotlib.pyplot", "helpers",
            "helpers.checks", "helpers.notebook", "helpers.plots", "autograder.collect", "IPython",
            "ipykernel.kernelapp", "ipykernel.ipkernel", "matplotlib_inline.backend_inline", "ipywidgets")


def kernel_environment(job: Path | None, threads: int) -> dict[str, str]:
    """Environment of a student's kernel in job folder ``job``: its private data, model, export folder.

    With ``job=None``: the part shared by all kernels of a run (the fork server's own).
    ``threads`` is the number of CPU threads torch may use.
    """
    from .collect import ENV_EXPORT
    from .config import REPO_ROOT
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CINIC10_", "PRUNING_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    })
    if job is not None:
        env.update({
            "CINIC10_ROOT": str(job / "data.npz"),
            "CINIC10_CACHE": str(job / "cache"),
            "PRUNING_MODEL": str(job / "model.pt"),
            ENV_EXPORT: str(job / "export"),
        })
    return env


class ForkServer:
    """Grader side of the fork server: start it, ask it for kernels, stop it. POSIX only
    (see :meth:`supported`).

    ``env`` is the server's environment; variables read once at interpreter start
    (``PYTHONHASHSEED``, ``PYTHONPATH``, ``OMP_NUM_THREADS``) must be set here, since the
    kernels inherit the interpreter rather than start one. Thread-safe.
    """

    @staticmethod
    def supported() -> bool:
        """Can this platform fork kernels (``os.fork`` and ``os.setsid``; not Windows)?"""
        return hasattr(os, "fork") and hasattr(os, "setsid")

    @classmethod
    def for_threads(cls, threads: int, log: Path) -> ForkServer:
        """A server for kernels that may use ``threads`` CPU threads each."""
        return cls(kernel_environment(None, threads), log)

    def __init__(self, env: dict[str, str], log: Path):
        self._lock = threading.Lock()
        self._log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen([sys.executable, "-m", "autograder.kernels"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      start_new_session=True)
        self._ready = False

    def _reply(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the kernel fork server stopped (exit code {self._proc.poll()}); "
                               f"see {self._log.name}")
        return json.loads(line)

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
        """Fork a kernel running ``ipykernel`` with ``argv``; return its pid (also its process group).

        Like a spawned kernel, it takes torch's thread count from ``OMP_NUM_THREADS`` in ``env``.
        """
        with self._lock:
            if not self._ready:
                self._ready = bool(self._reply().get("ready"))
            request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
            reply = self._reply()
        if "pid" not in reply:
            raise RuntimeError(f"the kernel fork server could not start a kernel: {reply.get('error')}")
        return int(reply["pid"])

    def close(self) -> None:
        """Stop the server (kernels it forked are killed by their own jobs)."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self._proc.wait()
        self._log.close()


class _ForkedProcess:
    """The part of ``subprocess.Popen`` that jupyter_client uses, for a kernel that is not our child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -signal.SIGKILL  # reaped by the server; the real code is not ours to see
            except PermissionError:
                pass
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # like Popen: a process already gone is not an error
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class _ForkedProvisioner(LocalProvisioner):
    """A local provisioner whose ``launch_kernel`` asks the fork server instead of spawning.

    If the server cannot give a kernel, the kernel is spawned the usual way.
    """

    server: ForkServer | None = None
    log: Path | None = None

    def log_warning(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    async def launch_kernel(self, cmd: list[str], **kwargs):
        if "ipykernel_launcher" not in cmd:
            raise RuntimeError(f"the fork server runs ipykernel only; kernel command was {cmd}")
        argv = cmd[cmd.index("ipykernel_launcher") + 1:]
        cwd = Path(kwargs.get("cwd") or os.getcwd())
        env = dict(kwargs.get("env") or os.environ)
        try:
            pid = self.server.spawn(argv, env, cwd, self.log or cwd / "kernel.log")
        except (OSError, RuntimeError, ValueError) as exc:  # never fail a student for the server's sake
            self.log_warning(f"warm kernel unavailable ({exc}); starting one the usual way")
            return await super().launch_kernel(cmd, **kwargs)
        self.process = _ForkedProcess(pid)
        self.pid = self.pgid = pid
        self.cwd = cwd
        return self.connection_info

    async def kill(self, restart: bool = False) -> None:
        """Kill the kernel and wait (up to 2 s) until the server has reaped it.

        jupyter_client would otherwise find it still alive (a zombie until reaped) and
        check again only 0.1 s later, for every notebook.
        """
        await super().kill(restart=restart)
        if isinstance(self.process, _ForkedProcess):
            deadline = time.monotonic() + 2.0
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.002)


class PromptKernelClient(SteadyKernelClient):
    """A kernel client whose ``wait_for_ready`` returns as soon as the kernel has answered.

    jupyter_client's own waits for 0.2 s of silence on IOPub after the ``kernel_info``
    reply (and up to another 0.2 s to see IOPub connected); with warm kernels that was a
    third of the whole start. Here IOPub counts as connected, and the kernel as ready,
    once the ``idle`` status that ends one of our ``kernel_info`` requests arrives on it:
    IOPub is ordered, so nothing of ours is still in flight after it. Its channels notice
    every message within half a second (:mod:`autograder.channels`).
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        asked: set[str] = set()
        while True:
            asked.add(self.kernel_info())
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                if await self._idle_after(asked, wait=0.05):  # else IOPub is not connected yet: ask again
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _idle_after(self, asked: set[str], wait: float) -> bool:
        """Read IOPub until the ``idle`` status of a request in ``asked``; False after ``wait`` s of silence."""
        while True:
            try:
                msg = await self.iopub_channel.get_msg(timeout=wait)
            except Empty:
                return False
            if (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                    and msg["parent_header"].get("msg_id") in asked):
                return True


class ForkedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel is forked by ``server`` (pass it as nbclient's ``km``).

    Example::

        server = ForkServer(env, work / "forkserver.log")
        km = ForkedKernelManager.for_server(server, log=job / "kernel.log")
        NotebookClient(nb, km=km, resources={"metadata": {"path": str(job)}}).execute(env=job_env)
    """

    client_class = DottedObjectName("autograder.kernels.PromptKernelClient")
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient)

    @classmethod
    def for_server(cls, server: ForkServer, log: Path) -> ForkedKernelManager:
        km = cls(kernel_name="python3")
        km.kernel_id = str(uuid.uuid4())
        provisioner = _ForkedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        provisioner.server, provisioner.log = server, log
        km.provisioner = provisioner
        return km


# -- the server process --------------------------------------------------------------------------

def _become_kernel(request: dict) -> None:
    """In the forked child: take the job's session, files and environment, then run ipykernel."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server reaps its kernels; student code its own children
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = ""  # like ``python -m ipykernel_launcher`` started in ``cwd``
    # Importing `autograder` marked rfc3987_syntax absent (autograder/__init__.py): for the grader, not the student.
    if "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is None:
        del sys.modules["rfc3987_syntax"]
    # The kernel exits when the server does (as a spawned kernel does with its launcher).
    argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
    sys.argv = ["ipykernel_launcher", *argv]
    import torch
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # read by OpenMP only at start-up, so set here
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from ipykernel.kernelapp import IPKernelApp
    IPKernelApp.launch_instance(argv=argv)


def _reap(_signum=None, _frame=None) -> None:
    """Reap exited kernels (waiting, rather than ignoring SIGCHLD, keeps their resource usage
    in this process's children totals, which the grader's memory figures read)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> int:
    """Run the fork server on stdin/stdout (see the module docstring)."""
    import importlib
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # only a head start: the kernel imports what it needs itself
            pass
    signal.signal(signal.SIGCHLD, _reap)
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001 - answered, the server keeps serving
            out.write((json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
            out.flush()
            continue
        if pid == 0:
            code = 0
            try:
                _become_kernel(request)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:  # noqa: BLE001 - the child must never return into the server loop
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        out.write((json.dumps({"pid": pid}) + "\n").encode())
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
