"""Runs in the grader's process: the grading run itself, once the job slots are starting.

Prepares what every job shares (the reference model and its sweeps, the grading data, the
source notebook, the nbgrader course, the journal), runs every submission through
:func:`autograder.grading.jobs.grade_one` in ``--jobs`` threads, then writes ``grades.csv``,
the gradebook's scores, ``timings.json`` and the summary table.
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
from typing import Protocol

import nbformat
import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import load_model
from helpers.models import model_config

from ..config import SOURCE_NOTEBOOK, GradeConfig
from ..runner.slots import SlotPool
from .errors import InputError
from .gradebook import Course, read_points
from .imports import import_before_threads
from .jobs import EXPORT_CODE, Jobs, Run, Scorer, grade_one, zero_checks
from .journal import Journal, file_sha256
from .parts import SECTION3, graded_checks
from .preflight import preflight
from .removal import measure_reference_starts
from .report import StudentGrade, not_graded, summary_table, write_csv, write_feedback, write_timings
from .scoring import build_reference, grading_subset, measuring_device
from .submission import Submission, find_submissions

__all__ = ["grade_all", "read_inputs", "address_space_cap", "next_steps", "Cluster", "JOURNAL_FORMAT"]

#: Part of every journal key: grades journaled by an older grader, which journaled failures of its own
#: machine as grades, are not reused.
JOURNAL_FORMAT = 2


class Cluster(Protocol):
    """Where submissions run when grading on a cluster (:class:`autograder.cluster.client.DaskCluster`)."""

    def prepare(self, cfg: GradeConfig, data_file: Path) -> int:
        """Get every worker ready for this run (its data, model and settings); how many jobs to keep in flight."""

    def score(self, sub: Submission, nb_bytes: bytes, jobs: Jobs) -> StudentGrade:
        """Run and score one submission on a worker (a :data:`~autograder.grading.jobs.Scorer`)."""

    def restarts(self) -> int:
        """Kernel servers restarted so far on the workers (a notebook killed one, say)."""

    def publish(self, ref: Future) -> None:
        """Give the workers the reference's measurements when ``ref`` is done (or why there are none)."""

    def store(self, device_kind: str):
        """Where the grader and the workers share this run's measurements on ``device_kind``
        (a :class:`~autograder.grading.scoring.Reference`'s ``shared``)."""


def _executed_dir(cfg: GradeConfig) -> Path:
    """Where executed notebooks are kept between runs (emptied by ``--regrade`` of the whole class)."""
    folder = cfg.out / "executed"
    if cfg.regrade is True:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    return folder


def address_space_cap(cfg: GradeConfig) -> int:
    """Without cgroups, on CPU only: the kernel's address space may grow by the memory limit."""
    with open("/proc/self/status") as fh:
        vm = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)
    return vm + cfg.memory_limit


def read_inputs(cfg: GradeConfig) -> tuple[torch.nn.Module, dict[str, np.ndarray], list[Submission],
                                            list[tuple[str, str]]]:
    """The model, the grading data and the submissions of ``cfg``; :class:`InputError` with one sentence when
    one of them cannot be used (before any job runs or any row is written)."""
    from helpers.models import CheckpointError
    if (cfg.device or "").startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {cfg.device}: torch sees no CUDA device on this machine; use --device cpu")
    try:
        model = load_model(cfg.model)
    except (CheckpointError, OSError) as exc:
        raise InputError(f"--model {cfg.model} cannot be used: {exc}") from None
    subs, problems = find_submissions(cfg.submissions)
    if not subs and not problems:
        raise InputError(f"no submissions in {cfg.submissions}: expected one folder per student holding "
                         "pruning/pruning.ipynb (nbgrader's submitted/ layout: <student_id>/pruning/pruning.ipynb)")
    try:
        data = grading_subset(cfg.data_root, cfg.per_class)
    except (ValueError, OSError) as exc:  # DatasetError is a ValueError
        raise InputError(f"--data-root {cfg.data_root} cannot be used: {exc}") from None
    return model, data, subs, problems


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


