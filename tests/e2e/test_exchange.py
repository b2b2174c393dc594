"""A JupyterHub course: nbgrader's own exchange carries the assignment to students and their work back, and
``course/submitted/`` after ``nbgrader collect`` is what ``python -m autograder grade`` takes.

Real nbgrader commands with a local exchange folder: the instructor's ``release_assignment`` (from a copy of
this repository's ``assignment/`` course folder), two students' ``fetch_assignment`` and ``submit`` (each as
their own student id, in their own home), the instructor's ``collect``, then the grader; the exchange's inbound
folder graded as it is; then the grader's feedback pages back through ``release_feedback`` and ``fetch_feedback``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.samples import build_notebook, load_samples
from tests.conftest import REPO

from .test_grading_app import run_grade

pytestmark = pytest.mark.slow

NBGRADER = os.path.join(os.path.dirname(sys.executable), "nbgrader")


def _nbgrader(*args: str, cwd: Path, user: str, home: Path) -> str:
    env = dict(os.environ, USER=user, LOGNAME=user, HOME=str(home),
               PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    done = subprocess.run([NBGRADER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_release_fetch_submit_collect_then_grade(tmp_path, trained_model_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    course = tmp_path / "course"
    shutil.copytree(REPO / "assignment", course, ignore=shutil.ignore_patterns("gradebook.db", "submitted",
                                                                               "autograded", "feedback"))
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    _nbgrader("release_assignment", "pruning", "--force", cwd=course, user="instructor", home=tmp_path / "instructor")

    reference = next(s for s in load_samples() if s.name == "reference")
    for student in ("alice", "bob"):
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        (home / "nbgrader_config.py").write_text(f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n"
                                                 "c.CourseDirectory.course_id = 'pruning-course'\n")
        _nbgrader("fetch_assignment", "pruning", "--course", "pruning-course", cwd=home, user=student, home=home)
        fetched = home / "pruning" / "pruning.ipynb"
        assert fetched.is_file()
        if student == "alice":  # bob hands in the notebook as he fetched it
            nbformat.write(build_notebook(reference, nbformat.read(fetched, as_version=4)), fetched)
        # On a hub each student is their own user; here all run as one, so each names themself (--student).
        _nbgrader("submit", "pruning", "--course", "pruning-course", f"--student={student}", cwd=home,
                  user=student, home=home)

    _nbgrader("collect", "pruning", cwd=course, user="instructor", home=tmp_path / "instructor")
    submitted = course / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["alice", "bob"]
    assert (submitted / "alice" / "pruning" / "pruning.ipynb").is_file()

    _, rows = run_grade(submitted, tmp_path / "grading", trained_model_path, jobs=2)
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"]["status"] == "ok" and float(rows["alice"]["score"]) == float(rows["alice"]["max_score"]) == 31
    assert float(rows["bob"]["score"]) == 0
    assert (tmp_path / "grading" / "feedback" / "bob.html").is_file()

    # The exchange's inbound folder, graded as it is (without nbgrader collect), gives the same rows.
    proc, inbound_rows = run_grade(exchange, tmp_path / "grading-inbound", trained_model_path, jobs=2)
    assert "submissions: nbgrader exchange inbound, 2 students: 2 notebooks" in proc.stdout
    keep = ["score", "status"]
    assert {k: [r[c] for c in keep] for k, r in inbound_rows.items()} == \
        {k: [r[c] for c in keep] for k, r in rows.items()}

    # The grader's feedback pages back through nbgrader: export into the course, release_feedback, fetch_feedback.
    export = subprocess.run([sys.executable, "-m", "autograder", "export", str(tmp_path / "grading"), "--to",
                             "nbgrader", "--course", str(course)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert export.returncode == 0, export.stdout + export.stderr
    assert f"cd {course} && nbgrader release_feedback pruning" in export.stdout
    _nbgrader("release_feedback", "pruning", cwd=course, user="instructor", home=tmp_path / "instructor")
    for student in ("alice", "bob"):
        home = tmp_path / "home" / student
        _nbgrader("fetch_feedback", "pruning", "--course", "pruning-course", f"--student={student}", cwd=home,
                  user=student, home=home)
        fetched = list((home / "pruning" / "feedback").glob("*/pruning.html"))
        assert len(fetched) == 1, student
        assert fetched[0].read_text() == (tmp_path / "grading" / "feedback" / f"{student}.html").read_text()
