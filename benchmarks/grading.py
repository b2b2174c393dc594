"""Benchmark steps ``grading`` and ``memory``: the grader against plain ``nbgrader autograde`` on the same class,
data and model (wall and CPU seconds, interleaved rounds), and the grader's memory per job."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from autograder.grading.cells import STUDENT_CELLS as _STUDENT_CELLS
from benchmarks.common import BENCH_STUDENTS, LOGS, REPO, make_class, run_grader, spread, venv_env

__all__ = ["bench_grading", "bench_memory", "STUDENT_CELLS"]


def _plain_nbgrader(course: Path, submitted: Path, data_npz: Path, model: Path) -> tuple[float, dict]:
    """Sequential `nbgrader autograde` of the same submissions, with the same data and model.

    ``generate_assignment`` (the release step) is not timed; ``autograde`` is.
    """
    (course / "source" / "pruning").mkdir(parents=True)
    shutil.copy(REPO / "assignment" / "source" / "pruning" / "pruning.ipynb", course / "source" / "pruning")
    shutil.copy(REPO / "assignment" / "nbgrader_config.py", course)
    shutil.copytree(submitted, course / "submitted")
    env = venv_env()
    env.update({"CINIC10_ROOT": str(data_npz), "PRUNING_MODEL": str(model), "MPLBACKEND": "Agg",
                "CINIC10_CACHE": str(course / "cache")})
    env.pop("PRUNING_EXPORT_DIR", None)
    nbg = str(Path(sys.executable).parent / "nbgrader")
    subprocess.run([nbg, "generate_assignment", "pruning", "--force"], cwd=course, env=env, check=True,
                   capture_output=True)
    start = time.perf_counter()
    lines = []  # nbgrader's log, each line with its second since the start: kept to explain slow runs
    with subprocess.Popen([nbg, "autograde", "pruning", "--force"], cwd=course, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in proc.stdout:
            lines.append(f"{time.perf_counter() - start:7.1f} {line}")
    seconds = time.perf_counter() - start
    LOGS.mkdir(exist_ok=True)
    (LOGS / f"{course.name}.log").write_text(f"{seconds:.1f} s\n" + "".join(lines))
    if proc.returncode != 0:
        raise RuntimeError("".join(lines[-30:]))
    from nbgrader.api import Gradebook

    from autograder.grading.parts import CHECKS
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sid in BENCH_STUDENTS:
            scores[sid] = sum(gb.find_grade(g, "pruning", "pruning", sid).score for g in CHECKS)
    return seconds, scores


#: The student's own computation: the cells they write (functions, sweeps, fine-tuning).
STUDENT_CELLS = tuple(_STUDENT_CELLS)


def _overheads(timings: dict) -> tuple[list[float], float]:
    """Per submission: its time in the grader minus the student's own cells; and the sum of its times."""
    per, total = [], 0.0
    for t in timings["students"].values():
        spent = t["prepare"] + t["kernel"] + t["score"] + t.get("record", 0) + t["feedback"] + t.get("clean", 0)
        per.append(spent - sum(t["cells"].get(c, 0) for c in STUDENT_CELLS))
        total += spent
    return per, total


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and their reaped descendants."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_ticks() -> list[int]:
    """The machine's CPU time counters from ``/proc/stat`` (empty where there is none)."""
    try:
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return []


