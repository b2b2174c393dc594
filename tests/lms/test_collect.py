"""Reading a class as each LMS and nbgrader hand it over: layouts told apart, ids from the LMS (never from how a
name is written), the latest of several notebooks, LATE kept, rosters of three kinds, archives read safely.

The Canvas and Moodle downloads are made by :mod:`autograder.samples.lms`, which names their files as Canvas's
``lib/content_zipper.rb`` and Moodle's ``mod/assign/classes/downloader.php`` do (the course's
``reference/lms-formats.md``, sections 1 and 3).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from autograder.lms import listing as listing_module
from autograder.lms.collect import collect
from autograder.lms.entries import safe_id
from autograder.lms.listing import Listing, ListingError
from autograder.lms.roster import RosterError, apply_roster, read_roster
from autograder.samples import Sample
from autograder.samples.lms import canvas_download, canvas_gradebook, class_list, moodle_download, moodle_worksheet

EMPTY = Sample("empty", set(), "ok", cells={})


@pytest.fixture
def people():
    return class_list([EMPTY] * 4, absent=2)


def _touch(path: Path, text: str = "{}", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_canvas_zip_is_read_by_user_id_with_late_and_the_latest_upload(tmp_path, people):
    got = collect(canvas_download(tmp_path / "submissions.zip", people), tmp_path / "work")
    assert got.layout == "Canvas download"
    assert [e.student_id for e in got.entries] == ["12340", "12341", "12342", "12343"]
    late = {e.student_id: e.late for e in got.entries}
    assert late == {"12340": False, "12341": True, "12342": False, "12343": False}
    resubmitted = got.entries[2]
    assert resubmitted.notebook.name.endswith("_70002_pruning-1.ipynb"), "the larger attachment id: the later upload"
    assert resubmitted.notebook.is_file() and str(resubmitted.notebook).startswith(str(tmp_path / "work"))
    assert "2 notebooks in the submission; graded pruning-1.ipynb, the latest upload, not pruning.ipynb" \
        in resubmitted.notes
    assert resubmitted.lms["attachment_id"] == "70002" and resubmitted.name == "dsouzachloé"
    assert got.line() == ("submissions: Canvas download, 4 students: 4 notebooks, 1 with several notebooks (the "
                          "latest graded), 1 late")


def test_canvas_names_that_are_not_uploads_anonymous_grading_and_a_folder_around_the_files(tmp_path):
    root = tmp_path / "submissions"  # as if the zip held one folder
    _touch(root / "doejohn_12345_67890_pruning.ipynb")
    _touch(root / "roejane_LATE_12346_text.html", "<p>see attachment</p>")
    _touch(root / "roejane_LATE_12346_67891_pruning.zip", "PK")
    _touch(root / "LATE_anon_k3b9x_67910_pruning.ipynb")
    _touch(root / "45_12347_67911_pruning.ipynb")  # a name that is all digits
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in root.iterdir():
            zf.write(path, f"submissions/{path.name}")
    got = collect(archive, tmp_path / "work")
    by_id = {e.student_id: e for e in got.entries}
    assert sorted(by_id) == ["12345", "12346", "12347", "anon_k3b9x"]
    assert by_id["12346"].notebook is None and by_id["12346"].late
    assert by_id["12346"].notes == ["handed in pruning.zip, a text entry: no notebook"]
    assert by_id["anon_k3b9x"].late and "anonymous grading" in by_id["anon_k3b9x"].notes[0]
    assert by_id["12347"].name == "45"


def test_a_moodle_zip_in_folders_old_and_new_and_flat(tmp_path, people):
    new = collect(moodle_download(tmp_path / "folders.zip", people), tmp_path / "w1")
    flat = collect(moodle_download(tmp_path / "flat.zip", people, folders=False), tmp_path / "w2")
    for got in (new, flat):
        assert got.layout == "Moodle download"
        assert [(e.student_id, e.name) for e in got.entries] == [
            ("1234560", "Seán O'Brien"), ("1234561", "Zoë Dupont"), ("1234562", "Chloé D'Souza"),
            ("1234563", "Jan-Erik van der Berg")]
        assert all(e.notebook.name.endswith("pruning.ipynb") and e.notebook.is_file() for e in got.entries)
    assert new.entries[0].lms["folder"] == "Seán O'Brien_1234560_assignsubmission_file"
    old = tmp_path / "old"  # before Moodle 4.1: a trailing underscore; online text has no notebook
    _touch(old / "Ann Lee_77_assignsubmission_file_" / "pruning (1).ipynb")
    _touch(old / "Bo Li_78_assignsubmission_onlinetext_" / "onlinetext.html", "<p>hi</p>")
    got = collect(old, tmp_path / "w3")
    assert [(e.student_id, e.notebook is not None) for e in got.entries] == [("77", True), ("78", False)]
    assert got.entries[0].notes == ["graded pruning (1).ipynb (the notebook was not named pruning.ipynb)"]
    assert got.entries[1].notes == ["handed in online text: no notebook"]


def test_nbgrader_folders_with_names_no_id_can_hold_are_graded_under_ids_made_from_them(tmp_path):
    root = tmp_path / "submitted"
    _touch(root / "alice" / "pruning" / "pruning.ipynb")
    _touch(root / "Zoë O'Brien" / "pruning" / "pruning.ipynb")
    _touch(root / "bob" / "pruning" / "pruning.ipynb", mtime=100)
    _touch(root / "bob" / "pruning" / "pruning-old.ipynb", mtime=200)  # newer, but the expected name wins
    (root / "carol").mkdir()
    _touch(root / "__MACOSX" / "alice" / "._pruning.ipynb")
    _touch(root / "alice" / "pruning" / ".ipynb_checkpoints" / "pruning-checkpoint.ipynb")
    got = collect(root, tmp_path / "work")
    assert got.layout == "nbgrader submitted/ folder"
    by_id = {e.student_id: e for e in got.entries}
    assert sorted(by_id) == ["Zoe-OBrien", "alice", "bob", "carol"]
    assert by_id["Zoe-OBrien"].name == "Zoë O'Brien"
    assert by_id["Zoe-OBrien"].notes == ["graded as Zoe-OBrien (from the name \"Zoë O'Brien\")"]
    assert by_id["bob"].notebook.name == "pruning.ipynb"
    assert by_id["bob"].notes == ["2 notebooks in the submission; graded pruning/pruning.ipynb, not "
                                  "pruning/pruning-old.ipynb"]
    assert by_id["carol"].notebook is None
    assert by_id["alice"].notebook == root / "alice" / "pruning" / "pruning.ipynb", "a folder is read in place"


def test_two_names_that_make_the_same_id_stay_two_students(tmp_path):
    _touch(tmp_path / "class" / "José Núñez.ipynb")
    _touch(tmp_path / "class" / "Jose Nunez.ipynb")
    got = collect(tmp_path / "class", tmp_path / "work")
    assert got.layout == "folder of notebooks"
    assert sorted((e.student_id, e.name) for e in got.entries) == [("Jose-Nunez", "Jose Nunez"),
                                                                     ("Jose-Nunez-2", "José Núñez")]


def test_the_exchange_inbound_folder_gives_each_students_latest_submission(tmp_path):
    inbound = tmp_path / "exchange" / "pruning-course" / "inbound"
    _touch(inbound / "alice+pruning+2026-12-01 10:00:00.000000 UTC+abc" / "pruning.ipynb")
    _touch(inbound / "alice+pruning+2026-12-02 09:00:00.000000 UTC+def" / "pruning.ipynb")
    _touch(inbound / "a+b+pruning+2026-12-02 09:00:00.000000 UTC+ghi" / "pruning.ipynb")  # a + in the id
    _touch(inbound / "carl+lab1+2026-12-02 09:00:00.000000 UTC+jkl" / "lab1.ipynb")
    got = collect(tmp_path / "exchange", tmp_path / "work")
    assert got.layout == "nbgrader exchange inbound"
    by_id = {e.student_id: e for e in got.entries}
    assert sorted(by_id) == ["a+b", "alice"]
    assert "2026-12-02" in str(by_id["alice"].notebook)
    assert by_id["alice"].notes == ["2 submissions; graded the latest, of 2026-12-02 09:00:00.000000 UTC"]
    assert got.ignored == ["submissions of other assignments (lab1)"]


def test_a_folder_with_a_stray_canvas_like_name_is_a_folder_of_notebooks(tmp_path):
    for name in ("lab_2024_11_final", "ann", "ben", "cy"):
        _touch(tmp_path / "class" / f"{name}.ipynb")
    got = collect(tmp_path / "class", tmp_path / "work")
    assert got.layout == "folder of notebooks" and len(got.entries) == 4


def test_an_archive_is_read_safely(tmp_path, monkeypatch):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.ipynb", "{}")
        zf.writestr("/etc/evil.ipynb", "{}")
        link = zipfile.ZipInfo("linked.ipynb")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("big.ipynb", "x" * 5000)
    found = Listing.of(archive)
    assert sorted(found.files) == ["big.ipynb"], "no name that leaves the folder, no link"
    monkeypatch.setattr(listing_module, "MAX_NOTEBOOK_BYTES", 1000)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("huge.ipynb", "y" * (3 << 20))
    out = Listing.of(archive).materialize("huge.ipynb", tmp_path / "work")
    assert 1000 < out.stat().st_size <= 1000 + (1 << 20), "stops just past the limit: the grader refuses it"
    assert not (tmp_path / "outside.ipynb").exists()
    with pytest.raises(ListingError, match="is not a zip archive"):
        Listing.of(_touch(tmp_path / "notes.txt", "hello"))
    with pytest.raises(ListingError, match="no submissions in .*expected a Canvas"):
        collect(_touch(tmp_path / "empty" / "readme.txt", "x").parent, tmp_path / "work")


def test_rosters_of_each_kind_name_every_student_and_those_who_handed_in_nothing(tmp_path, people):
    canvas = read_roster(canvas_gradebook(tmp_path / "canvas.csv", people))
    moodle = read_roster(moodle_worksheet(tmp_path / "moodle.csv", people))
    plain = read_roster(_touch(tmp_path / "plain.csv", "id,name,email\nalice,Alice Ng,alice@uni.edu\nbob,,\n"))
    assert (canvas.kind, canvas.lms, list(canvas.people)) == ("Canvas gradebook", "canvas",
                                                              [str(12340 + i) for i in range(6)])
    assert canvas.people["12340"].name == "O'Brien, Seán"
    assert (moodle.kind, moodle.lms) == ("Moodle grading worksheet", "moodle")
    assert moodle.people["1234561"].name == "Zoë Dupont" and moodle.people["1234561"].email == "zoe.dupont@uni.edu"
    assert plain.people["alice"].email == "alice@uni.edu" and plain.people["bob"].name == ""
    got = collect(canvas_download(tmp_path / "c.zip", people[:3]), tmp_path / "work")
    got.entries.append(type(got.entries[0])("99999", None, "someone"))
    absent = apply_roster(got, canvas)
    assert [e.student_id for e in absent] == ["12343", "12344", "12345"]
    assert got.entries[0].name == "O'Brien, Seán", "the roster's name replaces the download's"
    assert got.entries[-1].notes == ["not in the roster (Canvas gradebook)"]
    with pytest.raises(RosterError, match="neither a Canvas gradebook export"):
        read_roster(_touch(tmp_path / "nothing.csv", "a,b\n1,2\n"))


@pytest.mark.parametrize("name, made", [("Zoë O'Brien", "Zoe-OBrien"), ("  ", "student"), ("a/b\\c", "a-b-c"),
                                        ("jane.doe@uni.edu", "jane.doe@uni.edu")])
def test_safe_ids(name, made):
    assert safe_id(name) == made


def test_renamed_and_several_notebooks_in_nbgrader_folders_are_found_and_named(tmp_path):
    put = [("carol", "pruning/pruning (1).ipynb", 100), ("dave", "Copy of pruning.ipynb", 100),
           ("erin", "pruning/pruning.ipynb", 100), ("erin", "pruning/pruning-old.ipynb", 200),
           ("frank", "pruning/Copy of pruning.ipynb", 100), ("frank", "pruning/pruning (2).ipynb", 300)]
    for sid, rel, mtime in put:
        _touch(tmp_path / "s" / sid / rel, mtime=mtime)
    got = {e.student_id: (e.notebook.relative_to(tmp_path / "s" / e.student_id).as_posix(), e.notes)
           for e in collect(tmp_path / "s", tmp_path / "work").entries}
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
