"""The grading run itself, once the job slots are starting.

Prepares what every job shares (the reference model and its sweeps, the grading data, the
source notebook, the nbgrader course, the journal), runs every submission through
:func:`autograder.grading.jobs.grade_one` in ``--jobs`` threads, then writes ``grades.csv``,
the gradebook's scores, ``timings.json`` and the summary table.

Runs in the grader's process.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import get_CINIC10_data, load_model
from helpers.models import CheckpointError, model_config

from ..config import SOURCE_NOTEBOOK, GradeConfig
from .class_record import write_report
from .errors import InputError
from .executor import Executor
from .gradebook import Course, read_points
from .intake import Intake, read_class
from .jobs import JobContext, RunState, grade_one, zero_checks
from .journal import Journal, file_sha256
from .measure import build_reference, measuring_device
from .notebook_job import EXPORT_CODE
from .parts import PART3, graded_checks
from .report import summary_table, write_csv, write_feedback, write_timings
from .results import NO_SUBMISSION, StudentGrade, not_graded
from .submission import Submission
from .warm_imports import import_before_threads

__all__ = ["grade_all", "read_inputs", "grading_subset", "next_steps", "JOURNAL_FORMAT"]

#: Part of every journal key: grades journaled by an older grader, which journaled failures of its own
#: machine as grades, are not reused.
JOURNAL_FORMAT = 2


def _executed_dir(cfg: GradeConfig) -> Path:
    """Where executed notebooks are kept between runs (emptied by ``--regrade`` of the whole class)."""
    folder = cfg.out / "executed"
    if cfg.regrade is True:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    return folder


def read_inputs(cfg: GradeConfig) -> tuple[torch.nn.Module, dict[str, np.ndarray], Intake]:
    """The model, the grading data and the class of ``cfg`` (:func:`~autograder.grading.intake.read_class`);
    :class:`InputError` with one sentence when one of them cannot be used (before any job runs or any row is
    written)."""
    if (cfg.device or "").startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {cfg.device}: torch sees no CUDA device on this machine; use --device cpu")
    try:
        model = load_model(cfg.model)
    except (CheckpointError, OSError) as exc:
        raise InputError(f"--model {cfg.model} cannot be used: {exc}") from None
    intake = read_class(cfg)
    try:
        data = grading_subset(cfg.data_root, cfg.per_class)
    except (ValueError, OSError) as exc:  # DatasetError is a ValueError
        raise InputError(f"--data-root {cfg.data_root} cannot be used: {exc}") from None
    return model, data, intake


def grading_subset(data_root: str, per_class: int) -> dict[str, np.ndarray]:
    """The fixed stratified grading data: ``per_class`` images of each class in every split."""
    data = get_CINIC10_data(data_root, n_per_class=per_class, progress=False)
    return {k: np.array(v) for k, v in data.items()}


def _run_key(cfg: GradeConfig, data: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(f"journal format {JOURNAL_FORMAT}".encode())
    digest.update(file_sha256(cfg.model).encode())
    digest.update(file_sha256(SOURCE_NOTEBOOK).encode())
    digest.update(file_sha256(EXPORT_CODE).encode())
    for name in sorted(data):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(data[name]).tobytes())
    digest.update(json.dumps(cfg.run_settings(), sort_keys=True).encode())
    return digest.hexdigest()


def grade_all(cfg: GradeConfig, start: float, executor: Executor, progress: bool) -> list[StudentGrade]:
    """Grade every submission of ``cfg`` with ``executor`` (this machine's job slots or a cluster's workers,
    already opening); ``start``: when the command started (``perf_counter``), for the run's wall time."""
    setup_seconds: dict[str, float] = {}
    torch.set_num_threads(cfg.threads_per_job)

    def timed(name, fn, *args):
        begin = time.perf_counter()
        try:
            return fn(*args)
        finally:
            setup_seconds[name] = round(time.perf_counter() - begin, 3)

    begin = time.perf_counter()
    model, data, intake = read_inputs(cfg)
    if progress:
        print(intake.line, flush=True)
    data_file = executor.work / "grading-data.npz"
    np.savez(data_file, **data)
    points = read_points()
    grade_ids = graded_checks(points)
    max_score = sum(points[g] for g in grade_ids)
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    run_key = _run_key(cfg, data)
    setup_seconds["data"] = round(time.perf_counter() - begin, 3)
    # A cluster's workers get the run first, so that they start their kernel slots during the imports;
    # each worker runs the preflight notebook in its slots while it prepares.
    in_flight = timed("executor", executor.prepare, cfg, data_file)
    timed("imports", import_before_threads)  # before this run's threads start, so that none imports them first
    # Every slot runs the set-up once: a machine that cannot stops here, no row written.
    checked = executor.preflight(JobContext(cfg, None, source, data_file, points, executor.work))
    if checked is not None:
        setup_seconds["preflight"] = checked
    executed_dir = _executed_dir(cfg)
    shutil.rmtree(cfg.out / "feedback", ignore_errors=True)
    journal = Journal(cfg.out / "journal.jsonl", fresh=cfg.regrade is True)

    grades = [StudentGrade(sid, f"error: {why}", zero_checks(points, why)) for sid, why in intake.problems]
    for g in grades:
        write_feedback(cfg.out / "feedback", g, max_score)
    # The reference sweeps and the nbgrader course are prepared while the first kernels start.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="pgrade-setup") as setup:
        course = setup.submit(timed, "course", Course, cfg.out / "course")
        ref = _reference(cfg, executor, setup, timed, model, data, any(gid in points for gid in PART3))
        run = RunState(JobContext(cfg, ref, source, data_file, points, executed_dir), executor.score, course,
                       journal, run_key)
        try:
            _run_all(intake.submissions, run, grades, max_score, progress, in_flight)
        finally:
            journal.close()
    grades += [StudentGrade(sid, NO_SUBMISSION) for sid in intake.absent]
    run_info = {**setup_seconds, "jobs": cfg.jobs, "sandbox": cfg.sandbox, "reused": run.reused,
                "slot_restarts": executor.restarts(), "cluster": cfg.cluster, "limits": executor.limits_in_force()}
    _finish(cfg, grades, intake.people, max_score, course, timed, run_info, start, progress, executor.where, ref)
    return grades


