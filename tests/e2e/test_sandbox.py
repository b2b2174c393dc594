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

import csv
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.runner.sandbox import sandbox_support
from autograder.samples import Sample, load_samples, write_class
from tests.conftest import RELEASE_NB, REPO, SOURCE_NB

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox_support() is not None, reason=f"no sandbox here: {sandbox_support()}")]

#: The total score of a correct notebook, as grades.csv writes it.
FULL = f"{sum(read_points()[g] for g in CHECKS):g}"
MEMORY_LIMIT = "2G"  # a correct notebook (11 targets per part): 1.5 GiB peak RSS, torch included
PIDS_LIMIT = 200
PART1 = {g for g in CHECKS if "unstructured" in g}
PART2 = set(CHECKS) - PART1
MARKER = "pruning-sandbox-daemon-7f3a"


def _cmd(submitted: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(submitted), "--data-root", "synthetic",
            "--model", str(model), "--out", str(out), "--jobs", "2", "--timeout", "300", "--cell-timeout", "60",
            "--per-class", "50", "--memory-limit", MEMORY_LIMIT, "--pids-limit", str(PIDS_LIMIT), *extra]


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def _hashes(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def _attacks(submitted: Path, out: Path, port: int, grader_marker: Path) -> list[tuple[Sample, str]]:
    """(sample, the code appended to a solution cell) for each attack class."""
    ref = next(s for s in load_samples() if s.name == "reference").cells
    other = submitted / "control_a" / "pruning" / "pruning.ipynb"
    part2_end = {  # appended to prune_structured: part 1 is complete by then
        "attack_kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "attack_kill_parent": ("import os, signal\nfor pid in (os.getppid(), 1):\n"
                               "    for fn in (lambda: os.kill(pid, 9), lambda: os.killpg(os.getpgid(pid), 9)):\n"
                               "        try:\n            fn()\n        except OSError as e:\n"
                               "            print('refused', e)\n"),
        "attack_daemon": ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                          f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 6; echo forged,20 >> {out}/grades.csv', "
                          f"'{MARKER}'])\n    os._exit(0)\nos.wait()\n"),
        "attack_rewrite_files": (
            "import os\nwritten = []\n"
            f"for path in [{str(other)!r}, {str(SOURCE_NB)!r}, {str(RELEASE_NB)!r}]:\n"
            "    try:\n        open(path, 'a').write(' ')\n        written.append(path)\n"
            "    except OSError:\n        pass\n"
            "for top, dirs, files in os.walk('/'):\n"
            "    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ('/proc', '/sys', '/usr', '/dev')]\n"
            "    for f in files:\n        p = os.path.join(top, f)\n"
            "        if p.endswith('.ipynb') and not p.startswith(os.getcwd()):\n"
            "            try:\n                open(p, 'a').write(' ')\n                written.append(p)\n"
            "            except OSError:\n                pass\n"
            "print('WRITTEN:', written)\n"),
        "attack_network": ("import socket\ntry:\n"
                           f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hello')\n"
                           "    print('CONNECTED')\nexcept OSError as e:\n    print('no network:', e)\n"),
        "attack_memory": "hog = bytearray(3 * 1024**3)\n",
        "attack_process_flood": (
            "import os, time\nforked = 0\ntry:\n    for _ in range(2000):\n        if os.fork() == 0:\n"
            "            os.execv('/bin/sleep', ['sleep', '3'])\n        forked += 1\n"
            "except OSError as e:\n    print('fork refused after', forked, e)\n"
            "time.sleep(4)\nwhile True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break\n"),
        "attack_poisoned_export": (
            "import os, pickle\n"
            "class Evil:\n"
            f"    def __reduce__(self):\n        return (os.system, ('touch {grader_marker}',))\n"
            "def _poison(*args):\n"
            "    folder = os.environ.get('PRUNING_EXPORT_DIR')\n"
            "    if folder and os.path.isdir(folder):\n"
            "        for part in ('unstructured', 'structured'):\n"
            "            with open(os.path.join(folder, part + '.pt'), 'wb') as fh:\n"
            "                pickle.dump(Evil(), fh)\n"
            "get_ipython().events.register('post_run_cell', _poison)\n"),
    }
    read_answers = (
        "import os\nleaked = []\n"
        f"for path in [{str(SOURCE_NB)!r}, {str(other)!r}, {str(REPO / 'autograder/reference.py')!r}]:\n"
        "    try:\n        open(path).read()\n        leaked.append(path)\n    except OSError:\n        pass\n"
        f"for folder in [{str(submitted)!r}, {str(out)!r}]:\n"
        "    try:\n        os.listdir(folder)\n        leaked.append(folder)\n    except OSError:\n        pass\n"
        "if os.environ.get('GRADER_SECRET'):\n    leaked.append('environment')\n"
        "for path in ('/proc/1/environ', '/proc/1/mem'):\n"
        "    try:\n        open(path, 'rb').read(1)\n        leaked.append(path)\n    except OSError:\n        pass\n"
        "try:\n    from autograder.grading.solutions import prune_unstructured\n    leaked.append('import')\n"
        "except ImportError as e:\n    print(e)\nprint('LEAKED:', leaked)\n")
    expect = {"attack_memory": (PART2, "error: memory limit (2 GiB)"),
              # the poison replaces parts 1-2's exports; remove_filters itself is right, on the export's own models
              "attack_poisoned_export": (set(CHECKS) - {"test_removal_function"}, "ok"),
              "attack_read_answers": (set(CHECKS), "ok")}
    samples = [Sample(n, *expect.get(n, (set(), "ok")), cells={**ref, "prune_structured": ref["prune_structured"] + c})
               for n, c in part2_end.items()]
    samples.append(Sample("attack_read_answers", *expect["attack_read_answers"],
                          cells={"prune_unstructured": read_answers, "prune_structured": "pass\n"}))
    return samples


