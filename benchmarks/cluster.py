"""``make bench`` step ``cluster``: grading on Dask workers (``--cluster``) against local ``--jobs`` slots.

The same class (the grading bench's submissions, ``copies`` times), data file and model are graded
with ``--jobs 1``, ``--cluster local:1``, ``--jobs 2`` and ``--cluster local:2``, every run with one
CPU thread per notebook (``--threads 1``), in ``rounds`` rounds whose order reverses every other
round. Reported: the throughput of two workers over one (goal 1.8x), beside the same ratio for
``--jobs 2`` over ``--jobs 1`` and the seconds each notebook's kernel ran (what two notebooks at
once can reach on this machine, whoever runs them), the wall time per submission
that the cluster adds over ``--jobs`` with as many slots (goal under 0.5 s), both for whole runs and
split into a steady cost per submission and a fixed cost per run (:func:`steady_and_fixed`: start-up
counts once per run, not per submission), the time the hidden checks take per submission
(``score``: on a cluster each worker measures what no process of the run has measured yet), the scheduler's own
cost per task (no-op tasks on a two-worker ``LocalCluster``), and the grader's own work per
submission (recording in the gradebook and writing feedback, done by the grader for every
worker), from which the scaling to 10 and 100 workers is estimated.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import BENCH_STUDENTS, REPO, make_class, run_grader, spread
from benchmarks.figures import added_over_jobs, scaling, steady_and_fixed

__all__ = ["bench_cluster", "cluster_class", "bench_contention", "scheduler_overhead", "CLASS_COPIES"]

CONFIGS = {"jobs1": ("--jobs", "1"), "local1": ("--cluster", "local:1"),
           "jobs2": ("--jobs", "2"), "local2": ("--cluster", "local:2")}
#: Step ``cluster_class``: copies of the grading bench's 8 notebooks (32 submissions), for 1 and 2 workers only.
#: Start-up counts once per run, so the whole-run ratio of a class this size is closer to the steady one.
CLASS_COPIES = 4


def scheduler_overhead(tasks: int = 2000) -> float:
    """Seconds per task the Dask scheduler and workers add: ``tasks`` no-op tasks on 2 workers x 1 thread."""
    from distributed import Client, LocalCluster, wait
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        wait(client.map(_noop, range(50)))  # warm
        start = time.perf_counter()
        wait(client.map(_noop, range(tasks), pure=False))
        return (time.perf_counter() - start) / tasks


#: One process's share of :func:`bench_contention`: a warm-up epoch of fine-tuning, then ``EPOCHS`` timed ones
#: (one CPU thread, the grading data's 1,000 training images); prints the timed seconds.
_FINE_TUNING = """
import time, sys, torch
torch.set_num_threads(1)
from helpers.models import SmallCNN
from helpers.finetune import fine_tune
from autograder.grading.batch import grading_subset
d = grading_subset("synthetic", 100)
torch.manual_seed(0)
m, data = SmallCNN(), [d["X_train"], d["y_train"]]
fine_tune(m, data, device="cpu", progress=False)
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
start = time.perf_counter()
fine_tune(m, data, epochs=int(sys.argv[1]), device="cpu", progress=False)
print(time.perf_counter() - start)
"""


def _timed_together(n: int, epochs: int) -> list[float]:
    """Seconds each of ``n`` processes took for the same fine-tuning, started together once all are warm."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", _FINE_TUNING, str(epochs)], cwd=REPO, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a fine-tuning process of the contention bench failed to start")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return [float(p.communicate()[0]) for p in procs]


def bench_contention(rounds: int = 3, epochs: int = 4) -> dict:
    """How much slower the same CPU work runs when two processes run it at once on this machine.

    Each round times ``epochs`` epochs of fine-tuning (1 CPU thread) in one process alone and in two
    processes at once, the order alternating. ``slowdown`` is the median of (mean time of the two
    together) / (time alone); ``2 / slowdown`` is the most two notebooks at once can gain over one
    here, whoever runs them (``--jobs 2`` or ``--cluster local:2``), before any cost of their own.
    """
    ratios, alone_s, together_s = [], [], []
    for i in range(rounds):
        order = ("alone", "together") if i % 2 == 0 else ("together", "alone")
        got = {name: _timed_together(1 if name == "alone" else 2, epochs) for name in order}
        alone_s.append(round(got["alone"][0], 3))
        together_s.append([round(x, 3) for x in got["together"]])
        ratios.append(statistics.mean(got["together"]) / got["alone"][0])
    slowdown = statistics.median(ratios)
    return {"rounds": rounds, "epochs": epochs, "alone_s": alone_s, "together_s": together_s,
            "slowdown": round(slowdown, 3), "slowdown_per_round": [round(x, 3) for x in ratios],
            "two_at_once_ceiling": round(2 / slowdown, 3)}


def _noop(i: int) -> int:
    return i


