"""How jupyter_client and nbclient get their kernels from a job slot.

:class:`ForkedKernelManager` takes its kernel from a warm :class:`~autograder.runner.kernels.ForkServer`
through a kernel provisioner; :class:`SandboxedKernelManager` spawns one inside a fresh sandbox.
Both connect over Unix sockets (Jupyter's ``ipc`` transport) when sandboxed, since the kernel's
network namespace has no route to the grader, and both hand out :class:`PromptKernelClient`.

Runs in the grader's process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import DottedObjectName, Type

from .cgroups import SlotCgroup
from .channels import SteadyKernelClient
from .kernels import ZYGOTE, ForkServer, limited_kernel_command
from .limits import KernelRlimits
from .sandbox import ZYGOTE_INSIDE, Sandbox, inside_path

__all__ = ["ForkedKernelManager", "SandboxedKernelManager", "PromptKernelClient"]


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
    """A local provisioner that spawns the kernel inside ``sandbox`` (and the slot's cgroup), where it sets
    ``rlimits`` on itself after importing ``preload`` (:func:`~autograder.runner.kernels.limited_kernel_command`).

    Once jupyter_client has waited for the kernel, :attr:`exit` says how it ended.
    """

    sandbox: Sandbox | None = None
    writable: Path | None = None
    cgroup: SlotCgroup | None = None
    rlimits: KernelRlimits | None = None
    preload: tuple[str, ...] = ()
    #: How the kernel ended, ``{"signal": int | None, "code": int | None}``; ``None`` until it has (or if unknown).
    exit: dict | None = None

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
            inside, files = self.inside_command(cmd), None
            if self.rlimits is not None:
                inside, files = limited_kernel_command(inside, self.rlimits, self.preload), {ZYGOTE_INSIDE: ZYGOTE}
            cmd = self.sandbox.command(inside, self.writable, env, cwd=Path(self.inside(cwd)) if cwd else None,
                                       files=files)
        if self.cgroup is not None:
            cmd = self.cgroup.wrap(cmd)
        return cmd

    async def launch_kernel(self, cmd: list[str], **kwargs):
        env = dict(kwargs.get("env") or os.environ)
        return await super().launch_kernel(self.wrap(cmd, env, kwargs.get("cwd")), **kwargs)

    async def wait(self) -> int | None:
        process = self.process
        code = await super().wait()  # forgets the process
        if process is not None and process.returncode is not None and self.exit is None:
            self.exit = self.exit_of(process)
        return code

    def ended(self) -> dict | None:
        """How the kernel ended (:attr:`exit`), or ``None`` while it runs or when that is not known."""
        if self.exit is None and self.process is not None and self.process.poll() is not None:
            self.exit = self.exit_of(self.process)
        return self.exit

    def exit_of(self, process) -> dict | None:
        """How ``process`` (the kernel's, ended) ended. bubblewrap exits with 128 + N when its child was
        killed by signal N."""
        code = process.returncode
        if code < 0:
            return {"signal": -code, "code": None}
        if self.sandbox is not None and code > 128:
            return {"signal": code - 128, "code": None}
        return {"signal": None, "code": code}


class _ForkedProvisioner(_SandboxedProvisioner):
    """A provisioner whose ``launch_kernel`` asks the fork server instead of spawning.

    If the server cannot give a kernel, the kernel is spawned the usual way, in the same
    sandbox and cgroup as the server's would have been.
    """

    server: ForkServer | None = None
    log: Path | None = None

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
            pid = self.server.spawn(argv, env, Path(self.inside(cwd)), Path(self.inside(log)), limits=self.rlimits)
        except (OSError, RuntimeError, ValueError) as exc:  # never fail a student for the server's sake
            self.log_warning(f"warm kernel unavailable ({exc}); starting one the usual way")
            return await super().launch_kernel(cmd, **kwargs)
        self.process = _ForkedProcess(pid)
        self.pid = self.pgid = pid
        self.cwd = cwd
        return self.connection_info

    def exit_of(self, process) -> dict | None:
        if isinstance(process, _ForkedProcess):
            return self.server.ended(process.pid)  # its real status: the server reaped it
        return super().exit_of(process)

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
    every message within half a second (:mod:`autograder.runner.channels`).
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

    client_class = DottedObjectName("autograder.runner.provisioning.PromptKernelClient")
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient)

    @classmethod
    def for_server(cls, server: ForkServer, log: Path, job: Path | None = None,
                   rlimits: KernelRlimits | None = None) -> ForkedKernelManager:
        """A manager for one kernel of ``server``; sandboxed servers need ``job`` (the kernel's folder).
        ``rlimits``: what the kernel sets on itself before any of its code runs."""
        km = cls(kernel_name="python3")
        km.kernel_id = str(uuid.uuid4())
        if server.sandbox is not None:
            _use_ipc(km, job)
        provisioner = _ForkedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        provisioner.server, provisioner.log, provisioner.rlimits = server, log, rlimits
        provisioner.sandbox, provisioner.writable, provisioner.cgroup = server.sandbox, server.slot, server.cgroup
        provisioner.preload = server.preload
        km.provisioner = provisioner
        return km


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` that spawns its kernel in a fresh bubblewrap sandbox whose one
    writable folder is ``writable`` (the job's slot), in the slot's cgroup ``limits``."""

    client_class = DottedObjectName("autograder.runner.provisioning.PromptKernelClient")
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient)

    @classmethod
    def for_job(cls, job: Path, sandbox: Sandbox | None, writable: Path, cgroup: SlotCgroup | None,
                rlimits: KernelRlimits | None = None, preload: tuple[str, ...] = ()):
        """A manager whose kernel starts in ``job`` (in the slot folder ``writable``), sandboxed, in ``cgroup``;
        with ``rlimits`` (sandboxed only), the kernel imports ``preload`` and then sets them on itself."""
        km = cls(kernel_name="python3")
        km.kernel_id = str(uuid.uuid4())
        if sandbox is not None:
            _use_ipc(km, job)
        provisioner = _SandboxedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        provisioner.sandbox, provisioner.writable, provisioner.cgroup = sandbox, writable, cgroup
        provisioner.rlimits, provisioner.preload = rlimits, tuple(preload)
        km.provisioner = provisioner
        return km
