"""Render ``results.json`` as ``RESULTS.md``: the current tables only (``history.md`` is the dated record)."""

from __future__ import annotations

from pathlib import Path


def _met(value, target, higher_is_better=True) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "**missed**"


def _eval_rows(e: dict, where: str) -> list[str]:
    slices = e.get("slice_images", 10_000)
    lines = [f"| evaluation{where}: `test_model` vs bare `model(x)` (batch {e['bare_best_batch_size']}), "
             f"{e['images']:,} images, median of {e.get('rounds', 1)} rounds paired in {slices:,}-image slices | "
             f"{e['ratio']} "
             f"(per round {', '.join(map(str, e.get('ratio_per_round', [e['ratio']])))}; "
             f"{e['test_model_images_per_s']:,} vs {e['bare_images_per_s']:,} img/s) | >= 0.95 | "
             f"{_met(e['ratio'], 0.95)} |",
             f"| evaluation{where}: bare loop by batch size (img/s, "
             f"{e.get('bare_scan_images', e['images']):,} images"
             + (f" x {e['bare_scan_passes']}, sizes paired per slice" if "bare_scan_passes" in e else "") + ") | "
             + ", ".join(f"{bs}: {v:,}" for bs, v in e["bare_by_batch_size"].items()) + " | - | - |"]
    if "test_model_whole_split_s" in e:
        lines += [f"| evaluation{where}: one `test_model` call over the whole {e['images']:,}-image test split | "
                  f"{e['test_model_whole_split_s']} s ({e['test_model_whole_split_images_per_s']:,} img/s) "
                  "| - | - |"]
    return lines


