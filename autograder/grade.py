"""Runs in the grader's process: ``python -m autograder grade``, grading every submission of a class.

For each submission, in ``jobs`` parallel slots (:mod:`autograder.slots`):

1. reuse its grade from the journal (:mod:`autograder.journal`) if the notebook, model, data and
   settings are unchanged since it was graded (``--regrade`` turns this off);
2. read a copy of the notebook (invalid JSON -> ``error: ...``) and restore the instructor's
   cells (:mod:`autograder.submission`); the submitted file itself is only ever read;
3. run it in a fresh kernel forked warm inside the slot's sandbox (:mod:`autograder.sandbox`,
   :mod:`autograder.kernels`) under the time, memory and process limits, in the slot's job
   folder with its own copy of the grading data (``data.npz``), of the model and of the export
   code; the hidden-test regions save the student's models there (:mod:`autograder.collect`);
4. score it in this process from those files alone (:mod:`autograder.scoring`);
5. record it in nbgrader's gradebook, write its feedback, and append it to the journal.

Then the scores are written into the gradebook, and ``grades.csv`` and a summary table are
produced. A broken, hanging or hostile submission only ever affects its own row.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from .journal import Journal, file_sha256, grade_key
from .kernels import ForkedKernelManager, SandboxedKernelManager, kernel_environment
from .limits import LimitsUnavailable, SlotLimits, format_size
from .report import StudentGrade, summary_table, write_csv, write_feedback, write_timings
from .sandbox import Sandbox, inside_path
from .scoring import CHECKS, CheckResult, build_reference, grading_subset, score_submission
from .slots import Slot, SlotPool
from .submission import Submission, SubmissionError, find_submissions, prepare_notebook, read_notebook

__all__ = ["grade", "NOT_SANDBOXED"]

#: The note every row gets when grading ran with ``--no-sandbox``.
NOT_SANDBOXED = "not sandboxed"
_EXPORT_CODE = Path(__file__).with_name("collect.py")


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
    slots: SlotPool
    executed_dir: Path
    course: Future
    journal: Journal
    run_key: str
    rlimit_as: int | None = None
    reused: int = 0


def _grade_one(sub: Submission, run: _Run) -> StudentGrade:
    """Grade one submission (or reuse its journal entry), record it and write its feedback (worker thread)."""
    try:
        nb_bytes = sub.path.read_bytes()
    except OSError as exc:
        key, reused, grade = None, False, StudentGrade(sub.student_id, f"error: cannot read the notebook: {exc}",
                                                     _zero(run.points, "the notebook could not be read"))
    else:
        key = grade_key(hashlib.sha256(nb_bytes).hexdigest(), run.run_key)
        grade = run.journal.reuse(sub.student_id, key, run.executed_dir)
        reused = grade is not None
        run.reused += reused
        if grade is None:
            grade = _run_and_score(sub, nb_bytes, run)
    recorded = reused and run.course.exception() is None and run.course.result().has(sub.student_id)
    if grade.executed is not None and not recorded and run.course.exception() is None:  # waits for the course
        start = time.perf_counter()
        problem = run.course.result().record(sub.student_id, grade.executed)
        grade.timings["record"] = round(time.perf_counter() - start, 3)
        if problem and problem not in grade.notes:
            grade.notes.append(problem)
    start = time.perf_counter()
    write_feedback(run.cfg.out / "feedback", grade, sum(run.points[g] for g in CHECKS))
    grade.timings["feedback"] = round(time.perf_counter() - start, 3)
    if key is not None and not reused:
        run.journal.add(grade, key)
    return grade


def _limit_status(status: str, before: dict, after: dict, cfg: GradeConfig) -> tuple[str, list[str]]:
    """The job's status and notes once the slot's limit counters are known."""
    notes = []
    if after.get("oom_kill", 0) > before.get("oom_kill", 0):
        status = f"error: memory limit ({format_size(cfg.memory_limit)}) exceeded"
    if after.get("pids_max", 0) > before.get("pids_max", 0):
        notes.append(f"process limit ({cfg.pids_limit}) reached: the notebook's forks were refused")
        if status.startswith("error: the kernel died"):
            status = f"error: process limit ({cfg.pids_limit}) reached"
    return status, notes


def _run_and_score(sub: Submission, nb_bytes: bytes, run: _Run) -> StudentGrade:
    cfg, points = run.cfg, run.points
    start = time.perf_counter()
    try:
        nb = read_notebook(sub.path, data=nb_bytes)
    except SubmissionError as exc:
        return StudentGrade(sub.student_id, f"error: {exc}", _zero(points, str(exc)))
    nb, notes = prepare_notebook(nb, run.source, lean=not cfg.full_notebook, display_cells=DISPLAY_CELLS)
    if not cfg.sandbox:
        notes.append(NOT_SANDBOXED)
    slot = run.slots.take()
    try:
        grade = _run_in_slot(sub, nb, notes, slot, run, start)
    finally:
        begin = time.perf_counter()
        slot.clean()
        run.slots.give(slot)
    grade.timings["clean"] = round(time.perf_counter() - begin, 3)
    return grade


def _run_in_slot(sub: Submission, nb, notes: list[str], slot: Slot, run: _Run, start: float) -> StudentGrade:
    cfg, points = run.cfg, run.points
    job = slot.fresh_job()
    nbformat.write(nb, job / "pruning.ipynb")
    shutil.copy(run.data_file, job / "data.npz")  # private copies: a kernel can only spoil its own
    shutil.copy(cfg.model, job / "model.pt")
    shutil.copy(_EXPORT_CODE, job / "grader_export.py")
    timings = {"prepare": round(time.perf_counter() - start, 3)}
    done, limit_notes = _execute(slot, job, run)
    ref = run.ref.result()
    begin = time.perf_counter()
    checks = score_submission(job / "export", ref, cfg, points)
    timings.update(kernel=done["seconds"], score=round(time.perf_counter() - begin, 3), cells=done["cells"])
    executed = None
    if (job / "executed.ipynb").is_file():
        executed = run.executed_dir / f"{sub.student_id}.ipynb"
        shutil.copy(job / "executed.ipynb", executed)
    return StudentGrade(sub.student_id, done["status"], checks, notes + limit_notes, executed=executed,
                        timings=timings)


def _execute(slot: Slot, job: Path, run: _Run) -> tuple[dict, list[str]]:
    """Run the job's notebook in the slot; the run's result and notes on limits that were hit."""
    cfg = run.cfg
    before = slot.limits.events() if slot.limits else {}
    sandboxed = slot.sandbox is not None
    env = kernel_environment(inside_path(job, slot.folder) if sandboxed else job, cfg.threads_per_job, sandboxed)
    km = None
    if slot.server is None and slot.sandbox is not None:
        km = SandboxedKernelManager.for_job(job, slot.sandbox, slot.folder, slot.limits)
    elif slot.server is not None:
        km = ForkedKernelManager.for_server(slot.server, job / "executed.kernel.log", job=job, rlimit_as=run.rlimit_as)
    done = run_notebook(job / "pruning.ipynb", job / "executed.ipynb", env, cfg.cell_timeout, cfg.timeout, km=km)
    after = slot.limits.events() if slot.limits else {}
    done["status"], notes = _limit_status(done["status"], before, after, cfg)
    return done, notes


def _limits(cfg: GradeConfig, sandbox: Sandbox | None) -> tuple[list[SlotLimits | None], str | None]:
    """One cgroup per slot, or none and the reason (printed as a warning)."""
    if sandbox is None:
        return [None] * cfg.jobs, None
    made: list[SlotLimits | None] = []
    try:
        for i in range(cfg.jobs):
            made.append(SlotLimits.create(f"pruning-grader-{os.getpid()}-s{i}", cfg.memory_limit, cfg.pids_limit))
    except (LimitsUnavailable, OSError) as exc:
        for limits in made:
            limits.close()
        return [None] * cfg.jobs, str(exc)
    return made, None


def grade(cfg: GradeConfig, progress: bool = True) -> list[StudentGrade]:
    """Grade all submissions of ``cfg``; write the CSV, feedback, gradebook and journal; return the grades.

    Raises :class:`~autograder.sandbox.SandboxError` when the sandbox cannot be built here
    and ``cfg.sandbox`` is on (the message says why; ``--no-sandbox`` runs without).
    """
    start = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    executed_dir = cfg.out / "executed"
    if cfg.regrade:
        shutil.rmtree(executed_dir, ignore_errors=True)
    executed_dir.mkdir(exist_ok=True)
    sandbox = None
    if cfg.sandbox:
        sandbox = Sandbox.for_grading([cfg.submissions, cfg.out, cfg.model.parent, Path(cfg.data_root)],
                                      cuda=_device(cfg) == "cuda")
    limits, why = _limits(cfg, sandbox)
    if why:
        print(f"warning: no memory or process limits ({why})", file=sys.stderr)
    torch.set_num_threads(cfg.threads_per_job)
    _remove_stale_slot_folders()
    # short: Unix socket paths are limited to 107 bytes
    root = Path(tempfile.mkdtemp(prefix=f"{_SLOT_PREFIX}{os.getpid()}-"))
    root.chmod(0o700)
    slots = None
    try:
        # Started first: each slot's server imports torch and ipykernel while this process prepares the data.
        slots = SlotPool(root, cfg.jobs, cfg.threads_per_job, sandbox, limits, cfg.warm_kernels, cfg.out)
        rlimit_as = None
        if sandbox is not None and why and _device(cfg) == "cpu":
            rlimit_as = _address_space_limit(cfg)
        return _grade_all(cfg, start, root, executed_dir, slots, progress, rlimit_as)
    finally:
        if slots is not None:
            slots.close()
        shutil.rmtree(root, ignore_errors=True)


_SLOT_PREFIX = "pgrade-"


def _remove_stale_slot_folders() -> None:
    """Delete slot folders left by graders that were killed (their pid is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SLOT_PREFIX}*-*"):
        pid = folder.name[len(_SLOT_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _device(cfg: GradeConfig) -> str:
    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _address_space_limit(cfg: GradeConfig) -> int:
    """Without cgroups, on CPU only: the kernel's address space may grow by the memory limit."""
    with open("/proc/self/status") as fh:
        vm = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)
    return vm + cfg.memory_limit


def _run_key(cfg: GradeConfig, data: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    digest.update(file_sha256(cfg.model).encode())
    digest.update(file_sha256(SOURCE_NOTEBOOK).encode())
    digest.update(file_sha256(_EXPORT_CODE).encode())
    for name in sorted(data):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(data[name]).tobytes())
    digest.update(json.dumps(cfg.run_settings(), sort_keys=True).encode())
    return digest.hexdigest()


def _grade_all(cfg: GradeConfig, start: float, work: Path, executed_dir: Path, slots: SlotPool,
               progress: bool, rlimit_as: int | None) -> list[StudentGrade]:
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
    journal = Journal(cfg.out / "journal.jsonl", fresh=cfg.regrade)
    run_key = _run_key(cfg, data)
    setup_seconds["data"] = round(time.perf_counter() - begin, 3)

    grades = [StudentGrade(sid, f"error: {why}", _zero(points, why)) for sid, why in problems]
    for g in grades:
        write_feedback(cfg.out / "feedback", g, max_score)
    # The reference sweeps and the nbgrader course are prepared while the first kernels start.
    with ThreadPoolExecutor(max_workers=2) as setup:
        ref = setup.submit(timed, "reference", build_reference, model, arch, config,
                           [data["X_test"], data["y_test"]], cfg.device)
        course = setup.submit(timed, "course", Course, cfg.out / "course")
        run = _Run(cfg, ref, source, data_file, points, slots, executed_dir, course, journal, run_key, rlimit_as)
        try:
            _run_all(subs, run, grades, max_score, progress)
        finally:
            journal.close()
    write_csv(cfg.out / "grades.csv", grades, grade_ids, max_score)
    if course.exception() is None:
        timed("scores", course.result().set_scores,
              {g.student_id: {c.grade_id: c.points for c in g.checks} for g in grades})
        gradebook = f"gradebook in {course.result().db}"
    else:
        gradebook = f"NO GRADEBOOK: {course.exception()}"
        print(f"warning: the nbgrader gradebook could not be made; grades.csv and feedback are complete.\n"
              f"{course.exception()}", file=sys.stderr)
    write_timings(cfg.out / "timings.json", grades,
                  {**setup_seconds, "jobs": cfg.jobs, "wall": round(time.perf_counter() - start, 3),
                   "sandbox": cfg.sandbox, "reused": run.reused, "slot_restarts": sum(s.restarts for s in slots.slots)})
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