def grade_all(cfg: GradeConfig, start: float, work: Path, slots: SlotPool | None, progress: bool,
              address_space_limit: bool = False, cluster: Cluster | None = None) -> list[StudentGrade]:
    """Grade every submission with the job slots ``slots`` (``work``: a private folder for shared files),
    or, given a ``cluster``, on its workers (then ``slots`` is ``None``: the workers have their own).

    ``address_space_limit``: no cgroup limits memory, so on the CPU cap each kernel's address space.
    """
    setup_seconds: dict[str, float] = {}
    torch.set_num_threads(cfg.threads_per_job)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rlimit_as = address_space_cap(cfg) if address_space_limit and device == "cpu" else None

    def timed(name, fn, *args):
        begin = time.perf_counter()
        try:
            return fn(*args)
        finally:
            setup_seconds[name] = round(time.perf_counter() - begin, 3)

    begin = time.perf_counter()
    model, data, subs, problems = read_inputs(cfg)
    data_file = work / "grading-data.npz"
    np.savez(data_file, **data)
    points = read_points()
    grade_ids = graded_checks(points)
    max_score = sum(points[g] for g in grade_ids)
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    run_key = _run_key(cfg, data)
    setup_seconds["data"] = round(time.perf_counter() - begin, 3)
    # A cluster's workers get the run first, so that they start their kernel slots during the imports;
    # each worker runs the preflight notebook in its slots while it prepares.
    in_flight = timed("workers", cluster.prepare, cfg, data_file) if cluster is not None else cfg.jobs
    timed("imports", import_before_threads)  # before this run's threads start, so that none imports them first
    if slots is not None:  # every local slot runs the set-up once: a machine that cannot stops here, no row written
        setup_seconds["preflight"] = preflight(slots.slots, Jobs(cfg, None, source, data_file, points, slots,
                                                                 work, rlimit_as))
    executed_dir = _executed_dir(cfg)
    shutil.rmtree(cfg.out / "feedback", ignore_errors=True)
    journal = Journal(cfg.out / "journal.jsonl", fresh=cfg.regrade is True)

    grades = [StudentGrade(sid, f"error: {why}", zero_checks(points, why)) for sid, why in problems]
    for g in grades:
        write_feedback(cfg.out / "feedback", g, max_score)
    # The reference sweeps and the nbgrader course are prepared while the first kernels start.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="pgrade-setup") as setup:
        course = setup.submit(timed, "course", Course, cfg.out / "course")
        ref, scorer = _scoring(cfg, cluster, setup, timed, model, data, any(gid in points for gid in SECTION3))
        run = Run(Jobs(cfg, ref, source, data_file, points, slots, executed_dir, rlimit_as), course, journal, run_key)
        try:
            _run_all(subs, run, grades, max_score, progress, scorer, in_flight)
        finally:
            journal.close()
    restarts = sum(s.restarts for s in slots.slots) if slots is not None else cluster.restarts()
    _finish(cfg, grades, max_score, course, timed, {**setup_seconds, "jobs": cfg.jobs, "sandbox": cfg.sandbox,
                                                    "reused": run.reused, "slot_restarts": restarts,
                                                    "cluster": cfg.cluster}, start, progress)
    return grades


def _scoring(cfg: GradeConfig, cluster: Cluster | None, setup: ThreadPoolExecutor, timed, model, data: dict,
             section3: bool) -> tuple[Future, Scorer | None]:
    """The reference (a future: measured here while the slots or the workers start) and the scorer: this
    process's slots, or the ``cluster``'s workers (already prepared; they start running notebooks at once
    and receive the reference's measurements when it is done; when part 3 is graded (``section3``) the
    grader then measures its reference starting models for all the workers:
    :func:`~autograder.grading.removal.measure_reference_starts`)."""
    arch, config = model_config(model)
    shared = cluster.store(measuring_device(cfg.device)) if cluster is not None else None
    ref = setup.submit(timed, "reference", build_reference, model, arch, config, [data["X_test"], data["y_test"]],
                       cfg.device, [data["X_train"], data["y_train"]], shared)
    if cluster is None:
        return ref, None
    setup.submit(timed, "shared", _share_reference, cluster, ref, section3)
    return ref, cluster.score


def _share_reference(cluster: Cluster, ref: Future, section3: bool) -> None:
    """Publish the reference's measurements to the workers (their notebooks are already running), then
    measure part 3's reference starting models for all of them."""
    cluster.publish(ref)
    if ref.exception() is not None or not section3:
        return
    try:
        measure_reference_starts(ref.result())
    except Exception as exc:  # noqa: BLE001 - only saves the workers time
        print(f"warning: part 3's reference models could not be measured for the workers ({type(exc).__name__}: "
              f"{exc}); each worker measures them for itself", file=sys.stderr)


def _finish(cfg: GradeConfig, grades: list[StudentGrade], max_score: float, course, timed, run_info: dict,
            start: float, progress: bool) -> None:
    """Write grades.csv, the gradebook's scores, timings.json and the summary."""
    grade_ids = graded_checks(read_points())
    write_csv(cfg.out / "grades.csv", grades, grade_ids, max_score)
    if course.exception() is None:
        timed("scores", course.result().set_scores,
              {g.student_id: {c.grade_id: c.points for c in g.checks} for g in grades if g.graded})
        gradebook = f"gradebook in {course.result().db}"
    else:
        gradebook = f"NO GRADEBOOK: {course.exception()}"
        print(f"warning: the nbgrader gradebook could not be made; grades.csv and feedback are complete.\n"
              f"{course.exception()}", file=sys.stderr)
    write_timings(cfg.out / "timings.json", grades, {**run_info, "wall": round(time.perf_counter() - start, 3)})
    if progress:
        print(summary_table(grades, grade_ids, max_score))
        where = f"on the Dask cluster {cfg.cluster}" if cfg.cluster else f"with --jobs {cfg.jobs}"
        print(f"\n{len(grades)} submissions graded in {time.perf_counter() - start:.1f} s {where}; "
              f"grades in {cfg.out / 'grades.csv'}, feedback in {cfg.out / 'feedback'}, {gradebook}")
        if course.exception() is None:
            print(next_steps(cfg.out))


def next_steps(out: Path) -> str:
    """What a TA does after a run: feedback pages, the written answers in formgrader, the export."""
    course = shlex.quote(str(out / "course"))
    return (f"Next: send each student their page in {out / 'feedback'}; grade the written answers in formgrader "
            f"(cd {course} && jupyter lab, then Nbgrader > Formgrader > Manual Grading); then export automatic "
            f"and manual points together: cd {course} && nbgrader export (writes {out / 'course' / 'grades.csv'}).")


def _run_all(subs: list[Submission], run: Run, grades: list[StudentGrade], max_score: float,
             progress: bool, scorer: Scorer | None, in_flight: int) -> None:
    """Grade ``subs`` with ``in_flight`` at a time, each as it finishes (:func:`grade_one` with ``scorer``)."""
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="pgrade-job") as pool:
        futures = {pool.submit(grade_one, s, run, scorer): s for s in subs}
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