def write_markdown(r: dict, path: Path) -> None:
    m = r.get("machine", {})
    lines = ["# Benchmark results", "",
             f"Machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('platform')}, "
             f"Python {m.get('python')}, torch {m.get('torch')}, CUDA {'yes' if m.get('cuda') else 'no'}; "
             f"run on {m.get('date')} with `make bench`. Times are medians (min-max) of repeated runs; "
             "every ratio compares two things measured in the same run.", "",
             "| measure | value | target | status |", "|---|---|---|---|"]
    if r.get("eval"):
        lines += _eval_rows(r["eval"], "")
    if r.get("eval_cuda"):
        c = r["eval_cuda"]
        cm = c.get("machine", {})
        lines += _eval_rows(c, f" on CUDA ({c.get('device')}, torch {cm.get('torch')}, {cm.get('date')})")
    d = r.get("data")
    if d:
        lines += [f"| data: first load (decode + cache) of {d['images']:,} PNGs | {d['first_load']['median_s']} s "
                  f"({d['first_load_images_per_s']:,} img/s) | - | - |",
                  f"| data: cached reload | {d['cached_reload']['median_s']} s ({d['cached_reload']['min_s']}-"
                  f"{d['cached_reload']['max_s']}) | - | - |",
                  f"| data: ImageFolder + DataLoader pass / cached reload | {d['reload_speedup_vs_imagefolder']}x "
                  f"({d['imagefolder_pass']['median_s']} s vs {d['cached_reload']['median_s']} s) | >= 20x | "
                  f"{_met(d['reload_speedup_vs_imagefolder'], 20)} |",
                  f"| data: resident memory / uint8 size | {d['resident_ratio']} | <= 1.1 | "
                  f"{_met(d['resident_ratio'], 1.1, False)} |"]
    g = r.get("grading")
    if g:
        per, sp, ov = g["seconds_per_submission"], g["speedup_jobs2_vs_plain"], g["fixed_overhead_s_per_submission"]

        def row(label, t, unit=" s/submission", target="-", status="-"):
            return f"| {label} | {t['median_s']}{unit} ({t['min_s']}-{t['max_s']}) | {target} | {status} |"

        lines += [row(f"grading {g['submissions']} submissions ({g['rounds']} rounds): plain sequential "
                      "`nbgrader autograde`", per["plain"]),
                  row("grading: ours `--jobs 1`", per["jobs1"]),
                  row("grading: ours `--jobs 2`", per["jobs2"]),
                  *([row("grading: ours `--jobs 1 --no-sandbox`", per["jobs1_nosandbox"]),
                     row("grading: the sandbox's own cost per submission, wall (`--jobs 1` minus `--jobs 1 "
                         "--no-sandbox`, paired per round)", g["sandbox_cost_s_per_submission"], " s"),
                     row("grading: the sandbox's own cost per submission, CPU (same pairs)",
                         g["sandbox_cpu_s_per_submission"], " CPU-s")] if "jobs1_nosandbox" in per else []),
                  row("grading: ours `--jobs 2 --spawn-kernels` (no warm kernels)", per["jobs2_spawn"]),
                  row("grading: speed-up of `--jobs 2` over plain nbgrader (per round)", sp, "x", ">= 2x",
                      _met(sp["median_s"], 2.0)),
                  row("grading: fixed overhead per submission, `--jobs 1` (its time in the grader minus the "
                      "student's answer cells; median over submissions and rounds)", ov, " s", "<= 2 s",
                      _met(ov["median_s"], 2.0, False)),
                  row("grading: per-run set-up (start-up, reference sweeps, gradebook) spread over the "
                      f"{g['submissions']} submissions, `--jobs 1`", g["run_setup_s_per_submission"], " s"),
                  *(["| grading: CPU seconds per submission (whole process tree, median): plain / `--jobs 1` / "
                     "`--jobs 2` / `--jobs 2 --spawn-kernels` | " + " / ".join(
                         f"{g['cpu_seconds_per_submission'][k]['median_s']:.2f}"
                         for k in ("plain", "jobs1", "jobs2", "jobs2_spawn")) + " CPU-s | - | - |",
                     "| grading: CPU steal by other guests during each round's plain / `--jobs 2` run | "
                     + ", ".join(f"{p:.0%} / {j:.0%}" for p, j in zip(g["cpu_steal_fraction"]["plain"],
                                                                       g["cpu_steal_fraction"]["jobs2"]))
                     + " | - | - |"]
                    if "cpu_seconds_per_submission" in g else []),
                  f"| grading: identical scores in all runs | {g['scores_identical']} | True | "
                  f"{'met' if g['scores_identical'] else '**missed**'} |"]
    g3 = r.get("grading_with_part3")
    if g3:
        per = g3["seconds_per_submission"]
        span = lambda t: f"{t['median_s']} ({t['min_s']}-{t['max_s']})"  # noqa: E731
        lines += [f"| grading with part 3, {g3['submissions']} submissions ({g3['rounds']} rounds), s/submission: "
                  "plain `nbgrader autograde` / ours `--jobs 1` / `--jobs 1 --no-sandbox` / `--jobs 2` / `--jobs 2 "
                  "--spawn-kernels` | " + " / ".join(span(per[k]) for k in ("plain", "jobs1", "jobs1_nosandbox",
                                                                            "jobs2", "jobs2_spawn")) + " | - | - |",
                  f"| grading with part 3: speed-up of `--jobs 2` over plain nbgrader (per round) | "
                  f"{span(g3['speedup_jobs2_vs_plain'])}x | >= 2x | "
                  f"{_met(g3['speedup_jobs2_vs_plain']['median_s'], 2)} |",
                  f"| grading with part 3: fixed overhead per submission, `--jobs 1`, minus parts 1-2's answer cells "
                  f"only (part 3's two answer cells counted as overhead; the bench now subtracts all four) | "
                  f"{span(g3['fixed_overhead_s_per_submission_two_answer_cells'])} s | <= 2 s | "
                  f"{_met(g3['fixed_overhead_s_per_submission_two_answer_cells']['median_s'], 2, False)} |",
                  f"| grading with part 3: identical scores in all runs | {g3['scores_identical']} | True | "
                  f"{'met' if g3['scores_identical'] else '**missed**'} |"]
    for key in ("cluster", "cluster_class"):
        if r.get(key):
            lines += _cluster_rows(r[key])
    if r.get("cluster_cpu"):
        lines += _census_rows(r["cluster_cpu"], r.get("cluster_class"))
    ct = r.get("contention")
    if ct:
        lines += [f"| two processes at once: the same fine-tuning ({ct['epochs']} epochs, 1 CPU thread) two at once "
                  f"/ one alone, median (per round) / so the most two notebooks at once gain over one here | "
                  f"{ct['slowdown']} ({', '.join(map(str, ct['slowdown_per_round']))}) / "
                  f"{ct['two_at_once_ceiling']}x | - | - |"]
    n = r.get("notebook")
    if n:
        lines += [f"| student notebook end to end, CPU, generated data | {n['generated_s']} s | < 120 s | "
                  f"{_met(n['generated_s'], 120, False)} |",
                  f"| student notebook end to end (parts 1-3), CPU, real sample | {n.get('real_sample_s')} s | "
                  f"<= 180 s | {_met(n.get('real_sample_s'), 180, False)} |"]
    st = r.get("student_time")
    if st:
        per_part = ", ".join(f"{k} {v}" for k, v in st["parts_s"].items())
        lines += [f"| student notebook at CINIC-10's sizes ({st['test_images']:,} test and {st['train_images']:,} "
                  f"training images, generated), reference solution, notebook defaults, {st['device'].upper()} "
                  f"({st['threads']} threads): compute, per part ({per_part}) | {st['total_s']} s | "
                  f"<= {st['goal_s']} s | {_met(st['total_s'], st['goal_s'], False)} |"]
    rr = r.get("reference_run")
    if rr and "baseline" in rr:
        def sweep(kind):
            return ", ".join(f"{float(t):.0%} {a:.3f}" for t, a in rr[kind].items()
                             if float(t) in (0.5, 0.8, 0.9, 0.98))
        tuned = "; ".join(f"{f['kind']} {f['target']:.0%}: {f['before']:.3f} -> {f['after']:.3f}"
                          for f in rr["finetune"])
        lines += [f"| reference run on the real sample (model trained {rr['train_epochs']} epochs on its "
                  f"{rr['train_images']:,} training images; {rr['test_images']:,} test images), "
                  f"{rr['device'].upper()}: unpruned accuracy / unstructured / structured / fine-tuned "
                  f"({rr['finetune_epochs']} epoch) | {rr['baseline']:.3f} / {sweep('unstructured')} / "
                  f"{sweep('structured')} / {tuned} | - | - |"]
    p3 = r.get("part3")
    if p3:
        lines += [f"| part 3: MACs per image, pretrained / 50% of filters removed (Torch-Pruning's count) | "
                  f"{p3['macs']['pretrained'] / 1e6:.2f} M / {p3['macs']['removed_50'] / 1e6:.2f} M "
                  f"({p3['mac_reduction']}x fewer) | - | - |"]
        for key, ratio in p3["speedup_per_mac_reduction"].items():
            lat = p3["latency_s"][key]
            target = ">= 0.9" if key.startswith("batch 256") and "eager" not in key else "-"
            rng = p3.get("per_round_range", {}).get(key)
            rounds = f"; single rounds {rng[0]}-{rng[1]}" if rng else ""
            layout = f", {p3['layout']}" if p3.get("layout") else ""
            lines += [f"| part 3: CPU latency speed-up / MAC reduction, 50% removed, {key} (median of "
                      f"{p3['rounds']} alternating rounds{layout}) | {ratio}{rounds} ({p3['speedup'][key]}x faster: "
                      f"{lat['pretrained'] * 1e3:.3f} ms -> {lat['removed'] * 1e3:.3f} ms) | {target} | "
                      f"{_met(ratio, 0.9) if target != '-' else '-'} |"]
        for where in ("generated", "real_sample"):
            rec = p3.get(f"recovery_{where}")
            if rec:
                parts = "; ".join(f"{k}: {v['before']} -> {v['after']}" for k, v in rec.items() if k != "unpruned")
                lines += [f"| part 3: test accuracy before -> after one epoch of fine-tuning, "
                          f"{where.replace('_', ' ')} data (unpruned {rec['unpruned']}) | {parts} | - | - |"]
        for where in ("generated", "real_sample"):
            sc = p3.get(f"split_{where}")
            if sc:
                ok = sc["right"] == sc["total"] and sc["smallest_lead"] > sc["margin"]
                lines += [f"| part 3: fine-tuning runs whose split (training or test) the grader told right, "
                          f"{where.replace('_', ' ')} data (6 ways of fine-tuning x 2 splits x 2 models) / smallest "
                          f"lead of the right split | {sc['right']}/{sc['total']} / {sc['smallest_lead']} | "
                          f"all, lead > {sc['margin']} | {'met' if ok else '**missed**'} |"]
    mem = r.get("memory")
    if mem:
        lines += [f"| peak memory grading one submission (largest process) | "
                  f"{mem['children_max_rss_bytes'] / 2**20:.0f} MiB | - | - |"]
    a = r.get("allocator")
    if a:
        lines += [f"| CPU evaluation page faults per batch: allocator setting / glibc's default threshold | "
                  f"{a['steady']['faults_per_batch']:.0f} / {a['glibc_default']['faults_per_batch']:.0f} | - | - |"]
    mu = r.get("mutation")
    if mu:
        lines += [f"| mutation testing of the grading decisions (`{mu['command']}`): killed / (killed + survived + "
                  f"timeout) | {mu['score']:.1%} ({mu['killed']} of {mu['killed'] + mu['survived'] + mu['timeout']}; "
                  f"{mu['no_tests']} without tests) | >= 90% | {_met(mu['score'], 0.9)} |"]
        if mu["survivors"]:
            lines += ["", "Surviving mutants (`mutmut show NAME` prints each change):", ""]
            lines += [f"- `{name}`: {why}" for name, why in mu["survivors"].items()]
    lines += ["", "What changed over time, and what it did to these numbers: `history.md`, beside this file."]
    path.write_text("\n".join(lines) + "\n")


