"""The documentation site builds with no warning (``make docs``), and a newcomer's questions each have a page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                           str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_the_site_builds_without_a_warning_and_has_every_page(site):
    for page in ("index", "students", "instructors", "tas", "cluster", "gpu", "threat-model", "design", "api",
                 "development"):
        assert (site / f"{page}.html").is_file(), page
    assert (site / "_static" / "sweeps.png").stat().st_size > 10_000


def test_the_api_reference_is_made_from_the_docstrings(site):
    api = (site / "api.html").read_text()
    for name in ("get_CINIC10_data", "evaluation_data", "test_model", "global_sparsity", "fine_tune", "count_macs",
                 "load_model"):
        assert 'id="helpers.' in api and re.search(rf'id="helpers\.\w+\.{name}"', api), name
    assert "1,000 images of each class" in api  # evaluation_data's docstring text, rendered


@pytest.mark.parametrize("task, page, words", [
    ("release", "instructors", "make release MODEL=pruning-model.pt"),
    ("grade", "tas", "python -m autograder grade submissions/"),
    ("resume", "tas", "run the same\ncommand again"),
    ("regrade one student", "tas", "--regrade alice,bob"),
    ("manual grading", "tas", "Grade the written answers in formgrader"),
    ("export to an LMS", "tas", "Back to the LMS: export"),
    ("grade an LMS's download", "tas", "Download Submissions"),
    ("set up as a TA", "tas", "Set up (once)"),
    ("what a status means", "tas", "Statuses, and what to do"),
    ("the class report and similar pairs", "tas", "The class report and the pairs worth comparing"),
    ("grade on SLURM", "cluster", "--cluster slurm --workers 8"),
])
def test_each_task_a_newcomer_looks_for_is_linked_from_the_readme(site, task, page, words):
    readme = (ROOT / "README.md").read_text()
    assert f"docs/{page}.md" in readme, f"the README does not link the page for {task}"
    assert words in (DOCS / f"{page}.md").read_text() and (site / f"{page}.html").is_file(), task
