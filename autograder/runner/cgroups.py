"""Memory and process-count limits of a job slot, from Linux cgroups (root, or a delegated cgroup).

Each job slot gets its own cgroup (memory and pids controllers; cgroup v1 hierarchies or the
unified v2 one, whichever holds them), made under the grader's own cgroup. Its processes (the
slot's sandbox, warm kernel server and every kernel it forks) are put there before bubblewrap
starts (:meth:`SlotCgroup.wrap`), so nothing in the slot escapes it. The memory limit is the
server's own footprint, measured once it is warm (:meth:`SlotCgroup.arm`), plus the notebook's
allowance: a notebook may use ``memory`` bytes beyond the libraries every kernel has loaded.
A cgroup limit counts resident memory, not address space, so CUDA's large address-space
reservations are unaffected (an address-space rlimit would break them).

Who may make them: root, or an ordinary user whose cgroup was delegated to them (the grader started
with ``systemd-run --user --scope -p Delegate=yes ...``, or a cgroup an administrator made and gave to
the user). On cgroup v2 a cgroup with processes in it cannot hand controllers to its children, so the
grader first moves the processes of its own cgroup into a leaf beside the slots (:func:`_free_for_children`).

After each job, :meth:`SlotCgroup.events` tells whether the kernel's cgroup killed a process for
memory or refused a fork, so the status can name the limit.

Runs in the grader's process.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SlotCgroup", "CgroupUnavailable", "DELEGATE_COMMAND"]

_V1 = ("memory", "pids")
#: The v2 leaf cgroup that the processes of the grader's own cgroup move into (:func:`_free_for_children`).
_LEAF = "pruning-grader"
#: How an ordinary user gets a cgroup of their own on a systemd machine (put before the grader's command).
DELEGATE_COMMAND = "systemd-run --user --scope -p Delegate=yes"


class CgroupUnavailable(RuntimeError):
    """No writable cgroup with the memory and pids controllers; the message says why."""


def _mounts(proc: Path) -> list[tuple[str, str, set[str]]]:
    found = []
    with open(proc / "mounts") as fh:
        for line in fh:
            _dev, where, fstype, opts, *_ = line.split()
            if fstype in ("cgroup", "cgroup2"):
                found.append((fstype, where, set(opts.split(","))))
    return found


def _own_paths(proc: Path) -> dict[str, str]:
    """``{controller or "": path}`` of this process's cgroups (``""``: the v2 hierarchy)."""
    own = {}
    with open(proc / "cgroup") as fh:
        for line in fh:
            _n, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
    return own


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _free_for_children(parent: Path, leaf: str) -> None:
    """Let ``parent`` (a v2 cgroup) give the memory and pids controllers to its children.

    v2 refuses that (``EBUSY``) while ``parent`` itself holds processes: the grader's own, and in a
    ``systemd-run --scope`` whatever started it. They are moved into the leaf ``parent/leaf`` first, as
    systemd's delegation rules ask of a delegated subtree's owner. Raises :class:`CgroupUnavailable`.
    """
    control = parent / "cgroup.subtree_control"
    if set(_V1) <= set(_words(control)):
        return
    try:
        control.write_text("+memory +pids")
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise CgroupUnavailable(f"cannot delegate memory and pids limits under {parent}: {exc.strerror}") from None
    try:
        (parent / leaf).mkdir(exist_ok=True)
        for pid in _words(parent / "cgroup.procs"):
            try:
                (parent / leaf / "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                pass  # exited meanwhile
        control.write_text("+memory +pids")
    except OSError as exc:
        raise CgroupUnavailable(f"cannot move the processes of {parent} into {leaf}/ to delegate memory and pids "
                                f"limits below it: {exc.strerror or exc}") from None


@dataclass
class SlotCgroup:
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
    def create(cls, name: str, memory: int, pids: int, proc: Path = Path("/proc/self")) -> SlotCgroup:
        """Make the cgroup ``<grader's cgroup>/<name>``; :class:`CgroupUnavailable` if impossible.

        ``proc``: where this process's ``mounts`` and ``cgroup`` files are read (tests point it elsewhere).
        """
        mounts, own = _mounts(proc), _own_paths(proc)
        v1 = {c: where for fstype, where, opts in mounts if fstype == "cgroup" for c in _V1 if c in opts}
        if set(v1) == set(_V1):
            dirs = {c: Path(v1[c] + own.get(c, "/")) / name for c in _V1}
            version = 1
        else:
            v2 = next((where for fstype, where, _ in mounts if fstype == "cgroup2"), None)
            if v2 is None:
                raise CgroupUnavailable("no cgroup file system with the memory and pids controllers is mounted")
            parent = Path(v2 + own.get("", "/"))
            if not set(_V1) <= set(_words(parent / "cgroup.controllers")):
                raise CgroupUnavailable(f"the cgroup {parent} does not offer the memory and pids controllers")
            _free_for_children(parent, _LEAF)
            dirs, version = {"": parent / name}, 2
        try:
            for d in dirs.values():
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CgroupUnavailable(f"cannot create cgroup {next(iter(dirs.values()))}: {exc.strerror}") from None
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

    @property
    def where(self) -> str:
        """The slot's cgroup folder (the memory one on v1)."""
        return str(self.dirs["" if self.version == 2 else "memory"])

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
