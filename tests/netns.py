"""A small network for tests: Linux network namespaces joined by veth links to a bridge.

Each host is a network namespace with one address on ``10.213.<net>.0/24``; the bridge lives in
a namespace of its own, so nothing of the machine's own network changes. Needs root and
``ip`` (Debian ``iproute2``). Processes started with :meth:`Network.popen` are killed on exit.

Example::

    with Network(3) as net:
        server = net.popen(0, ["python3", "-m", "http.server", "--bind", net.ip(0)])
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

__all__ = ["Network", "unavailable"]


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", ns, "ip"] if ns else ["ip"]) + list(args)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or ``None`` if they can."""
    if shutil.which("ip") is None:
        return "no 'ip' command (Debian: apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"pgprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except OSError as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", probe)
    return None


class Network:
    """``hosts`` network namespaces on one bridge; host ``i`` has address :meth:`ip` ``(i)``."""

    def __init__(self, hosts: int):
        tag = f"{os.getpid() % 10000}"
        self.net = os.getpid() % 250 + 1
        self.hub = f"pg{tag}hub"
        self.names = [f"pg{tag}h{i}" for i in range(hosts)]
        self.procs: list[subprocess.Popen] = []

    def ip(self, i: int) -> str:
        return f"10.213.{self.net}.{i + 1}"

    def __enter__(self) -> Network:
        try:
            _ip("netns", "add", self.hub)
            _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
            _ip("link", "set", "br0", "up", ns=self.hub)
            for i, name in enumerate(self.names):
                _ip("netns", "add", name)
                _ip("link", "add", f"h{i}", "netns", self.hub, "type", "veth", "peer", "name", "eth0",
                    "netns", name)
                _ip("link", "set", f"h{i}", "master", "br0", "up", ns=self.hub)
                _ip("addr", "add", f"{self.ip(i)}/24", "dev", "eth0", ns=name)
                _ip("link", "set", "eth0", "up", ns=name)
                _ip("link", "set", "lo", "up", ns=name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def popen(self, i: int, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start ``cmd`` on host ``i`` (``ip netns exec`` execs it: the Popen's pid is the command's)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.names[i], *cmd], **kwargs)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        for name in [*self.names, self.hub]:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
