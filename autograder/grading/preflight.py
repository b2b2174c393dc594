"""The check that a grading machine can run a notebook at all, the way it runs every student's.

Before the first submission, every job slot of the run (each local slot; on a cluster, each slot of each
worker, when the worker prepares) runs the *preflight notebook* through the very path a student's notebook
takes (:func:`~autograder.grading.notebook_job.run_job`): in its sandbox, under its limits, forked from its
warm kernel server, in a job folder with the grading data, the model and the export code; the slot is settled
and its folder taken back afterwards, and the executed notebook written where the grader keeps it. The
notebook is the seed cell and the instructor's set-up cells
(:data:`~autograder.grading.submission.PREAMBLE_CELLS`: the install check, the imports, loading the data and
the model), followed by one cell that checks ``helpers`` and ``torch`` are the grader's, reports the limits
the kernel runs under and saves an export as a hidden-test region does. The grader then reads that export
back and compares the limits with the ones it set. If anything fails, :func:`preflight` raises
:class:`PreflightError`, whose message is one paragraph: what failed, the last lines of the kernel's log, and
what to do. The command then stops before any row is written.

Runs in the grader's process (or a cluster worker's).
"""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat

from ..runner.slots import Slot
from .errors import PreflightError
from .jobs import JobContext
from .notebook_job import MachineFailure, log_tail, restart_slot, run_job
from .scoring import load_export
from .submission import SEED_CELL, preamble_end

__all__ = ["preflight", "preflight_notebook", "PreflightError", "PREFLIGHT_MARK"]

#: What the preflight notebook's last cell prints when the kernel has everything a notebook needs.
PREFLIGHT_MARK = "preflight: ready"
#: What it prints before the kernel's limits (JSON: ``{"RLIMIT_AS": soft limit, ...}``, -1 for none).
_LIMITS_MARK = "preflight limits: "
#: The part the check cell exports (with nothing in it), as the hidden tests' regions export each part.
_EXPORTED = "finetune"
_CHECK = ("import json as _json, os as _os, resource as _resource, runpy as _runpy\n"
          "import helpers, torch\n"
          "print(\"" + _LIMITS_MARK + "\" + _json.dumps({_n: _resource.getrlimit(getattr(_resource, _n))[0]\n"
          "      for _n in ('RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_CPU')}))\n"
          "if _os.environ.get('PRUNING_EXPORT_CODE'):\n"
          "    _runpy.run_path(_os.environ['PRUNING_EXPORT_CODE'])['export']('" + _EXPORTED + "', {})\n"
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


def preflight(slots: list[Slot], jobs: JobContext, where: str = "") -> float:
    """Run the preflight notebook in every slot of ``slots`` at once; the seconds it took.

    ``where``: who runs the slots, for the message (a worker's address). Raises :class:`PreflightError`.
    """
    start = time.perf_counter()
    nb = preflight_notebook(jobs.source)
    with ThreadPoolExecutor(max_workers=max(1, len(slots)), thread_name_prefix="pgrade-preflight") as pool:
        problems = [p for p in pool.map(lambda slot: _one(slot, nb, jobs), slots) if p]
    if problems:
        raise PreflightError(_paragraph(problems[0], where, jobs))
    return round(time.perf_counter() - start, 3)


def _one(slot: Slot, nb, jobs: JobContext) -> tuple[str, list[str]] | None:
    """``None`` when the slot ran the preflight notebook (a second time on a fresh kernel server if the first
    failed: a passing hiccup does not stop a class); else what failed and the kernel's last log lines."""
    if _attempt(slot, nb, jobs) is None:
        return None
    return _attempt(slot, nb, jobs, fresh_server=True)


def _attempt(slot: Slot, nb, jobs: JobContext, fresh_server: bool = False) -> tuple[str, list[str]] | None:
    log = slot.job / "executed.kernel.log"
    try:
        if fresh_server:
            restart_slot(slot)
        done, _, job = run_job(slot, nb, jobs)
        reason = _check_cell(done["notebook"].cells[-1], done["status"], slot)
        if reason is None:
            record, problem = load_export(job / "export" / f"{_EXPORTED}.pt")
            if record is None:
                reason = f"the grader could not read back what the kernel exported ({problem})"
        if reason is None:
            return None
        return reason, log_tail(log, 8) or log_tail(slot.log, 8)
    except MachineFailure as exc:
        return str(exc), log_tail(slot.log, 8)
    except OSError as exc:  # the grader's own files of the job
        return f"the grader could not read or write the job's files: {exc}", log_tail(log, 8) or log_tail(slot.log, 8)
    finally:
        slot.clean()


def _check_cell(check, status: str, slot: Slot) -> str | None:
    """Why the executed check cell shows a machine that cannot grade (``None``: it can)."""
    printed = "".join(o.get("text", "") for o in check.get("outputs", []))
    error = next((o for o in check.get("outputs", []) if o.get("output_type") == "error"), None)
    if error is not None:
        return f"the check that helpers and torch import failed: {error.get('ename')}: {error.get('evalue')}"
    if PREFLIGHT_MARK not in printed:
        return f"the check cell did not finish (status {status})"
    line = next(ln for ln in printed.splitlines() if ln.startswith(_LIMITS_MARK))
    return _limits_problem(json.loads(line[len(_LIMITS_MARK):]), slot)


def _limits_problem(seen: dict[str, int], slot: Slot) -> str | None:
    """Why the rlimits the kernel reported (``-1``: none) are not the ones the slot's kernels set on themselves."""
    want = slot.rlimits
    if want is None:
        return None
    expected = {"RLIMIT_NPROC": want.processes, "RLIMIT_CPU": want.cpu_seconds}
    wrong = [f"{name} is {seen[name]}, not {n}" for name, n in expected.items() if n and seen[name] != n]
    if want.memory and seen["RLIMIT_AS"] < 0:
        wrong.append("RLIMIT_AS is not set")
    if wrong:
        return f"the kernel does not run under the limits the grader set ({'; '.join(wrong)})"
    return None


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
