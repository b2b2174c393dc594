"""The grading sandbox against hostile notebooks, graded in one batch with correct controls.

Every attack a student could try on the TA's machine is one submission: kill every process,
kill the grader, leave a daemon that forges a grade later, rewrite classmates' and the
instructor's notebooks, read the hidden tests and import the answer key, connect to a local
server, use too much memory, flood the process table, poison the export file. They are graded
together with two correct controls through the real ``python -m autograder grade --jobs 2``;
the controls must keep full marks and each attack must fail in its own way. Then the grader
is killed with SIGKILL halfway through a class and resumed, and the result compared with an
uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.runner.sandbox import sandbox_support
from autograder.samples import load_samples, write_class
from tests.conftest import RELEASE_NB, REPO, SOURCE_NB
from tests.hostile import MARKER, attacks, controls, listener, printed, rows, wrong_rows

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox_support() is not None, reason=f"no sandbox here: {sandbox_support()}")]

#: The total score of a correct notebook, as grades.csv writes it.
FULL = f"{sum(read_points()[g] for g in CHECKS):g}"
MEMORY_LIMIT = "2G"  # a correct notebook (11 targets per part): 1.5 GiB peak RSS, torch included
PIDS_LIMIT = 200


def _cmd(submitted: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(submitted), "--data-root", "synthetic",
            "--model", str(model), "--out", str(out), "--jobs", "2", "--timeout", "300", "--cell-timeout", "60",
            "--per-class", "50", "--memory-limit", MEMORY_LIMIT, "--pids-limit", str(PIDS_LIMIT), *extra]


def _hashes(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, trained_model_path):
    root = tmp_path_factory.mktemp("hostile")
    submitted, out, marker = root / "submitted", root / "out", root / "grader-was-hacked"
    grader_file = root / "grader-file"
    grader_file.write_text("the grader's own")
    grader_file.chmod(0o400)
    server, received = listener()
    samples = controls("control_a", "control_b") + attacks(REPO, submitted, out, server.getsockname()[1], marker,
                                                           grader_file, MEMORY_LIMIT)
    write_class(submitted, samples)
    watched = sorted(submitted.rglob("*.ipynb")) + [SOURCE_NB, RELEASE_NB]
    before = _hashes(watched)
    proc = subprocess.run(_cmd(submitted, out, trained_model_path), cwd=REPO, capture_output=True, text=True,
                          timeout=1500, env=dict(os.environ, GRADER_SECRET="s3cret"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    csv_after_run = (out / "grades.csv").read_text()
    time.sleep(8)  # the daemon would have written by now
    server.close()
    return {"samples": samples, "rows": rows(out), "out": out, "before": before, "after": _hashes(watched),
            "csv_after_run": csv_after_run, "received": received, "marker": marker, "proc": proc,
            "grader_file": grader_file}


def test_controls_keep_full_marks_and_each_attack_gets_its_grade(hostile_class):
    found = hostile_class["rows"]
    assert not wrong_rows(found, hostile_class["samples"]), "\n".join(wrong_rows(found, hostile_class["samples"]))
    assert found["control_a"]["score"] == found["control_b"]["score"] == FULL


def test_a_notebook_that_vandalises_its_folder_loses_nothing_of_the_graders(hostile_class):
    """Modes taken away and a link to the grader's file: graded in full, the file untouched; a deleted folder:
    the notebook's own exports are gone, and its row says why."""
    found = hostile_class["rows"]
    assert found["attack_modes_and_links"]["score"] == FULL
    assert hostile_class["grader_file"].stat().st_mode & 0o777 == 0o400
    assert "deleted its own folder" in found["attack_delete_folder"]["notes"]


def test_no_process_outlives_its_notebook_and_no_grade_is_forged(hostile_class):
    assert (hostile_class["out"] / "grades.csv").read_text() == hostile_class["csv_after_run"]
    assert "forged" not in hostile_class["csv_after_run"]
    alive = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and MARKER.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                alive.append(entry)
        except OSError:
            continue
    assert alive == []


def test_no_file_outside_the_job_was_written_or_read(hostile_class):
    assert hostile_class["after"] == hostile_class["before"], "submissions and instructor notebooks unchanged"
    out = hostile_class["out"]
    assert "WRITTEN: []" in printed(out, "attack_rewrite_files")
    assert "LEAKED: []" in printed(out, "attack_read_answers")
    assert "No module named 'autograder'" in printed(out, "attack_read_answers")


