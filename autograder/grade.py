"""``python -m autograder grade``: grade every submission of a class.

For each submission, in ``jobs`` parallel slots:

1. read the notebook (invalid JSON -> ``error: ...``) and restore the instructor's cells
   (:mod:`autograder.submission`);
2. run it in a fresh kernel under the time limits (:mod:`autograder.execute`), in a private
   folder with its own copy of the grading data (``data.npz``) and of the model; the
   hidden-test regions save the student's models there (:mod:`autograder.collect`);
3. score it in this process from those files alone (:mod:`autograder.scoring`).

Then one ``nbgrader autograde`` call records all notebooks in the gradebook, the scores are
written into it, and ``grades.csv``, feedback and a summary table are produced. A broken,
hanging or hostile submission only ever affects its own row.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import load_model
from helpers.models import model_config

from .collect import ENV_EXPORT
from .config import DISPLAY_CELLS, REPO_ROOT, SOURCE_NOTEBOOK, GradeConfig
from .execute import run_notebook
from .gradebook import prepare_course, read_points, record_submissions, set_scores
from .report import StudentGrade, summary_table, write_csv, write_feedback
from .scoring import CHECKS, CheckResult, build_reference, grading_subset, score_submission
from .submission import Submission, SubmissionError, find_submissions, prepare_notebook, read_notebook

__all__ = ["grade", "kernel_environment"]


def kernel_environment(job: Path, threads: int) -> dict[str, str]:
    """Environment of a student's kernel: its private data, model and export folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CINIC10_", "PRUNING_"))}
    env.update({
        "CINIC10_ROOT": str(job / "data.npz"),
        "CINIC10_CACHE": str(job / "cache"),
        "PRUNING_MODEL": str(job / "model.pt"),
        ENV_EXPORT: str(job / "export"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    })
    return env


def _zero(points: dict[str, float], message: str) -> list[CheckResult]:
    return [CheckResult(gid, 0.0, points.get(gid, 0.0), [message]) for gid in CHECKS]


def _grade_one(sub: Submission, cfg: GradeConfig, ref: Future, source, data_file: Path,
               points: dict[str, float], work: Path, executed_dir: Path) -> StudentGrade:
    """Grade one submission and write its feedback (runs in a worker thread)."""
    grade = _run_and_score(sub, cfg, ref, source, data_file, points, work, executed_dir)
    write_feedback(cfg.out / "feedback", grade, sum(points[g] for g in CHECKS))
    return grade


def _run_and_score(sub: Submission, cfg: GradeConfig, ref: Future, source, data_file: Path,
                   points: dict[str, float], work: Path, executed_dir: Path) -> StudentGrade:
    job = Path(tempfile.mkdtemp(prefix=f"{sub.student_id}-", dir=work))
    try:
        try:
            nb = read_notebook(sub.path)
        except SubmissionError as exc:
            return StudentGrade(sub.student_id, f"error: {exc}", _zero(points, str(exc)))
        nb, notes = prepare_notebook(nb, source, lean=not cfg.full_notebook, display_cells=DISPLAY_CELLS)
        nbformat.write(nb, job / "pruning.ipynb")
        shutil.copy(data_file, job / "data.npz")  # a private copy: a kernel can only spoil its own
        shutil.copy(cfg.model, job / "model.pt")
        run = run_notebook(job / "pruning.ipynb", job / "executed.ipynb",
                           kernel_environment(job, cfg.threads_per_job), cfg.cell_timeout, cfg.timeout)
        checks = score_submission(job / "export", ref.result(), cfg, points)
        executed = None
        if (job / "executed.ipynb").is_file():
            executed = executed_dir / f"{sub.student_id}.ipynb"
            shutil.copy(job / "executed.ipynb", executed)
        return StudentGrade(sub.student_id, run["status"], checks, notes, executed=executed)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def grade(cfg: GradeConfig, progress: bool = True) -> list[StudentGrade]:
    """Grade all submissions of ``cfg``; write the CSV, feedback and gradebook; return the grades."""
    start = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    work = cfg.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    executed_dir = cfg.out / "executed"
    shutil.rmtree(executed_dir, ignore_errors=True)
    executed_dir.mkdir()
    torch.set_num_threads(cfg.threads_per_job)

    model = load_model(cfg.model)
    arch, config = model_config(model)
    data = grading_subset(cfg.data_root, cfg.per_class)
    data_file = work / "grading-data.npz"
    np.savez(data_file, **data)
    points = read_points()
    grade_ids = list(CHECKS)
    max_score = sum(points[g] for g in grade_ids)
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    subs, problems = find_submissions(cfg.submissions)
    shutil.rmtree(cfg.out / "feedback", ignore_errors=True)

    grades = [StudentGrade(sid, f"error: {why}", _zero(points, why)) for sid, why in problems]
    for g in grades:
        write_feedback(cfg.out / "feedback", g, max_score)
    # The reference sweeps and the nbgrader course are prepared while the first kernels start.
    with ThreadPoolExecutor(max_workers=2) as setup:
        ref = setup.submit(build_reference, model, arch, config, [data["X_test"], data["y_test"]], cfg.device)
        course = setup.submit(prepare_course, cfg.out / "course")
        _run_all(subs, cfg, ref, source, data_file, points, work, executed_dir, grades, max_score, progress)
        db = course.result()
        ref.result()
    recorded = {g.student_id: g.executed for g in grades if g.executed}
    for sid, why in record_submissions(cfg.out / "course", recorded).items():
        next(g for g in grades if g.student_id == sid).notes.append(why)
    set_scores(db, {g.student_id: {c.grade_id: c.points for c in g.checks} for g in grades})
    write_csv(cfg.out / "grades.csv", grades, grade_ids, max_score)
    shutil.rmtree(work, ignore_errors=True)
    if progress:
        print(summary_table(grades, grade_ids, max_score))
        print(f"\n{len(grades)} submissions graded in {time.perf_counter() - start:.1f} s with --jobs {cfg.jobs}; "
              f"grades in {cfg.out / 'grades.csv'}, feedback in {cfg.out / 'feedback'}, "
              f"gradebook in {db}")
    return grades


def _run_all(subs, cfg, ref, source, data_file, points, work, executed_dir, grades, max_score, progress):
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        futures = {pool.submit(_grade_one, s, cfg, ref, source, data_file, points, work, executed_dir): s
                   for s in subs}
        bar = tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
                   disable=not progress)
        for fut in bar:
            sub = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - one submission never stops the batch
                result = StudentGrade(sub.student_id, f"error: grader failed: {type(exc).__name__}: {exc}",
                                      _zero(points, "the grader failed on this submission"))
                write_feedback(cfg.out / "feedback", result, max_score)
            grades.append(result)
            bar.set_postfix(last=f"{result.student_id} {result.score:g}/{max_score:g}")
