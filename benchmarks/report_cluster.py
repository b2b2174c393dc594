"""The cluster steps' rows of ``RESULTS.md`` (``cluster``, ``cluster_class``, ``cluster_cpu``): what a Dask
cluster adds over ``--jobs``, its measured and expected scaling, and the CPU census by kind of process."""

from __future__ import annotations

from benchmarks.figures import grading_side_cpu, kernel_cpu, met, scaling

__all__ = ["cluster_section", "cluster_rows", "census_rows"]


def cluster_section(r: dict) -> list[str]:
    """Rows of the cluster steps (``cluster``, ``cluster_class``, ``cluster_cpu``)."""
    lines: list[str] = []
    for key in ("cluster", "cluster_class"):
        if r.get(key):
            lines += cluster_rows(r[key])
    if r.get("cluster_cpu"):
        lines += census_rows(r["cluster_cpu"], r.get("cluster_class"))
    return lines


def _added_rows(cl: dict, span, n: int) -> list[str]:
    """Rows of the wall time per submission the cluster adds over ``--jobs`` with as many slots, whole runs,
    for each worker count the bench ran both ways."""
    return [f"| cluster: wall time per submission added over `--jobs` with as many slots, {k}, {n} submissions "
            f"(whole run, start-up included) | {span(t)} s | < {cl['target_added_s']} s | "
            f"{met(t['median_s'], cl['target_added_s'], False)} |"
            for k, t in cl.get("cluster_added_s_per_submission", {}).items()]


def _steady_added_rows(cl: dict, span, n: int) -> list[str]:
    """The same between the first wave's last grade and the last grade, with the fixed time added per run."""
    return [f"| cluster: steady wall time per submission added over `--jobs`, {k}, {n} submissions / fixed "
            f"time added per run (start-up: workers' processes, imports, first measurements) | {span(t)} s / "
            f"{span(cl['fixed_added_s_per_run'][k])} s | < {cl['target_added_s']} s / - | "
            f"{met(t['median_s'], cl['target_added_s'], False)} |"
            for k, t in cl.get("steady_added_s_per_submission", {}).items()]


def census_rows(c: dict, cl: dict | None = None) -> list[str]:
    """RESULTS.md rows of the CPU census (:func:`benchmarks.census.bench_cluster_cpu`); with the class bench
    ``cl`` (:func:`benchmarks.cluster.bench_cluster`), also the workers one grader process keeps busy."""

    per_round = lambda rows: ", ".join(f"{grading_side_cpu(x):.2f} + {kernel_cpu(x):.2f}" for x in rows)  # noqa: E731
    st, n = c["steady_per_submission"], c["submissions"]
    head = f"| cluster CPU census, {n} submissions ({c['rounds']} rounds, 1 CPU thread per notebook)"
    rows = [
        f"{head}: steady CPU seconds per submission, grading side + kernels, `--jobs 2` / `--cluster local:2`, per "
        f"round | {per_round(st['jobs2'])} / {per_round(st['local2'])} s | - | - |",
        f"{head}: grading-side CPU seconds per submission added by the cluster over `--jobs 2`, steady / whole run "
        f"(start-up included), per round | {', '.join(map(str, c['steady_added_cpu_s']))} / "
        f"{', '.join(map(str, c['whole_added_cpu_s']))} s | - | - |",
        f"{head}: the same runs' steady wall time per submission added, per round | "
        f"{', '.join(map(str, c['steady_added_wall_s']))} s | - | - |"]
    grader = [x["grader"] for x in st["local2"]]
    rows.append(f"{head}: the grader process's own steady CPU seconds per submission with `--cluster local:2` (the "
                f"command: client, scheduler and nannies; every result passes through it), per round | "
                f"{', '.join(f'{x:.2f}' for x in grader)} s | - | - |")
    if cl and cl.get("scheduler_s_per_task") and max(grader) > 0:
        task_s = cl["seconds_per_submission"]["local1"]["median_s"]
        bound = scaling(task_s, cl["scheduler_s_per_task"], max(grader))
        rows.append(f"{head}: expected speed-up over one worker at " + ", ".join(str(b["workers"]) for b in bound)
                    + f" workers with the grader's CPU per submission above (the larger) as its bound, tasks of "
                    f"{task_s:.1f} s (bound: " + ", ".join(b["limited_by"] for b in bound) + ") | "
                    + ", ".join(f"{b['speedup']}x" for b in bound) + " | - | - |")
    return rows


def _jobs_beside_rows(cl: dict, n: int) -> list[str]:
    """What two notebooks at once gained without a cluster in the same rounds: ``local:1`` / ``--jobs 2`` per
    round, from the runs' process times (the bound the 2/1 workers ratio is measured against)."""
    runs = cl.get("run_phases_s", {})
    if not {"local1", "jobs2"} <= set(runs):
        return []
    ratios = [one["process"] / two["process"] for one, two in zip(runs["local1"], runs["jobs2"])]
    return [f"| cluster: in the same rounds, `--cluster local:1` / `--jobs 2` (two notebooks at once without a "
            f"cluster), {n} submissions, per round | {', '.join(f'{x:.2f}' for x in ratios)}x | - | - |"]