def test_network_and_signals_do_not_leave_the_sandbox(hostile_class):
    out = hostile_class["out"]
    assert hostile_class["received"] == []
    assert "no network" in printed(out, "attack_network")
    assert hostile_class["rows"]["attack_kill_parent"]["score"] == FULL
    # kill(-1) spares the caller and PID 1 (the slot's server): in the sandbox nobody else is there
    assert "ProcessLookupError" in (out / "executed" / "attack_kill_everything.ipynb").read_text()


def test_limits_are_named(hostile_class):
    found = hostile_class["rows"]
    assert found["attack_memory"]["status"] == "error: memory limit (2 GiB) exceeded"
    assert found["attack_memory"]["score"] == "10", "part 1 finished before the limit and keeps its points"
    assert f"process limit ({PIDS_LIMIT}) reached" in found["attack_process_flood"]["notes"]
    assert "fork refused after" in printed(hostile_class["out"], "attack_process_flood")
    for sid, row in found.items():
        if sid != "attack_process_flood":
            assert "process limit" not in row["notes"], sid


def test_poisoned_export_runs_nothing_in_the_grader(hostile_class):
    assert not hostile_class["marker"].exists()
    assert "could not be read" in (hostile_class["out"] / "feedback" / "attack_poisoned_export.html").read_text()


def test_grader_killed_halfway_resumes_to_the_same_result(tmp_path, trained_model_path):
    names = ["reference", "mistake_per_layer", "mistake_random_selection", "correct_manual_topk",
             "hostile_exits_in_part2", "mistake_wrong_dim"]
    write_class(tmp_path / "submitted", [s for s in load_samples() if s.name in names])
    submitted = tmp_path / "submitted"
    clean = subprocess.run(_cmd(submitted, tmp_path / "clean", trained_model_path), cwd=REPO, capture_output=True,
                           text=True, timeout=900)
    assert clean.returncode == 0, clean.stderr[-3000:]
    out = tmp_path / "resumed"
    proc = subprocess.Popen(_cmd(submitted, out, trained_model_path), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= len(names) // 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(journal.read_text().splitlines())
    assert 0 < done_before < len(names), "killed halfway"
    assert not (out / "grades.csv").exists()
    resumed = subprocess.run(_cmd(submitted, out, trained_model_path), cwd=REPO, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "grades.csv").read_text() == (tmp_path / "clean" / "grades.csv").read_text()
    for sid in names:  # the grading part of the feedback to the byte; the notebook part as printed
        head = "<h2>Your notebook as graded</h2>"
        resumed_page = (out / "feedback" / f"{sid}.html").read_text().split(head)[0]
        assert resumed_page == (tmp_path / "clean" / "feedback" / f"{sid}.html").read_text().split(head)[0], sid
        if sid != "invalid_json":
            assert _printed_cells(out, sid) == _printed_cells(tmp_path / "clean", sid), sid
    assert _gradebook(out) == _gradebook(tmp_path / "clean")
    assert json.loads((out / "timings.json").read_text())["run"]["reused"] == done_before
    assert len(journal.read_text().splitlines()) == len(names), "the rerun graded only what was not finished"


def _printed_cells(out: Path, sid: str) -> list[str]:
    """What each cell printed, with object addresses masked (they differ between any two runs); progress
    bars (stderr: their rates and times differ too) left out."""
    nb = nbformat.read(out / "executed" / f"{sid}.ipynb", as_version=4)
    return [re.sub(r"0x[0-9a-f]+", "0x?", "".join(o.get("text", "") + o.get("evalue", "") for o in c.outputs
                                                  if o.get("name") != "stderr"))
            for c in nb.cells if c.cell_type == "code"]


def _gradebook(out: Path) -> dict:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{out / 'course' / 'gradebook.db'}") as gb:
        return {(s.student.id, g.name): g.score for s in gb.assignment_submissions("pruning")
                for nb in s.notebooks for g in nb.grades}


def test_without_namespaces_grading_refuses_unless_told(tmp_path, trained_model_path):
    write_class(tmp_path / "submitted", [s for s in load_samples() if s.name == "reference"])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))  # no bwrap on PATH
    refused = subprocess.run(_cmd(tmp_path / "submitted", tmp_path / "out", trained_model_path), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert "cannot sandbox student code here: bubblewrap is not installed" in refused.stderr
    assert "--no-sandbox" in refused.stderr and not (tmp_path / "out" / "grades.csv").exists()
    ran = subprocess.run(_cmd(tmp_path / "submitted", tmp_path / "out", trained_model_path, "--no-sandbox"),
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    row = rows(tmp_path / "out")["reference"]
    assert row["score"] == FULL and row["notes"] == "not sandboxed"
