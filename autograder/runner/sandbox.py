"""The bubblewrap sandbox every student kernel runs in.

:class:`Sandbox` builds the ``bwrap`` command line (bubblewrap, the sandbox Flatpak uses;
Debian package ``bubblewrap``) that wraps a job slot's warm kernel server or a spawned kernel:

* new user, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all --unshare-user``), no
  capabilities (``--cap-drop ALL``, also when the grader runs as root), a new session (no
  terminal injection), killed with the grader (``--die-with-parent``);
* a file system made of read-only binds only: ``/usr`` and the library links, a few named
  files of ``/etc``, the Python installation and every site-packages folder the grader uses,
  and the ``helpers`` package; the one writable folder is the slot's job folder (bound at its
  own path, so Jupyter's ``ipc`` sockets and connection file have the same name inside and
  out), plus a private ``/tmp`` and ``/dev/shm``. The submissions, the output folder, other
  slots and the repository's ``assignment/`` and ``autograder/`` are not in it at all;
* only loopback networking, so kernels talk to the grader over Unix sockets (``ipc``).

Memory and process limits come from :mod:`autograder.runner.limits` (bubblewrap sets none).

Runs in the grader's process.
"""

from __future__ import annotations

import glob
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sandbox", "SandboxError", "sandbox_support", "KERNEL_HOME", "SLOT_INSIDE", "inside_path"]

#: Files of /etc a Python kernel reads (dynamic loader, users, time zone, fonts); nothing else of /etc.
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "localtime",
        "fonts", "hosts", "host.conf", "mime.types", "alternatives")
#: Top-level links or folders of the system (merged-/usr systems have links here).
_SYSTEM = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: Where the warm kernel server's script is shown inside the sandbox.
ZYGOTE_INSIDE = "/opt/grader/zygote.py"
#: HOME of a sandboxed kernel (inside its private /tmp).
KERNEL_HOME = "/tmp/home"
#: Where the slot's writable folder appears inside the sandbox (the same for every slot and run,
#: so what a notebook prints about its paths, and so its feedback, does not depend on the slot).
SLOT_INSIDE = Path("/grading")


class SandboxError(RuntimeError):
    """The sandbox cannot be built here; the message says why and what to do."""


def sandbox_support() -> str | None:
    """``None`` when bubblewrap sandboxes work here, else the reason they do not."""
    if sys.platform != "linux":
        return f"sandboxing needs Linux namespaces; this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return ("bubblewrap is not installed (Debian/Ubuntu: sudo apt-get install -y bubblewrap; "
                "Fedora: sudo dnf install bubblewrap)")
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent",
                               "--ro-bind", "/", "/", "--proc", "/proc", "--", "true"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if done.returncode != 0:
        return (f"bubblewrap cannot create namespaces here ({done.stderr.strip()[:200]}); user namespaces may "
                "be disabled (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)")
    return None


def inside_path(path: Path | str, writable: Path) -> Path:
    """The name inside the sandbox of ``path``, a file or folder in the slot folder ``writable``."""
    return SLOT_INSIDE / Path(path).resolve().relative_to(Path(writable).resolve())


