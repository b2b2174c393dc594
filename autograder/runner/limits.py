"""Memory and process-count limits of a job slot, from Linux cgroups.

Each job slot gets its own cgroup (memory and pids controllers; cgroup v1 hierarchies or the
unified v2 one, whichever holds them), made under the grader's own cgroup. Its processes (the
slot's sandbox, warm kernel server and every kernel it forks) are put there before bubblewrap
starts (:meth:`SlotLimits.wrap`), so nothing in the slot escapes it. The memory limit is the
server's own footprint, measured once it is warm (:meth:`SlotLimits.arm`), plus the notebook's
allowance: a notebook may use ``memory`` bytes beyond the libraries every kernel has loaded.
A cgroup limit counts resident memory, not address space, so CUDA's large address-space
reservations are unaffected (an address-space rlimit would break them).

After each job, :meth:`SlotLimits.events` tells whether the kernel's cgroup killed a process for
memory or refused a fork, so the status can name the limit.

Runs in the grader's process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SlotLimits", "LimitsUnavailable", "default_memory_limit", "parse_size", "format_size"]

_V1 = ("memory", "pids")


class LimitsUnavailable(RuntimeError):
    """No writable cgroup with the memory and pids controllers; the message says why."""


def parse_size(text: str) -> int:
    """Bytes of a size such as ``4G``, ``4GiB``, ``512M``, ``1.5g`` or ``1048576``.

    Raises ``ValueError`` for anything else, or a size under 64 MiB.
    """
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    raw = str(text).strip().lower().replace("ib", "").replace("b", "")
    number = raw.rstrip("kmgt")
    unit = raw[len(number):]
    try:
        value = int(float(number) * units[unit])
    except (ValueError, KeyError):
        raise ValueError(f"memory size {text!r} is not a size like 4G, 512M or 1.5GiB") from None
    if value < 64 * 1024**2:
        raise ValueError(f"memory size {text!r} is under 64 MiB; a kernel with torch needs more")
    return value


def format_size(n: int) -> str:
    """``4 GiB``, ``1.5 GiB``, ``768 MiB``."""
    if n >= 1024**3:
        return f"{n / 1024**3:.3g} GiB"
    return f"{n / 1024**2:.0f} MiB"


def default_memory_limit(jobs: int) -> int:
    """Three quarters of the machine's memory shared by ``jobs`` slots, at least 1 GiB each."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1024**3, int(total * 0.75 / max(1, jobs)))


def _mounts() -> list[tuple[str, str, set[str]]]:
    found = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            _dev, where, fstype, opts, *_ = line.split()
            if fstype in ("cgroup", "cgroup2"):
                found.append((fstype, where, set(opts.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """``{controller or "": path}`` of this process's cgroups (``""``: the v2 hierarchy)."""
    own = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _n, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
    return own


@dataclass
class SlotLimits:
    """The cgroup(s) of one job slot. Create with :meth:`create`; remove with :meth:`close`.

    Attributes:
        memory: bytes a notebook may use beyond the warm server's footprint.
        pids: processes and threads the whole slot may have at once.
        dirs: the cgroup folders (one per v1 hierarchy, or one v2 folder).
        version: 1 or 2.
    """

    memory: int
    pids: int
    dirs: dict[str, Path]
    version: int

    @classmethod
    def create(cls, name: str, memory: int, pids: int) -> SlotLimits:
        """Make the cgroup ``<grader's cgroup>/<name>``; :class:`LimitsUnavailable` if impossible."""
        mounts, own = _mounts(), _own_paths()
        v1 = {c: where for fstype, where, opts in mounts if fstype == "cgroup" for c in _V1 if c in opts}
        if set(v1) == set(_V1):
            dirs = {c: Path(v1[c] + own.get(c, "/")) / name for c in _V1}
            version = 1
        else:
            v2 = next((where for fstype, where, _ in mounts if fstype == "cgroup2"), None)
            if v2 is None:
                raise LimitsUnavailable("no cgroup file system with the memory and pids controllers is mounted")
            parent = Path(v2 + own.get("", "/"))
            offered = parent / "cgroup.controllers"
            ctl = offered.read_text().split() if offered.exists() else []
            if not set(_V1) <= set(ctl):
                raise LimitsUnavailable(f"the cgroup {parent} does not offer the memory and pids controllers")
            try:
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            except OSError as exc:
                raise LimitsUnavailable(f"cannot delegate memory and pids limits under {parent}: {exc}") from None
            dirs, version = {"": parent / name}, 2
        try:
            for d in dirs.values():
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LimitsUnavailable(f"cannot create cgroup {next(iter(dirs.values()))}: {exc} "
                                    "(run the grader as root, or in a systemd scope with delegation)") from None
        limits = cls(memory, pids, dirs, version)
        limits._write("pids", "pids.max", str(pids))
        return limits

    def _file(self, controller: str, name: str) -> Path:
        return self.dirs["" if self.version == 2 else controller] / name

    def _write(self, controller: str, name: str, value: str) -> None:
        self._file(controller, name).write_text(value)

    def _read(self, controller: str, name: str) -> str:
        try:
            return self._file(controller, name).read_text()
        except OSError:
            return ""

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid into to join the slot."""
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def wrap(self, cmd: list[str]) -> list[str]:
        """``cmd`` run by a shell that first moves itself into the slot's cgroups (then ``exec``)."""
        files = self.procs_files()
        script = "".join(f'echo $$ > "${i + 1}" || exit 126; ' for i in range(len(files)))
        script += f"shift {len(files)}; exec \"$@\""
        return ["/bin/sh", "-c", script, "sh", *files, *cmd]

    def usage(self) -> int:
        """Bytes the slot's processes use now."""
        text = self._read("memory", "memory.current" if self.version == 2 else "memory.usage_in_bytes")
        return int(text) if text.strip().isdigit() else 0

    def arm(self) -> int:
        """Set the memory limit to what the slot uses now plus :attr:`memory`; return the limit."""
        limit = self.usage() + self.memory
        if self.version == 2:
            self._write("memory", "memory.max", str(limit))
            if self._file("memory", "memory.swap.max").exists():
                self._write("memory", "memory.swap.max", "0")
        else:
            # cgroup v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every write: a limit raised
            # above the last memsw limit (a slot armed again after its server restarted) is refused with EINVAL
            # unless memsw is raised first; a lowered one must be written before memsw.
            memsw = self._file("memory", "memory.memsw.limit_in_bytes")
            for first in (True, False):
                if memsw.exists():
                    try:
                        self._write("memory", "memory.memsw.limit_in_bytes", str(limit))
                    except OSError:
                        pass
                if first:
                    self._write("memory", "memory.limit_in_bytes", str(limit))
        return limit

    def events(self) -> dict[str, int]:
        """Counters so far: ``oom_kill`` (processes killed for memory) and ``pids_max`` (forks refused)."""
        counts = {"oom_kill": 0, "pids_max": 0}
        memory = self._read("memory", "memory.events" if self.version == 2 else "memory.oom_control")
        for line in memory.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                counts["oom_kill"] = int(value)
        for line in self._read("pids", "pids.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                counts["pids_max"] = int(value)
        return counts

    def close(self) -> None:
        """Remove the cgroups (their processes must be gone)."""
        for d in self.dirs.values():
            for _ in range(100):  # the kernel reaps the last processes asynchronously
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