def _steal_fraction(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to others (``steal``) between two ``/proc/stat`` reads."""
    if len(before) < 8 or len(after) < 8:
        return 0.0
    delta = [a - b for a, b in zip(after, before)]
    return delta[7] / sum(delta) if sum(delta) else 0.0


def bench_grading(work: Path, model: Path, rounds: int) -> dict:
    """Plain nbgrader vs ours, ``rounds`` times interleaved, the order reversed every other round.

    Besides wall time, each run's CPU seconds (its whole process tree) and the machine's CPU
    steal during it are kept: on a shared virtual machine the wall times of parallel runs swing
    with what other guests do, CPU seconds much less.
    """
    from autograder.grading.batch import grading_subset
    submitted = work / "submitted"
    make_class(submitted)
    data_npz = work / "grading.npz"
    np.savez(data_npz, **grading_subset("synthetic", 100))
    n = len(BENCH_STUDENTS)
    runs = {"plain": [], "jobs1": [], "jobs1_nosandbox": [], "jobs2": [], "jobs2_spawn": []}
    cpu = {k: [] for k in runs}
    steal = {k: [] for k in runs}
    overheads, setup, scores = [], [], {}

    def plain(i):
        seconds, scores["plain"] = _plain_nbgrader(work / f"plain{i}", submitted, data_npz, model)
        return seconds

    def jobs1(i):
        seconds, scores["jobs1"], timings = run_grader(work, submitted, data_npz, model, 1, f"jobs1-{i}")
        per, spent = _overheads(timings)
        overheads.extend(per)
        setup.append((seconds - spent) / n)
        return seconds

    def jobs1_nosandbox(i):  # the sandbox's own cost: the same run as jobs1 without it
        seconds, scores["jobs1_nosandbox"], _ = run_grader(work, submitted, data_npz, model, 1,
                                                            f"jobs1-nosandbox-{i}", "--no-sandbox")
        return seconds

    def jobs2(i):
        seconds, scores["jobs2"], _ = run_grader(work, submitted, data_npz, model, 2, f"jobs2-{i}")
        return seconds

    def jobs2_spawn(i):
        seconds, scores["jobs2_spawn"], _ = run_grader(work, submitted, data_npz, model, 2, f"jobs2-spawn-{i}",
                                                  "--spawn-kernels")
        return seconds

    configs = {"plain": plain, "jobs1": jobs1, "jobs1_nosandbox": jobs1_nosandbox, "jobs2": jobs2,
               "jobs2_spawn": jobs2_spawn}
    for i in range(rounds):
        for name in (list(configs) if i % 2 == 0 else list(configs)[::-1]):  # drifts hit both ends alike
            before_cpu, before_stat = _children_cpu(), _cpu_ticks()
            runs[name].append(configs[name](i))
            cpu[name].append(_children_cpu() - before_cpu)
            steal[name].append(_steal_fraction(before_stat, _cpu_ticks()))
        print(f"round {i + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:.1f} s ({cpu[k][-1]:.0f} CPU-s, steal {steal[k][-1]:.0%})" for k, v in runs.items()),
            flush=True)
    per_sub = {k: spread((statistics.median(v) / n, min(v) / n, max(v) / n)) for k, v in runs.items()}
    sandbox_cost = [(a - b) / n for a, b in zip(runs["jobs1"], runs["jobs1_nosandbox"])]
    sandbox_cpu = [(a - b) / n for a, b in zip(cpu["jobs1"], cpu["jobs1_nosandbox"])]
    speedups = [p / t for p, t in zip(runs["plain"], runs["jobs2"])]
    return {
        "submissions": n, "rounds": rounds, "seconds_per_submission": per_sub,
        "speedup_jobs2_vs_plain": spread((statistics.median(speedups), min(speedups), max(speedups))),
        "target_speedup": 2.0,
        "fixed_overhead_s_per_submission": spread((statistics.median(overheads), min(overheads), max(overheads))),
        "target_overhead_s": 2.0,
        "run_setup_s_per_submission": spread((statistics.median(setup), min(setup), max(setup))),
        "cpu_seconds_per_submission": {k: spread((statistics.median(v) / n, min(v) / n, max(v) / n))
                                       for k, v in cpu.items()},
        "cpu_steal_fraction": {k: [round(x, 3) for x in v] for k, v in steal.items()},
        "sandbox_cost_s_per_submission": spread((statistics.median(sandbox_cost), min(sandbox_cost),
                                                 max(sandbox_cost))),
        "sandbox_cpu_s_per_submission": spread((statistics.median(sandbox_cpu), min(sandbox_cpu), max(sandbox_cpu))),
        "scores_identical": len({json.dumps(v, sort_keys=True) for v in scores.values()}) == 1,
        "scores": scores,
    }


def bench_memory(work: Path, model: Path) -> dict:
    import nbformat

    from autograder.samples import RELEASE_NOTEBOOK, build_notebook, load_samples
    sub = work / "one"
    (sub / "s1" / "pruning").mkdir(parents=True)
    ref = next(s for s in load_samples() if s.name == "reference")
    nbformat.write(build_notebook(ref, nbformat.read(RELEASE_NOTEBOOK, as_version=4)),
                   sub / "s1" / "pruning" / "pruning.ipynb")
    code = ("import resource, subprocess, sys, json\n"
            f"subprocess.run([sys.executable, '-m', 'autograder', 'grade', {str(sub)!r}, '--data-root', 'synthetic',"
            f" '--model', {str(model)!r}, '--out', {str(work / 'one-out')!r}],"
            " check=True, capture_output=True)\n"
            "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
            "print(json.dumps({'children_max_rss_bytes': peak}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=venv_env(), capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
