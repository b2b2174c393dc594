"""``make bench`` step ``cluster_cpu``: where the CPU time of a grading run goes, per kind of process.

Wall-clock figures of two runs taken minutes apart on a shared two-core machine drift by more than the
cluster's own cost (``benchmarks/history.md``: the same ``--jobs 2`` run took 136 s and 164 s in one
bench). CPU seconds drift less: this step runs the same class with ``--jobs 2`` and ``--cluster
local:2`` in alternating order, samples every process of each run (``psutil``, every 0.25 s), and
splits their CPU seconds by role (:func:`~benchmarks.figures.role`): the grader's process (with a
``local:N`` cluster's scheduler and nannies), the Dask workers and their fork server, the sandboxes,
the kernel servers and the notebooks' kernels. Reported per submission, in the steady part of each run
(:func:`~benchmarks.figures.steady_cpu`: from the grade that ends the first wave to the last grade) and
over the whole run, with what the cluster adds over ``--jobs`` (the grading side's CPU: everything but
:data:`~benchmarks.figures.KERNEL_ROLES`).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.cluster import cluster_class
from benchmarks.common import REPO, grade_command, venv_env
from benchmarks.figures import grading_side_cpu, kernel_cpu, role, steady_cpu

__all__ = ["census", "bench_cluster_cpu"]

#: Seconds between two samples of the run's processes.
SAMPLE_S = 0.25


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