def cluster_class(work: Path, copies: int) -> tuple[Path, Path, int]:
    """``copies`` copies of the grading bench's class under ``work`` and its grading data file (made once per
    size: each class size its own folders, so runs resume from their journal); returns both and the class size."""
    import numpy as np

    from autograder.grading.batch import grading_subset

    n = len(BENCH_STUDENTS) * copies
    submitted = work / f"cluster-class-{n}"
    if not submitted.is_dir():
        for c in range(copies):
            make_class(submitted, suffix=f"-{c}")
    data_npz = work / "cluster-grading.npz"
    if not data_npz.is_file():
        np.savez(data_npz, **grading_subset("synthetic", 100))
    return submitted, data_npz, n


def bench_cluster(work: Path, model: Path, rounds: int, copies: int = 2, configs=tuple(CONFIGS)) -> dict:
    """The cluster bench (see the module's text) on ``copies`` copies of the grading bench's class, with the
    runs ``configs`` (keys of :data:`CONFIGS`). What the cluster adds over ``--jobs`` is reported for each
    worker count run both ways (``jobs2`` and ``local2``, say); without any such pair only the workers' ratios."""

    submitted, data_npz, n = cluster_class(work, copies)
    walls = {k: [] for k in configs}
    split = {k: [] for k in configs}  # (steady s per submission, fixed s per run) of every run
    grader_s, scores = [], {}
    scoring = {k: [] for k in configs}  # seconds of hidden checks per submission (measurements included), per run
    kernel = {k: [] for k in configs}  # seconds a notebook's kernel ran, per submission, per run
    phases = {k: [] for k in configs}  # the run's own timings (start-up steps, wall) and its first and last grade
    for i in range(rounds):
        for name in (list(configs) if i % 2 == 0 else list(configs)[::-1]):
            seconds, scores[name], timings = run_grader(work, submitted, data_npz, model, 1, f"{name}-{n}-{i}",
                                                   *CONFIGS[name], "--threads", "1")
            walls[name].append(seconds)
            scoring[name].append(sum(t.get("score", 0) for t in timings["students"].values()) / n)
            kernel[name].append(sum(t.get("kernel", 0) for t in timings["students"].values()) / n)
            done = [t["finished"] for t in timings["students"].values()]
            phases[name].append({**{k: v for k, v in timings["run"].items() if isinstance(v, float)},
                                 "first_grade": min(done), "last_grade": max(done), "process": round(seconds, 2)})
            split[name].append(steady_and_fixed(seconds, done, int(name[-1])))
            if name.startswith("local"):
                grader_s += [t.get("record", 0) + t.get("feedback", 0) for t in timings["students"].values()]
        print(f"cluster round {i + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in walls.items()),
              flush=True)
    ratio = [a / b for a, b in zip(walls["local1"], walls["local2"])]
    per = {k: spread((statistics.median(v) / n, min(v) / n, max(v) / n)) for k, v in walls.items()}
    steady_ratio = [a[0] / b[0] for a, b in zip(split["local1"], split["local2"])]
    workers = {
        "submissions": n, "rounds": rounds, "threads_per_notebook": 1, "seconds_per_submission": per,
        "throughput_2_workers_over_1": spread((statistics.median(ratio), min(ratio), max(ratio))),
        "target_ratio": 1.8,
        "steady_throughput_2_workers_over_1": spread((statistics.median(steady_ratio), min(steady_ratio),
                                                      max(steady_ratio))),
        "steady_s_per_submission": {k: [round(x[0], 3) for x in v] for k, v in split.items()},
        "fixed_s_per_run": {k: [round(x[1], 1) for x in v] for k, v in split.items()},
        "kernel_s_per_submission": {k: [round(x, 2) for x in v] for k, v in kernel.items()},
        "run_phases_s": phases,
        "scores_identical": len({str(sorted(v.items())) for v in scores.values()}) == 1,
    }
    added, steady_added, fixed_added = added_over_jobs(walls, split, n)
    if not added:
        return workers
    sched = scheduler_overhead()
    task_s = statistics.median(walls["local1"]) / n
    grader = statistics.median(grader_s) if grader_s else 0.0
    if {"jobs1", "jobs2"} <= set(walls):
        jobs_ratio = [a / b for a, b in zip(walls["jobs1"], walls["jobs2"])]
        workers["jobs_throughput_2_over_1"] = spread((statistics.median(jobs_ratio), min(jobs_ratio),
                                                      max(jobs_ratio)))
    return {
        **workers,
        "cluster_added_s_per_submission": {f"{k} worker(s)": spread((statistics.median(v), min(v), max(v)))
                                           for k, v in added.items()},
        "target_added_s": 0.5,
        "steady_added_s_per_submission": {f"{k} worker(s)": spread((statistics.median(v), min(v), max(v)))
                                          for k, v in steady_added.items()},
        "fixed_added_s_per_run": {f"{k} worker(s)": spread((statistics.median(v), min(v), max(v)))
                                  for k, v in fixed_added.items()},
        "score_s_per_submission": {k: [round(x, 3) for x in v] for k, v in scoring.items()},
        "scheduler_s_per_task": round(sched, 6),
        "grader_s_per_submission": round(grader, 4),
        "scaling": scaling(task_s, sched, grader) if grader else [],
    }
