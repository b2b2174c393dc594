"""Benchmarks of the course package (``make bench``): evaluation, data loading, grading,
the student notebook, grading memory. Writes ``benchmarks/results.json`` and
``benchmarks/RESULTS.md``. Benchmarks are not tests: nothing here asserts a time.

Every comparison is measured side by side in the same run; times are medians over repeats
with their spread (min-max). This module is only the command: each step lives in its own module
(:mod:`benchmarks.evaluation`, :mod:`benchmarks.data_loading`, :mod:`benchmarks.grading`, :mod:`benchmarks.notebook`,
:mod:`benchmarks.student_time`, :mod:`benchmarks.reference_run`, :mod:`benchmarks.part3`, :mod:`benchmarks.cluster`,
:mod:`benchmarks.census`), over :mod:`benchmarks.common`; :mod:`benchmarks.report` writes ``RESULTS.md``.

    python -m benchmarks.run [--only eval,data,grading,notebook,student_time,reference_run,memory,allocator,part3,
                                     cluster,cluster_class,cluster_cpu,contention,class_report,similarity]
                                     [--images 90000] [--rounds 3]
                                     [--eval-rounds 7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from benchmarks.census import bench_cluster_cpu
from benchmarks.class_report import bench_class_report
from benchmarks.cluster import CLASS_COPIES, bench_cluster, bench_contention
from benchmarks.common import OUT, SHARED_SAMPLE, machine, reference_checkpoint
from benchmarks.data_loading import bench_data
from benchmarks.evaluation import bench_allocator, bench_eval
from benchmarks.grading import bench_grading, bench_memory
from benchmarks.notebook import bench_notebook
from benchmarks.part3 import bench_part3
from benchmarks.reference_run import bench_reference_run
from benchmarks.report import write_markdown
from benchmarks.similarity import calibrate
from benchmarks.student_time import bench_student_time

__all__ = ["main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--only",
                        default="eval,data,grading,notebook,student_time,reference_run,memory,allocator,part3,cluster,"
                                "cluster_class,cluster_cpu,contention,class_report,similarity",
                        help="comma-separated steps; eval_cuda (evaluation on the GPU) is never run by default")
    parser.add_argument("--images", type=int, default=90_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the grading runs")
    parser.add_argument("--eval-rounds", type=int, default=7, help="paired rounds of the evaluation")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["machine"] = machine()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        needs_model = {"grading", "notebook", "student_time", "memory", "part3", "cluster", "cluster_class",
                       "cluster_cpu", "class_report"}
        model = reference_checkpoint(work) if set(wanted) & needs_model else None
        steps = {"eval": lambda: bench_eval(args.images, args.eval_rounds),
                 "eval_cuda": lambda: bench_eval(args.images, args.eval_rounds, "cuda"),
                 "data": lambda: bench_data(args.images, work),
                 "grading": lambda: bench_grading(work, model, args.rounds),
                 "notebook": lambda: bench_notebook(work, model),
                 "student_time": lambda: bench_student_time(work, model),
                 "reference_run": lambda: bench_reference_run(work, SHARED_SAMPLE),
                 "memory": lambda: bench_memory(work, model),
                 "allocator": bench_allocator,
                 "part3": lambda: bench_part3(work, model, SHARED_SAMPLE),
                 "cluster": lambda: bench_cluster(work, model, args.rounds),
                 # a longer class: does the whole-run ratio tend to the steady one, and the added cost per
                 # submission to the steady one? (--jobs 1 left out: the slowest run, and not compared here)
                 "cluster_class": lambda: bench_cluster(work, model, args.rounds, copies=CLASS_COPIES,
                                                        configs=("local1", "jobs2", "local2")),
                 # CPU seconds per kind of process, less drift-prone than the wall times above
                 "cluster_cpu": lambda: bench_cluster_cpu(work, model, args.rounds),
                 "contention": bench_contention,
                 "class_report": lambda: bench_class_report(work, model, args.rounds),
                 "similarity": calibrate}
        for name in wanted:
            print(f"== {name}", flush=True)
            results[name] = steps[name]()
            if name == "eval_cuda":  # usually measured on another machine than the rest
                results[name]["machine"] = machine()
            print(json.dumps(results[name], indent=1), flush=True)
            results_path.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_markdown(results, OUT / "RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
