"""What every benchmark step shares: the repository's paths, timing and spread, the grader's command and the
bench's class of sample submissions, the machine's description and the reference checkpoint."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

__all__ = ["REPO", "OUT", "LOGS", "SHARED_SAMPLE", "timed", "spread", "venv_env", "machine", "reference_checkpoint",
           "BENCH_STUDENTS", "make_class", "grade_command", "run_grader"]


REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks"
LOGS = OUT / "logs"
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "CINIC-10-sample.tar.gz"


def timed(fn, repeats=3):
    """Run ``fn`` ``repeats`` times; return (median seconds, min, max, last result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times), result


def spread(t):
    return {"median_s": round(t[0], 4), "min_s": round(t[1], 4), "max_s": round(t[2], 4)}


def venv_env():
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def machine() -> dict:
    return {"cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cuda": torch.cuda.is_available(),
            "date": datetime.date.today().isoformat(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def reference_checkpoint(work: Path) -> Path:
    from autograder.train import train_model
    from helpers import get_CINIC10_data
    from helpers.models import save_model
    demo = REPO / "demo-output" / "reference-model.pt"
    if demo.is_file():
        return demo
    return save_model(train_model(get_CINIC10_data("synthetic"), progress=False), work / "model.pt")


BENCH_STUDENTS = {"s1": "reference", "s2": "correct_manual_topk", "s3": "correct_relative_amounts",
                  "s4": "reference", "s5": "correct_manual_topk", "s6": "correct_relative_amounts",
                  "s7": "reference", "s8": "correct_manual_topk"}


def make_class(dest: Path, suffix: str = ""):
    import nbformat

    from autograder.samples import RELEASE_NOTEBOOK, build_notebook, load_samples
    samples = {s.name: s for s in load_samples()}
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    for sid, name in BENCH_STUDENTS.items():
        (dest / f"{sid}{suffix}" / "pruning").mkdir(parents=True, exist_ok=True)
        nbformat.write(build_notebook(samples[name], release), dest / f"{sid}{suffix}" / "pruning" / "pruning.ipynb")


def grade_command(submitted: Path, data_npz: Path, model: Path, out: Path, *extra: str) -> list[str]:
    """``python -m autograder grade`` of the bench's class, with its data file and model, into ``out``."""
    return [sys.executable, "-m", "autograder", "grade", str(submitted), "--data-root", str(data_npz),
            "--model", str(model), "--out", str(out), "--per-class", "100", *extra]


def run_grader(work: Path, submitted: Path, data_npz: Path, model: Path, jobs: int, name: str,
          *extra: str) -> tuple[float, dict, dict]:
    """Our command on the same submissions, data file and model as plain nbgrader.

    Returns wall seconds, scores, and the run's ``timings.json``.
    """
    out = work / name
    env = venv_env()
    start = time.perf_counter()
    subprocess.run(grade_command(submitted, data_npz, model, out, "--jobs", str(jobs), *extra),
                   cwd=REPO, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    with open(out / "grades.csv") as fh:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    return seconds, scores, json.loads((out / "timings.json").read_text())
