"""nbgrader's gradebook for a grading run: so instructors can use formgrader and ``nbgrader export``.

The course folder ``<out>/course`` gets the source notebook and a gradebook made by the real
``nbgrader generate_assignment``. After the notebooks have run, one ``nbgrader autograde``
call records them all; it is configured not to clear outputs or execute again (the notebooks
already ran under the grader's limits). Then the automatic scores of the test cells are set
to the scores computed by :mod:`autograder.scoring`, in place of nbgrader's own (which come
from the student's kernel and could be forged by student code).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .config import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK

__all__ = ["prepare_course", "record_submissions", "set_scores", "read_points"]

_CONFIG = '''"""Written by the autograder for one grading run."""
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, DeduplicateIds, LimitOutput,
                                    OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "pruning-course"
c.CourseDirectory.db_url = "sqlite:///{db}"
# The notebooks already ran under the grader's time limits: keep their outputs, do not execute.
c.Autograde.sanitize_preprocessors = [DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
'''


def _nbgrader(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(bin_dir / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True, text=True)


def read_points(source=None) -> dict[str, float]:
    """Points of every graded cell of the source notebook, by grade_id."""
    import nbformat
    nb = nbformat.read(source or SOURCE_NOTEBOOK, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def prepare_course(course: Path) -> Path:
    """Create ``course`` with the source notebook and its gradebook; return the gradebook path."""
    course.mkdir(parents=True, exist_ok=True)
    src = course / "source" / ASSIGNMENT
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE_NOTEBOOK, src / f"{NOTEBOOK}.ipynb")
    db = (course / "gradebook.db").resolve()
    (course / "nbgrader_config.py").write_text(_CONFIG.format(db=db))
    done = _nbgrader(["generate_assignment", ASSIGNMENT, "--force"], course)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.stderr[-2000:]}")
    return db


def record_submissions(course: Path, executed: dict[str, Path]) -> dict[str, str]:
    """Copy executed notebooks into ``submitted/`` and record them with one ``nbgrader autograde``.

    Returns ``{student_id: problem}`` for those nbgrader could not record.
    """
    for sid, path in executed.items():
        dest = course / "submitted" / sid / ASSIGNMENT
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"{NOTEBOOK}.ipynb")
    if not executed:
        return {}
    done = _nbgrader(["autograde", ASSIGNMENT, "--force"], course)
    problems = {}
    for sid in executed:
        if not (course / "autograded" / sid / ASSIGNMENT / f"{NOTEBOOK}.ipynb").is_file():
            problems[sid] = "nbgrader could not record the notebook in the gradebook"
    if done.returncode != 0 and not problems:
        problems = {sid: "nbgrader autograde reported an error" for sid in executed}
    return problems


def set_scores(db: Path, scores: dict[str, dict[str, float]]) -> None:
    """Set the automatic score of each graded test cell in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry
    with Gradebook(f"sqlite:///{db}") as gb:
        for sid, cells in scores.items():
            for gid, points in cells.items():
                try:
                    grade = gb.find_grade(gid, NOTEBOOK, ASSIGNMENT, sid)
                except MissingEntry:
                    continue
                grade.auto_score = points
        gb.db.commit()
