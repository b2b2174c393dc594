"""The nbgrader gradebook of a run (:mod:`autograder.grading.gradebook`) and the compiled cell-metadata check
(:mod:`autograder.grading.metadata`): nbgrader's own verdicts and records.
"""

from __future__ import annotations

import copy
import os
import sqlite3
import subprocess
import sys

import nbformat

from autograder.config import SOURCE_NOTEBOOK
from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.grading.submission import (
    prepare_notebook,
)
from autograder.samples import build_notebook, load_samples
from tests.conftest import REPO


def test_points_come_from_the_source_notebook():
    points = read_points()
    assert set(CHECKS) <= set(points)
    assert sum(points[g] for g in CHECKS) == 31  # parts 1 and 2: 20; part 3: 4 + 3 + 4
    assert points["answer_unstructured"] == 2


def test_gradebook_is_the_one_nbgrader_makes(tmp_path, monkeypatch):
    """``create_gradebook`` makes what nbgrader's own ``Gradebook`` makes for a new database: the
    same tables and columns, and the migration that nbgrader reads with the ``alembic`` command."""
    from nbgrader.api import Gradebook, get_alembic_version

    from autograder.grading.gradebook import create_gradebook

    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    assert create_gradebook(ours) is True
    assert create_gradebook(ours) is False  # an existing gradebook is kept as it is
    monkeypatch.setenv("PATH", f"{sys.prefix}/bin{os.pathsep}{os.environ['PATH']}")  # nbgrader runs alembic
    with Gradebook(f"sqlite:///{theirs}"):
        pass

    def schema(db):
        with sqlite3.connect(db) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
            columns = {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables}
            version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return columns, version

    assert schema(ours) == schema(theirs)
    assert schema(ours)[1] == [(get_alembic_version(),)]
    with Gradebook(f"sqlite:///{ours}", course_id="pruning-course") as gb:  # nbgrader uses it as its own
        gb.add_assignment("pruning")
        gb.add_student("s1")
        assert [a.name for a in gb.assignments] == ["pruning"]


def _verdict(check, item):
    """What a metadata check (``check(copy)``) does with a copy of ``item``: passes, or its exception's type and
    message."""
    try:
        check(copy.deepcopy(item))
    except Exception as exc:  # noqa: BLE001 - the verdict is what is compared
        return type(exc).__name__, str(exc)
    return "passes"


