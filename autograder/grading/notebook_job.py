"""Running and scoring one notebook in a job slot of this process (:class:`~autograder.grading.local.LocalSlots`,
in the grader or on a cluster worker).

:func:`run_and_score` prepares a copy of the notebook (:mod:`autograder.grading.submission`), runs it in a
free slot (:mod:`autograder.runner`) with its own copies of the grading data, the model and the export
code, scores what it saved (:mod:`autograder.grading.scoring`) and names any limit it hit. A failure of the
grading machine (:class:`MachineFailure`) is retried on a fresh kernel server, never graded.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import nbformat

from helpers.config import ENV_CACHE, ENV_EVAL_PER_CLASS, ENV_MODEL, ENV_ROOT

from ..config import DISPLAY_CELLS, GradeConfig
from ..runner.execute import run_notebook
from ..runner.kernels import kernel_environment
from ..runner.limits import KernelRlimits, format_size
from ..runner.provisioning import ForkedKernelManager, SandboxedKernelManager
from ..runner.sandbox import inside_path
from ..runner.slots import Slot, SlotPool
from .figures import submission_figures
from .jobs import JobContext, zero_checks
from .kernel_export import ENV_EXPORT, ENV_EXPORT_CODE
from .results import StudentGrade, not_graded
from .scoring import load_records, score_submission
from .statuses import cpu_exceeded, memory_exceeded, process_limit
from .submission import Submission, SubmissionError, preamble_end, prepare_notebook, read_notebook

__all__ = ["run_and_score", "run_job", "job_environment", "preamble_failure", "MachineFailure", "prepare_job",
           "execute_job", "limit_status", "memory_stop", "restart_slot", "log_tail", "with_log", "NOT_SANDBOXED",
           "EXPORT_CODE", "RETRIES"]

#: The note every row gets when grading ran with ``--no-sandbox``.
NOT_SANDBOXED = "not sandboxed"
#: The export code copied into every job folder (run there by the hidden-test regions).
EXPORT_CODE = Path(__file__).with_name("kernel_export.py")
#: Fresh kernels a submission gets after a failure of the grading machine before its row says ``not graded``.
RETRIES = 2


class MachineFailure(RuntimeError):
    """A job failed for a reason of the grading machine's, before any student code ran (its kernel or sandbox
    could not start, a set-up cell failed, the grader's own files could not be written); the message says why.
    Never a grade: the job is retried, then reported as not graded (:func:`~autograder.grading.results.not_graded`)."""


def job_environment(job: Path, threads: int, sandbox) -> dict[str, str]:
    """A kernel's environment in job folder ``job`` (as the kernel sees it): its private data, model,
    cache, export folder and export code, on top of :func:`~autograder.runner.kernels.kernel_environment`.
    The notebook's ``test_data`` is the grading data's whole test split (``evaluation_data`` takes no sample),
    so the accuracies a student's code stores are measured on the grader's own images."""
    env = kernel_environment(threads, home=None if sandbox is not None else job / "home", sandbox=sandbox)
    env.update({ENV_ROOT: str(job / "data.npz"), ENV_CACHE: str(job / "cache"), ENV_MODEL: str(job / "model.pt"),
                ENV_EVAL_PER_CLASS: "all", ENV_EXPORT: str(job / "export"),
                ENV_EXPORT_CODE: str(job / "grader_export.py")})
    return env


#: What an allocation past an address-space limit raises (Python's own, torch's CPU allocator, numpy's).
_OUT_OF_MEMORY = ("can't allocate memory", "Cannot allocate memory", "Unable to allocate")
#: What a fork or a thread refused by the process limit says (``EAGAIN``).
_REFUSED = ("Resource temporarily unavailable", "can't start new thread")


def _out_of_memory(cell) -> bool:
    """Did the executed ``cell`` fail because an allocation failed?"""
    return any(o.get("output_type") == "error" and (o.get("ename") == "MemoryError" or any(
        m in f"{o.get('ename')}: {o.get('evalue')}" for m in _OUT_OF_MEMORY)) for o in cell.get("outputs", []))


def _refused(cell) -> bool:
    """Does the executed ``cell`` show a refused fork or thread (raised, or caught and printed)?"""
    return any(m in f"{o.get('text', '')}{o.get('ename', '')}: {o.get('evalue', '')}" for o in cell.get("outputs", [])
               for m in _REFUSED)


def _grade_id(nb, cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {nb.cells.index(cell)}"


def memory_stop(limits: KernelRlimits | None, cfg: GradeConfig):
    """A :func:`~autograder.runner.execute.run_notebook` ``stop_when`` for kernels under an address-space limit: a
    cell whose allocation failed ends the run as the cgroup's OOM killer would have, with the same status (under
    rlimits the kernel would survive, and the notebook's later cells run short of memory); ``None`` without."""
    if limits is None or not limits.memory:
        return None
    status = memory_exceeded(format_size(cfg.memory_limit))
    return lambda cell: status if cell.cell_type == "code" and _out_of_memory(cell) else None


