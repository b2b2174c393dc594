"""A failure of the grading machine is never a grade (fast part: decisions, no kernels).

Where the line is drawn: up to the last instructor set-up cell only the grader's and the instructor's
code runs, so a kernel that dies or a set-up cell that fails there is the machine's; from the first
student cell on, what happens is the student's. The slow, end-to-end half (each failure made to happen
for real through ``python -m autograder grade``) is in ``test_machine_failures_e2e.py``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import nbformat
import pytest

from autograder.config import GradeConfig
from autograder.grading.notebook_job import preamble_failure
from autograder.grading.preflight import PREFLIGHT_MARK, preflight_notebook
from autograder.grading.report import summary_table, write_csv
from autograder.grading.results import CheckResult, StudentGrade, not_graded, not_graded_summary
from autograder.grading.submission import PREAMBLE_CELLS, SEED_CELL, preamble_end, prepare_notebook
from autograder.runner.sandbox import Sandbox, sandbox_support
from tests.conftest import REPO
from tests.notebooks import grade_id


def _executed(nb, upto: int | None, error_in: str | None = None):
    """``nb`` as if executed: cells up to index ``upto`` ran (with an error output in ``error_in``)."""
    nb = nbformat.from_dict(nbformat.validator.json.loads(nbformat.writes(nb)))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if upto is not None and i <= upto:
            cell.execution_count = i + 1
            if error_in is not None and grade_id(cell) == error_in:
                cell.outputs = [nbformat.v4.new_output("error", ename="ModuleNotFoundError",
                                                       evalue="No module named 'helpers'", traceback=[])]
    return nb


# --- where the student's part begins ------------------------------------------------------------------------

def test_student_code_above_the_set_up_runs_after_it(source, release):
    """The editable paths cell (and any code a student puts at the top) runs after the set-up cells, so it can
    neither change the grader's data and model paths nor make the set-up fail."""
    release.cells.insert(0, nbformat.v4.new_code_cell("import os; os._exit(1)  # top of the notebook"))
    nb, notes = prepare_notebook(release, source)
    end = preamble_end(nb)
    assert grade_id(nb.cells[end]) == "load" and nb.cells[0].source == SEED_CELL
    setup = [c for c in nb.cells[:end + 1] if c.cell_type == "code"]
    assert all(grade_id(c) in PREAMBLE_CELLS or c.source == SEED_CELL for c in setup)
    moved = [c.source for c in nb.cells[end + 1:end + 3]]
    assert moved[0].startswith("import os; os._exit(1)") and "DATA_PATH = None" in moved[1]
    assert not [n for n in notes if "paths" in n.lower()], "moving the paths cell is not a note for the student"


def test_a_run_that_stops_in_the_set_up_is_the_machines(source, release):
    nb, _ = prepare_notebook(release, source)
    end = preamble_end(nb)
    never = preamble_failure(_executed(nb, None), "error: RuntimeError: Kernel died before replying to kernel_info")
    assert never.startswith("the kernel stopped before any student code ran, in the seed cell (the kernel did not")
    half = preamble_failure(_executed(nb, end - 1), "error: the kernel died (did the notebook exit?)")
    assert "before any student code ran, in load" in half
    failed = preamble_failure(_executed(nb, end, error_in="setup"), "ok")
    assert failed == ("the instructor's set-up cell setup failed before any student code ran: "
                      "ModuleNotFoundError: No module named 'helpers'")
    timeout = preamble_failure(_executed(nb, 2), "timeout")
    assert timeout.endswith("(status timeout: timeout)")


def test_a_run_that_stops_after_the_set_up_is_the_students(source, release):
    nb, _ = prepare_notebook(release, source)
    end = preamble_end(nb)
    assert preamble_failure(_executed(nb, end), "error: the kernel died (did the notebook exit?)") is None
    assert preamble_failure(_executed(nb, len(nb.cells)), "ok") is None


def test_the_preflight_notebook_is_the_set_up_and_one_check(source):
    nb = preflight_notebook(source)
    assert nb.cells[0].source == SEED_CELL
    assert [grade_id(c) for c in nb.cells[1:-1]] == list(PREAMBLE_CELLS)
    assert PREFLIGHT_MARK in nb.cells[-1].source and "import helpers, torch" in nb.cells[-1].source
    assert all(not c.outputs and c.execution_count is None for c in nb.cells)
    assert not any("BEGIN SOLUTION" in c.source for c in nb.cells)


# --- a row that was not graded ------------------------------------------------------------------------------

