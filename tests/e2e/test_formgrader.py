"""The TA's workflow after ``python -m autograder grade``, in a real browser: JupyterLab with nbgrader's formgrader
in the course folder that grading made lists the submissions, a TA scores the written answers there, and
``nbgrader export`` then gives each student the grader's automatic points plus those manual ones."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.samples import load_samples, write_class

from .test_browser import ARTIFACTS, CHROMIUM, Lab, browser  # noqa: F401 - browser is a fixture
from .test_grading_app import run_grade

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]

WRITER, SILENT = "correct_manual_topk", "reference"  # written answers; none
ANSWERS = ("answer_unstructured", "answer_structured", "answer_removal")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, trained_model_path):
    root = tmp_path_factory.mktemp("ta")
    write_class(root / "submitted", [s for s in load_samples() if s.name in (WRITER, SILENT)])
    _, rows = run_grade(root / "submitted", root / "grading", trained_model_path, jobs=2)
    return rows, root / "grading" / "course"


@pytest.fixture(scope="module")
def formgrader(graded, tmp_path_factory):
    """JupyterLab started in the course folder, as a TA does (``cd grading/course && jupyter lab``)."""
    _, course = graded
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    lab = Lab(Path(sys.executable), course, env, tmp_path_factory.mktemp("formgrader"))
    yield lab
    lab.close()


def _manual_score(course: Path, student: str, grade_id: str):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return gb.find_grade(grade_id, "pruning", "pruning", student).manual_score


def _submission_id(course: Path, student: str) -> str:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return gb.find_submission_notebook("pruning", "pruning", student).id


def test_a_ta_grades_the_written_answers_in_formgrader_and_exports_them(graded, formgrader, browser):  # noqa: F811
    rows, course = graded
    shots = ARTIFACTS / "formgrader"
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        # Logging in (the token's page sets the session cookie that formgrader's own requests carry).
        page.goto(f"{formgrader.base}/lab?token={formgrader.token}")
        page.wait_for_selector(".jp-LabShell", state="attached")
        # Manual grading: the assignment's notebook lists every submission.
        page.goto(f"{formgrader.base}/formgrader/gradebook/pruning/pruning")
        page.wait_for_selector("tbody tr")
        page.wait_for_function("() => document.querySelectorAll('tbody tr').length >= 2")
        assert page.locator("tbody tr").count() == 2
        page.screenshot(path=str(shots / "submissions.png"), full_page=True)

        # One submission: its three answer cells have score boxes; a TA types scores, each saved on change.
        page.goto(f"{formgrader.base}/formgrader/submissions/{_submission_id(course, WRITER)}/")
        page.wait_for_load_state("networkidle")  # the page's scripts have fetched the grades and bound the boxes
        for grade_id, score in zip(ANSWERS, ("2", "1.5", "0")):
            box = page.locator(f"input.score#{grade_id}")
            box.wait_for()
            box.fill(score)
            box.press("Tab")
            # Each box saves on its own request; the next is typed once this one reached the gradebook.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _manual_score(course, WRITER, grade_id) is None:
                time.sleep(0.5)
        page.screenshot(path=str(shots / "scored.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(shots / "failure.png"), full_page=True)
        print(f"screenshot: {shots / 'failure.png'}\n{page.inner_text('body')[:3000]}")
        raise
    finally:
        page.close()
    assert [_manual_score(course, WRITER, g) for g in ANSWERS] == [2.0, 1.5, 0.0]
    # The automatic points the grader recorded are still there, untouched by the manual grading.
    assert _manual_score(course, WRITER, "test_unstructured_sparsity") is None

    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "export"], cwd=course, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(course / "grades.csv") as fh:
        exported = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert set(exported) == {WRITER, SILENT}
    for student, manual in ((WRITER, 3.5), (SILENT, 0.0)):
        assert float(exported[student]["score"]) == pytest.approx(float(rows[student]["score"]) + manual), student
        assert float(exported[student]["max_score"]) == float(rows[student]["max_score"]) + 6
