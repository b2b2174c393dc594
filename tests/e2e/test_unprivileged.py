"""Grading as an ordinary user, as most TAs do: no cgroups, the sandbox and warm kernels as the default command
makes them, rlimits for memory, processes and CPU time.

The test makes a user (CI runs as root: ``useradd``), copies the course into that user's home (a folder with a
space in its name), runs ``make venv`` there as that user, as a TA would (Debian's ``python3``: root's Python is
out of the user's reach), and grades, as that user and from that copy, a correct notebook beside hostile ones:
one that allocates past ``--memory-limit``, a fork flood, one that reads hidden files, one that connects to a local
server, two that vandalise their own folder. Root grades the same notebooks: points and statuses must be the same.
Then the grader runs in a cgroup given to the user (what systemd's ``Delegate=yes`` does; here on cgroup v1, with
the folders chowned to the user), finds it and limits with it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.runner.sandbox import sandbox_support
from autograder.samples import write_class
from tests.conftest import REPO
from tests.hostile import attacks, controls, listener, printed, rows, wrong_rows

USER = "pruning-ta"
FULL = f"{sum(read_points()[g] for g in CHECKS):g}"
MEMORY_LIMIT, PIDS_LIMIT = "2G", 200
#: The attacks graded as the user: hidden files, network, the limits and the job folder's modes (the rest need
#: root's view of the machine, and run in test_sandbox.py).
ATTACKS = ("attack_read_answers", "attack_network", "attack_memory", "attack_process_flood",
           "attack_modes_and_links", "attack_delete_folder")


#: What this machine's own set-up passes to every user (pip's settings, its certificates): kept for the user.
_MACHINE = ("PIP_CERT", "PIP_FIND_LINKS", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
            "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "making a user needs root (CI is root)"
    missing = [tool for tool in ("useradd", "runuser", "make", "git") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    if not Path("/usr/bin/python3").exists():
        return "no system python3 for the user's virtual environment"
    return sandbox_support()


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_why_not() is not None, reason=f"{_why_not()}")]


def _chown(path: Path, user: pwd.struct_passwd) -> None:
    for top, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            os.lchown(os.path.join(top, name), user.pw_uid, user.pw_gid)


def as_user(ta: dict, *cmd: str, cwd: Path, timeout: float = 900, prefix: tuple[str, ...] = ()) \
        -> subprocess.CompletedProcess:
    """``cmd`` run as the test's user with a TA's plain environment (and a secret the kernels must not see);
    ``prefix``: a command run as root first, which then ``exec``s ``runuser``."""
    env = ["env", "-i", f"HOME={ta['home']}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "GRADER_SECRET=s3cret",
           *(f"{k}={v}" for k, v in os.environ.items() if k in _MACHINE or k.lower().endswith("_proxy"))]
    return subprocess.run([*prefix, "runuser", "-u", USER, "--", *env, *cmd], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ta() -> dict:
    """The user, and their own copy of the course with its virtual environment (kept between runs)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    user = pwd.getpwnam(USER)
    home = Path(user.pw_dir)
    course = home / "pruning course"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (course / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, course / name)  # times kept: make reinstalls only when pyproject.toml changed
    _chown(home, user)
    info = {"user": user, "home": home, "course": course}
    made = as_user(info, "make", "venv", cwd=course, timeout=1800)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    return info


def _grade(python: str, submitted: Path, model: Path, out: Path) -> list[str]:
    return [python, "-m", "autograder", "grade", str(submitted), "--data-root", "synthetic", "--model", str(model),
            "--out", str(out), "--jobs", "2", "--timeout", "300", "--cell-timeout", "60", "--per-class", "50",
            "--memory-limit", MEMORY_LIMIT, "--pids-limit", str(PIDS_LIMIT)]


@pytest.fixture(scope="module")
def graded(ta, trained_model_path, tmp_path_factory) -> dict:
    """The class graded by the user, then by root, from the same files."""
    work = ta["home"] / "grading run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    model, submitted, out = work / "model.pt", work / "submitted", work / "out"
    shutil.copy(trained_model_path, model)
    grader_file = work / "grader-file"
    grader_file.write_text("the user's own")
    server, received = listener()
    samples = controls("control_a") + [s for s in attacks(ta["course"], submitted, out, server.getsockname()[1],
                                                          work / "grader-was-hacked", grader_file, MEMORY_LIMIT)
                                       if s.name in ATTACKS]
    write_class(submitted, samples)
    _chown(work, ta["user"])
    grader_file.chmod(0o400)
    run = as_user(ta, *_grade(".venv/bin/python", submitted, model, out), cwd=ta["course"])
    server.close()
    leftovers = subprocess.run(["pgrep", "-u", USER], capture_output=True, text=True).stdout.split()
    still_forks = as_user(ta, "sh", "-c", "true & wait", cwd=ta["home"], timeout=60).returncode
    root_out = tmp_path_factory.mktemp("as-root") / "out"
    as_root = subprocess.run(_grade(sys.executable, submitted, model, root_out), cwd=REPO, capture_output=True,
                             text=True, timeout=900)
    return {"run": run, "out": out, "samples": samples, "received": received, "grader_file": grader_file,
            "leftovers": leftovers, "still_forks": still_forks, "as_root": as_root, "root_out": root_out}