def limit_status(done: dict, before: dict, after: dict, slot: Slot, cfg: GradeConfig) -> tuple[str, list[str]]:
    """The job's status and notes, with the limit named that stopped it or refused it something.

    ``done``: what :func:`~autograder.runner.execute.run_notebook` returned; ``before`` and ``after``: the slot's
    cgroup counters around the run (:meth:`~autograder.runner.cgroups.SlotCgroup.events`; empty without one).
    Under rlimits a kernel past the CPU-time limit is killed by ``SIGXCPU``, and a fork or thread past the
    process limit is refused (the notebook shows it).
    """
    status, notes = done["status"], []
    died = status.startswith("error: the kernel died")
    if after.get("oom_kill", 0) > before.get("oom_kill", 0):
        status = memory_exceeded(format_size(cfg.memory_limit))
    if after.get("pids_max", 0) > before.get("pids_max", 0):
        notes.append(f"process limit ({cfg.pids_limit}) reached: the notebook's forks were refused")
        if died:
            status = process_limit(cfg.pids_limit)
    limits, nb = slot.rlimits, done["notebook"]
    if limits is None:
        return status, notes
    if limits.cpu_seconds and died and (done.get("kernel_exit") or {}).get("signal") == signal.SIGXCPU:
        status = cpu_exceeded(limits.cpu_seconds)
    short = next((c for c in nb.cells if c.cell_type == "code" and _out_of_memory(c)), None)
    if limits.memory and short is not None:
        notes.append(f"an allocation in {_grade_id(nb, short)} went past the memory limit (the kernel's address space)")
    refused = next((c for c in nb.cells if c.cell_type == "code" and _refused(c)), None)
    if limits.processes and refused is not None:
        notes.append(f"process limit ({cfg.pids_limit}) reached in {_grade_id(nb, refused)}: a fork or thread was "
                     "refused")
    return status, notes


def run_and_score(sub: Submission, nb_bytes: bytes, run: JobContext, slots: SlotPool) -> StudentGrade:
    """Prepare, run and score one notebook in a free slot of ``slots`` (the executed notebook is kept in
    ``run.executed_dir``).

    A failure of the grading machine before any student code ran (:class:`MachineFailure`) is tried again on a
    fresh kernel server, :data:`RETRIES` times; if it persists, or the grader itself fails, the row says
    ``not graded: <reason>`` (:func:`~autograder.grading.results.not_graded`), never a grade."""
    cfg, points = run.cfg, run.points
    start = time.perf_counter()
    try:
        nb = read_notebook(sub.path, data=nb_bytes)
        nb, notes = prepare_notebook(nb, run.source, lean=not cfg.full_notebook, display_cells=DISPLAY_CELLS)
    except SubmissionError as exc:
        return StudentGrade(sub.student_id, f"error: {exc}", zero_checks(points, str(exc)), list(sub.notes))
    notes = list(sub.notes) + notes
    if not cfg.sandbox:
        notes.append(NOT_SANDBOXED)
    tries: list[str] = []
    for attempt in range(1 + RETRIES):
        slot = slots.take()
        grade = None
        try:
            if attempt:
                restart_slot(slot)  # a fresh kernel server too, not only a fresh kernel
            grade = _run_in_slot(sub, nb, notes, slot, run, start)
        except MachineFailure as exc:
            tries.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - the grader's own failure: never a grade, not worth a retry
            grade = not_graded(sub.student_id, f"the grader failed: {type(exc).__name__}: {exc}", notes)
        finally:
            begin = time.perf_counter()
            slot.clean()
            slots.give(slot)
        if grade is not None:
            grade.timings["clean"] = round(time.perf_counter() - begin, 3)
            if tries:
                grade.timings["machine_failures"] = tries
            return grade
    return not_graded(sub.student_id, f"{tries[-1]} ({len(tries)} tries)", notes, {"machine_failures": tries})


def restart_slot(slot: Slot) -> None:
    """Give ``slot`` a fresh kernel server; :class:`MachineFailure` when it cannot start."""
    try:
        slot.restart()
    except (OSError, RuntimeError, ValueError) as exc:
        raise MachineFailure(f"the slot's kernel server could not be restarted: {type(exc).__name__}: {exc}") from None


def preamble_failure(nb, status: str) -> str | None:
    """Why the grading machine failed a run, or ``None``: the executed notebook ``nb`` (prepared by
    :func:`~autograder.grading.submission.prepare_notebook`) ended with ``status`` before its set-up cells
    (:func:`~autograder.grading.submission.preamble_end`) had all run, or one of them failed. Up to there only
    the grader's and the instructor's code runs, in a fresh kernel, so the student cannot be the cause."""
    for cell in nb.cells[:preamble_end(nb) + 1]:
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id") or "the seed cell"
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if error is not None:
            return (f"the instructor's set-up cell {gid} failed before any student code ran: "
                    f"{error.get('ename')}: {str(error.get('evalue'))[:300]}")
        if cell.get("execution_count") is None:
            why = "the kernel did not start" if status.startswith("error") else f"status {status}"
            return f"the kernel stopped before any student code ran, in {gid} ({why}: {status})"
    return None


