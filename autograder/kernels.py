"""Runs in the grader's process: warm Jupyter kernels forked by a server that has imported torch.

Starting a kernel the usual way costs a new Python, ``ipykernel`` and then the notebook's own
``import torch`` (about 3 seconds of CPU per notebook on the course machine, more than the
rest of the grading overhead together). A :class:`ForkServer` starts the warm kernel server
(:mod:`autograder.zygote`, a separate script) once per job slot, inside the slot's sandbox
(:mod:`autograder.sandbox`) and cgroup (:mod:`autograder.limits`); on request it forks a child
that becomes an ordinary ipykernel on the connection file it is given. After each notebook,
:meth:`ForkServer.reset` has the server kill everything that notebook left (it is PID 1 of the
slot's PID namespace) and empty the sandbox's scratch folders, so the slot is clean for the
next job.

:class:`ForkedKernelManager` plugs this into ``jupyter_client``/``nbclient`` through a kernel
provisioner, so notebooks are still executed by nbclient over the Jupyter protocol exactly as
with a spawned kernel. :class:`SandboxedKernelManager` spawns a kernel inside a fresh sandbox
instead (``--spawn-kernels``). Sandboxed kernels talk over Unix sockets (Jupyter's ``ipc``
transport), since their network namespace has no route to the grader.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
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
from .limits import SlotLimits
from .sandbox import KERNEL_HOME, SLOT_INSIDE, ZYGOTE_INSIDE, Sandbox, inside_path

__all__ = ["ForkServer", "ForkedKernelManager", "SandboxedKernelManager", "PromptKernelClient",
           "kernel_environment", "ZYGOTE"]

#: The warm kernel server's script (run by path, also inside sandboxes).
ZYGOTE = Path(__file__).with_name("zygote.py")
#: Variables of the grader's own environment a kernel may see (nothing else is passed).
_PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
           "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def kernel_environment(job: Path | None, threads: int, sandboxed: bool = False) -> dict[str, str]:
    """Environment of a student's kernel in job folder ``job``: its private data, model, export folder.

    With ``job=None``: the part shared by all kernels of a run (the fork server's own).
    ``threads`` is the number of CPU threads torch may use. Only a few variables of the
    grader's own environment are passed (:data:`_PASSED`): no tokens; ``PYTHONPATH`` only in the sandbox,
    where it names the folder holding ``helpers`` (nothing else of it is shown there).
    Sandboxed kernels keep their home and caches in their private ``/tmp``.
    """
    from .collect import ENV_EXPORT, ENV_EXPORT_CODE
    env = {k: os.environ[k] for k in _PASSED if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]])
    home = Path(KERNEL_HOME) if sandboxed else (job / "home" if job is not None else None)
    env.update({
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    })
    if home is not None:
        env.update({"HOME": str(home), "MPLCONFIGDIR": str(home / ".matplotlib"),
                    "IPYTHONDIR": str(home / ".ipython"), "XDG_CACHE_HOME": str(home / ".cache"),
                    "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime")})
    if sandboxed:
        env["TMPDIR"] = "/tmp"
        # helpers' own folder is the only part of its parent the sandbox shows (autograder/ is not there)
        env["PYTHONPATH"] = str(Path(_helpers_file()).parent.parent)
    if job is not None:
        env.update({
            "CINIC10_ROOT": str(job / "data.npz"),
            "CINIC10_CACHE": str(job / "cache"),
            "PRUNING_MODEL": str(job / "model.pt"),
            ENV_EXPORT: str(job / "export"),
            ENV_EXPORT_CODE: str(job / "grader_export.py"),
        })
    return env


def _helpers_file() -> str:
    import helpers
    return str(Path(helpers.__file__).resolve())


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
    ``limits`` it and all its kernels run in that cgroup. Thread-safe.
    """

    @staticmethod
    def supported() -> bool:
        """Can this platform fork kernels (``os.fork`` and ``os.setsid``; not Windows)?"""
        return hasattr(os, "fork") and hasattr(os, "setsid")

    @classmethod
    def for_threads(cls, threads: int, log: Path, sandbox: Sandbox | None = None, slot: Path | None = None,
                    limits: SlotLimits | None = None) -> ForkServer:
        """A server for kernels that may use ``threads`` CPU threads each."""
        return cls(kernel_environment(None, threads, sandboxed=sandbox is not None), log, sandbox, slot, limits)

    def __init__(self, env: dict[str, str], log: Path, sandbox: Sandbox | None = None, slot: Path | None = None,
                 limits: SlotLimits | None = None):
        self._lock = threading.Lock()
        self._log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.sandbox, self.slot, self.limits = sandbox, slot, limits
        cmd = [sys.executable, str(ZYGOTE)]
        info_r = info_w = None
        if sandbox is not None:
            if slot is None:
                raise ValueError("a sandboxed server needs its slot folder")
            info_r, info_w = os.pipe()
            cmd = sandbox.command([sys.executable, ZYGOTE_INSIDE], slot, env, pid1=True,
                                  files={ZYGOTE_INSIDE: ZYGOTE}, info_fd=info_w)
        if limits is not None:
            cmd = limits.wrap(cmd)
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      start_new_session=True, pass_fds=() if info_w is None else (info_w,))
        self._info = info_r
        if info_w is not None:
            os.close(info_w)
        self._inner_parent: int | None = None  # the server's own pid as seen here (sandboxed)
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
        if self.limits is not None:
            self.limits.arm()

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

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path, rlimit_as: int | None = None) -> int:
        """Fork a kernel running ``ipykernel`` with ``argv``; return its pid (also its process group).

        Like a spawned kernel, it takes torch's thread count from ``OMP_NUM_THREADS`` in ``env``.
        ``rlimit_as``: an address-space limit in bytes (only where no cgroup limits memory).
        """
        reply = self._ask({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log), "rlimit_as": rlimit_as})
        if "pid" not in reply:
            raise RuntimeError(f"the kernel fork server could not start a kernel: {reply.get('error')}")
        pid = int(reply["pid"])
        if self._inner_parent is None:
            return pid
        outer = _outer_pid(self._inner_parent, pid)
        if outer is None:
            raise RuntimeError(f"the sandboxed kernel {pid} exited at once; see {log}")
        return outer

    def reset(self) -> int:
        """Kill whatever the last notebook left in the sandbox and empty its scratch folders.

        Returns the number of processes killed. Unsandboxed servers have nothing to reset
        (their kernels are killed by process group). Raises ``RuntimeError`` if the server is gone.
        """
        if self.sandbox is None:
            return 0
        return int(self._ask({"reset": True, "keep": [str(SLOT_INSIDE)]}).get("reset", 0))

    def close(self) -> None:
        """Stop the server (and with it, in a sandbox, every process of the sandbox)."""
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


