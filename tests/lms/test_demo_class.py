"""The demo's LMS step: the downloads and rosters it writes hold the class it announces."""

from __future__ import annotations

import csv
import re
import zipfile

from autograder.demo import DEMO_SAMPLES, _lms_files
from autograder.samples import load_samples


def test_the_demo_announces_the_class_its_lms_files_hold(tmp_path, capsys):
    samples = [s for s in load_samples() if s.name in DEMO_SAMPLES]
    _lms_files(tmp_path, samples, tmp_path / "model.pt", "synthetic")
    said = re.search(r"\((\d+) students, (\d+) handed in nothing\)", capsys.readouterr().out)
    assert said, "the step's heading gives the class's size"
    students, absent = int(said[1]), int(said[2])
    assert students == len(DEMO_SAMPLES) + absent
    with open(tmp_path / "lms" / "canvas-gradebook.csv", encoding="utf-8") as fh:
        roster = [r for r in csv.DictReader(fh) if r["ID"].strip().isdigit()]
    assert len(roster) == students
    with zipfile.ZipFile(tmp_path / "lms" / "moodle-submissions.zip") as archive:
        folders = {name.split("/")[0] for name in archive.namelist()}
    assert len(folders) == students - absent
