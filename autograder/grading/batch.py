"""Runs in the grader's process: the grading run itself, once the job slots are starting.

Prepares what every job shares (the reference model and its sweeps, the grading data, the
source notebook, the nbgrader course, the journal), runs every submission through
:func:`autograder.grading.jobs.grade_one` in ``--jobs`` threads, then writes ``grades.csv``,
the gradebook's scores, ``timings.json`` and the summary table.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import load_model
from helpers.models import model_config

from ..config import SOURCE_NOTEBOOK, GradeConfig
from ..runner.slots import SlotPool
from .gradebook import Course, read_points
from .jobs import EXPORT_CODE, Run, grade_one, zero_checks
from .journal import Journal, file_sha256
from .parts import graded_checks
from .report import StudentGrade, summary_table, write_csv, write_feedback, write_timings
from .scoring import build_reference, grading_subset
from .submission import Submission, find_submissions

__all__ = ["grade_all"]


def _executed_dir(cfg: GradeConfig) -> Path:
    """Where executed notebooks are kept between runs (emptied by ``--regrade``)."""
    folder = cfg.out / "executed"
    if cfg.regrade:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    return folder


def _address_space_limit(cfg: GradeConfig) -> int:
    """Without cgroups, on CPU only: the kernel's address space may grow by the memory limit."""
    with open("/proc/self/status") as fh:
        vm = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)
    return vm + cfg.memory_limit


def _run_key(cfg: GradeConfig, data: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    digest.update(file_sha256(cfg.model).encode())
    digest.update(file_sha256(SOURCE_NOTEBOOK).encode())
    digest.update(file_sha256(EXPORT_CODE).encode())
    for name in sorted(data):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(data[name]).tobytes())
    digest.update(json.dumps(cfg.run_settings(), sort_keys=True).encode())
    return digest.hexdigest()


def grade_all(cfg: GradeConfig, start: float, work: Path, slots: SlotPool, progress: bool,
              address_space_limit: bool = False) -> list[StudentGrade]:
    """Grade every submission with the job slots ``slots`` (``work``: a private folder for shared files).

    ``address_space_limit``: no cgroup limits memory, so on the CPU cap each kernel's address space.
    """
    setup_seconds: dict[str, float] = {}
    torch.set_num_threads(cfg.threads_per_job)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rlimit_as = _address_space_limit(cfg) if address_space_limit and device == "cpu" else None
    executed_dir = _executed_dir(cfg)

    def timed(name, fn, *args):
        begin = time.perf_counter()
        try:
            return fn(*args)
        finally:
            setup_seconds[name] = round(time.perf_counter() - begin, 3)

    begin = time.perf_counter()
    model = load_model(cfg.model)
    arch, config = model_config(model)
    data = grading_subset(cfg.data_root, cfg.per_class)
    data_file = work / "grading-data.npz"
    np.savez(data_file, **data)
    points = read_points()
    grade_ids = graded_checks(points)
    max_score = sum(points[g] for g in grade_ids)
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    subs, problems = find_submissions(cfg.submissions)
    shutil.rmtree(cfg.out / "feedback", ignore_errors=True)
    journal = Journal(cfg.out / "journal.jsonl", fresh=cfg.regrade)
    run_key = _run_key(cfg, data)
    setup_seconds["data"] = round(time.perf_counter() - begin, 3)

    grades = [StudentGrade(sid, f"error: {why}", zero_checks(points, why)) for sid, why in problems]
    for g in grades:
        write_feedback(cfg.out / "feedback", g, max_score)
    # The reference sweeps and the nbgrader course are prepared while the first kernels start.
    with ThreadPoolExecutor(max_workers=2) as setup:
        ref = setup.submit(timed, "reference", build_reference, model, arch, config,
                           [data["X_test"], data["y_test"]], cfg.device)
        course = setup.submit(timed, "course", Course, cfg.out / "course")
        run = Run(cfg, ref, source, data_file, points, slots, executed_dir, course, journal, run_key, rlimit_as)
        try:
            _run_all(subs, run, grades, max_score, progress)
        finally:
            journal.close()
    _finish(cfg, grades, max_score, course, timed, {**setup_seconds, "jobs": cfg.jobs, "sandbox": cfg.sandbox,
                                                    "reused": run.reused,
                                                    "slot_restarts": sum(s.restarts for s in slots.slots)},
            start, progress)
    return grades


def _finish(cfg: GradeConfig, grades: list[StudentGrade], max_score: float, course, timed, run_info: dict,
            start: float, progress: bool) -> None:
    """Write grades.csv, the gradebook's scores, timings.json and the summary."""
    grade_ids = graded_checks(read_points())
    write_csv(cfg.out / "grades.csv", grades, grade_ids, max_score)
    if course.exception() is None:
        timed("scores", course.result().set_scores,
              {g.student_id: {c.grade_id: c.points for c in g.checks} for g in grades})
        gradebook = f"gradebook in {course.result().db}"
    else:
        gradebook = f"NO GRADEBOOK: {course.exception()}"
        print(f"warning: the nbgrader gradebook could not be made; grades.csv and feedback are complete.\n"
              f"{course.exception()}", file=sys.stderr)
    write_timings(cfg.out / "timings.json", grades, {**run_info, "wall": round(time.perf_counter() - start, 3)})
    if progress:
        print(summary_table(grades, grade_ids, max_score))
        print(f"\n{len(grades)} submissions graded in {time.perf_counter() - start:.1f} s with --jobs {cfg.jobs}; "
              f"grades in {cfg.out / 'grades.csv'}, feedback in {cfg.out / 'feedback'}, {gradebook}")


def _run_all(subs: list[Submission], run: Run, grades: list[StudentGrade], max_score: float,
             progress: bool) -> None:
    cfg, points = run.cfg, run.points
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        futures = {pool.submit(grade_one, s, run): s for s in subs}
        bar = tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
                   disable=not progress)
        for fut in bar:
            sub = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - one submission never stops the batch
                result = StudentGrade(sub.student_id, f"error: grader failed: {type(exc).__name__}: {exc}",
                                      zero_checks(points, "the grader failed on this submission"))
                write_feedback(cfg.out / "feedback", result, max_score)
            grades.append(result)
            bar.set_postfix(last=f"{result.student_id} {result.score:g}/{max_score:g}")