def _reference(cfg: GradeConfig, executor: Executor, setup: ThreadPoolExecutor, timed, model, data: dict,
               part3: bool) -> Future:
    """The reference's measurements (a future: measured here while the slots or the workers start), shared
    with the executor's remote workers as soon as they are done (:meth:`Executor.share`)."""
    arch, config = model_config(model)
    ref = setup.submit(timed, "reference", build_reference, model, arch, config, [data["X_test"], data["y_test"]],
                       cfg.device, [data["X_train"], data["y_train"]], executor.store(measuring_device(cfg.device)))
    setup.submit(timed, "shared", executor.share, ref, part3)
    return ref


def _finish(cfg: GradeConfig, grades: list[StudentGrade], people: dict[str, dict], max_score: float, course, timed,
            run_info: dict, start: float, progress: bool, where: str, ref: Future) -> None:
    """Write grades.csv, the gradebook's scores, timings.json, the class report and the summary."""
    points = read_points()
    grade_ids = graded_checks(points)
    write_csv(cfg.out / "grades.csv", grades, grade_ids, max_score, people)
    if course.exception() is None:
        timed("scores", course.result().set_scores,
              {g.student_id: {c.grade_id: c.points for c in g.checks} for g in grades if g.has_points})
        gradebook = f"gradebook in {course.result().db}"
    else:
        gradebook = f"NO GRADEBOOK: {course.exception()}"
        print(f"warning: the nbgrader gradebook could not be made; grades.csv and feedback are complete.\n"
              f"{course.exception()}", file=sys.stderr)
    begin = time.perf_counter()
    built = write_report(cfg, grades, people, points, max_score, ref, cfg.out / "course",
                         {"wall": round(begin - start, 3), "where": where})
    write_timings(cfg.out / "timings.json", grades, {**run_info, "report": round(time.perf_counter() - begin, 3),
                                                     "wall": round(time.perf_counter() - start, 3)})
    if progress:
        print(_printable(summary_table(grades, grade_ids, max_score, people)))
        graded = sum(g.status != NO_SUBMISSION for g in grades)
        print(f"\n{graded} submissions graded in {time.perf_counter() - start:.1f} s {where}; "
              f"grades in {cfg.out / 'grades.csv'}, feedback in {cfg.out / 'feedback'}, {gradebook}")
        if built is not None:
            print(f"class report in {built.report} ({built.pairs} pair{'' if built.pairs == 1 else 's'} worth "
                  f"comparing, also in {built.pairs_csv.name})")
        if course.exception() is None:
            print(next_steps(cfg.out))


def next_steps(out: Path) -> str:
    """What a TA does after a run: the written answers in formgrader, then grades and feedback back to the LMS."""
    course = shlex.quote(str(out / "course"))
    return (f"Next: grade the written answers in formgrader (cd {course} && jupyter lab, then Nbgrader > Formgrader "
            f"> Manual Grading); then write the grades, automatic and manual points together, and the feedback "
            f"pages for your LMS: python -m autograder export {shlex.quote(str(out))} (--to canvas, moodle or csv).")


def _run_all(subs: list[Submission], run: RunState, grades: list[StudentGrade], max_score: float,
             progress: bool, in_flight: int) -> None:
    """Grade ``subs`` with ``in_flight`` at a time, each as it finishes (:func:`grade_one`). On Ctrl-C the
    submissions not started are dropped and ``KeyboardInterrupt`` goes up at once (the executor's ``close``
    stops what runs: kernels, a cluster's jobs); what finished is journaled."""
    began = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="pgrade-job")
    try:
        _collect(pool, subs, run, grades, max_score, progress, began)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _collect(pool: ThreadPoolExecutor, subs: list[Submission], run: RunState, grades: list[StudentGrade],
             max_score: float, progress: bool, began: float) -> None:
    """Submit every submission to ``pool`` and record each grade as it finishes (a fatal failure last)."""
    futures = {pool.submit(grade_one, s, run): s for s in subs}
    bar = tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
               disable=not progress)
    fatal = None
    for fut in bar:
        sub = futures[fut]
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - one submission never stops the batch
            if getattr(exc, "fatal", False):  # the backend itself is gone (a lost cluster): stop, no rows
                fatal = fatal or exc
                continue
            # The grader's failure (a lost worker, a bug), never the student's: no points, no journal line.
            why = str(exc) if getattr(exc, "machine", False) else f"the grader failed: {type(exc).__name__}: {exc}"
            result = not_graded(sub.student_id, why, sub.notes)
        result.timings["finished"] = round(time.perf_counter() - began, 3)  # since the first job was sent
        grades.append(result)
        bar.set_postfix(last=f"{result.student_id} {result.score:g}/{max_score:g}")
    if fatal is not None:
        raise fatal


def _printable(text: str) -> str:
    """``text`` as this terminal can print it: a character its encoding lacks (a name in another script under a
    Latin-1 locale) becomes ``?`` rather than stopping the run after its grades were written."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, "replace").decode(encoding)
