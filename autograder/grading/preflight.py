"""The check that a grading machine can run a notebook at all.

Before the first submission, every job slot of the run (each local slot; on a cluster, each slot of each
worker, when the worker prepares) runs the *preflight notebook* exactly as it will run students' notebooks:
in its sandbox, under its limits, forked from its warm kernel server, in a job folder with the grading
data, the model and the export code. The notebook is the seed cell and the instructor's set-up cells
(:data:`~autograder.grading.submission.PREAMBLE_CELLS`: the install check, the imports, loading the data and
the model), followed by one cell that checks ``helpers`` and ``torch`` are the grader's. If anything fails,
:func:`preflight` raises :class:`PreflightError`, whose message is one paragraph: what failed, the last
lines of the kernel's log, and what to do. The command then stops before any row is written.

Runs in the grader's process (or a cluster worker's).
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat

from ..runner.slots import Slot
from .errors import PreflightError
from .jobs import JobContext
from .notebook_job import MachineFailure, execute_job, log_tail, preamble_failure, prepare_job, restart_slot
from .submission import SEED_CELL, preamble_end

__all__ = ["preflight", "preflight_notebook", "PreflightError", "PREFLIGHT_MARK"]

#: What the preflight notebook's last cell prints when the kernel has everything a notebook needs.
PREFLIGHT_MARK = "preflight: ready"
_CHECK = ("import helpers, torch\n"
          "print(f\"" + PREFLIGHT_MARK + " (torch {torch.__version__}, helpers from {helpers.__file__}, "
          "{type(model).__name__} loaded)\")")


def preflight_notebook(source) -> nbformat.NotebookNode:
    """The seed cell, the set-up cells of the source notebook ``source`` (up to the last of
    :data:`~autograder.grading.submission.PREAMBLE_CELLS`) and the check cell."""
    nb = copy.deepcopy(source)
    end = preamble_end(nb)
    cells = [c for c in nb.cells[:end + 1] if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("locked")]
    for cell in cells:
        cell.outputs, cell.execution_count = [], None
    nb.cells = [nbformat.v4.new_code_cell(SEED_CELL), *cells, nbformat.v4.new_code_cell(_CHECK)]
    return nb


def preflight(slots: list[Slot], jobs: JobContext, rlimit_as: int | None = None, where: str = "") -> float:
    """Run the preflight notebook in every slot of ``slots`` at once (``rlimit_as``: the kernels' address-space
    cap in bytes, or ``None``); the seconds it took.

    ``where``: who runs the slots, for the message (a worker's address). Raises :class:`PreflightError`.
    """
    start = time.perf_counter()
    nb = preflight_notebook(jobs.source)
    with ThreadPoolExecutor(max_workers=max(1, len(slots)), thread_name_prefix="pgrade-preflight") as pool:
        problems = [p for p in pool.map(lambda slot: _one(slot, nb, jobs, rlimit_as), slots) if p]
    if problems:
        raise PreflightError(_paragraph(problems[0], where, jobs))
    return round(time.perf_counter() - start, 3)


def _one(slot: Slot, nb, jobs: JobContext, rlimit_as: int | None) -> tuple[str, list[str]] | None:
    """``None`` when the slot ran the preflight notebook (a second time on a fresh kernel server if the first
    failed: a passing hiccup does not stop a class); else what failed and the kernel's last log lines."""
    if _attempt(slot, nb, jobs, rlimit_as) is None:
        return None
    return _attempt(slot, nb, jobs, rlimit_as, fresh_server=True)


def _attempt(slot: Slot, nb, jobs: JobContext, rlimit_as: int | None,
             fresh_server: bool = False) -> tuple[str, list[str]] | None:
    try:
        if fresh_server:
            restart_slot(slot)
        job = prepare_job(slot, nb, jobs)
        done, _ = execute_job(slot, job, jobs, rlimit_as)
        executed = done["notebook"]
        reason = preamble_failure(executed, done["status"])
        if reason is None:
            check = executed.cells[-1]
            printed = "".join(o.get("text", "") for o in check.get("outputs", []))
            error = next((o for o in check.get("outputs", []) if o.get("output_type") == "error"), None)
            if error is not None:
                reason = f"the check that helpers and torch import failed: {error.get('ename')}: {error.get('evalue')}"
            elif PREFLIGHT_MARK not in printed:
                reason = f"the check cell did not finish (status {done['status']})"
        if reason is None:
            return None
        return reason, log_tail(job / "executed.kernel.log", 8) or log_tail(slot.log, 8)
    except MachineFailure as exc:
        return str(exc), log_tail(slot.log, 8)
    finally:
        slot.clean()


def _advice(text: str, jobs: JobContext) -> str:
    """What to do about a failure whose reason and log lines are ``text``."""
    cfg = jobs.cfg
    if "execvp" in text or ("bwrap" in text and "No such file" in text):
        return ("the sandbox hides a file the kernel needs (named in the log above): the interpreter, its "
                "virtual environment and the helpers package must be outside --out, the submissions and the "
                "model's folder; to tell whether the sandbox is the cause, grade once with --no-sandbox")
    if "helper package is missing" in text or "No module named 'helpers'" in text:
        return ("the kernels cannot import the course's helpers package: run the grader with the Python of the "
                "course's environment (make venv installs it with the repository's helpers), not another one")
    if "No module named" in text:
        return ("the kernels' Python lacks a package the notebook imports (named above): install the course's "
                "environment (make venv, or environment.yml) and run the grader with its Python")
    if "memory limit" in text or "MemoryError" in text or "oom" in text.lower():
        return f"the set-up needs more memory than --memory-limit allows ({cfg.memory_limit} bytes): raise it"
    if "timeout" in text:
        return f"the set-up did not finish within --timeout {cfg.timeout:g} s: raise it, or check the machine's load"
    if "model" in text.lower() or "checkpoint" in text.lower():
        return ("check that --model is the checkpoint the notebook was written for (python -m autograder release "
                "makes one)")
    return ("read the kernel's log named above; grading once with --no-sandbox tells whether the sandbox is the "
            "cause")


def _paragraph(problem: tuple[str, list[str]], where: str, jobs: JobContext) -> str:
    reason, lines = problem
    log = "\n".join(f"    {line}" for line in lines) if lines else "    (the kernel's log is empty)"
    return (f"the grading machine{f' {where}' if where else ''} cannot run a notebook, so nothing was graded: "
            f"{reason}.\nLast lines of the kernel's log (all of it in {jobs.cfg.out}/kernels-*.log):\n{log}\n"
            f"What to do: {_advice(reason + ' ' + ' '.join(lines), jobs)}.")
