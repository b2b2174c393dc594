"""Every status a row of ``grades.csv`` can have, what it means and what a TA does about it.

:data:`STATUSES` is the catalogue; ``docs/tas.md`` shows it as a table (:func:`markdown_table`), and the tests
check both that the page's table is this one and that every status the code writes is in it. The statuses of
rows limited by the grader (memory, processes, CPU time) are made by the functions below.

Runs anywhere (plain values).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Status", "STATUSES", "markdown_table", "memory_exceeded", "process_limit", "cpu_exceeded",
           "cannot_read"]


@dataclass(frozen=True)
class Status:
    """One kind of status: how it reads (``…`` where it varies), what it means, what to do."""

    reads: str
    means: str
    do: str


def memory_exceeded(limit: str) -> str:
    return f"error: memory limit ({limit}) exceeded"


def process_limit(pids: int | str) -> str:
    return f"error: process limit ({pids}) reached"


def cpu_exceeded(seconds: int | str) -> str:
    return f"error: CPU time limit ({seconds} s of one process) exceeded"


def cannot_read(reason: object) -> str:
    return f"error: cannot read the notebook: {reason}"


STATUSES = (
    Status("ok", "the notebook ran to its end; its points are in the row", "nothing"),
    Status("timeout", "the notebook ran past `--timeout`, or a cell past `--cell-timeout`; the parts it finished "
           "keep their points", "look at `executed/<id>.ipynb`: a slow solution or a hang. To give one student more "
           "time, grade them alone into another `--out` with a longer `--timeout` (a new `--timeout` here regrades "
           "the class)"),
    Status("error: the kernel died (did the notebook exit?)", "the student's code ended its kernel (`exit()`, "
           "`os._exit`, a crash)", "the feedback page shows the last cell that ran; nothing to do unless the crash "
           "is not their code's"),
    Status(memory_exceeded("…"), "the notebook used more memory than `--memory-limit`; it stopped at that cell and "
           "keeps the points of the parts it finished (the notes name the cell under rlimits)", "usually a copy "
           "in a loop; if the notebook is reasonable, raise the limit (this regrades the class)"),
    Status(process_limit("…"), "more processes or threads than `--pids-limit`, and the kernel died "
           "of it", "a fork loop, or a library starting many threads"),
    Status(cpu_exceeded("…"), "one process of the notebook used more CPU time than its share of "
           "cores gives it in `--timeout`", "a notebook that raised its own thread count "
           "(`torch.set_num_threads`) and took its neighbours' cores"),
    Status("error: invalid notebook JSON: …", "the file is not a notebook (cut off, another format)",
           "ask the student to download the notebook again (File > Download .ipynb) and resubmit"),
    Status("error: notebook is … MB, over the … MB limit", "the file is too large to be this assignment's notebook",
           "ask the student to clear the outputs and resubmit"),
    Status("error: the notebook lost its nbgrader cell metadata and no cell defines the answer of …", "the cells "
           "were pasted into a new notebook and an answer is missing with them", "ask the student to copy their "
           "code into the released notebook and resubmit (formgrader has no entry for this student)"),
    Status(cannot_read("…"), "the grader's user cannot read the file (its permissions, a broken link)",
           "fix the file's permissions and run the same command again"),
    Status("error: no notebook in the submission (expected pruning/pruning.ipynb)…", "the student handed in no "
           "notebook: a text entry, a zip, another file (named after the colon)", "ask the student to hand in the "
           "notebook"),
    Status("error: …: …", "running the notebook failed in nbclient in another way (the exception is named)",
           "look at `executed/<id>.ipynb` and the kernel's log `kernels-*.log`; grade again once understood"),
    Status("not graded: …", "the grading machine failed (a kernel that could not start, a full disk, a lost "
           "cluster worker), never the student: empty points, no feedback, no journal line; exit status 3",
           "fix the cause and run the same command again: only these rows are graded, all others are reused"),
    Status("no submission", "a student of `--roster` who handed in nothing: empty points, no feedback; the export "
           "leaves their grade blank and lists them", "nothing, or chase the student"),
)


def markdown_table() -> str:
    """The catalogue as the table of ``docs/tas.md``."""
    lines = ["| status | means | do |", "|---|---|---|"]
    lines += [f"| `{s.reads}` | {s.means} | {s.do} |" for s in STATUSES]
    return "\n".join(lines)