def _added_rows(cl: dict, span, n: int) -> list[str]:
    """Rows of the wall time per submission the cluster adds over ``--jobs`` with as many slots, whole runs,
    for each worker count the bench ran both ways."""
    return [f"| cluster: wall time per submission added over `--jobs` with as many slots, {k}, {n} submissions "
            f"(whole run, start-up included) | {span(t)} s | < {cl['target_added_s']} s | "
            f"{_met(t['median_s'], cl['target_added_s'], False)} |"
            for k, t in cl.get("cluster_added_s_per_submission", {}).items()]


def _steady_added_rows(cl: dict, span, n: int) -> list[str]:
    """The same between the first wave's last grade and the last grade, with the fixed time added per run."""
    return [f"| cluster: steady wall time per submission added over `--jobs`, {k}, {n} submissions / fixed "
            f"time added per run (start-up: workers' processes, imports, first measurements) | {span(t)} s / "
            f"{span(cl['fixed_added_s_per_run'][k])} s | < {cl['target_added_s']} s / - | "
            f"{_met(t['median_s'], cl['target_added_s'], False)} |"
            for k, t in cl.get("steady_added_s_per_submission", {}).items()]


def _census_rows(c: dict, cl: dict | None = None) -> list[str]:
    """RESULTS.md rows of the CPU census (:func:`benchmarks.census.bench_cluster_cpu`); with the class bench
    ``cl`` (:func:`benchmarks.cluster.bench_cluster`), also the workers one grader process keeps busy."""
    from benchmarks.census import grading_side_cpu, kernel_cpu
    from benchmarks.cluster import scaling

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


def _cluster_rows(cl: dict) -> list[str]:
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
              f"round) | {span(ratio)}x | >= {cl['target_ratio']}x | {_met(ratio['median_s'], cl['target_ratio'])} |"]
    if "jobs1" not in per:
        sr, fixed = cl["steady_throughput_2_workers_over_1"], cl["fixed_s_per_run"]
        kernel = cl["kernel_s_per_submission"]
        return lines + _jobs_beside_rows(cl, n) + [
            f"| cluster: steady throughput of 2 workers / 1 worker, {n} submissions (per round) | {span(sr)}x | "
            f">= {cl['target_ratio']}x | {_met(sr['median_s'], cl['target_ratio'])} |",
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
                  f"{_met(sr['median_s'], cl['target_ratio'])} |"]
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
