"""What a run writes, ``grades.csv``, feedback HTML, the summary table.

Feedback names each check, its points and its messages, followed by the student's executed
notebook with every hidden-test region removed (nbgrader's own feedback would show them).

Runs in the grader's process.
"""

from __future__ import annotations

import csv
import html
import json
import threading
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from ..runner.execute import STOPPED_HERE
from .cells import DEPENDS, STUDENT_CELLS, TITLES
from .results import StudentGrade
from .submission import SEED_CELL, strip_hidden_tests

__all__ = ["write_csv", "write_feedback", "notebook_feedback_html", "write_timings", "summary_table",
           "warm_up_rendering"]

_local = threading.local()

def write_csv(path: Path, grades: list[StudentGrade], grade_ids: list[str], max_score: float,
              people: dict[str, dict] | None = None) -> Path:
    """One row per student: id, score, max_score, status, one column per graded cell, notes, and the student's
    name, email and whether the LMS marked the submission late (``people``: by student id).

    A row without points (:data:`NOT_GRADED`, :data:`NO_SUBMISSION`) has empty score and cells."""
    people = people or {}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "score", "max_score", "status", *grade_ids, "notes", "name", "email", "late"])
        for g in sorted(grades, key=lambda g: g.student_id):
            who = people.get(g.student_id, {})
            person = [who.get("name", ""), who.get("email", ""), "late" if who.get("late") else ""]
            if not g.has_points:  # no points at all: empty cells, never zeros
                writer.writerow([g.student_id, "", f"{max_score:g}", g.status, *[""] * len(grade_ids),
                                 "; ".join(g.notes), *person])
                continue
            per_cell = {c.grade_id: c.points for c in g.checks}
            writer.writerow([g.student_id, f"{g.score:g}", f"{max_score:g}", g.status,
                             *[f"{per_cell.get(gid, 0.0):g}" for gid in grade_ids], "; ".join(g.notes), *person])
    return path


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: .3em .6em; }
.pass { color: #176117; } .fail { color: #a31515; } pre { white-space: pre-wrap; }
.cause { border: 2px solid #a31515; padding: 0 1em; margin: 1em 0; } .gid { color: #666; font-size: 85%; }
"""


def notebook_feedback_html(executed: Path | None) -> str | None:
    """The executed notebook at ``executed`` as an HTML page for its feedback, without the seed cell and
    every hidden-test region (nbconvert's classic template); ``None`` when there is none or it cannot be
    rendered (the feedback is then written without it). About 0.3 CPU s for this assignment's notebook."""
    if executed is None or not executed.is_file():
        return None
    try:
        return _notebook_html(executed)
    except Exception:  # noqa: BLE001 - feedback without the notebook is still feedback
        return None


def _notebook_html(executed: Path) -> str:
    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if c.source != SEED_CELL]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        visible = strip_hidden_tests(cell.source)
        if visible != cell.source:
            # IPython tracebacks quote the lines around the failure, hidden ones included.
            for out in cell.outputs:
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        cell.source = visible
    return _render(nb)


def _render(nb) -> str:
    from nbconvert import HTMLExporter  # noqa: PLC0415 - about 1 s: only the processes that render pages pay it
    if not hasattr(_local, "exporter"):  # one per thread: building one loads its templates
        _local.exporter = HTMLExporter(template_name="classic")
    body, _ = _local.exporter.from_notebook_node(nb)
    return body


def warm_up_rendering() -> None:
    """Render a small notebook (markdown, code, printed text and an error) once in this thread, so
    that what nbconvert, bleach and pygments import at their first page (about 0.5 s) is imported
    here rather than in the grading threads (:mod:`autograder.grading.warm_imports`)."""
    outputs = [new_output("stream", name="stdout", text="printed\n"),
               new_output("error", ename="ValueError", evalue="example", traceback=["ValueError: example"])]
    nb = new_notebook(cells=[new_markdown_cell("# Example\n\n- [x] a *list*: <https://example.org>"),
                             new_code_cell("x = 1\nprint(x)", outputs=outputs)])
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    _render(nb)


def _last_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def causes(executed: Path | None, status: str) -> dict[str, str]:
    """``{grade_id: what went wrong}`` for the cells students write in (:data:`~.parts.STUDENT_CELLS`) that raised
    an error in the executed notebook at ``executed``, or where a run that did not end ``ok`` stopped (``status``
    says how: a limit, the time); in the notebook's order. A check that failed may well have failed because of
    them."""
    if executed is None or not executed.is_file():
        return {}
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - the page is written without causes
        return {}
    found, last_run, stopped = {}, None, None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.get("execution_count") is not None:
            last_run = gid
        if cell.metadata.get(STOPPED_HERE):  # set by the runner even when the kernel died before saying it began
            stopped = gid
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if gid in STUDENT_CELLS and error is not None:
            if error.get("ename") == "NotImplementedError" and not str(error.get("evalue", "")).strip():
                found[gid] = "still raises NotImplementedError, the release's placeholder: your code goes there"
            else:
                found[gid] = f"raised {error.get('ename')}: {_last_line(error.get('evalue', ''))}".rstrip(": ")
    last_run = stopped or last_run
    if status != "ok" and last_run in STUDENT_CELLS and last_run not in found:
        found[last_run] = f"was running when the notebook stopped ({status})"
    return found


def _causes_html(found: dict[str, str]) -> str:
    items = "".join(f"<li>Your cell <code>{html.escape(gid)}</code> ({html.escape(STUDENT_CELLS[gid])}) "
                    f"{html.escape(what)}.</li>" for gid, what in found.items())
    return ("<div class='cause'><h2>Start here: what went wrong in your notebook</h2><ul>" + items + "</ul>"
            "<p>The checks below that depend on these cells failed because of them; fix these first. Your notebook, "
            "as graded, is at the end of this page.</p></div>")


def write_feedback(folder: Path, grade: StudentGrade, max_score: float) -> Path:
    """Write ``folder/<student_id>.html``; returns its path. The page starts from the cause: a cell of the student's
    that raised an error (or where the run stopped) is named first, with its error, and each check that depends on
    it says so. The executed notebook in it is ``grade.notebook_html`` when a cluster worker rendered it, else
    rendered here from ``grade.executed``."""
    folder.mkdir(parents=True, exist_ok=True)
    found = causes(grade.executed, grade.status)
    rows = []
    for c in grade.checks:
        ok = not c.messages
        text = "passed" if ok else "<br>".join(html.escape(m) for m in c.messages)
        because = [gid for gid in DEPENDS.get(c.grade_id, ()) if gid in found]
        if not ok and because:
            cell = because[0]
            text = (f"<b>Failed because your cell <code>{html.escape(cell)}</code> "
                    f"({html.escape(STUDENT_CELLS[cell])}) {html.escape(found[cell])}.</b><br>" + text)
        title = html.escape(TITLES.get(c.grade_id, c.grade_id))
        rows.append(f"<tr><td>{title}<br><code class='gid'>{html.escape(c.grade_id)}</code></td>"
                    f"<td>{c.points:g} / {c.max_points:g}</td><td class='{'pass' if ok else 'fail'}'>{text}</td></tr>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in grade.notes)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback {html.escape(grade.student_id)}"
             f"</title><style>{_STYLE}</style></head><body>",
             f"<h1>Pruning assignment: feedback for {html.escape(grade.student_id)}</h1>",
             f"<p>Automatic score: <b>{grade.score:g} / {max_score:g}</b>. Status: {html.escape(grade.status)}. "
             "The written answers are graded by hand.</p>",
             _causes_html(found) if found else "",
             "<table><tr><th>check</th><th>points</th><th>result</th></tr>", *rows, "</table>"]
    if notes:
        parts.append(f"<p>Changes the grader made before running your notebook:</p><ul>{notes}</ul>")
    parts.append("</body></html>")
    page = "".join(parts)
    nb_html = grade.notebook_html if grade.notebook_html is not None else notebook_feedback_html(grade.executed)
    if nb_html is not None:
        page = page.replace("</body></html>", "<h2>Your notebook as graded</h2>"
                            f"<iframe srcdoc=\"{html.escape(nb_html)}\" style='width:100%;height:80em;border:0'>"
                            "</iframe></body></html>")
    out = folder / f"{grade.student_id}.html"
    out.write_text(page, encoding="utf-8")
    return out


#: The widest a name gets in the printed summary (longer ones are cut, ending in ``...``).
NAME_WIDTH = 24


def write_timings(path: Path, grades: list[StudentGrade], run: dict[str, float]) -> Path:
    """Write where the time went (``run``: the set-up steps and the wall time; per student) as JSON."""
    path.write_text(json.dumps({"run": run, "students": {g.student_id: g.timings for g in grades}}, indent=1))
    return path


def summary_table(grades: list[StudentGrade], grade_ids: list[str], max_score: float,
                  people: dict[str, dict] | None = None) -> str:
    """A fixed-width text table of the run, one line per student, sorted by student id.

    ``people`` (by student id, as :func:`write_csv` takes it): when any of them has a name (an LMS download or a
    roster), a ``name`` column follows the id, cut to :data:`NAME_WIDTH` characters, so a TA reading an LMS's
    numeric ids sees who each row is.
    """
    people = people or {}
    short = [g.replace("test_", "").replace("unstructured_", "U ").replace("structured_", "S ") for g in grade_ids]
    width = max([10] + [len(g.student_id) for g in grades])
    names = {g.student_id: " ".join(str(people.get(g.student_id, {}).get("name") or "").split()) for g in grades}
    name_width = min(NAME_WIDTH, max(4, *map(len, names.values()))) if any(names.values()) else 0

    def who(student_id: str) -> str:
        if not name_width:
            return f"{student_id:<{width}}"
        name = names[student_id]
        name = name if len(name) <= name_width else name[:name_width - 3] + "..."
        return f"{student_id:<{width}} {name:<{name_width}}"

    label = f"{'student':<{width}}" + (f" {'name':<{name_width}}" if name_width else "")
    head = f"{label} {'score':>7}  " + " ".join(f"{s[:11]:>11}" for s in short) + "  status"
    lines = [head, "-" * len(head)]
    for g in sorted(grades, key=lambda g: g.student_id):
        if not g.has_points:
            dashes = " ".join(f"{'-':>11}" for _ in grade_ids)
            lines.append(f"{who(g.student_id)} {'-':>3}/{max_score:<3g}  {dashes}  {g.status}")
            continue
        per = {c.grade_id: c.points for c in g.checks}
        lines.append(f"{who(g.student_id)} {g.score:>3g}/{max_score:<3g}  "
                     + " ".join(f"{per.get(gid, 0.0):>11g}" for gid in grade_ids) + f"  {g.status}")
    return "\n".join(lines)