class _SandboxedProvisioner(LocalProvisioner):
    """A local provisioner that spawns the kernel inside ``sandbox`` (and the slot's cgroup)."""

    sandbox: Sandbox | None = None
    writable: Path | None = None
    limits: SlotLimits | None = None

    def inside(self, path: Path | str) -> str:
        """``path`` (in the slot folder) as the sandboxed kernel sees it."""
        return str(path) if self.sandbox is None else str(inside_path(path, self.writable))

    def inside_command(self, cmd: list[str]) -> list[str]:
        """The kernel command with its connection file rewritten for the inside (socket paths there)."""
        if self.sandbox is None or "-f" not in cmd:
            return cmd
        i = cmd.index("-f") + 1
        conn = Path(cmd[i])
        info = json.loads(conn.read_text())
        info["ip"] = self.inside(info["ip"])
        inside_conn = conn.with_name(conn.stem + "-inside.json")
        inside_conn.write_text(json.dumps(info))
        return [*cmd[:i], self.inside(inside_conn), *cmd[i + 1:]]

    def wrap(self, cmd: list[str], env: dict[str, str], cwd: str | None) -> list[str]:
        if self.sandbox is not None:
            cmd = self.sandbox.command(self.inside_command(cmd), self.writable, env,
                                       cwd=Path(self.inside(cwd)) if cwd else None)
        if self.limits is not None:
            cmd = self.limits.wrap(cmd)
        return cmd

    async def launch_kernel(self, cmd: list[str], **kwargs):
        env = dict(kwargs.get("env") or os.environ)
        return await super().launch_kernel(self.wrap(cmd, env, kwargs.get("cwd")), **kwargs)


