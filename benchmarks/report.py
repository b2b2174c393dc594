"""Render ``results.json`` as ``RESULTS.md``: the current tables only (``history.md`` is the dated record)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.figures import met
from benchmarks.report_cluster import cluster_section


def _eval_rows(e: dict, where: str) -> list[str]:
    slices = e.get("slice_images", 10_000)
    lines = [f"| evaluation{where}: `test_model` vs bare `model(x)` (batch {e['bare_best_batch_size']}), "
             f"{e['images']:,} images, median of {e.get('rounds', 1)} rounds paired in {slices:,}-image slices | "
             f"{e['ratio']} "
             f"(per round {', '.join(map(str, e.get('ratio_per_round', [e['ratio']])))}; "
             f"{e['test_model_images_per_s']:,} vs {e['bare_images_per_s']:,} img/s) | >= 0.95 | "
             f"{met(e['ratio'], 0.95)} |",
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
    """Write ``RESULTS.md`` at ``path`` from the results ``r`` (``results.json``): one table row per figure."""
    m = r.get("machine", {})
    lines = ["# Benchmark results", "",
             f"Machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('platform')}, "
             f"Python {m.get('python')}, torch {m.get('torch')}, CUDA {'yes' if m.get('cuda') else 'no'}; "
             f"run on {m.get('date')} with `make bench`. Times are medians (min-max) of repeated runs; "
             "every ratio compares two things measured in the same run.", "",
             "| measure | value | target | status |", "|---|---|---|---|"]
    for step, rows in _SECTIONS:
        if step is None:
            lines += rows(r)
        elif r.get(step) and (step != "reference_run" or "baseline" in r[step]):
            lines += rows(r[step])
    lines += ["", "What changed over time, and what it did to these numbers: `history.md`, beside this file."]
    path.write_text("\n".join(lines) + "\n")


def _eval_section(r: dict) -> list[str]:
    """Rows of the evaluation steps, on the CPU and (measured elsewhere) on CUDA."""
    lines: list[str] = []
    if r.get("eval"):
        lines += _eval_rows(r["eval"], "")
    if r.get("eval_cuda"):
        c = r["eval_cuda"]
        cm = c.get("machine", {})
        lines += _eval_rows(c, f" on CUDA ({c.get('device')}, torch {cm.get('torch')}, {cm.get('date')})")
    return lines


def _data_rows(d: dict) -> list[str]:
    """Rows of the ``data`` step: the loader against ImageFolder, and its memory."""
    return [f"| data: first load (decode + cache) of {d['images']:,} PNGs | {d['first_load']['median_s']} s "
            f"({d['first_load_images_per_s']:,} img/s) | - | - |",
            f"| data: cached reload | {d['cached_reload']['median_s']} s ({d['cached_reload']['min_s']}-"
            f"{d['cached_reload']['max_s']}) | - | - |",
            f"| data: ImageFolder + DataLoader pass / cached reload | {d['reload_speedup_vs_imagefolder']}x "
            f"({d['imagefolder_pass']['median_s']} s vs {d['cached_reload']['median_s']} s) | >= 20x | "
            f"{met(d['reload_speedup_vs_imagefolder'], 20)} |",
            f"| data: resident memory / uint8 size | {d['resident_ratio']} | <= 1.1 | "
            f"{met(d['resident_ratio'], 1.1, False)} |"]


def _grading_rows(g: dict) -> list[str]:
    """Rows of the ``grading`` step: ours against plain nbgrader."""
    lines: list[str] = []
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
                  met(sp["median_s"], 2.0)),
              row("grading: fixed overhead per submission, `--jobs 1` (its time in the grader minus the "
                  "student's answer cells; median over submissions and rounds)", ov, " s", "<= 2 s",
                  met(ov["median_s"], 2.0, False)),
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
    return lines


def _grading_part3_rows(g3: dict) -> list[str]:
    """Rows of the grading step's earlier run with part 3 (kept in ``results.json``)."""
    lines: list[str] = []
    per = g3["seconds_per_submission"]
    span = lambda t: f"{t['median_s']} ({t['min_s']}-{t['max_s']})"  # noqa: E731
    lines += [f"| grading with part 3, {g3['submissions']} submissions ({g3['rounds']} rounds), s/submission: "
              "plain `nbgrader autograde` / ours `--jobs 1` / `--jobs 1 --no-sandbox` / `--jobs 2` / `--jobs 2 "
              "--spawn-kernels` | " + " / ".join(span(per[k]) for k in ("plain", "jobs1", "jobs1_nosandbox",
                                                                        "jobs2", "jobs2_spawn")) + " | - | - |",
              f"| grading with part 3: speed-up of `--jobs 2` over plain nbgrader (per round) | "
              f"{span(g3['speedup_jobs2_vs_plain'])}x | >= 2x | "
              f"{met(g3['speedup_jobs2_vs_plain']['median_s'], 2)} |",
              f"| grading with part 3: fixed overhead per submission, `--jobs 1`, minus parts 1-2's answer cells "
              f"only (part 3's two answer cells counted as overhead; the bench now subtracts all four) | "
              f"{span(g3['fixed_overhead_s_per_submission_two_answer_cells'])} s | <= 2 s | "
              f"{met(g3['fixed_overhead_s_per_submission_two_answer_cells']['median_s'], 2, False)} |",
              f"| grading with part 3: identical scores in all runs | {g3['scores_identical']} | True | "
              f"{'met' if g3['scores_identical'] else '**missed**'} |"]
    return lines


