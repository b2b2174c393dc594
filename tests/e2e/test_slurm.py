"""``--cluster slurm`` against a real SLURM controller and node started on this machine (:mod:`tests.slurm`).

The demo's class is graded by two worker jobs that dask-jobqueue submits with ``sbatch``: every sample gets the
grade it declares and no job is left in the queue. In a second run one worker job is cancelled with ``scancel``
mid-run: its submission is graded by the other worker or its row says ``not graded``, never a wrong grade; and
while the run goes on, a client without the run's certificate is refused by its scheduler.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.demo import DEMO_SAMPLES
from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.samples import load_samples, write_class
from tests.conftest import REPO
from tests.slurm import slurm_cluster, squeue, why_not

pytestmark = [pytest.mark.slow, pytest.mark.skipif(why_not() is not None, reason=str(why_not()))]

JOBQUEUE = """jobqueue:
  slurm:
    cores: 1
    memory: 6GB
    processes: 1
    queue: debug
    walltime: "00:30:00"
    local-directory: {scratch}
    scheduler-options:
      host: 127.0.0.1
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    cluster = Path(tempfile.mkdtemp(prefix="pgrade-slurm-", dir="/tmp"))  # munged: every folder above its socket o+x
    with slurm_cluster(cluster) as env:
        (root / "dask").mkdir()
        (root / "dask" / "jobqueue.yaml").write_text(JOBQUEUE.format(scratch=root / "scratch"))
        yield dict(env, DASK_CONFIG=str(root / "dask"),
                   PATH=f"{os.path.dirname(sys.executable)}:{env['PATH']}"), root
    shutil.rmtree(cluster, ignore_errors=True)


@pytest.fixture(scope="module")
def demo_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm-class")
    samples = [s for s in load_samples() if s.name in DEMO_SAMPLES]
    write_class(root / "submitted", samples)
    return samples, root / "submitted"


def _command(submitted, out, model):
    return [sys.executable, "-m", "autograder", "grade", str(submitted), "--data-root", "synthetic", "--model",
            str(model), "--out", str(out), "--cluster", "slurm", "--workers", "2", "--worker-wait", "300",
            "--timeout", "300", "--cell-timeout", "40", "--per-class", "50"]


def _rows(out):
    with open(out / "grades.csv") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def _wrong(samples, rows, allow_not_graded=False):
    points, wrong = read_points(), []
    for sample in samples:
        row = rows[sample.name]
        if allow_not_graded and row["status"].startswith("not graded"):
            continue
        got = {gid: float(row[gid]) for gid in CHECKS}
        if got != sample.expected_points(points) or not row["status"].startswith(sample.expect_status):
            wrong.append(f"{sample.name}: {got} {row['status']}")
    return wrong


def test_the_demo_class_is_graded_by_slurm_jobs_and_no_job_is_left(slurm, demo_class, trained_model_path, tmp_path):
    env, _ = slurm
    samples, submitted = demo_class
    done = subprocess.run(_command(submitted, tmp_path / "out", trained_model_path), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "slurm: asked for 2 worker jobs (TLS" in done.stdout
    assert re.search(r"slurm: \d of 2 workers running, \d queued", done.stdout)
    assert not _wrong(samples, _rows(tmp_path / "out"))
    assert squeue(env) == []
    # each worker set its limits from its own job's memory (6 GB asked for), not from the grading machine's
    assert "memory 4.5 GiB per notebook" in done.stdout, done.stdout[:3000]
    leftovers = [p.name for p in (tmp_path / "out" / "cluster").iterdir() if p.name.startswith(".dask-jobqueue")]
    assert leftovers == []  # the run's certificate files went with it


def test_a_cancelled_worker_job_costs_no_grade_and_strangers_are_refused(slurm, demo_class, trained_model_path,
                                                                         tmp_path):
    from distributed import Client
    from distributed.security import Security
    env, _ = slurm
    samples, submitted = demo_class
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(submitted, out, trained_model_path), cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        journal = out / "journal.jsonl"
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 2 and len(squeue(env)) == 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "still grading"
        jobs = squeue(env)
        subprocess.run(["scancel", jobs[0]], env=env, check=True)
        scheduler = re.search(r"scheduler (tls://[\d.]+:\d+)", (out / "cluster" / "scheduler").read_text()).group(1)
        # another user's client: its own certificate (not signed by this run's), or none over plain TCP
        for address, security in ((scheduler, Security.temporary()), (scheduler.replace("tls://", "tcp://"), None)):
            with pytest.raises((OSError, TimeoutError)):
                Client(address, security=security, timeout=5)
        stdout, stderr = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:  # a failed assertion above: no grader left running
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 3), stdout[-3000:] + stderr[-3000:]
    rows = _rows(out)
    assert set(rows) == {s.name for s in samples}
    assert not _wrong(samples, rows, allow_not_graded=True)
    assert squeue(env) == []