def test_a_row_not_graded_has_no_points_and_says_why_in_one_line(tmp_path):
    graded = StudentGrade("alice", "ok", [CheckResult("test_a", 0.0, 4.0, ["wrong"]),
                                          CheckResult("test_b", 2.0, 2.0, [])])
    missing = not_graded("bob", "the kernel stopped\nbefore any student code ran")
    assert not missing.graded and graded.graded and missing.checks == []
    assert missing.status == "not graded: the kernel stopped before any student code ran"
    write_csv(tmp_path / "grades.csv", [graded, missing], ["test_a", "test_b"], 6.0)
    with open(tmp_path / "grades.csv") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert rows["alice"]["score"] == "2" and rows["alice"]["test_a"] == "0"
    assert rows["bob"]["score"] == "" and rows["bob"]["test_a"] == "" and rows["bob"]["test_b"] == ""
    table = summary_table([graded, missing], ["test_a", "test_b"], 6.0)
    assert "bob" in table and "-/6" in table and "not graded: the kernel stopped" in table
    summary = not_graded_summary([graded, missing])
    assert summary.startswith("1 of 2 submissions NOT GRADED because of the grading machine")
    assert "bob: the kernel stopped before any student code ran" in summary
    assert not_graded_summary([graded]) is None


# --- regrading some students -----------------------------------------------------------------------------

def test_regrade_takes_student_ids_or_statuses(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "m.pt").write_bytes(b"x")

    def cfg(**kw):
        return GradeConfig(submissions=tmp_path / "subs", data_root="synthetic", model=tmp_path / "m.pt",
                           out=tmp_path / "out", **kw)
    assert cfg(regrade=True).must_regrade("alice", "ok")
    assert not cfg().must_regrade("alice", "error: x")
    some = cfg(regrade="alice, bob")
    assert some.regrade == ("alice", "bob") and some.must_regrade("bob", "ok") and not some.must_regrade("carol", "ok")
    failed = cfg(regrade_status="error,timeout")
    assert failed.must_regrade("x", "error: the kernel died") and failed.must_regrade("x", "timeout")
    assert not failed.must_regrade("x", "ok")
    with pytest.raises(ValueError, match="--regrade-status takes ok, error, timeout"):
        cfg(regrade_status="eror")


# --- the sandbox shows the course wherever it is installed ------------------------------------------------

needs_sandbox = pytest.mark.skipif(sandbox_support() is not None, reason=f"no sandbox here: {sandbox_support()}")


@needs_sandbox
def test_the_sandbox_shows_folders_under_tmp_and_by_their_symlinked_names(tmp_path):
    """A package folder under /tmp (where the sandbox mounts its private /tmp) and one reached through a
    symbolic link (``~/course -> /data/course``) are both visible inside, by the names given."""
    assert str(tmp_path).startswith("/tmp/")
    real = tmp_path / "real course ü" / "pkg_tmp"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("WHERE = 'under /tmp'\n")
    link = tmp_path / "linked course"
    link.symlink_to(tmp_path / "real course ü")
    slot = tmp_path / "slot"
    slot.mkdir()
    sandbox = Sandbox.build([], packages=[link / "pkg_tmp"])
    assert sandbox.pythonpath == str(link)
    code = "import pkg_tmp, sys; print(pkg_tmp.WHERE, pkg_tmp.__file__, sys.executable, sep='|')"
    cmd = sandbox.command([sys.executable, "-c", code], slot, {"PATH": "/usr/bin", "PYTHONPATH": sandbox.pythonpath})
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split("|") == ["under /tmp", str(link / "pkg_tmp" / "__init__.py"), sys.executable]


@needs_sandbox
def test_the_sandbox_still_hides_what_is_hidden_under_tmp(tmp_path):
    secret = tmp_path / "submissions"
    secret.mkdir()
    (secret / "other.ipynb").write_text("{}")
    slot = tmp_path / "slot"
    slot.mkdir()
    sandbox = Sandbox.build([secret])
    cmd = sandbox.command([sys.executable, "-c", f"import os; print(os.path.exists({str(secret)!r}))"], slot,
                          {"PATH": "/usr/bin"})
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


# --- bad arguments: one sentence and exit status 2 ---------------------------------------------------------

