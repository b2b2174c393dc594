"""``make bench`` step ``cluster``: grading on Dask workers (``--cluster``) against local ``--jobs`` slots.

The same class (the grading bench's submissions, ``copies`` times), data file and model are graded
with ``--jobs 1``, ``--cluster local:1``, ``--jobs 2`` and ``--cluster local:2``, every run with one
CPU thread per notebook (``--threads 1``), in ``rounds`` rounds whose order reverses every other
round. Reported: the throughput of two workers over one (goal 1.8x), the wall time per submission
that the cluster adds over ``--jobs`` with as many slots (goal under 0.5 s), the scheduler's own
cost per task (no-op tasks on a two-worker ``LocalCluster``), and the grader's own work per
submission (recording in the gradebook and writing feedback, done by the grader for every
worker), from which the scaling to 10 and 100 workers is estimated.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

__all__ = ["bench_cluster", "scheduler_overhead", "scaling"]

CONFIGS = {"jobs1": ("--jobs", "1"), "local1": ("--cluster", "local:1"),
           "jobs2": ("--jobs", "2"), "local2": ("--cluster", "local:2")}


def scheduler_overhead(tasks: int = 2000) -> float:
    """Seconds per task the Dask scheduler and workers add: ``tasks`` no-op tasks on 2 workers x 1 thread."""
    from distributed import Client, LocalCluster, wait
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        wait(client.map(_noop, range(50)))  # warm
        start = time.perf_counter()
        wait(client.map(_noop, range(tasks), pure=False))
        return (time.perf_counter() - start) / tasks


def _noop(i: int) -> int:
    return i


def scaling(task_s: float, scheduler_s: float, grader_s: float, workers=(1, 2, 10, 100)) -> list[dict]:
    """Expected speed-up over one worker at each count: min(N, task / scheduler cost, task / grader cost).

    ``task_s``: wall seconds one single-thread worker spends per submission; ``scheduler_s``: the
    scheduler's cost per task; ``grader_s``: the grader's own serial work per submission. Each bound
    is the number of workers one scheduler or one grader can keep busy.
    """
    bound_scheduler, bound_grader = task_s / scheduler_s, task_s / grader_s
    return [{"workers": n, "speedup": round(min(n, bound_scheduler, bound_grader), 1),
             "limited_by": ("workers" if n <= min(bound_scheduler, bound_grader) else
                            "scheduler" if bound_scheduler < bound_grader else "grader")} for n in workers]


def bench_cluster(work: Path, model: Path, rounds: int, copies: int = 2) -> dict:
    import numpy as np

    from autograder.grading.scoring import grading_subset
    from benchmarks.run import BENCH_STUDENTS, _class, _ours, spread

    submitted = work / "cluster-class"
    for c in range(copies):
        _class(submitted, suffix=f"-{c}")
    n = len(BENCH_STUDENTS) * copies
    data_npz = work / "cluster-grading.npz"
    np.savez(data_npz, **grading_subset("synthetic", 100))
    walls = {k: [] for k in CONFIGS}
    grader_s, scores = [], {}
    for i in range(rounds):
        for name in (list(CONFIGS) if i % 2 == 0 else list(CONFIGS)[::-1]):
            seconds, scores[name], timings = _ours(work, submitted, data_npz, model, 1, f"{name}-{i}",
                                                   *CONFIGS[name], "--threads", "1")
            walls[name].append(seconds)
            if name.startswith("local"):
                grader_s += [t.get("record", 0) + t.get("feedback", 0) for t in timings["students"].values()]
        print(f"cluster round {i + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in walls.items()),
              flush=True)
    ratio = [a / b for a, b in zip(walls["local1"], walls["local2"])]
    added = {k: [(c - j) / n for c, j in zip(walls[f"local{k}"], walls[f"jobs{k}"])] for k in (1, 2)}
    per = {k: spread((statistics.median(v) / n, min(v) / n, max(v) / n)) for k, v in walls.items()}
    sched = scheduler_overhead()
    task_s = statistics.median(walls["local1"]) / n
    grader = statistics.median(grader_s) if grader_s else 0.0
    return {
        "submissions": n, "rounds": rounds, "threads_per_notebook": 1, "seconds_per_submission": per,
        "throughput_2_workers_over_1": spread((statistics.median(ratio), min(ratio), max(ratio))),
        "target_ratio": 1.8,
        "cluster_added_s_per_submission": {f"{k} worker(s)": spread((statistics.median(v), min(v), max(v)))
                                           for k, v in added.items()},
        "target_added_s": 0.5,
        "scheduler_s_per_task": round(sched, 6),
        "grader_s_per_submission": round(grader, 4),
        "scaling": scaling(task_s, sched, grader) if grader else [],
        "scores_identical": len({str(sorted(v.items())) for v in scores.values()}) == 1,
    }
