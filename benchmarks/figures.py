"""The benchmarks' arithmetic on measured figures, without running anything: CPU seconds by kind of process
(:mod:`benchmarks.census`), a run's steady and fixed costs and the cluster's expected scaling
(:mod:`benchmarks.cluster`). The report (:mod:`benchmarks.report`) and the tests use these too."""

from __future__ import annotations

__all__ = ["met", "KERNEL_ROLES", "grading_side_cpu", "kernel_cpu", "role", "steady_cpu", "scaling", "steady_and_fixed",
           "added_over_jobs"]


def met(value, target, higher_is_better=True) -> str:
    """``"met"`` when ``value`` reaches ``target`` (at least it, or at most it when lower is better),
    ``"**missed**"`` when not, ``"not measured"`` for ``None``: a table's status column."""
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "**missed**"


#: Roles whose CPU is the notebooks' own work and their sandboxes' (the same whoever grades them).
KERNEL_ROLES = ("kernel", "kernel server", "sandbox")


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


def steady_and_fixed(wall: float, finished: list[float], slots: int) -> tuple[float, float]:
    """Split a run's ``wall`` seconds into a steady cost per submission and a fixed cost per run.

    ``finished``: each submission's ``finished`` time (seconds since the first was sent, from
    ``timings.json``); ``slots``: notebooks graded at once. The steady cost is the time between the
    first wave's last grade and the last grade, per submission graded in it; the fixed cost is what
    the run took beyond ``steady`` times the number of submissions (start-up, preparing the workers,
    writing the outputs).
    """
    done = sorted(finished)
    if len(done) <= slots:
        raise ValueError(f"need more than {slots} submissions to see a steady rate, got {len(done)}")
    steady = (done[-1] - done[slots - 1]) / (len(done) - slots)
    return steady, wall - steady * len(done)


def added_over_jobs(walls: dict, split: dict, n: int) -> tuple[dict, dict, dict]:
    """What the cluster adds over ``--jobs`` with as many slots, per round, for each worker count ``k`` run both
    ways (``jobs{k}`` and ``local{k}`` in ``walls``): whole-run seconds per submission, steady seconds per
    submission, and fixed seconds per run. ``walls``: run name -> wall seconds per round; ``split``: run name ->
    ``(steady, fixed)`` per round (:func:`steady_and_fixed`); ``n``: submissions per run. Each dict is keyed
    by ``k``; all three are empty when no worker count was run both ways."""
    paired = [k for k in (1, 2) if f"jobs{k}" in walls and f"local{k}" in walls]
    whole = {k: [(c - j) / n for c, j in zip(walls[f"local{k}"], walls[f"jobs{k}"])] for k in paired}
    steady = {k: [c[0] - j[0] for c, j in zip(split[f"local{k}"], split[f"jobs{k}"])] for k in paired}
    fixed = {k: [c[1] - j[1] for c, j in zip(split[f"local{k}"], split[f"jobs{k}"])] for k in paired}
    return whole, steady, fixed