def test_the_compiled_metadata_check_gives_nbgraders_verdicts(tmp_path):
    """``CheckCellMetadataOnce`` (the schema compiled once) accepts and refuses what nbgrader's
    ``CheckCellMetadata`` does, with the same errors, and the course's ``autograde`` uses it."""
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.preprocessors import CheckCellMetadata

    from autograder.grading.gradebook import Course
    from autograder.grading.metadata import CheckCellMetadataOnce, CompiledMetadataValidator

    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    graded = next(i for i, c in enumerate(source.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    solution = next(i for i, c in enumerate(source.cells) if c.metadata.get("nbgrader", {}).get("solution")
                    and c.cell_type == "code")

    def spoiled(index, change):
        nb = copy.deepcopy(source)
        change(nb.cells[index].metadata["nbgrader"])
        return nb

    cases = {
        "the source notebook": source,
        "points as text": spoiled(graded, lambda m: m.update(points="four")),
        "no points": spoiled(graded, lambda m: m.pop("points")),
        "an empty grade id": spoiled(solution, lambda m: m.update(grade_id="")),
        "no grade id": spoiled(solution, lambda m: m.pop("grade_id")),
        "locked as a number": spoiled(solution, lambda m: m.update(locked=3)),
        "an old schema": spoiled(graded, lambda m: m.update(schema_version=2)),
        "a newer schema": spoiled(graded, lambda m: m.update(schema_version=9)),
        "a duplicate grade id": spoiled(solution, lambda m: m.update(grade_id=source.cells[graded].metadata[
            "nbgrader"]["grade_id"])),
    }
    verdicts = {}
    for name, nb in cases.items():
        theirs = _verdict(lambda x: CheckCellMetadata().preprocess(x, {}), nb)
        verdicts[name] = theirs
        assert _verdict(lambda x: CheckCellMetadataOnce().preprocess(x, {}), nb) == theirs, name
        for cell in nb.cells:  # cell by cell, the validators raise the same errors
            assert (_verdict(MetadataValidator().validate_cell, cell)
                    == _verdict(CompiledMetadataValidator().validate_cell, cell)), (name, cell.metadata.get("nbgrader"))
    assert verdicts["the source notebook"] == "passes"
    assert all(v != "passes" for k, v in verdicts.items() if k != "the source notebook"), verdicts
    course = Course(tmp_path / "course")
    for steps in ("sanitize_preprocessors", "autograde_preprocessors"):
        assert CheckCellMetadataOnce in course._api.config.Autograde[steps]
        assert CheckCellMetadata not in course._api.config.Autograde[steps]
    assert "CheckCellMetadata]" in (tmp_path / "course" / "nbgrader_config.py").read_text()  # the TA's commands


def test_the_entry_point_skips_the_slow_optional_iri_checker():
    """``python -m autograder`` keeps jsonschema from loading ``rfc3987_syntax`` (2.6 s of parser
    building per process), and notebooks still validate against nbformat's schema; importing the
    package alone changes nothing process-wide."""
    code = ("import runpy, sys\nsys.argv = ['autograder', '--help']\n"
            "try:\n    runpy.run_module('autograder', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "import nbformat, jsonschema\n"
            f"nbformat.validate(nbformat.read({str(SOURCE_NOTEBOOK)!r}, as_version=4))\n"
            "print(repr(sys.modules['rfc3987_syntax']), 'iri' in jsonschema.FormatChecker().checkers)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["None", "False"]
    plain = subprocess.run([sys.executable, "-c", "import sys, autograder; print('rfc3987_syntax' in sys.modules)"],
                           cwd=REPO, capture_output=True, text=True)
    assert plain.stdout.strip() == "False"


def test_a_copied_or_moved_course_folder_opens_its_own_gradebook(tmp_path):
    """The course's nbgrader_config.py names the gradebook next to itself, not the folder it was written in."""
    import shutil

    from nbgrader.api import Gradebook
    from traitlets.config import PyFileConfigLoader

    from autograder.grading.gradebook import Course
    Course(tmp_path / "course")
    moved = tmp_path / "elsewhere ü" / "course"
    shutil.copytree(tmp_path / "course", moved)
    shutil.rmtree(tmp_path / "course")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(moved)).load_config()
    assert config.CourseDirectory.db_url == f"sqlite:///{moved / 'gradebook.db'}"
    with Gradebook(config.CourseDirectory.db_url) as gb:
        assert [a.name for a in gb.assignments] == ["pruning"]


def test_a_samples_written_answers_reach_the_gradebook_for_grading_by_hand(tmp_path):
    """The demo's class has written answers: recorded, they are cells formgrader asks a TA to grade by hand."""
    from nbgrader.api import Gradebook

    from autograder.grading.gradebook import Course
    sample = next(s for s in load_samples() if s.name == "correct_manual_topk")
    assert {"answer_unstructured", "answer_structured", "answer_removal"} <= set(sample.cells)
    nb, _ = prepare_notebook(build_notebook(sample), nbformat.read(SOURCE_NOTEBOOK, as_version=4))
    executed = tmp_path / "executed.ipynb"
    nbformat.write(nb, executed)
    course = Course(tmp_path / "course")
    assert course.record(sample.name, executed) is None
    points = read_points()
    with Gradebook(f"sqlite:///{course.db}") as gb:
        for gid in ("answer_unstructured", "answer_structured", "answer_removal"):
            grade = gb.find_grade(gid, "pruning", "pruning", sample.name)
            assert grade.needs_manual_grade and grade.max_score == points[gid] == 2, gid
    recorded = nbformat.read(course.root / "autograded" / sample.name / "pruning" / "pruning.ipynb", as_version=4)
    answer = next(c for c in recorded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer_unstructured")
    assert answer.source.startswith("Up to about 80% sparsity the accuracy stayed within a point or two")