class _ForkedProvisioner(_SandboxedProvisioner):
    """A provisioner whose ``launch_kernel`` asks the fork server instead of spawning.

    If the server cannot give a kernel, the kernel is spawned the usual way, in the same
    sandbox and cgroup as the server's would have been.
    """

    server: ForkServer | None = None
    log: Path | None = None
    rlimit_as: int | None = None

    def log_warning(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    async def launch_kernel(self, cmd: list[str], **kwargs):
        if "ipykernel_launcher" not in cmd:
            raise RuntimeError(f"the fork server runs ipykernel only; kernel command was {cmd}")
        argv = self.inside_command(cmd)[cmd.index("ipykernel_launcher") + 1:]
        cwd = Path(kwargs.get("cwd") or os.getcwd())
        env = dict(kwargs.get("env") or os.environ)
        log = self.log or cwd / "kernel.log"
        try:
            pid = self.server.spawn(argv, env, Path(self.inside(cwd)), Path(self.inside(log)), rlimit_as=self.rlimit_as)
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


def _use_ipc(km: AsyncKernelManager, job: Path) -> None:
    """Connect over Unix sockets in ``job`` (works across network namespaces), connection file there too."""
    km.transport = "ipc"
    km.ip = str(job / "ipc")
    km.connection_file = str(job / "kernel.json")


class ForkedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel is forked by ``server`` (pass it as nbclient's ``km``).

    Example::

        server = ForkServer(env, work / "forkserver.log")
        km = ForkedKernelManager.for_server(server, log=job / "kernel.log", job=job)
        NotebookClient(nb, km=km, resources={"metadata": {"path": str(job)}}).execute(env=job_env)
    """

    client_class = DottedObjectName("autograder.kernels.PromptKernelClient")
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient)

    @classmethod
    def for_server(cls, server: ForkServer, log: Path, job: Path | None = None,
                   rlimit_as: int | None = None) -> ForkedKernelManager:
        """A manager for one kernel of ``server``; sandboxed servers need ``job`` (the kernel's folder)."""
        km = cls(kernel_name="python3")
        km.kernel_id = str(uuid.uuid4())
        if server.sandbox is not None:
            _use_ipc(km, job)
        provisioner = _ForkedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        provisioner.server, provisioner.log, provisioner.rlimit_as = server, log, rlimit_as
        provisioner.sandbox, provisioner.writable, provisioner.limits = server.sandbox, server.slot, server.limits
        km.provisioner = provisioner
        return km


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` that spawns its kernel in a fresh bubblewrap sandbox whose one
    writable folder is ``writable`` (the job's slot), in the slot's cgroup ``limits``."""

    client_class = DottedObjectName("autograder.kernels.PromptKernelClient")
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient)

    @classmethod
    def for_job(cls, job: Path, sandbox: Sandbox | None, writable: Path, limits: SlotLimits | None):
        km = cls(kernel_name="python3")
        km.kernel_id = str(uuid.uuid4())
        if sandbox is not None:
            _use_ipc(km, job)
        provisioner = _SandboxedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        provisioner.sandbox, provisioner.writable, provisioner.limits = sandbox, writable, limits
        km.provisioner = provisioner
        return km
