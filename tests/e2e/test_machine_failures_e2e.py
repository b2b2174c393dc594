"""Failures of the grading machine made to happen for real, through ``python -m autograder grade``: none of them
becomes a grade or a journal line, the command's exit status says so, and a rerun grades what was left.

Each failure is made by :mod:`tests.faults` (the real sandbox, server, kernel or worker is broken; nothing is
faked), except the read-only ``--out``, which is a read-only bind mount. The class lives in paths that all
have spaces and a non-ASCII letter in them (submissions, output, model, data, the slots' ``TMPDIR``).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.runner.sandbox import sandbox_support
from autograder.samples import load_samples, write_class
from tests.conftest import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox_support() is not None, reason=f"no sandbox here: {sandbox_support()}")]

SAMPLES = ("reference", "untouched_release")
FULL = sum(read_points()[g] for g in CHECKS)


@pytest.fixture(scope="module")
def spaced_class(tmp_path_factory, trained_model_path):
    """A class whose every path has a space and a non-ASCII letter: submissions, model, data, and TMPDIR."""
    from helpers import get_CINIC10_data
    root = Path(tempfile.mkdtemp(prefix="course ü ", dir="/tmp"))  # short: the slots' socket paths live here
    subs = root / "sub mitted"
    write_class(subs, [s for s in load_samples() if s.name in SAMPLES])
    model = root / "model dir" / "pruning model.pt"
    model.parent.mkdir()
    shutil.copy(trained_model_path, model)
    data = root / "data dir" / "grading data.npz"
    data.parent.mkdir()
    np.savez(data, **get_CINIC10_data("synthetic", n_per_class=30, progress=False))
    tmpdir = root / "tmp dir"
    tmpdir.mkdir()
    yield root, subs, model, data, tmpdir
    shutil.rmtree(root, ignore_errors=True)


def grade(spaced, out: Path, *extra: str, fault: dict | None = None,
          wrap: list[str] = ()) -> subprocess.CompletedProcess:
    root, subs, model, data, tmpdir = spaced
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", TMPDIR=str(tmpdir),
               **(fault or {}))
    module = "tests.faults" if fault else "autograder"
    cmd = [*wrap, sys.executable, "-m", module, "grade", str(subs), "--data-root", str(data), "--model", str(model),
           "--out", str(out), "--jobs", "2", "--timeout", "300", "--cell-timeout", "60", "--per-class", "30", *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)


def rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", encoding="utf-8") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def journaled(out: Path) -> list[str]:
    path = out / "journal.jsonl"
    return [json.loads(line)["student_id"] for line in path.read_text().splitlines()] if path.exists() else []


def assert_expected(row: dict, name: str) -> None:
    sample = next(s for s in load_samples() if s.name == name)
    expected = sample.expected_points(read_points())
    assert row["score"] != "", (name, row)
    assert {g: float(row[g]) for g in CHECKS} == expected, (name, row)
    assert row["status"].startswith(sample.expect_status), (name, row)


def test_machine_failures_in_a_class_with_spaces_in_every_path_never_become_grades(spaced_class):
    root = spaced_class[0]
    out = root / "grading out ü"
    # 1. the reference's kernel server is killed just before its kernel is asked for: a kernel is started the
    #    usual way in the same sandbox; the untouched release's first kernel is killed as it starts: retried
    first = grade(spaced_class, out, fault={"PGRADE_FAULT": "kill-server:reference,kill-kernel:untouched_release"})
    assert first.returncode == 0, first.stderr[-3000:]
    assert "warm kernel unavailable" in first.stderr, first.stderr[-3000:]
    got = rows(out)
    for name in SAMPLES:
        assert_expected(got[name], name)
    timings = json.loads((out / "timings.json").read_text())
    assert timings["run"]["preflight"] > 0, "the preflight is reported"
    assert timings["run"]["slot_restarts"] >= 2, "the killed server was replaced, and the retry had a fresh one"
    tries = timings["students"]["untouched_release"]["machine_failures"]
    assert len(tries) == 1 and "the kernel stopped before any student code ran" in tries[0], tries
    assert "machine_failures" not in timings["students"]["reference"]

    # 2. every kernel of one submission is killed as it starts: not graded, no points, nothing journaled, status 3
    second = grade(spaced_class, out, "--regrade", fault={"PGRADE_FAULT": "kill-kernel:untouched_release:99"})
    assert second.returncode == 3, second.stderr[-3000:]
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 submissions NOT GRADED because of the grading machine"), last
    assert "untouched_release: the kernel stopped before any student code ran" in last and "(3 tries)" in last
    got = rows(out)
    missing = got["untouched_release"]
    assert missing["status"].startswith("not graded: ") and missing["score"] == ""
    assert all(missing[g] == "" for g in CHECKS), "no zeros for a failure of the machine"
    assert_expected(got["reference"], "reference")
    assert journaled(out) == ["reference"], "only the graded row is journaled"
    assert not (out / "feedback" / "untouched_release.html").exists()
    kept = dict(got["reference"])

    # 3. the cause removed, the same command grades what was left and reuses the rest unchanged
    third = grade(spaced_class, out)
    assert third.returncode == 0, third.stderr[-3000:]
    got = rows(out)
    assert_expected(got["untouched_release"], "untouched_release")
    assert got["reference"] == kept
    assert json.loads((out / "timings.json").read_text())["run"]["reused"] == 1

    # 4. --regrade with a student id grades that one again and reuses the other
    fourth = grade(spaced_class, out, "--regrade", "untouched_release")
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert rows(out) == got
    assert json.loads((out / "timings.json").read_text())["run"]["reused"] == 1


def test_a_sandbox_that_hides_the_interpreter_stops_before_any_row_and_names_the_cause(spaced_class):
    out = spaced_class[0] / "hidden out"
    done = grade(spaced_class, out, fault={"PGRADE_FAULT": "hide-python"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "cannot run a notebook, so nothing was graded" in done.stderr, done.stderr[-3000:]
    assert "execvp" in done.stderr and "the sandbox hides a file the kernel needs" in done.stderr, done.stderr[-3000:]
    assert not (out / "grades.csv").exists() and not journaled(out)
    assert not (out / "feedback").exists() or not any((out / "feedback").iterdir())


def test_kernels_without_their_limits_stop_the_run_before_any_row(spaced_class):
    out = spaced_class[0] / "unlimited out"
    done = grade(spaced_class, out, fault={"PGRADE_FAULT": "drop-limits"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "cannot run a notebook, so nothing was graded: the kernel does not run under the limits the grader set " \
           "(RLIMIT_CPU is -1, not" in done.stderr, done.stderr[-3000:]
    assert not (out / "grades.csv").exists() and not journaled(out)


def test_a_slot_folder_deleted_by_another_program_is_never_a_grade(spaced_class):
    """In the preflight: the run stops and says what deleted what; in a student's job: retried, then graded."""
    out = spaced_class[0] / "deleted out"
    stopped = grade(spaced_class, out, fault={"PGRADE_FAULT": "delete-slot::99"})
    assert stopped.returncode == 2, stopped.stderr[-3000:]
    assert "was deleted while the notebook ran, by another program" in stopped.stderr, stopped.stderr[-3000:]
    assert "TMPDIR" in stopped.stderr and not (out / "grades.csv").exists()
    done = grade(spaced_class, out, fault={"PGRADE_FAULT": "delete-slot:reference"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = rows(out)
    for name in SAMPLES:
        assert_expected(got[name], name)
    tries = json.loads((out / "timings.json").read_text())["students"]["reference"]["machine_failures"]
    assert len(tries) == 1 and "was deleted while the notebook ran" in tries[0], tries


def test_a_read_only_out_stops_before_anything_runs(spaced_class):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root for a read-only bind mount")
    out = spaced_class[0] / "read only out"
    out.mkdir()
    mount = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', str(out)]
    done = grade(spaced_class, out, wrap=mount)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"--out {out} cannot be written (Read-only file system)" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not any(out.iterdir())


# --- a stock Dask scheduler ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_course(how: str, what: str, *args: str) -> list[str]:
    """``python -m what args`` (``how`` ``-m``) or ``python -c what`` (``-c``) with the course venv's Python but without
    the checkout on ``sys.path`` (``make venv`` puts it there for the TA): a stock Dask environment."""
    run = f"runpy.run_module({what!r}, run_name='__main__', alter_sys=True)" if how == "-m" else what
    return [sys.executable, "-c", f"import runpy, sys; sys.path[:] = [p for p in sys.path if p != {str(REPO)!r}]; "
            f"sys.argv[1:] = {list(args)!r}; {run}"]


def test_a_stock_scheduler_grades_and_a_worker_killed_twice_costs_no_grade(spaced_class, tmp_path):
    """The scheduler is plain ``dask scheduler`` with no course code on its path (allowed-failures 1 through
    Dask's own configuration); a worker without the course code gets one line naming the command to start it;
    a submission whose worker is killed twice is not graded, and the rerun grades it."""
    pytest.importorskip("distributed")
    _, subs, model, data, tmpdir = spaced_class
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    plain["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
    plain["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"  # one task per worker thread (docs/cluster.md)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = subprocess.run(_without_course("-c", "import autograder"), cwd=outside, env=plain, capture_output=True)
    assert probe.returncode != 0, "the scheduler's Python must not reach the course code"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []

    def start(name, cmd, env, cwd):
        fh = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((proc, fh))
        return proc

    def grade_on_cluster(out):
        env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", TMPDIR=str(tmpdir))
        return subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--data-root", str(data),
                               "--model", str(model), "--out", str(out), "--timeout", "300", "--cell-timeout", "60",
                               "--per-class", "30", "--cluster", address], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=1500)
    try:
        start("scheduler", _without_course("-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                           "--port", str(port), "--no-dashboard"), plain, outside)
        # a worker started without the course code: one line, the command that starts one right, status 2
        bare = start("bare", _without_course("-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                             "--no-nanny", "--no-dashboard"), plain, outside)
        done = grade_on_cluster(tmp_path / "bare out")
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        message = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(message) == 1 and "cannot import the course's code" in message[0], done.stderr[-2000:]
        assert "--preload autograder.cluster.preload" in message[0]
        assert f"PYTHONPATH={shlex.quote(str(REPO))} " in message[0], message[0]  # a path with a space is quoted
        os.killpg(bare.pid, signal.SIGKILL)
        bare.wait()
        # workers with the course code, which die whenever they start grading untouched_release while MARK exists
        mark = tmp_path / "kill-untouched"
        mark.touch()
        env = dict(plain, PYTHONPATH=str(REPO), PGRADE_FAULT="kill-worker:untouched_release",
                   PGRADE_FAULT_MARK=str(mark), TMPDIR=str(tmpdir))
        for i in (1, 2):
            start(f"w{i}", [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                            "--no-dashboard", "--preload", "autograder.cluster.preload", "--preload", "tests.faults"],
                  env, outside)
        out = tmp_path / "cluster out"
        first = grade_on_cluster(out)
        assert first.returncode == 3, first.stderr[-3000:]
        got = rows(out)
        assert got["untouched_release"]["status"].startswith("not graded: the grading worker died while running this"
                                                             " notebook"), got["untouched_release"]
        assert got["untouched_release"]["score"] == ""
        assert_expected(got["reference"], "reference")
        assert journaled(out) == ["reference"]
        mark.unlink()  # the nannies have started new workers meanwhile
        second = grade_on_cluster(out)
        assert second.returncode == 0, second.stderr[-3000:]
        again = rows(out)
        assert_expected(again["untouched_release"], "untouched_release")
        assert again["reference"] == got["reference"]
    finally:
        for proc, fh in procs:  # a nanny and the worker it started are one process group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            fh.close()
