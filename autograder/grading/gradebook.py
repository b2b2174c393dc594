"""nbgrader's gradebook of a run, for formgrader and ``nbgrader export``.

The course folder ``<out>/course`` gets the source notebook, an ``nbgrader_config.py`` and a
gradebook filled by nbgrader's own ``generate_assignment``. Each executed notebook is recorded
with nbgrader's own ``autograde`` as soon as its job ends, configured not to clear outputs or
execute again (the notebooks already ran under the grader's limits). Then the automatic
scores of the test cells are set to the scores computed by :mod:`autograder.grading.scoring`, in
place of nbgrader's own (which come from the student's kernel and could be forged).

Both nbgrader steps run in this process through :class:`nbgrader.apps.NbGraderAPI`, the
API behind formgrader, rather than as ``nbgrader`` commands: one start-up for the whole run,
and recording overlaps with the notebooks still running. The course folder is the same as
the commands would make; ``nbgrader`` commands work in it afterwards. The run's own ``autograde``
calls check the cells' metadata with :class:`~autograder.grading.metadata.CheckCellMetadataOnce`
(nbgrader's check, its JSON schema compiled once) where the folder's config names nbgrader's class.

An empty gradebook is created here first, exactly as nbgrader's ``Gradebook`` creates one
(its tables, and an ``alembic_version`` table holding the newest migration of nbgrader's
database), except that the migration is read in this process: nbgrader itself runs
``alembic heads`` as a subprocess, which found ``alembic`` only through ``PATH`` and took
about 4 CPU-seconds per grading run.

nbgrader, sqlalchemy and alembic (about a second of imports) are imported inside the functions that use
them: the set-up thread that makes the course imports them while the reference is measured, and a process
that only reads the points never does.

Runs in the grader's process.
"""

from __future__ import annotations

import shutil
import threading
import warnings
from pathlib import Path

import nbformat

from ..config import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK

__all__ = ["Course", "create_gradebook", "read_points"]

_CONFIG = '''"""Written by the autograder for one grading run."""
import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor, Preprocessor
from traitlets import Bool
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, DeduplicateIds,
                                    GetGrades, LimitOutput, OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "pruning-course"
# The gradebook next to this file, wherever the course folder is copied or moved to.
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "gradebook.db")
# The notebooks already ran under the grader's time limits: keep their outputs, do not execute.
c.Autograde.sanitize_preprocessors = [DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]


class CutTracebacks(Preprocessor):
    """In feedback, an error shows its last line only: a traceback would quote the hidden tests around it."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        return cell, resources


# Formgrader's "Generate Feedback" (nbgrader generate_feedback): without the hidden tests. The grader's own
# pages, in the run's feedback/ folder, say more (each check's messages and points).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CutTracebacks, CSSHTMLHeaderPreprocessor]
'''


def read_points(source=None) -> dict[str, float]:
    """Points of every graded cell of the source notebook, by grade_id."""
    nb = nbformat.read(source or SOURCE_NOTEBOOK, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


class Course:
    """The nbgrader course folder of one grading run. Thread-safe: calls are serialized.

    Example::

        course = Course(out / "course")       # source notebook, config, gradebook
        course.record("s1", executed_nb)     # None, or why nbgrader could not record it
        course.set_scores({"s1": {"test_unstructured_sparsity": 4.0, ...}})
    """

    def __init__(self, root: Path, source: Path = SOURCE_NOTEBOOK):
        self.root = Path(root).resolve()
        self.db = self.root / "gradebook.db"
        self._lock = threading.Lock()
        src = self.root / "source" / ASSIGNMENT
        src.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, src / f"{NOTEBOOK}.ipynb")
        (self.root / "nbgrader_config.py").write_text(_CONFIG)
        create_gradebook(self.db)
        self._api = self._make_api()
        with self._lock:
            done = self._api.generate_assignment(ASSIGNMENT, force=True)
        if not done["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.get('log', '')[-2000:]}")

    def _make_api(self):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.preprocessors import CheckCellMetadata
        from traitlets.config import PyFileConfigLoader

        from .metadata import CheckCellMetadataOnce
        config = PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()
        config.CourseDirectory.root = str(self.root)
        for steps in ("sanitize_preprocessors", "autograde_preprocessors"):  # the same checks, faster
            config.Autograde[steps] = [CheckCellMetadataOnce if p is CheckCellMetadata else p
                                       for p in config.Autograde[steps]]
        return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)

    def record(self, student_id: str, executed: Path) -> str | None:
        """Record one executed notebook; return ``None``, or why nbgrader could not record it."""
        dest = self.root / "submitted" / student_id / ASSIGNMENT
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(executed, dest / f"{NOTEBOOK}.ipynb")
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SQLAlchemy warnings from inside nbgrader
            done = self._api.autograde(ASSIGNMENT, student_id, force=True, create=True)
        if done["success"] and (self.root / "autograded" / student_id / ASSIGNMENT / f"{NOTEBOOK}.ipynb").is_file():
            return None
        return "nbgrader could not record the notebook in the gradebook"

    def has(self, student_id: str) -> bool:
        """Has an earlier run of this course already recorded ``student_id``'s notebook?"""
        return (self.root / "autograded" / student_id / ASSIGNMENT / f"{NOTEBOOK}.ipynb").is_file()

    def set_scores(self, scores: dict[str, dict[str, float]]) -> None:
        """Set the automatic score of each graded test cell in the gradebook."""
        from nbgrader.api import Gradebook, MissingEntry
        with self._lock, Gradebook(f"sqlite:///{self.db}") as gb:
            for sid, cells in scores.items():
                for gid, points in cells.items():
                    try:
                        grade = gb.find_grade(gid, NOTEBOOK, ASSIGNMENT, sid)
                    except MissingEntry:
                        continue
                    grade.auto_score = points
            gb.db.commit()


def _newest_migration() -> str:
    """The head revision of nbgrader's database migrations (what ``alembic heads`` prints)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR
    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"nbgrader's database migrations have {len(heads)} heads ({heads}); expected one")
    return heads[0]


def create_gradebook(db: Path) -> bool:
    """Create an empty nbgrader gradebook at ``db`` unless one is there; return whether it made one.

    The result is what ``nbgrader.api.Gradebook`` makes for a new database (all tables, and
    ``alembic_version`` set to the newest migration), so nbgrader opens it as its own and
    ``nbgrader db upgrade`` finds it current.
    """
    from nbgrader.api import Base
    from sqlalchemy import create_engine, inspect, text
    engine = create_engine(f"sqlite:///{Path(db).resolve()}", future=True)
    try:
        if inspect(engine).get_table_names():
            return False
        version = _newest_migration()
        Base.metadata.create_all(bind=engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
        return True
    finally:
        engine.dispose()