def _python_paths() -> list[Path]:
    """Folders the kernel's Python needs, by the names Python knows them (installation, virtual
    environment, site-packages, the interpreter's folder, other ``sys.path`` entries inside those),
    not resolved: a name that passes through a symbolic link (``~/course -> /data/course``) is shown
    inside the sandbox under that name too (:meth:`Sandbox.command`)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.abspath(sys.executable))}
    paths.update(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        paths.add(site.getusersitepackages())
    roots = [Path(os.path.abspath(p)) for p in paths if os.path.exists(p)]
    # Other sys.path entries only where they lie inside those (zip files, .pth additions).
    extra = [Path(os.path.abspath(p)) for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)]
    return sorted({*roots, *(p for p in extra if any(_inside(p, r) for r in roots))})


def _binds(path: Path) -> list[tuple[str, str]]:
    """``(source, destination)`` read-only binds that show ``path`` inside the sandbox: at its real
    location, and also under the name given when that passes through a symbolic link."""
    real = Path(path).resolve()
    binds = [(str(real), str(real))]
    named = Path(os.path.abspath(path))
    if named != real:
        binds.append((str(real), str(named)))
    return binds


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Sandbox:
    """What a sandboxed kernel sees. Build it with :meth:`build`.

    Attributes:
        readonly: folders and files bound read-only at their own paths (also at their real paths
            where a name passes through a symbolic link). They may lie anywhere, ``/tmp`` included:
            they are bound after the sandbox's private ``/tmp``, so that it does not hide them.
        hidden: folders that must not be visible; :meth:`build` refuses read-only binds
            that would contain one of them.
        cuda: also show the NVIDIA device files, ``/sys`` and the driver's ``/proc`` entries.
        pythonpath: ``PYTHONPATH`` inside (folders of ``readonly`` holding packages to import).
    """

    readonly: tuple[Path, ...]
    hidden: tuple[Path, ...] = ()
    cuda: bool = False
    pythonpath: str | None = None
    bwrap: str = field(default_factory=lambda: shutil.which("bwrap") or "bwrap")

    @classmethod
    def build(cls, hidden: list[Path], packages: list[Path] = (), cuda: bool = False) -> Sandbox:
        """A sandbox showing the Python installation and the package folders ``packages``, and
        none of the ``hidden`` folders.

        The parents of ``packages`` become ``PYTHONPATH`` inside, where they hold nothing else.
        Raises :class:`SandboxError` when sandboxes do not work here, or when a folder the kernel
        needs (the Python installation, a site-packages folder) contains one of ``hidden`` (a
        virtual environment inside the course repository is fine; a repository *inside* the
        Python installation is not).
        """
        reason = sandbox_support()
        if reason:
            raise SandboxError(reason)
        hidden = [Path(h).resolve() for h in hidden]
        ro = []
        for path in _python_paths():
            covered = [h for h in hidden if _inside(h, path)]
            if not covered:
                ro.append(path)
            else:
                raise SandboxError(f"the Python folder {path} contains {covered[0]}, which student code must not "
                                   "see; keep submissions, output and the course repository outside it")
        packages = [Path(os.path.abspath(p)) for p in packages]
        pythonpath = os.pathsep.join(dict.fromkeys(str(p.parent) for p in packages)) or None
        return cls(tuple(dict.fromkeys([*ro, *packages])), tuple(hidden), cuda, pythonpath)

    def command(self, cmd: list[str], writable: Path, env: dict[str, str], pid1: bool = False,
                files: dict[str, Path] | None = None, info_fd: int | None = None, cwd: Path | None = None) -> list[str]:
        """``cmd`` wrapped in bubblewrap.

        Args:
            cmd: the program and its arguments (paths as seen inside).
            writable: the one writable folder (the slot's folder), shown as :data:`SLOT_INSIDE`.
            env: the whole environment inside (nothing of the grader's own is passed).
            pid1: run ``cmd`` as PID 1 of the namespace (the warm kernel server); otherwise
                bubblewrap's own init reaps and ``cmd`` is PID 2.
            files: extra read-only files, ``{path inside: path outside}``.
            info_fd: file descriptor on which bubblewrap writes ``{"child-pid": ...}``.
            cwd: working folder inside (default :data:`SLOT_INSIDE`).
        """
        args = [self.bwrap, "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent",
                "--new-session", "--clearenv", "--ro-bind", "/usr", "/usr"]
        for name in _SYSTEM:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in _ETC:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        # The private /tmp first: a bind made before it under /tmp (a course cloned there) would be hidden.
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", KERNEL_HOME]
        for path in self.readonly:
            for source, dest in _binds(path):
                args += ["--ro-bind", source, dest]
        if self.cuda:
            for dev in sorted(glob.glob("/dev/nvidia*")):
                args += ["--dev-bind", dev, dev]
            for path in ("/sys", "/proc/driver/nvidia"):
                if os.path.exists(path):
                    args += ["--ro-bind", path, path]
        elif os.path.isdir("/sys/devices/system/cpu"):
            args += ["--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
        for inside, outside in (files or {}).items():
            args += ["--ro-bind", str(outside), inside]
        args += ["--bind", str(writable), str(SLOT_INSIDE), "--chdir", str(cwd or SLOT_INSIDE)]
        for key, value in env.items():
            args += ["--setenv", key, value]
        if pid1:
            args.append("--as-pid-1")
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        return [*args, "--", *cmd]
