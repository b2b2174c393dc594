"""Autograder pieces without kernels: restoring cells, reading notebooks, scoring saved models."""

from __future__ import annotations

import copy
import os
import sqlite3
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

from autograder.config import SOURCE_NOTEBOOK, GradeConfig
from autograder.grading import solutions
from autograder.grading.gradebook import read_points
from autograder.grading.measure import build_reference
from autograder.grading.parts import CHECKS
from autograder.grading.scoring import score_submission
from autograder.grading.submission import (
    SEED_CELL,
    SubmissionError,
    find_submissions,
    prepare_notebook,
    read_notebook,
    strip_hidden_tests,
)
from autograder.samples import build_notebook, load_samples
from helpers import SmallCNN
from helpers.checks import TARGETS
from helpers.models import plain_state_dict

from .conftest import REPO


def gid(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def test_release_needs_no_restoring(source, release):
    nb, notes = prepare_notebook(release, source)
    assert notes == []
    assert nb.cells[0].source == SEED_CELL
    expected = [gid(c) for c in source.cells]
    none = expected.pop(expected.index(None))
    expected.insert(expected.index("load") + 1, none)  # the paths cell runs after set-up
    assert [gid(c) for c in nb.cells[1:]] == expected
    test = next(c for c in nb.cells if gid(c) == "test_unstructured_sparsity")
    assert '["export"]("unstructured", globals())' in test.source, "hidden export must be back for grading"


def test_edited_deleted_duplicated_and_forged_cells(source, release):
    nb = copy.deepcopy(release)
    ids = [gid(c) for c in nb.cells]
    nb.cells[ids.index("test_unstructured_sparsity")].source = "pass"
    del nb.cells[ids.index("test_structured_function")]
    nb.cells.append(copy.deepcopy(nb.cells[ids.index("test_unstructured_accuracy")]))
    forged = nbformat.v4.new_code_cell("x = 1")
    forged.metadata["nbgrader"] = {"grade": True, "grade_id": "test_bonus", "points": 100, "solution": False,
                                   "locked": True, "schema_version": 3}
    nb.cells.append(forged)
    out, notes = prepare_notebook(nb, source)
    assert "restored edited cell test_unstructured_sparsity" in notes
    assert "restored deleted cell test_structured_function" in notes
    assert "removed duplicate cell test_unstructured_accuracy" in notes
    assert "ignored unknown grade_id test_bonus" in notes
    order = [gid(c) for c in out.cells if gid(c)]
    assert order == [gid(c) for c in source.cells if gid(c)], "instructor cells back in source order"
    restored = next(c for c in out.cells if gid(c) == "test_unstructured_sparsity")
    assert restored.source == next(c for c in source.cells if gid(c) == "test_unstructured_sparsity").source
    assert "nbgrader" not in next(c for c in out.cells if c.source == "x = 1").metadata


def test_strip_hidden_tests():
    text = "a = 1\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nb = 2\n"
    assert strip_hidden_tests(text) == "a = 1\nb = 2\n"


def test_invalid_notebooks_are_reported(tmp_path):
    bad = tmp_path / "nb.ipynb"
    bad.write_text("{not json")
    with pytest.raises(SubmissionError, match="invalid notebook JSON"):
        read_notebook(bad)
    bad.write_text('{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(SubmissionError, match="invalid notebook JSON"):
        read_notebook(bad)


def test_find_submissions_layout(tmp_path):
    (tmp_path / "alice" / "pruning").mkdir(parents=True)
    (tmp_path / "alice" / "pruning" / "pruning.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bad id!").mkdir()
    subs, problems = find_submissions(tmp_path)
    assert [s.student_id for s in subs] == ["alice"]
    assert dict(problems)["bob"] == "no notebook in the submission (expected pruning/pruning.ipynb)"
    assert "bad id!" in dict(problems)


def test_renamed_and_several_notebooks_are_found_and_named(tmp_path):
    import os
    def put(sid, rel, mtime):
        path = tmp_path / sid / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        os.utime(path, (mtime, mtime))
    put("carol", "pruning/pruning (1).ipynb", 100)
    put("dave", "Copy of pruning.ipynb", 100)
    put("erin", "pruning/pruning.ipynb", 100)
    put("erin", "pruning/pruning-old.ipynb", 200)
    put("frank", "pruning/Copy of pruning.ipynb", 100)
    put("frank", "pruning/pruning (2).ipynb", 300)
    subs, problems = find_submissions(tmp_path)
    assert problems == []
    got = {s.student_id: (s.path.relative_to(tmp_path / s.student_id).as_posix(), s.notes) for s in subs}
    assert got == {
        "carol": ("pruning/pruning (1).ipynb",
                  ["graded pruning/pruning (1).ipynb (the notebook was not named pruning/pruning.ipynb)"]),
        "dave": ("Copy of pruning.ipynb",
                 ["graded Copy of pruning.ipynb (the notebook was not named pruning/pruning.ipynb)"]),
        "erin": ("pruning/pruning.ipynb",
                 ["2 notebooks in the submission; graded pruning/pruning.ipynb, not pruning/pruning-old.ipynb"]),
        "frank": ("pruning/pruning (2).ipynb",
                  ["graded pruning/pruning (2).ipynb (the notebook was not named pruning/pruning.ipynb)",
                   "2 notebooks in the submission; graded pruning/pruning (2).ipynb, the most recently saved, "
                   "not pruning/Copy of pruning.ipynb"]),
    }


def _without_metadata(nb):
    """What pasting the cells into a new notebook leaves: no nbgrader metadata, no cell ids."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata = {}
        cell.pop("id", None)
    return nb


def _reference_notebook(release):
    sample = next(s for s in load_samples() if s.name == "reference")
    return build_notebook(sample, release)


def test_cells_that_lost_their_metadata_are_recognised(source, release):
    bare = _without_metadata(_reference_notebook(release))
    out, notes = prepare_notebook(bare, source)
    assert notes == ["37 cells had lost their nbgrader metadata and were recognised (answers: prune_unstructured, "
                     "prune_structured, remove_filters, finetune, answer_unstructured, answer_structured, "
                     "answer_removal)"]
    assert [gid(c) for c in out.cells[1:] if gid(c)] == [gid(c) for c in source.cells if gid(c)]
    answer = next(c for c in out.cells if gid(c) == "prune_unstructured")
    assert answer.source == next(c for c in bare.cells if "def prune_unstructured" in c.source).source


def test_the_last_definition_of_an_answer_wins_and_moved_cells_go_back(source, release):
    nb = _without_metadata(_reference_notebook(release))
    first = next(i for i, c in enumerate(nb.cells) if "def prune_structured" in c.source)
    older = copy.deepcopy(nb.cells[first])
    older.source = "def prune_structured(model, amount):\n    return model  # first try"
    nb.cells.insert(first, older)
    moved = nb.cells.pop(first + 1)  # the final version, moved to the very end
    nb.cells.append(moved)
    out, notes = prepare_notebook(nb, source)
    assert "cells moved by the student were put back in the assignment's order" in notes
    answer = next(c for c in out.cells if gid(c) == "prune_structured")
    assert answer.source == moved.source
    ids = [gid(c) for c in out.cells]
    assert ids.index("prune_structured") < ids.index("test_structured_filters")


def test_a_notebook_without_metadata_or_answers_is_an_error_not_a_zero(source, release):
    nb = _without_metadata(release)
    nb.cells = [c for c in nb.cells if "def prune_unstructured" not in c.source]
    with pytest.raises(SubmissionError) as err:
        prepare_notebook(nb, source)
    assert str(err.value) == (
        "the notebook lost its nbgrader cell metadata and no cell defines the answer of prune_unstructured: grade "
        "it by hand, or ask the student to copy their code into the released notebook and resubmit")


def test_a_colab_download_needs_no_recognising(source, release):
    nb = copy.deepcopy(_reference_notebook(release))
    nb.metadata = {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"}}
    for cell in nb.cells:
        cell.pop("id", None)
    out, notes = prepare_notebook(nb, source)
    assert notes == []


def test_points_come_from_the_source_notebook():
    points = read_points()
    assert set(CHECKS) <= set(points)
    assert sum(points[g] for g in CHECKS) == 31  # parts 1 and 2: 20; part 3: 4 + 3 + 4
    assert points["answer_unstructured"] == 2


def test_samples_fill_the_solution_cells(release):
    sample = next(s for s in load_samples() if s.name == "reference")
    nb = build_notebook(sample, release)
    cell = next(c for c in nb.cells if gid(c) == "prune_unstructured")
    assert "global_unstructured" in cell.source and "NotImplementedError" not in cell.source


# ---- scoring from saved files, no kernel -------------------------------------------------

@pytest.fixture(scope="module")
def ref_setup(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=60).astype(np.int64)
    ref = build_reference(model, "SmallCNN", {}, [X, y], "cpu")
    folder = tmp_path_factory.mktemp("subs")
    (folder / "s").mkdir()
    path = tmp_path_factory.mktemp("m") / "m.pt"
    from helpers import save_model
    save_model(model, path)
    cfg = GradeConfig(submissions=folder, data_root="synthetic", model=path, out=folder / "out")
    return model, ref, cfg


def record_for(part, fn, model, ref, accuracy_shift=0.0):
    from torch import nn

    from helpers import global_sparsity, test_model
    types = (nn.Conv2d, nn.Linear) if part == "unstructured" else (nn.Conv2d,)
    results = []
    for t in TARGETS:
        pruned = fn(model, t)
        results.append({"target": t, "sparsity": global_sparsity(pruned, types), "error": None,
                        "accuracy": test_model(pruned, ref.test_data, verbose=False) + accuracy_shift,
                        "state": plain_state_dict(pruned)})
    unseen = {str(t): {"state": plain_state_dict(fn(model, t)), "error": None, "modified_input": False}
              for t in (0.35, 0.65)}
    return {"part": part, "results": results, "unseen": unseen, "errors": []}


def write_records(folder, model, ref, **shift):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(record_for("unstructured", solutions.prune_unstructured, model, ref, shift.get("u", 0.0)),
               folder / "unstructured.pt")
    torch.save(record_for("structured", solutions.prune_structured, model, ref), folder / "structured.pt")


def parts12_points():
    """Points of the check cells of parts 1 and 2 (part 3's exports are not written by these tests)."""
    return {g: p for g, p in read_points().items() if g in CHECKS and CHECKS[g][0] != "removal"}


def test_reference_records_get_full_points(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    checks = score_submission(tmp_path, ref, cfg, parts12_points())
    assert [c.points for c in checks] == [c.max_points for c in checks]
    assert all(not c.messages for c in checks)


def test_claimed_accuracy_that_the_model_does_not_have(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref, u=0.1)
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert by_id["test_unstructured_accuracy"].points == 0
    assert "'accuracy' says" in by_id["test_unstructured_accuracy"].messages[0]
    assert by_id["test_unstructured_sparsity"].points == 4 and by_id["test_structured_accuracy"].points == 3


def test_missing_or_tampered_files(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    (tmp_path / "structured.pt").write_bytes(b"not a torch file")
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert by_id["test_structured_filters"].points == 0
    assert "could not be read" in by_id["test_structured_filters"].messages[0]
    assert by_id["test_unstructured_sparsity"].points == 4
    (tmp_path / "unstructured.pt").unlink()
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert "no results were saved" in by_id["test_unstructured_function"].messages[0]


def test_other_architecture_is_refused(tmp_path, ref_setup):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    record = torch.load(tmp_path / "unstructured.pt", weights_only=True)
    other = plain_state_dict(SmallCNN(channels=(8, 8, 8)))
    for item in record["results"]:
        item["state"] = other
    torch.save(record, tmp_path / "unstructured.pt")
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert "layers and shapes" in by_id["test_unstructured_sparsity"].messages[0]


def test_grade_config_validation(tmp_path, ref_setup):
    _, _, cfg = ref_setup
    with pytest.raises(ValueError, match="--jobs"):
        GradeConfig(submissions=cfg.submissions, data_root="synthetic", model=cfg.model, out=tmp_path, jobs=0)
    with pytest.raises(FileNotFoundError, match="submissions folder"):
        GradeConfig(submissions=tmp_path / "none", data_root="synthetic", model=cfg.model, out=tmp_path)


def test_exact_reference_models_skip_evaluation(tmp_path, ref_setup, monkeypatch):
    model, ref, cfg = ref_setup
    write_records(tmp_path, model, ref)
    calls = []
    import autograder.grading.measure as measure
    real = measure.test_model
    monkeypatch.setattr(measure, "test_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    checks = score_submission(tmp_path, ref, cfg, parts12_points())
    assert all(c.points == c.max_points for c in checks)
    assert calls == [], "identical weights must reuse the reference accuracy"
    record = torch.load(tmp_path / "unstructured.pt", weights_only=True)
    weight = record["results"][0]["state"]["fc1.weight"]
    weight.view(-1)[int(torch.nonzero(weight.view(-1))[0])] *= 2
    torch.save(record, tmp_path / "unstructured.pt")
    by_id = {c.grade_id: c for c in score_submission(tmp_path, ref, cfg, read_points())}
    assert len(calls) == 1, "a model that differs is evaluated"
    score_submission(tmp_path, ref, cfg, read_points())
    assert len(calls) == 1, "a model measured before (same digest) is not evaluated again"
    assert by_id["test_unstructured_sparsity"].points == 0
    assert "not pruned have changed" in by_id["test_unstructured_sparsity"].messages[0]


def test_lean_grading_keeps_only_what_scoring_needs(source, release):
    from autograder.config import DISPLAY_CELLS
    for name in DISPLAY_CELLS:
        cell = next(c for c in source.cells if gid(c) == name)
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] and not meta["grade"] and not meta["solution"], name
    nb, notes = prepare_notebook(release, source, lean=True, display_cells=DISPLAY_CELLS)
    by_id = {gid(c): c for c in nb.cells if gid(c)}
    assert notes == []
    for name in DISPLAY_CELLS:
        assert by_id[name].source.startswith("#") and "\n" not in by_id[name].source
    export = by_id["test_unstructured_sparsity"].source
    assert export.strip() == (
        '### BEGIN HIDDEN TESTS\n'
        'import os as _os, runpy as _runpy\n'
        'if _os.environ.get("PRUNING_EXPORT_CODE"):  # set by the autograder only\n'
        '    _runpy.run_path(_os.environ["PRUNING_EXPORT_CODE"])["export"]("unstructured", globals())\n'
        '### END HIDDEN TESTS')
    assert strip_hidden_tests(export) == "", "feedback shows none of it"
    assert by_id["test_structured_accuracy"].source.startswith("# test_structured_accuracy")
    assert by_id["load"].source == next(c for c in source.cells if gid(c) == "load").source


def test_digest_ignores_the_sign_of_zero_and_nothing_else():
    from autograder.grading.measure import model_digest
    torch.manual_seed(0)
    a = SmallCNN()
    with torch.no_grad():
        a.fc1.weight.view(-1)[:10] = 0.0
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    with torch.no_grad():
        b.fc1.weight.view(-1)[:10] = -0.0   # as `weight * mask` leaves a cut negative weight
        c.fc1.weight.view(-1)[10] = torch.nextafter(c.fc1.weight.view(-1)[10], torch.tensor(1.0))
    assert torch.signbit(b.fc1.weight.view(-1)[:10]).all()
    assert model_digest(a) == model_digest(b)
    assert model_digest(a) != model_digest(c), "a one-ulp change is a different model"
    with torch.no_grad():
        b.fc1.weight.view(-1)[10] = 0.0
    assert model_digest(a) != model_digest(b), "a zero in another place is a different model"


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


def test_what_a_code_cell_defines():
    from autograder.grading.recognise import defined_names
    assert defined_names("!pip install x\n%time y = 1\ndef f():\n    !echo hi\n    return 1\nz: int = 2\n"
                         "class C:\n    pass\na, b = 1, 2\nw = v = 3") == {"f", "z", "C", "w", "v"}
    assert defined_names("def broken(:\n") == set()


def test_recognition_at_the_edges(source, release):
    one = copy.deepcopy(release)
    intro = next(c for c in one.cells if gid(c) == "part1_intro")
    intro.metadata = {}
    _, notes = prepare_notebook(one, source)
    assert notes == ["1 cells had lost their nbgrader metadata and were recognised"]

    bare = _without_metadata(_reference_notebook(release))
    bare.cells = [c for c in bare.cells if c.cell_type != "markdown" or c.source != "YOUR ANSWER HERE"]
    out, notes = prepare_notebook(bare, source)  # the written answers were deleted: not found, no error
    assert notes[0].endswith("(answers: prune_unstructured, prune_structured, remove_filters, finetune)")
    assert "answer cell answer_unstructured is missing" in notes
    assert gid(next(c for c in out.cells if c.source.startswith("## 2. Structured pruning"))) == "part2_intro"
    last = _without_metadata(release)
    question3 = next(i for i, c in enumerate(last.cells) if c.source.startswith("**Question 3.**"))
    asked = last.cells.pop(question3)
    del last.cells[question3]  # its answer cell
    last.cells.append(asked)  # the question is the last cell
    out, notes = prepare_notebook(last, source)
    assert "answer cell answer_removal is missing" in notes


def test_recognition_of_what_students_do_to_pasted_cells(source, release):
    nb = _without_metadata(_reference_notebook(release))
    intro = next(c for c in nb.cells if c.source.startswith("## 2. Structured pruning"))
    intro.source = "\n".join(line + "   " for line in intro.source.splitlines())  # trailing spaces
    nb.cells.append(nbformat.v4.new_code_cell("unstructured_results = []  # scratch"))
    out, _ = prepare_notebook(nb, source)
    assert gid(next(c for c in out.cells if c.source.startswith("## 2. Structured pruning"))) == "part2_intro"
    assert "def prune_unstructured" in next(c for c in out.cells if gid(c) == "prune_unstructured").source


def test_written_answers_around_missing_or_last_questions(source, release):
    nb = _without_metadata(_reference_notebook(release))
    question = next(i for i, c in enumerate(nb.cells) if c.source.startswith("**Question 3.**"))
    pair = nb.cells[question:question + 2]
    del nb.cells[question:question + 2]
    nb.cells += pair  # the written answer is the last cell
    _, notes = prepare_notebook(nb, source)
    assert "answer_removal" in notes[0] and "answer cell answer_removal is missing" not in notes
    nb = _without_metadata(_reference_notebook(release))
    del nb.cells[question]  # the question itself is gone
    _, notes = prepare_notebook(nb, source)
    assert "answer_removal" not in notes[0]


def test_a_deleted_answer_with_metadata_elsewhere_is_missing_not_lost(source, release):
    nb = copy.deepcopy(release)
    nb.cells = [c for c in nb.cells if gid(c) != "prune_unstructured"]
    _, notes = prepare_notebook(nb, source)
    assert "answer cell prune_unstructured is missing" in notes


def test_moving_cells_keeps_a_students_first_cell_and_differing_twins(source, release):
    nb = copy.deepcopy(_reference_notebook(release))
    answer = next(c for c in nb.cells if gid(c) == "prune_structured")
    older = copy.deepcopy(answer)
    older.source = "def prune_structured(model, amount):\n    return model  # first try"
    nb.cells.insert(nb.cells.index(answer), older)
    nb.cells.append(nb.cells.pop(nb.cells.index(answer)))  # the final version moved to the end
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("My notes"))
    out, notes = prepare_notebook(nb, source)
    assert out.cells[1].source == "My notes"
    assert "cells moved by the student were put back in the assignment's order" in notes
    kept = next(c for c in out.cells if gid(c) == "prune_structured")
    assert kept.source == older.source  # the first with the grade_id is the graded one


def test_partial_metadata_loss_with_a_missing_answer_is_an_error_and_notes_are_not_answers(source, release):
    nb = copy.deepcopy(release)
    for cell in nb.cells[:12]:  # the first cells pasted elsewhere and back: their metadata is gone
        cell.metadata = {}
    nb.cells = [c for c in nb.cells if "def prune_unstructured" not in c.source]
    with pytest.raises(SubmissionError, match="no cell defines the answer of prune_unstructured"):
        prepare_notebook(nb, source)
    bare = _without_metadata(_reference_notebook(release))
    intro = next(i for i, c in enumerate(bare.cells) if c.source.startswith("## 1. Unstructured pruning"))
    bare.cells.insert(intro + 1, nbformat.v4.new_markdown_cell("My notes before the answer"))
    out, notes = prepare_notebook(bare, source)
    assert not any("duplicate" in n for n in notes)
    assert gid(next(c for c in out.cells if c.source == "My notes before the answer")) is None


def test_trailing_spaces_do_not_hide_an_instructor_cell_and_every_deleted_cell_returns(source, release):
    nb = _without_metadata(_reference_notebook(release))
    intro = next(c for c in nb.cells if c.source.startswith("## 2. Structured pruning"))
    intro.source = "\n".join(line + "  " for line in intro.source.splitlines())
    out, _ = prepare_notebook(nb, source)
    assert [gid(c) for c in out.cells if c.source.startswith("## 2. Structured pruning")] == ["part2_intro"]
    kept = copy.deepcopy(release)
    kept.cells = [c for c in kept.cells if gid(c) not in ("prune_unstructured", "prune_structured", "part2_intro")]
    _, notes = prepare_notebook(kept, source)
    assert notes == ["answer cell prune_unstructured is missing", "restored deleted cell part2_intro",
                     "answer cell prune_structured is missing"]


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