def run_job(slot: Slot, nb, run: JobContext) -> tuple[dict, list[str], Path]:
    """Prepare and run ``nb`` in ``slot``: what every notebook goes through, the preflight's too.

    Returns what :func:`execute_job` returns and the job folder. Raises :class:`MachineFailure` when the grading
    machine failed before any student code ran."""
    job = prepare_job(slot, nb, run)
    prepared = time.perf_counter()
    done, notes = execute_job(slot, job, run)
    done["prepared"] = prepared
    machine = preamble_failure(done["notebook"], done["status"])
    if machine is not None:
        raise MachineFailure(with_log(machine, job / "executed.kernel.log", slot.log))
    return done, notes, job


def _run_in_slot(sub: Submission, nb, notes: list[str], slot: Slot, run: JobContext, start: float) -> StudentGrade:
    cfg, points = run.cfg, run.points
    done, limit_notes, job = run_job(slot, nb, run)
    timings = {"prepare": round(done["prepared"] - start, 3)}
    ref = run.ref.result()
    begin = time.perf_counter()
    records = load_records(job / "export")  # read once: scored, then measured for the class report
    checks = score_submission(job / "export", ref, cfg, points, records)
    timings.update(kernel=done["seconds"], score=round(time.perf_counter() - begin, 3), cells=done["cells"])
    begin = time.perf_counter()
    try:
        figures = submission_figures(records, ref)
    except Exception:  # noqa: BLE001 - the report's figures never cost a grade
        figures = {}
    timings["figures"] = round(time.perf_counter() - begin, 3)
    executed = run.executed_dir / f"{sub.student_id}.ipynb"
    shutil.copy(done["executed"], executed)
    return StudentGrade(sub.student_id, done["status"], checks, notes + limit_notes, executed=executed,
                        timings=timings, figures=figures)


def prepare_job(slot: Slot, nb, run: JobContext) -> Path:
    """The slot's fresh job folder with ``nb`` as ``pruning.ipynb`` and private copies of the grading data,
    the model and the export code (a kernel can only spoil its own); :class:`MachineFailure` when that fails
    (a full disk, a kernel server that cannot start)."""
    try:
        job = slot.fresh_job()
        nbformat.write(nb, job / "pruning.ipynb")
        shutil.copy(run.data_file, job / "data.npz")
        shutil.copy(run.cfg.model, job / "model.pt")
        shutil.copy(EXPORT_CODE, job / "grader_export.py")
    except (OSError, RuntimeError, ValueError) as exc:
        raise MachineFailure(f"the job could not be prepared: {type(exc).__name__}: {exc}") from None
    return job


def log_tail(path: Path, lines: int = 1) -> list[str]:
    """The last ``lines`` non-empty lines of a log (none when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.rstrip()[:300] for line in text.splitlines() if line.strip()][-lines:]


def with_log(reason: str, *logs: Path) -> str:
    """``reason`` and the last line of the first of ``logs`` that has one (the kernel's, then its server's)."""
    for log in logs:
        tail = log_tail(log)
        if tail:
            return f"{reason}; last line of {log.name}: {tail[-1].strip()}"
    return reason


def execute_job(slot: Slot, job: Path, run: JobContext) -> tuple[dict, list[str]]:
    """Run the job's notebook in the slot; what :func:`~autograder.runner.execute.run_notebook` returns (with
    ``"executed"``: where the executed notebook was written, in the slot's private folder) and notes on limits
    that were hit. Once the kernel has ended, the slot is settled (:meth:`~autograder.runner.slots.Slot.settle`:
    nothing of the notebook's runs on, its folder is the grader's again) before anything of the job is read.
    Raises :class:`MachineFailure` when the slot folder itself vanished (not the notebook's doing: it cannot
    remove the folder its sandbox is built on)."""
    cfg = run.cfg
    before = slot.cgroup.events() if slot.cgroup else {}
    sandboxed = slot.sandbox is not None
    env = job_environment(inside_path(job, slot.folder) if sandboxed else job, cfg.threads_per_job, slot.sandbox)
    km = None
    if slot.server is None and slot.sandbox is not None:
        km = SandboxedKernelManager.for_job(job, slot.sandbox, slot.folder, slot.cgroup, slot.rlimits, slot.preload)
    elif slot.server is not None:
        km = ForkedKernelManager.for_server(slot.server, job / "executed.kernel.log", job=job, rlimits=slot.rlimits)
    executed = slot.private / "executed.ipynb"
    done = run_notebook(job / "pruning.ipynb", executed, env, cfg.cell_timeout, cfg.timeout, km=km,
                        after_kernel=slot.settle, stop_when=memory_stop(slot.rlimits, cfg))
    if not slot.folder.is_dir():
        raise MachineFailure(f"the job slot's folder {slot.folder} was deleted while the notebook ran, by another "
                             f"program (a cleaner of {slot.folder.parent.parent}?): grade with TMPDIR set to a "
                             "private folder")
    done["executed"] = executed
    after = slot.cgroup.events() if slot.cgroup else {}
    done["status"], notes = limit_status(done, before, after, slot, cfg)
    if not job.is_dir():
        notes.append("the notebook deleted its own folder, and with it the results the checks read")
    return done, notes