def cluster_rows(cl: dict) -> list[str]:
    """RESULTS.md rows of one cluster bench (:func:`benchmarks.cluster.bench_cluster`)."""
    lines: list[str] = []
    span = lambda t: f"{t['median_s']} ({t['min_s']}-{t['max_s']})"  # noqa: E731
    per, ratio = cl["seconds_per_submission"], cl["throughput_2_workers_over_1"]
    names = {"jobs1": "`--jobs 1`", "local1": "`--cluster local:1`", "jobs2": "`--jobs 2`",
             "local2": "`--cluster local:2`"}
    runs = [k for k in names if k in per]
    n = cl["submissions"]
    lines += [f"| cluster: {n} submissions ({cl['rounds']} rounds, 1 CPU thread per notebook), "
              f"s/submission: {' / '.join(names[k] for k in runs)} | "
              + " / ".join(span(per[k]) for k in runs) + " | - | - |",
              f"| cluster: throughput of 2 workers / 1 worker, whole runs of {n} submissions (1 thread each, per "
              f"round) | {span(ratio)}x | >= {cl['target_ratio']}x | {met(ratio['median_s'], cl['target_ratio'])} |"]
    if "jobs1" not in per:
        sr, fixed = cl["steady_throughput_2_workers_over_1"], cl["fixed_s_per_run"]
        kernel = cl["kernel_s_per_submission"]
        return lines + _jobs_beside_rows(cl, n) + [
            f"| cluster: steady throughput of 2 workers / 1 worker, {n} submissions (per round) | {span(sr)}x | "
            f">= {cl['target_ratio']}x | {met(sr['median_s'], cl['target_ratio'])} |",
            f"| cluster: fixed seconds per run, {' / '.join(names[k] for k in runs)}, {n} submissions (per round) "
            "/ seconds each "
            "notebook's kernel ran | " + " / ".join(", ".join(map(str, fixed[k])) for k in runs) + " / "
            + " / ".join(", ".join(f"{x:.2f}" for x in kernel[k]) for k in runs) + " s | - | - |",
            f"| cluster: identical scores in all runs of {n} submissions | {cl['scores_identical']} | True | "
            f"{'met' if cl['scores_identical'] else '**missed**'} |"] + _added_rows(cl, span, n) + _steady_added_rows(
                cl, span, n)
    if cl.get("jobs_throughput_2_over_1"):
        kernel = cl["kernel_s_per_submission"]
        lines += [f"| cluster: the same machine's `--jobs 2` / `--jobs 1` throughput (per round; no cluster) | "
                  f"{span(cl['jobs_throughput_2_over_1'])}x | - | - |",
                  "| cluster: seconds each notebook's kernel ran, `--jobs 1` / `local:1` / `--jobs 2` / `local:2`, "
                  "per round | " + " / ".join(", ".join(f"{x:.2f}" for x in kernel[k])
                                              for k in ("jobs1", "local1", "jobs2", "local2")) + " s | - | - |"]
    lines += _added_rows(cl, span, n)
    if cl.get("steady_added_s_per_submission"):
        sr = cl["steady_throughput_2_workers_over_1"]
        lines += [f"| cluster: steady throughput of 2 workers / 1 worker (between the first wave's last grade and "
                  f"the last grade, per round) | {span(sr)}x | >= {cl['target_ratio']}x | "
                  f"{met(sr['median_s'], cl['target_ratio'])} |"]
        lines += _steady_added_rows(cl, span, n)
    if cl.get("score_s_per_submission"):
        sc = cl["score_s_per_submission"]
        lines += ["| cluster: hidden checks' time per submission (measurements included), `--jobs 1` / `local:1` / "
                  "`--jobs 2` / `local:2`, per round | " + " / ".join(
                      ", ".join(f"{x:.2f}" for x in sc[k]) for k in ("jobs1", "local1", "jobs2", "local2"))
                  + " s | - | - |"]
    lines += [f"| cluster: scheduler cost per task (no-op tasks) / grader's own work per submission (gradebook, "
              f"feedback) | {cl['scheduler_s_per_task'] * 1e3:.2f} ms / {cl['grader_s_per_submission']:.3f} s "
              "| - | - |"]
    if cl["scaling"]:
        lines += ["| cluster: expected speed-up over one worker at " + ", ".join(
            f"{s['workers']}" for s in cl["scaling"]) + " workers (bound: " + ", ".join(
            s["limited_by"] for s in cl["scaling"]) + ") | " + ", ".join(
            f"{s['speedup']}x" for s in cl["scaling"]) + " | - | - |"]
    lines += [f"| cluster: identical scores in all runs | {cl['scores_identical']} | True | "
              f"{'met' if cl['scores_identical'] else '**missed**'} |"]
    return lines
