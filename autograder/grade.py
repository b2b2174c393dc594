"""``python -m autograder grade``: grade every submission of a class.

For each submission, in ``jobs`` parallel slots:

1. read the notebook (invalid JSON -> ``error: ...``) and restore the instructor's cells
   (:mod:`autograder.submission`);
2. run it in a fresh kernel (forked warm from :mod:`autograder.kernels`) under the time
   limits (:mod:`autograder.execute`), in a private
   folder with its own copy of the grading data (``data.npz``) and of the model; the
   hidden-test regions save the student's models there (:mod:`autograder.collect`);
3. score it in this process from those files alone (:mod:`autograder.scoring`).

Each executed notebook is recorded in nbgrader's gradebook as its job ends; then the scores are
written into it, and ``grades.csv``, feedback and a summary table are produced. A broken,
hanging or hostile submission only ever affects its own row.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import load_model
from helpers.models import model_config

from .config import DISPLAY_CELLS, SOURCE_NOTEBOOK, GradeConfig
from .execute import run_notebook
from .gradebook import Course, read_points
from .kernels import ForkServer, kernel_environment
from .report import StudentGrade, summary_table, write_csv, write_feedback, write_timings
from .scoring import CHECKS, CheckResult, build_reference, grading_subset, score_submission
from .submission import Submission, SubmissionError, find_submissions, prepare_notebook, read_notebook

__all__ = ["grade"]


def _zero(points: dict[str, float], message: str) -> list[CheckResult]:
    return [CheckResult(gid, 0.0, points.get(gid, 0.0), [message]) for gid in CHECKS]


@dataclass
class _Run:
    """What every job of one grading run shares."""

    cfg: GradeConfig
    ref: Future
    source: nbformat.NotebookNode
    data_file: Path
    points: dict[str, float]
    work: Path
    executed_dir: Path
    server: ForkServer | None
    course: Future


def _grade_one(sub: Submission, run: _Run) -> StudentGrade:
    """Grade one submission and write its feedback (runs in a worker thread)."""
    grade = _run_and_score(sub, run)
    if grade.executed is not None and run.course.exception() is None:  # waits for the course set-up
        start = time.perf_counter()
        problem = run.course.result().record(sub.student_id, grade.executed)
        grade.timings["record"] = round(time.perf_counter() - start, 3)
        if problem:
            grade.notes.append(problem)
    start = time.perf_counter()
    write_feedback(run.cfg.out / "feedback", grade, sum(run.points[g] for g in CHECKS))
    grade.timings["feedback"] = round(time.perf_counter() - start, 3)
    return grade


def _run_and_score(sub: Submission, run: _Run) -> StudentGrade:
    cfg, points = run.cfg, run.points
    job = Path(tempfile.mkdtemp(prefix=f"{sub.student_id}-", dir=run.work))
    start = time.perf_counter()
    try:
        try:
            nb = read_notebook(sub.path)
        except SubmissionError as exc:
            return StudentGrade(sub.student_id, f"error: {exc}", _zero(points, str(exc)))
        nb, notes = prepare_notebook(nb, run.source, lean=not cfg.full_notebook, display_cells=DISPLAY_CELLS)
        nbformat.write(nb, job / "pruning.ipynb")
        shutil.copy(run.data_file, job / "data.npz")  # a private copy: a kernel can only spoil its own
        shutil.copy(cfg.model, job / "model.pt")
        timings = {"prepare": round(time.perf_counter() - start, 3)}
        done = run_notebook(job / "pruning.ipynb", job / "executed.ipynb", kernel_environment(job, cfg.threads_per_job),
                            cfg.cell_timeout, cfg.timeout, server=run.server)
        ref = run.ref.result()
        start = time.perf_counter()
        checks = score_submission(job / "export", ref, cfg, points)
        timings.update(kernel=done["seconds"], score=round(time.perf_counter() - start, 3), cells=done["cells"])
        executed = None
        if (job / "executed.ipynb").is_file():
            executed = run.executed_dir / f"{sub.student_id}.ipynb"
            shutil.copy(job / "executed.ipynb", executed)
        return StudentGrade(sub.student_id, done["status"], checks, notes, executed=executed, timings=timings)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def grade(cfg: GradeConfig, progress: bool = True, server: ForkServer | None = None) -> list[StudentGrade]:
    """Grade all submissions of ``cfg``; write the CSV, feedback and gradebook; return the grades.

    ``server``: a warm kernel server already started (the command line starts it before its
    own imports); by default one is started here when ``cfg.warm_kernels``. Either way it is
    stopped when grading ends.
    """
    start = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    work = cfg.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    executed_dir = cfg.out / "executed"
    shutil.rmtree(executed_dir, ignore_errors=True)
    executed_dir.mkdir()
    torch.set_num_threads(cfg.threads_per_job)
    # Started first: it imports torch and ipykernel while this process prepares the data.
    if server is None and cfg.warm_kernels and ForkServer.supported():
        server = ForkServer.for_threads(cfg.threads_per_job, cfg.out / "kernels.log")
    try:
        return _grade_all(cfg, start, work, executed_dir, server, progress)
    finally:
        if server is not None:
            server.close()


def _grade_all(cfg: GradeConfig, start: float, work: Path, executed_dir: Path, server: ForkServer | None,
               progress: bool) -> list[StudentGrade]:
    setup_seconds: dict[str, float] = {}

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
    grade_ids = list(CHECKS)
    max_score = sum(points[g] for g in grade_ids)
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    subs, problems = find_submissions(cfg.submissions)
    shutil.rmtree(cfg.out / "feedback", ignore_errors=True)
    setup_seconds["data"] = round(time.perf_counter() - begin, 3)

    grades = [StudentGrade(sid, f"error: {why}", _zero(points, why)) for sid, why in problems]
    for g in grades:
        write_feedback(cfg.out / "feedback", g, max_score)
    # The reference sweeps and the nbgrader course are prepared while the first kernels start.
    with ThreadPoolExecutor(max_workers=2) as setup:
        ref = setup.submit(timed, "reference", build_reference, model, arch, config,
                           [data["X_test"], data["y_test"]], cfg.device)
        course = setup.submit(timed, "course", Course, cfg.out / "course")
        run = _Run(cfg, ref, source, data_file, points, work, executed_dir, server, course)
        _run_all(subs, run, grades, max_score, progress)
    write_csv(cfg.out / "grades.csv", grades, grade_ids, max_score)
    shutil.rmtree(work, ignore_errors=True)
    if course.exception() is None:
        timed("scores", course.result().set_scores,
              {g.student_id: {c.grade_id: c.points for c in g.checks} for g in grades})
        gradebook = f"gradebook in {course.result().db}"
    else:
        gradebook = f"NO GRADEBOOK: {course.exception()}"
        print(f"warning: the nbgrader gradebook could not be made; grades.csv and feedback are complete.\n"
              f"{course.exception()}", file=sys.stderr)
    write_timings(cfg.out / "timings.json", grades,
                  {**setup_seconds, "jobs": cfg.jobs, "wall": round(time.perf_counter() - start, 3)})
    if progress:
        print(summary_table(grades, grade_ids, max_score))
        print(f"\n{len(grades)} submissions graded in {time.perf_counter() - start:.1f} s with --jobs {cfg.jobs}; "
              f"grades in {cfg.out / 'grades.csv'}, feedback in {cfg.out / 'feedback'}, {gradebook}")
    return grades


def _run_all(subs: list[Submission], run: _Run, grades: list[StudentGrade], max_score: float,
             progress: bool) -> None:
    cfg, points = run.cfg, run.points
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        futures = {pool.submit(_grade_one, s, run): s for s in subs}
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