def test_the_default_command_grades_as_an_ordinary_user_and_says_which_limits_hold(graded):
    run = graded["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    first, note = run.stdout.splitlines()[:2]
    assert first.startswith("limits (rlimits): memory 2 GiB per notebook (address space"), first
    assert f"{PIDS_LIMIT} processes and threads" in first and "s of CPU time per kernel process" in first
    assert note.startswith("note: no cgroup limits here (") and "systemd-run --user --scope -p Delegate=yes" in note
    limits = json.loads((graded["out"] / "timings.json").read_text())["run"]["limits"]
    assert limits["mechanism"] == "rlimits" and limits["memory"] == 2 * 1024**3 and limits["processes"] == PIDS_LIMIT


def test_each_row_has_the_points_and_status_it_declares(graded):
    found = rows(graded["out"])
    assert not wrong_rows(found, graded["samples"]), "\n".join(wrong_rows(found, graded["samples"]))
    assert found["control_a"]["score"] == FULL and found["control_a"]["notes"] == ""


def test_root_gives_the_same_points_and_statuses(graded):
    assert graded["as_root"].returncode == 0, graded["as_root"].stderr[-3000:]
    mine, roots = rows(graded["out"]), rows(graded["root_out"])
    keys = ["score", "status", *CHECKS]
    assert {sid: [r[k] for k in keys] for sid, r in mine.items()} == \
        {sid: [r[k] for k in keys] for sid, r in roots.items()}


def test_limits_stop_only_their_own_notebook_and_are_named(graded):
    found = rows(graded["out"])
    memory = found["attack_memory"]
    assert memory["status"] == "error: memory limit (2 GiB) exceeded" and memory["score"] == "10"
    assert "went past the memory limit (the kernel's address space)" in memory["notes"]
    flood = found["attack_process_flood"]
    assert flood["score"] == FULL and f"process limit ({PIDS_LIMIT}) reached in prune_structured" in flood["notes"]
    assert "fork refused after" in printed(graded["out"], "attack_process_flood")
    assert graded["leftovers"] == [], "no process of the user outlives the run"
    assert graded["still_forks"] == 0, "the user can still start processes"


def test_hidden_files_secrets_and_the_network_stay_out_of_reach(graded):
    out = graded["out"]
    assert "LEAKED: []" in printed(out, "attack_read_answers")
    assert "No module named 'autograder'" in printed(out, "attack_read_answers")
    assert "no network" in printed(out, "attack_network") and graded["received"] == []


def test_a_vandalised_job_folder_costs_the_grader_nothing(graded):
    found = rows(graded["out"])
    assert found["attack_modes_and_links"]["score"] == FULL
    assert graded["grader_file"].stat().st_mode & 0o777 == 0o400
    assert "deleted its own folder" in found["attack_delete_folder"]["notes"]


def _own_v1_cgroups() -> dict[str, Path] | None:
    """This process's memory and pids cgroup folders on cgroup v1, or ``None`` (another layout)."""
    mounts = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, where, fstype, opts, *_ = line.split()
        for controller in ("memory", "pids"):
            if fstype == "cgroup" and controller in opts.split(","):
                mounts[controller] = where
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _n, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller in mounts:
                own[controller] = Path(mounts[controller] + path)
    return own if set(own) == {"memory", "pids"} else None


def test_a_cgroup_given_to_the_user_is_found_and_used(ta, trained_model_path):
    own = _own_v1_cgroups()
    if own is None:
        pytest.skip("the delegated cgroup is made here on cgroup v1 (memory and pids hierarchies)")
    delegated = {c: path / f"{USER}-delegated" for c, path in own.items()}
    work = ta["home"] / "delegated run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    samples = controls("control_a") + [s for s in attacks(ta["course"], work / "submitted", work / "out", 9,
                                                          work / "marker", work / "file", MEMORY_LIMIT)
                                       if s.name == "attack_memory"]
    write_class(work / "submitted", samples)
    shutil.copy(trained_model_path, work / "model.pt")
    _chown(work, ta["user"])
    try:
        for folder in delegated.values():
            folder.mkdir(exist_ok=True)
            for path in (folder, folder / "cgroup.procs", folder / "tasks"):
                os.chown(path, ta["user"].pw_uid, ta["user"].pw_gid)  # as systemd's Delegate=yes does
        join = "".join(f'echo $$ > "{folder / "cgroup.procs"}"; ' for folder in delegated.values())
        run = as_user(ta, *_grade(".venv/bin/python", work / "submitted", work / "model.pt", work / "out"),
                      cwd=ta["course"], prefix=("sh", "-c", join + 'exec "$@"', "sh"))
    finally:
        for folder in delegated.values():
            folder.rmdir()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.splitlines()[0].startswith("limits (cgroup v1): memory 2 GiB per notebook (resident memory")
    found = rows(work / "out")
    assert not wrong_rows(found, samples), "\n".join(wrong_rows(found, samples))
    assert found["attack_memory"]["notes"] == "", "the cgroup stopped it, not an address-space limit"
