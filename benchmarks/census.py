"""``make bench`` step ``cluster_cpu``: where the CPU time of a grading run goes, per kind of process.

Wall-clock figures of two runs taken minutes apart on a shared two-core machine drift by more than the
cluster's own cost (``benchmarks/history.md``: the same ``--jobs 2`` run took 136 s and 164 s in one
bench). CPU seconds drift less: this step runs the same class with ``--jobs 2`` and ``--cluster
local:2`` in alternating order, samples every process of each run (``psutil``, every 0.25 s), and splits
their CPU seconds by role (:func:`role`): the grader's process (with a ``local:N`` cluster's scheduler
and nannies), the Dask workers and their fork server, the sandboxes, the kernel servers and the
notebooks' kernels. Reported per submission, in the steady part of each run (:func:`steady_cpu`: from
the grade that ends the first wave to the last grade) and over the whole run, with what the cluster
adds over ``--jobs`` (the grading side's CPU: everything but :data:`KERNEL_ROLES`).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

__all__ = ["role", "steady_cpu", "census", "bench_cluster_cpu", "grading_side_cpu", "kernel_cpu", "KERNEL_ROLES"]

#: Roles whose CPU is the notebooks' own work and their sandboxes' (the same whoever grades them).
KERNEL_ROLES = ("kernel", "kernel server", "sandbox")
#: Seconds between two samples of the run's processes.
SAMPLE_S = 0.25


def grading_side_cpu(row: dict) -> float:
    """CPU seconds of a census row (``{"wall": ..., role: CPU seconds}``) outside :data:`KERNEL_ROLES`."""
    return sum(v for k, v in row.items() if k != "wall" and k not in KERNEL_ROLES)


def kernel_cpu(row: dict) -> float:
    """CPU seconds of a census row in :data:`KERNEL_ROLES`."""
    return sum(row.get(k, 0.0) for k in KERNEL_ROLES)


def role(cmdline: str, parent_role: str | None, is_grader: bool) -> str:
    """The role of a process of a grading run, from its command line and its parent's role.

    ``grader`` (the command itself; on ``local:N`` it also holds the scheduler and the nannies),
    ``kernel server`` (a slot's warm server, :mod:`autograder.runner.zygote`), ``kernel`` (forked by a
    server), ``fork server`` (multiprocessing's, which forks a ``local:N`` cluster's workers), ``worker``
    (a Dask worker process, forked or spawned), ``sandbox`` (bubblewrap), ``other``.
    """
    if is_grader:
        return "grader"
    if "bwrap" in cmdline.split(" ", 1)[0]:  # its arguments name the server it starts
        return "sandbox"
    if "zygote" in cmdline:
        return "kernel" if parent_role in ("kernel", "kernel server") else "kernel server"
    if "ipykernel" in cmdline:
        return "kernel"
    if "multiprocessing.forkserver" in cmdline:
        return "worker" if parent_role == "fork server" else "fork server"
    if "multiprocessing" in cmdline:  # spawn_main, resource_tracker
        return "worker"
    return "other"


def steady_cpu(snapshots: list[tuple[float, int, dict]], slots: int) -> dict:
    """CPU seconds per submission by role between the first wave's last grade and the last grade.

    ``snapshots``: ``(seconds since start, grades done, {role: CPU seconds so far})`` in time order;
    ``slots``: notebooks graded at once. Returns ``{"wall": seconds per submission, role: CPU seconds per
    submission, ...}`` over that window. Raises ``ValueError`` when the run graded no more than ``slots``.
    """
    done = snapshots[-1][1] if snapshots else 0
    if done <= slots:
        raise ValueError(f"need more than {slots} grades to see a steady rate, got {done}")
    first = next(s for s in snapshots if s[1] >= slots)
    last = next(s for s in snapshots if s[1] >= done)
    n = last[1] - first[1]
    roles = sorted(set(first[2]) | set(last[2]))
    return {"wall": (last[0] - first[0]) / n, **{r: (last[2].get(r, 0.0) - first[2].get(r, 0.0)) / n for r in roles}}


def census(cmd: list[str], env: dict, cwd: Path, journal: Path) -> tuple[float, list[tuple[float, int, dict]]]:
    """Run ``cmd`` and sample its processes every :data:`SAMPLE_S` seconds; return its wall seconds and the
    snapshots (:func:`steady_cpu`), the grades done read from the run's ``journal``. A process's CPU is
    counted up to its last sample (a kernel that ends between two samples loses at most that interval)."""
    import psutil

    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: dict[int, list] = {}  # pid -> [role, CPU seconds]
    snapshots = []
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            procs = [proc]
        for p in procs:
            try:
                times = p.cpu_times()
                if p.pid not in seen:
                    parent = seen.get(p.ppid(), [None])[0]
                    seen[p.pid] = [role(" ".join(p.cmdline()), parent, p.pid == proc.pid), 0.0]
                seen[p.pid][1] = max(seen[p.pid][1], times.user + times.system)
            except psutil.Error:  # ended between the listing and the reading
                pass
        by_role: dict[str, float] = {}
        for r, cpu in seen.values():
            by_role[r] = by_role.get(r, 0.0) + cpu
        snapshots.append((time.perf_counter() - start, _lines(journal), by_role))
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"grading run failed ({proc.returncode}): {err[-2000:]}")
    return wall, snapshots


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def bench_cluster_cpu(work: Path, model: Path, rounds: int, copies: int = 2) -> dict:
    """The census (see the module's text) of ``copies`` copies of the grading bench's class, ``rounds`` rounds
    of ``--jobs 2`` and ``--cluster local:2`` (one CPU thread per notebook), the order reversed every other round."""
    from benchmarks.cluster import cluster_class
    from benchmarks.run import REPO, grade_command, venv_env

    submitted, data_npz, n = cluster_class(work, copies)
    configs = {"jobs2": ("--jobs", "2"), "local2": ("--cluster", "local:2")}
    steady = {k: [] for k in configs}
    whole = {k: [] for k in configs}
    for i in range(rounds):
        for name in (list(configs) if i % 2 == 0 else list(configs)[::-1]):
            out = work / f"census-{name}-{n}-{i}"
            cmd = grade_command(submitted, data_npz, model, out, "--threads", "1", *configs[name])
            wall, snaps = census(cmd, venv_env(), REPO, out / "journal.jsonl")
            steady[name].append({k: round(v, 3) for k, v in steady_cpu(snaps, 2).items()})
            whole[name].append({"wall": round(wall / n, 3),
                                **{k: round(v / n, 3) for k, v in sorted(snaps[-1][2].items())}})
        print(f"census round {i + 1}/{rounds}: " + ", ".join(
            f"{k} steady {v[-1]['wall']:.2f} s/submission" for k, v in steady.items()), flush=True)

    def added(rows: dict, of) -> list[float]:
        return [round(of(c) - of(j), 3) for c, j in zip(rows["local2"], rows["jobs2"])]

    steady_added, whole_added = added(steady, grading_side_cpu), added(whole, grading_side_cpu)
    return {"submissions": n, "rounds": rounds, "threads_per_notebook": 1, "sample_s": SAMPLE_S,
            "steady_per_submission": steady, "whole_per_submission": whole,
            "steady_added_cpu_s": steady_added, "whole_added_cpu_s": whole_added,
            "steady_added_kernel_cpu_s": added(steady, kernel_cpu),
            "steady_added_wall_s": added(steady, lambda r: r["wall"]),
            "median_steady_added_cpu_s": round(statistics.median(steady_added), 3),
            "median_whole_added_cpu_s": round(statistics.median(whole_added), 3)}
