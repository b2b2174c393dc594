"""Which memory, process and CPU-time limits a grading run's kernels get, and the lines that say so.

Two mechanisms, the stronger first (:func:`choose_limits` picks):

* **cgroups** (:mod:`autograder.runner.cgroups`), where the grader may make them: as root, or in a cgroup
  delegated to the user (``systemd-run --user --scope -p Delegate=yes``). Memory counts the resident memory
  of a job slot's processes together; past the limit the kernel's OOM killer stops the notebook and the
  slot's counters name it. Processes count every process and thread of the slot.
* **rlimits** (:class:`KernelRlimits`), which any user may set: each kernel sets them on itself inside its
  sandbox (:mod:`autograder.runner.zygote`), before any student code runs, and cannot raise them again.
  Memory counts the address space of each kernel process (a notebook's allocation past it fails with
  ``MemoryError``; CPU only: CUDA reserves address space far beyond what it uses, so on a GPU memory has
  no limit). Processes count the processes and threads of the kernel's sandbox (``RLIMIT_NPROC`` is
  counted per user namespace, and each sandbox has its own).

Both: CPU time of each kernel process (``RLIMIT_CPU``), a little over what its share of cores gives it in
``--timeout`` seconds; past it the kernel gets ``SIGXCPU``.

:class:`LimitsInForce` says what holds: the run's first lines and ``timings.json``.

Runs in the grader's process.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from .cgroups import DELEGATE_COMMAND, CgroupUnavailable, SlotCgroup

__all__ = ["KernelRlimits", "LimitsInForce", "choose_limits", "cpu_seconds", "default_memory_limit", "machine_memory",
           "parse_size", "format_size", "CPU_GRACE", "ADDRESS_SPACE_SLACK"]

#: Seconds between ``SIGXCPU`` (the soft CPU limit) and ``SIGKILL`` (the hard one).
CPU_GRACE = 5
#: Address space a kernel reserves without using it (thread stacks, the allocator's per-thread arenas), added to
#: ``--memory-limit`` under an address-space limit, so that a notebook gets about as much memory as a cgroup
#: gives it: the reference solution's kernel grew by 1.7 GiB of address space and 1.1 GiB of resident memory.
ADDRESS_SPACE_SLACK = 1024**3


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


def machine_memory() -> int:
    """Bytes of memory this process's machine has for it: the machine's, or a batch job's share of it (SLURM's
    ``SLURM_MEM_PER_NODE``, in MiB, set in a job that asked for ``--mem``), whichever is less."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    job = os.environ.get("SLURM_MEM_PER_NODE", "")
    return min(total, int(job) * 1024**2) if job.isdigit() and int(job) > 0 else total


def default_memory_limit(jobs: int) -> int:
    """Three quarters of the machine's memory (:func:`machine_memory`: a batch job's, in a job) shared by ``jobs``
    slots, at least 1 GiB each."""
    return max(1024**3, int(machine_memory() * 0.75 / max(1, jobs)))


def cpu_seconds(timeout: float, threads: int) -> int:
    """A kernel process's CPU time limit: its ``threads`` busy for all of ``timeout`` seconds, and 10% more.

    A notebook that keeps to its share of cores reaches ``timeout`` first; one that uses more cores than it
    was given (``torch.set_num_threads(64)``) is stopped before it has taken its neighbours' time.
    """
    return math.ceil(timeout * threads * 1.1) + 10


@dataclass(frozen=True)
class KernelRlimits:
    """Limits each kernel sets on itself inside its sandbox, before student code runs (``None``: no limit).

    Attributes:
        memory: bytes of address space the kernel may add to what it has when it starts (its imports included).
        processes: processes and threads of the kernel's sandbox together (``RLIMIT_NPROC``; not enforced for
            root, who gets cgroups instead).
        cpu_seconds: CPU time of each process (``RLIMIT_CPU``: ``SIGXCPU``, then ``SIGKILL`` after
            :data:`CPU_GRACE` more seconds).
    """

    memory: int | None = None
    processes: int | None = None
    cpu_seconds: int | None = None

    def request(self) -> dict:
        """The limits as the kernel server's protocol carries them (:mod:`autograder.runner.zygote`)."""
        return {**asdict(self), "cpu_grace": CPU_GRACE}