def _grade(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_bad_arguments_get_one_sentence_and_status_2_never_a_traceback(tmp_path, trained_model_path):
    import random

    from autograder.samples import load_samples, write_class
    subs = tmp_path / "submitted"
    write_class(subs, [s for s in load_samples() if s.name == "reference"])
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_bytes(random.Random(0).randbytes(4096))
    text_model = tmp_path / "model.txt"
    text_model.write_text("a checkpoint, honestly\n")
    cases = {
        "empty submissions": ([str(empty), "--data-root", "synthetic", "--model", str(trained_model_path)],
                              "no submissions in"),
        "missing submissions": ([str(tmp_path / "nope"), "--data-root", "synthetic", "--model",
                                 str(trained_model_path)], "does not exist"),
        "random bytes as model": ([str(subs), "--data-root", "synthetic", "--model", str(not_a_model)],
                                  f"--model {not_a_model} cannot be used"),
        "text as model": ([str(subs), "--data-root", "synthetic", "--model", str(text_model)],
                          "is not a readable torch checkpoint"),
        "missing model": ([str(subs), "--data-root", "synthetic", "--model", str(tmp_path / "no.pt")],
                          "does not exist"),
        "missing data": ([str(subs), "--data-root", str(tmp_path / "no-data"), "--model", str(trained_model_path)],
                         "--data-root"),
        "data that is not data": ([str(subs), "--data-root", str(text_model), "--model", str(trained_model_path)],
                                  "--data-root"),
        "zero jobs": ([str(subs), "--data-root", "synthetic", "--model", str(trained_model_path), "--jobs", "0"],
                      "--jobs must be at least 1"),
        "bad memory": ([str(subs), "--data-root", "synthetic", "--model", str(trained_model_path), "--memory-limit",
                        "lots"], "is not a size"),
        "bad status": ([str(subs), "--data-root", "synthetic", "--model", str(trained_model_path),
                        "--regrade-status", "failed"], "--regrade-status takes"),
        "bad cluster": ([str(subs), "--data-root", "synthetic", "--model", str(trained_model_path), "--cluster",
                         "local:two"], "--cluster local:N"),
    }
    for name, (args, expected) in cases.items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        done = _grade([*args, "--out", str(out), "--per-class", "5"])
        assert done.returncode == 2, f"{name}: status {done.returncode}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, f"{name}:\n{done.stderr[-3000:]}"
        assert expected in done.stderr, f"{name}: {done.stderr[-1500:]}"
        assert not (out / "grades.csv").exists() and not (out / "journal.jsonl").exists(), name


def test_fuzzed_arguments_stop_with_status_2_and_one_message_never_a_traceback(tmp_path, capsys):
    """Random bad values for every option that takes one (seeded): each call ends in argparse's status 2 with
    one ``error:`` line, before anything runs; none raises anything else."""
    import random

    from autograder.cli import main
    subs = tmp_path / "subs"
    subs.mkdir()
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    bad = {"--jobs": ["0", "-3", "two", "1.5", ""], "--timeout": ["0", "-1", "nan", "inf", "soon", ""],
           "--cell-timeout": ["0", "-5", "nan", "x"], "--per-class": ["0", "-1", "many"],
           "--memory-limit": ["lots", "0", "12Q", "-4G", "1K"], "--pids-limit": ["0", "8", "x"],
           "--threads": ["0", "-2", "x"], "--cluster": ["local:0", "local:x", "nothing"],
           "--regrade-status": ["failed", "error,oops"], "--device": ["gpu", "cuda:x", "tpu"]}
    rng = random.Random(30)
    for _ in range(60):
        option = rng.choice(sorted(bad))
        value = rng.choice(bad[option])
        argv = ["grade", str(subs), "--data-root", "synthetic", "--model", str(model), "--out", str(tmp_path / "o"),
                f"{option}={value}"]
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2, (argv, err)
        assert [line for line in err.splitlines() if line.startswith(("python -m autograder grade: error:",
                                                                     "usage:"))], (argv, err)
        assert "Traceback" not in err and not (tmp_path / "o").exists(), (argv, err)


def test_a_slot_limit_can_be_armed_again_higher_or_lower():
    """A slot whose kernel server restarted arms its memory limit again from its new usage; cgroup v1 refused a
    limit above the last swap limit (EINVAL), and the slot then lost its warm kernels for the rest of the run."""
    from autograder.runner.cgroups import CgroupUnavailable, SlotCgroup
    try:
        limits = SlotCgroup.create(f"pruning-grader-test-{os.getpid()}", 200 * 1024**2, 64)
    except (CgroupUnavailable, OSError) as exc:
        pytest.skip(f"no cgroups here: {exc}")
    try:
        for memory in (200, 400, 100):
            limits.memory = memory * 1024**2
            assert limits.arm() == memory * 1024**2  # nothing runs in it: usage 0
            name = "memory.max" if limits.version == 2 else "memory.limit_in_bytes"
            assert limits._read("memory", name).strip() == str(memory * 1024**2)
    finally:
        limits.close()