def _printed(out: Path, sid: str) -> str:
    nb = nbformat.read(out / "executed" / f"{sid}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _listener() -> tuple[socket.socket, list]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    got: list = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
                got.append(conn.recv(100))
            except socket.timeout:
                continue
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, got


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, trained_model_path):
    root = tmp_path_factory.mktemp("hostile")
    submitted, out, marker = root / "submitted", root / "out", root / "grader-was-hacked"
    server, received = _listener()
    controls = [Sample(n, set(), "ok", cells=next(s for s in load_samples() if s.name == "reference").cells)
                for n in ("control_a", "control_b")]
    samples = controls + _attacks(submitted, out, server.getsockname()[1], marker)
    write_class(submitted, samples)
    watched = sorted(submitted.rglob("*.ipynb")) + [SOURCE_NB, RELEASE_NB]
    before = _hashes(watched)
    proc = subprocess.run(_cmd(submitted, out, trained_model_path), cwd=REPO, capture_output=True, text=True,
                          timeout=1500, env=dict(os.environ, GRADER_SECRET="s3cret"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    csv_after_run = (out / "grades.csv").read_text()
    time.sleep(8)  # the daemon would have written by now
    server.close()
    return {"samples": samples, "rows": _rows(out), "out": out, "before": before, "after": _hashes(watched),
            "csv_after_run": csv_after_run, "received": received, "marker": marker, "proc": proc}


def test_controls_keep_full_marks_and_each_attack_gets_its_grade(hostile_class):
    rows, wrong = hostile_class["rows"], []
    for sample in hostile_class["samples"]:
        row = rows[sample.name]
        zero = {g for g in CHECKS if float(row[g]) == 0}
        if zero != sample.expect_zero or not row["status"].startswith(sample.expect_status):
            wrong.append(f"{sample.name}: zero {sorted(zero)} status {row['status']!r}; expected zero "
                         f"{sorted(sample.expect_zero)} status {sample.expect_status!r}")
    assert not wrong, "\n".join(wrong)
    assert rows["control_a"]["score"] == rows["control_b"]["score"] == FULL


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
    assert "WRITTEN: []" in _printed(out, "attack_rewrite_files")
    assert "LEAKED: []" in _printed(out, "attack_read_answers")
    assert "No module named 'autograder'" in _printed(out, "attack_read_answers")


def test_network_and_signals_do_not_leave_the_sandbox(hostile_class):
    out = hostile_class["out"]
    assert hostile_class["received"] == []
    assert "no network" in _printed(out, "attack_network")
    assert hostile_class["rows"]["attack_kill_parent"]["score"] == FULL
    # kill(-1) spares the caller and PID 1 (the slot's server): in the sandbox nobody else is there
    assert "ProcessLookupError" in (out / "executed" / "attack_kill_everything.ipynb").read_text()


def test_limits_are_named(hostile_class):
    rows = hostile_class["rows"]
    assert rows["attack_memory"]["status"] == "error: memory limit (2 GiB) exceeded"
    assert rows["attack_memory"]["score"] == "10", "part 1 finished before the limit and keeps its points"
    assert f"process limit ({PIDS_LIMIT}) reached" in rows["attack_process_flood"]["notes"]
    assert "fork refused after" in _printed(hostile_class["out"], "attack_process_flood")
    for sid, row in rows.items():
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
    import json
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
    row = _rows(tmp_path / "out")["reference"]
    assert row["score"] == FULL and row["notes"] == "not sandboxed"