@dataclass(frozen=True)
class LimitsInForce:
    """What limits a run's kernels get, for the TA (:meth:`lines`) and ``timings.json`` (:meth:`as_dict`).

    Attributes:
        mechanism: ``"cgroup v1"``, ``"cgroup v2"``, ``"rlimits"`` or ``"none"``.
        memory: bytes a notebook may use beyond what its kernel has loaded, or ``None`` (no limit).
        memory_counts: what the memory limit counts.
        processes: the process limit, or ``None``.
        processes_count: what the process limit counts.
        cpu_seconds: CPU time of each kernel process, or ``None``.
        why: why stronger limits could not be used here (``None`` with cgroups).
        stronger: how to get them (``None`` with cgroups).
    """

    mechanism: str
    memory: int | None
    memory_counts: str
    processes: int | None
    processes_count: str
    cpu_seconds: int | None
    why: str | None = None
    stronger: str | None = None

    def lines(self) -> list[str]:
        """The run's first lines: what holds and, where it is weaker than cgroups, why and how to get them."""
        if self.mechanism == "none":
            return [f"warning: no memory, process or CPU-time limits ({self.why})"]
        memory = (f"memory {format_size(self.memory)} per notebook ({self.memory_counts})" if self.memory
                  else f"memory: no limit ({self.memory_counts})")
        parts = [memory, f"{self.processes} processes and threads ({self.processes_count})"]
        if self.cpu_seconds:
            parts.append(f"{self.cpu_seconds} s of CPU time per kernel process")
        out = [f"limits ({self.mechanism}): " + "; ".join(parts)]
        if self.why:
            out.append(f"note: no cgroup limits here ({self.why}). {self.stronger}")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def _stronger() -> str:
    return ("For cgroup limits (resident memory of every process of a notebook, and the kernel named when it is "
            "stopped), run the grader as root, or in a cgroup of your own: "
            f"{DELEGATE_COMMAND} python -m autograder grade ...")


def choose_limits(names: list[str], memory: int, pids: int, cpu: int | None, sandboxed: bool,
                  cuda: bool) -> tuple[list[SlotCgroup | None], KernelRlimits | None, LimitsInForce]:
    """The strongest limits this process may set for job slots called ``names``.

    Args:
        names: one cgroup name per slot (unique on the machine).
        memory: bytes a notebook may use beyond its kernel's libraries (``--memory-limit``).
        pids: processes and threads per slot (``--pids-limit``).
        cpu: CPU seconds per kernel process (:func:`cpu_seconds`), or ``None``.
        sandboxed: kernels run in bubblewrap sandboxes (rlimits need them: ``RLIMIT_NPROC`` would count the
            user's own processes too outside a user namespace).
        cuda: kernels may use CUDA (then no address-space limit).

    Returns the slots' cgroups (each ``None`` without), the rlimits every kernel sets, and what is in force.
    """
    if not sandboxed:
        none = LimitsInForce("none", None, "", None, "", None, why="--no-sandbox")
        return [None] * len(names), None, none
    made: list[SlotCgroup] = []
    try:
        for name in names:
            made.append(SlotCgroup.create(name, memory, pids))
    except (CgroupUnavailable, OSError) as exc:
        for cgroup in made:
            cgroup.close()
        why = str(exc)
    else:
        force = LimitsInForce(f"cgroup v{made[0].version}", memory,
                              "resident memory of its processes together, beyond the warm kernel's", pids,
                              "per notebook, counted by its job slot's cgroup", cpu)
        return list(made), KernelRlimits(cpu_seconds=cpu), force
    rlimits = KernelRlimits(None if cuda else memory + ADDRESS_SPACE_SLACK, pids, cpu)
    counts = ("kernels use CUDA, which an address-space limit would break" if cuda else
              f"address space of each kernel process beyond its own when it starts, plus "
              f"{format_size(ADDRESS_SPACE_SLACK)} for what it reserves and does not use")
    force = LimitsInForce("rlimits", None if cuda else memory, counts, pids, "per notebook, counted in its sandbox",
                          cpu, why=why, stronger=_stronger())
    return [None] * len(names), rlimits, force