def _contention_rows(ct: dict) -> list[str]:
    """Rows of the ``contention`` step."""
    return [f"| two processes at once: the same fine-tuning ({ct['epochs']} epochs, 1 CPU thread) two at once "
            f"/ one alone, median (per round) / so the most two notebooks at once gain over one here | "
            f"{ct['slowdown']} ({', '.join(map(str, ct['slowdown_per_round']))}) / "
            f"{ct['two_at_once_ceiling']}x | - | - |"]


def _notebook_rows(n: dict) -> list[str]:
    """Rows of the ``notebook`` step."""
    return [f"| student notebook end to end, CPU, generated data | {n['generated_s']} s | < 120 s | "
            f"{met(n['generated_s'], 120, False)} |",
            f"| student notebook end to end (parts 1-3), CPU, real sample | {n.get('real_sample_s')} s | "
            f"<= 180 s | {met(n.get('real_sample_s'), 180, False)} |"]


def _student_time_rows(st: dict) -> list[str]:
    """Rows of the ``student_time`` step."""
    lines: list[str] = []
    per_part = ", ".join(f"{k} {v}" for k, v in st["parts_s"].items())
    lines += [f"| student notebook at CINIC-10's sizes ({st['test_images']:,} test and {st['train_images']:,} "
              f"training images, generated), reference solution, notebook defaults, {st['device'].upper()} "
              f"({st['threads']} threads): compute, per part ({per_part}) | {st['total_s']} s | "
              f"<= {st['goal_s']} s | {met(st['total_s'], st['goal_s'], False)} |"]
    return lines


def _reference_run_rows(rr: dict) -> list[str]:
    """Rows of the ``reference_run`` step."""
    lines: list[str] = []
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
    return lines


def _part3_rows(p3: dict) -> list[str]:
    """Rows of the ``part3`` step: MACs, latency, recovery and the split check."""
    lines = [f"| part 3: MACs per image, pretrained / 50% of filters removed (Torch-Pruning's count) | "
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
                  f"{met(ratio, 0.9) if target != '-' else '-'} |"]
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
    return lines


def _memory_rows(mem: dict) -> list[str]:
    """Rows of the ``memory`` step."""
    return [f"| peak memory grading one submission (largest process) | "
            f"{mem['children_max_rss_bytes'] / 2**20:.0f} MiB | - | - |"]


def _allocator_rows(a: dict) -> list[str]:
    """Rows of the ``allocator`` step."""
    return [f"| CPU evaluation page faults per batch: allocator setting / glibc's default threshold | "
            f"{a['steady']['faults_per_batch']:.0f} / {a['glibc_default']['faults_per_batch']:.0f} | - | - |"]


def _mutation_rows(mu: dict) -> list[str]:
    """Rows of ``make mutation``, with every surviving mutant and why it survives."""
    lines = [f"| mutation testing of the grading decisions (`{mu['command']}`): killed / (killed + survived + "
             f"timeout) | {mu['score']:.1%} ({mu['killed']} of {mu['killed'] + mu['survived'] + mu['timeout']}; "
             f"{mu['no_tests']} without tests) | >= 90% | {met(mu['score'], 0.9)} |"]
    if mu["survivors"]:
        lines += ["", "Surviving mutants (`mutmut show NAME` prints each change):", ""]
        lines += [f"- `{name}`: {why}" for name, why in mu["survivors"].items()]
    return lines


#: The row builders of ``RESULTS.md``'s table, in its order: ``(step, rows)``, ``rows`` given the step's results
#: when it has any (``None``: given all the results).
def _class_report_rows(c: dict) -> list[str]:
    """Rows of the ``class_report`` step: report and pairs of a large class, from its class.json."""
    b, p = c["build_report"], c["pairs_only"]
    return [f"| class report: report.html and similar-pairs.csv of {c['students']} students (median of "
            f"{c['rounds']}) | {b['median_s']} s ({b['min_s']}-{b['max_s']}; the pairs alone {p['median_s']} s; "
            f"{c['pairs_listed']} pairs listed; page {c['page_bytes']:,} bytes) | < {c['goal_s']} s | "
            f"{met(b['max_s'], c['goal_s'], False)} |"]


def _similarity_rows(s: dict) -> list[str]:
    """Rows of the ``similarity`` step: the calibration of the pairs' threshold."""
    rows = []
    for r in s["rows"]:
        default = r["threshold"] == s["threshold"]
        ok = not r["independent_listed"] and r["copies_found"] == s["copies"] and len(r["demo_listed"]) == 1
        rows.append(f"| pairs at threshold {r['threshold']}{' (default)' if default else ''}: independent correct "
                    f"solutions listed, copies in disguise found, demo pairs listed | {r['independent_listed']} of "
                    f"{s['independent_pairs']}, {r['copies_found']} of {s['copies']}, {len(r['demo_listed'])} of "
                    f"{s['demo_pairs']} | 0, all, 1 | {('met' if ok else '**missed**') if default else '-'} |")
    rows.append(f"| pairs: highest score of an independent pair; lowest of a copy | {s['independent_max_score']}; "
                f"{s['copy_min_score']} | - | - |")
    return rows


_SECTIONS = ((None, _eval_section), ("data", _data_rows), ("grading", _grading_rows),
             ("grading_with_part3", _grading_part3_rows), (None, cluster_section), ("contention", _contention_rows),
             ("notebook", _notebook_rows), ("student_time", _student_time_rows),
             ("reference_run", _reference_run_rows), ("part3", _part3_rows), ("memory", _memory_rows),
             ("allocator", _allocator_rows), ("mutation", _mutation_rows), ("class_report", _class_report_rows),
             ("similarity", _similarity_rows))
