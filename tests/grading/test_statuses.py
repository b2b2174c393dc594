"""The statuses a row can have: the TA page's table is the code's catalogue, and every status the code writes is
in it (a new status without its row on the page fails here)."""

from __future__ import annotations

import ast
import re

from autograder.grading.intake import NO_NOTEBOOK
from autograder.grading.results import NO_SUBMISSION, NOT_GRADED
from autograder.grading.statuses import STATUSES, markdown_table
from tests.conftest import REPO


def _skeleton(node) -> str | None:
    """A string literal's text, with ``…`` for each formatted value of an f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    return None


def statuses_in_code() -> set[str]:
    """Every ``error: ...`` status the grading code and the notebook runner can write, as skeletons."""
    found = {f"error: {NO_NOTEBOOK}…", f"{NOT_GRADED}: …", NO_SUBMISSION, "ok", "timeout"}
    for path in [*(REPO / "autograder" / "grading").glob("*.py"), REPO / "autograder" / "runner" / "execute.py"]:
        tree = ast.parse(path.read_text())
        inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        inner |= {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call)  # a prefix tested, not written
                  and getattr(n.func, "attr", "") == "startswith" for a in n.args}
        for node in ast.walk(tree):
            text = None if id(node) in inner else _skeleton(node)
            if text and text.startswith("error: ") and text != "error: …":  # "error: {why}" wraps one found here
                found.add(text)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "SubmissionError" and node.args:
                found.add(f"error: {_skeleton(node.args[0])}")
    return found


def _pattern(reads: str) -> re.Pattern:
    return re.compile(re.escape(reads).replace("…", ".*"), re.S)


def test_every_status_the_code_writes_has_its_row():
    catalogue = [_pattern(s.reads) for s in STATUSES]
    missing = sorted(text for text in statuses_in_code() if not any(p.fullmatch(text) for p in catalogue))
    assert missing == [], f"statuses without a row in autograder/grading/statuses.py: {missing}"
    assert "error: memory limit (…) exceeded" in statuses_in_code(), "the scan finds what the code writes"


def test_the_ta_page_shows_the_catalogue():
    page = (REPO / "docs" / "tas.md").read_text()
    assert markdown_table() in page, "paste autograder.grading.statuses.markdown_table() into docs/tas.md"
