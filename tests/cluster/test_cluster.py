"""Fast tests of grading on a Dask cluster: the address, a worker's refusals and preparation, the shared store.

Grading a class on a cluster end to end (``local:2``, and across network namespaces with a
worker killed) is in ``tests/e2e/test_grading_app.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from concurrent.futures import Future
from types import SimpleNamespace

import pytest

from autograder.config import GradeConfig, local_workers


def test_cluster_addresses_are_parsed_and_local_sets_the_jobs(tmp_path):
    assert local_workers("local:3") == 3
    assert local_workers("tcp://10.0.0.1:8786") is None and local_workers("scheduler:8786") is None
    for bad, why in (("local:0", "--cluster local:N needs N workers, a whole number of at least 1; got 'local:0'"),
                     ("local:two", "--cluster local:N needs N workers, a whole number of at least 1; got 'local:two'"),
                     ("scheduler", "--cluster must be a scheduler address like tcp://host:8786, local:N or a batch "
                                   "scheduler (slurm, pbs, sge, lsf, htcondor, oar), got 'scheduler'")):
        with pytest.raises(ValueError) as err:
            local_workers(bad)
        assert str(err.value) == why
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    cfg = GradeConfig(submissions=tmp_path, data_root="synthetic", model=model, out=tmp_path / "out", jobs=1,
                      cluster=" local:2 ")
    assert (cfg.cluster, cfg.jobs) == ("local:2", 2)
    # Local grading never reaches for the cluster (grading sits below it): the command line picks which.
    from autograder.grading.local import LocalSlots
    with pytest.raises(ValueError, match="grade on a cluster with autograder.cluster.client.DaskCluster.open"):
        LocalSlots.open(cfg)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="^--threads must be at least 1, got 0$"):
        GradeConfig(submissions=tmp_path, data_root="synthetic", model=model, out=tmp_path / "out", threads=0)
    assert GradeConfig(submissions=tmp_path, data_root="synthetic", model=model, out=tmp_path / "o",
                       threads=3).threads_per_job == 3


def _plugin(code=None, files=None, sha=None):
    from autograder.cluster.worker import GradingPlugin, code_digest
    files = files or {"model.pt": b"model", "data.npz": b"data"}
    sha = sha or {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    return GradingPlugin({}, files, sha, code or code_digest(), "pgrade-test")


def test_a_worker_with_other_course_code_refuses_and_says_so():
    from autograder.cluster.worker import WorkerMismatch
    plugin = _plugin(code="0" * 64)
    worker = SimpleNamespace(address="tcp://10.0.0.2:4000", state=SimpleNamespace(nthreads=1))
    with pytest.raises(WorkerMismatch) as err:
        asyncio.run(plugin.setup(worker))
    assert str(err.value) == ("worker tcp://10.0.0.2:4000 has other course code than the grader (helpers/, "
                              "autograder/ or the source notebook differ); update its checkout")
    assert plugin.jobs is None


def test_a_worker_refuses_data_that_arrived_damaged_and_leaves_nothing_behind():
    from autograder.cluster.worker import WorkerMismatch
    plugin = _plugin(sha={"model.pt": hashlib.sha256(b"model").hexdigest(), "data.npz": "f" * 64})
    worker = SimpleNamespace(address="tcp://10.0.0.2:4000", state=SimpleNamespace(nthreads=1))
    with pytest.raises(WorkerMismatch, match=r"^data\.npz arrived damaged \(SHA-256 differs from the grader's\)$"):
        asyncio.run(plugin.setup(worker))
    assert plugin.jobs is None and plugin._folder is None


def test_the_code_digest_covers_the_grading_code(tmp_path, monkeypatch):
    from autograder.cluster import worker
    for rel in ("helpers/a.py", "autograder/grading/b.py", "assignment/source/pruning/pruning.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    monkeypatch.setattr(worker, "REPO_ROOT", tmp_path)
    first = worker.code_digest()
    assert worker.code_digest() == first
    (tmp_path / "autograder/grading/b.py").write_text("x = 2\n")
    assert worker.code_digest() != first
    (tmp_path / "autograder/grading/b.py").write_text("x = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/t.py").write_text("anything\n")  # not grading code
    assert worker.code_digest() == first


def test_a_lost_scheduler_stops_the_run_and_keeps_every_finished_grade(tmp_path):
    """The grader's side of a lost cluster: the submission in flight gets no row and no journal line,
    the finished ones are journaled, and the run stops with what to do."""
    from concurrent.futures import CancelledError, Future

    from autograder.cluster import ClusterLost
    from autograder.cluster.client import DaskCluster
    from autograder.grading.batch import _run_all
    from autograder.grading.gradebook import read_points
    from autograder.grading.jobs import JobContext, RunState, zero_checks
    from autograder.grading.journal import Journal
    from autograder.grading.results import StudentGrade
    from autograder.grading.submission import Submission

    class LostClient:  # what a Dask client's future does once the scheduler is gone
        scheduler = SimpleNamespace(address="tcp://10.0.0.1:8786")

        def submit(self, *args, **kwargs):
            future = Future()
            future.set_exception(CancelledError("grade-s2 cancelled for reason: scheduler-connection-lost."))
            return future

    cluster = DaskCluster(LostClient())
    points = read_points()

    def scorer(sub, nb_bytes, jobs):
        if sub.student_id == "s2":
            return cluster.score(sub, nb_bytes, jobs)
        return StudentGrade(sub.student_id, "ok", zero_checks(points, "nothing done"))

    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    cfg = GradeConfig(submissions=tmp_path, data_root="synthetic", model=model, out=tmp_path / "out")
    (tmp_path / "out" / "executed").mkdir(parents=True)
    subs = []
    for sid in ("s1", "s2", "s3"):
        (tmp_path / f"{sid}.ipynb").write_text("{}")
        subs.append(Submission(sid, tmp_path / f"{sid}.ipynb"))
    course = Future()
    course.set_exception(RuntimeError("no gradebook in this test"))
    journal = Journal(tmp_path / "out" / "journal.jsonl")
    ref = Future()
    ref.set_result(SimpleNamespace(measurements=lambda: None))  # what the tasks carry: not used here
    run = RunState(JobContext(cfg, ref, None, None, points, tmp_path / "out" / "executed"), scorer, course, journal,
                   "k")
    grades = []
    with pytest.raises(ClusterLost) as err:
        _run_all(subs, run, grades, 31.0, False, 2)
    journal.close()
    assert str(err.value) == ("lost the Dask scheduler at tcp://10.0.0.1:8786 (CancelledError); every submission "
                              "graded before is journaled: rerun the same command to grade the rest")
    assert sorted(g.student_id for g in grades) == ["s1", "s3"]
    assert sorted(Journal(tmp_path / "out" / "journal.jsonl")._entries) == ["s1", "s3"]


def _put(store_args, key, value):
    from distributed import get_client, get_worker

    from autograder.cluster.store import SchedulerStore
    SchedulerStore(get_client, store_args).put(key, value)
    return get_worker().address


def _get(store_args, key):
    from distributed import get_client, get_worker

    from autograder.cluster.store import SchedulerStore
    return get_worker().address, SchedulerStore(get_client, store_args).get(key)


def _receive(run):
    from distributed import get_client

    from autograder.cluster.store import receive_measurements
    return receive_measurements(get_client(), run, timeout=30)


def test_the_scheduler_shares_measurements_between_worker_processes_until_the_run_is_dropped():
    import torch
    from distributed import Client, LocalCluster

    from autograder.cluster.client import DaskCluster
    from autograder.cluster.store import (
        SchedulerStore,
        drop_run,
        forget_measurements,
        publish_measurements,
        receive_measurements,
    )
    from autograder.grading.measure import Measurements
    replay = torch.linspace(-1, 1, 1000)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        a, b = sorted(client.nthreads())
        where = ["pgrade-t", "cpu"]
        key = ("fine-tune", "abc", "train", False)
        assert client.submit(_put, where, key, replay, workers=[a], pure=False).result() == a
        assert client.submit(_put, where, "digest", 0.625, workers=[a], pure=False).result() == a
        got_b, value = client.submit(_get, where, key, workers=[b], pure=False).result()
        assert got_b == b and torch.equal(value, replay)  # put by one worker process, read by another
        assert client.submit(_get, where, "digest", workers=[b], pure=False).result() == (b, 0.625)
        assert client.submit(_get, ["pgrade-t", "cuda:H100"], "digest", workers=[b], pure=False).result() == (b, None)
        grader = SchedulerStore(lambda: client, where)
        assert grader.get("digest") == 0.625 and grader.get("other") is None
        client.set_metadata([*where, "damaged"], b"not a torch file")
        assert grader.get("damaged") is None
        assert drop_run(client, "pgrade-t") is True
        assert grader.get("digest") is None and drop_run(client, "pgrade-t") is False
        # the reference's measurements: a worker waits for them, the grader publishes them (or why not)
        measured = Measurements("cpu", {"unstructured": {0.5: 0.625, 0.9: 0.125}}, {"unstructured": {0.5: "d5"}})
        waiting = client.submit(_receive, "pgrade-t", workers=[b], pure=False)
        publish_measurements(client, "pgrade-t", measured)
        assert waiting.result() == measured
        publish_measurements(client, "pgrade-u", error="RuntimeError: no data")
        with pytest.raises(RuntimeError, match="the grader could not measure the reference solution: "
                                               "RuntimeError: no data"):
            client.submit(_receive, "pgrade-u", workers=[a], pure=False).result()
        forget_measurements(client, "pgrade-t")
        with pytest.raises(TimeoutError):
            receive_measurements(client, "pgrade-t", timeout=0.2)
        grader = DaskCluster(client)  # what the grading run publishes: a built reference, or why it failed
        built, failed = Future(), Future()
        built.set_result(SimpleNamespace(measurements=lambda: measured))
        failed.set_exception(ValueError("bad model"))
        grader.publish(built)
        assert receive_measurements(client, grader.run, timeout=5) == measured
        grader.publish(failed)
        with pytest.raises(RuntimeError, match="could not measure the reference solution: ValueError: bad model"):
            receive_measurements(client, grader.run, timeout=5)

    def lost():
        raise OSError("scheduler gone")

    gone = SchedulerStore(lost, where)
    assert gone.get("digest") is None
    gone.put("digest", 0.5)  # ignored: the store only saves time
    with pytest.raises(ValueError, match="namespace"):
        SchedulerStore(lost, ["pgrade-t", ""])


def test_the_grader_publishes_its_reference_or_why_not_then_measures_part3_starts(monkeypatch, capsys):
    from concurrent.futures import Future

    from autograder.cluster.client import DaskCluster
    from autograder.grading import part3_checks

    class FakeCluster:
        def __init__(self):
            self.published = []

        def publish(self, ref):
            self.published.append(ref)

    measured = []
    monkeypatch.setattr(part3_checks, "measure_reference_starts", lambda ref: measured.append(ref) or 9)
    good, bad = Future(), Future()
    good.set_result("the reference")
    bad.set_exception(RuntimeError("no data"))
    cluster = FakeCluster()
    DaskCluster.share(cluster, good, True)
    assert cluster.published == [good] and measured == ["the reference"]
    DaskCluster.share(cluster, good, False)  # part 3 not graded: nothing to measure
    DaskCluster.share(cluster, bad, True)  # the workers are told why (by publish), nothing measured
    assert cluster.published == [good, good, bad] and measured == ["the reference"]

    def broken(ref):
        raise OSError("disk full")
    monkeypatch.setattr(part3_checks, "measure_reference_starts", broken)
    DaskCluster.share(cluster, good, True)
    assert ("warning: part 3's reference models could not be measured for the workers (OSError: disk full); "
            "each worker measures them for itself") in capsys.readouterr().err


def test_a_worker_drops_only_the_nannys_malloc_setting_before_starting_kernels(monkeypatch):
    import dask

    from autograder.cluster.worker import _drop_nanny_allocator_setting
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 65536}):
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
        _drop_nanny_allocator_setting()
        assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")  # the TA's own value
        _drop_nanny_allocator_setting()
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "1048576"


def _worker_settings(dask_worker=None) -> dict:
    import dask

    from autograder.cluster.client import LOCAL_SETTINGS
    parent = f"/proc/{os.getppid()}"
    with open(f"{parent}/cmdline", "rb") as fh:
        forked_by = fh.read().replace(b"\0", b" ").decode()
    with open(f"{parent}/maps") as fh:  # the process that forked this worker had torch's library loaded
        parent_torch = any("libtorch" in line for line in fh)
    return {**{k: dask.config.get(k) for k in LOCAL_SETTINGS}, "torch imported": "torch" in sys.modules,
            "fork server": "multiprocessing.forkserver" in forked_by, "torch in the fork server": parent_torch}


def test_a_local_cluster_runs_without_the_housekeeping_grading_does_not_use():
    from autograder.cluster.client import LOCAL_SETTINGS, DaskCluster
    with DaskCluster.connect("local:1", progress=False) as cluster:
        extensions = cluster.client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.extensions))
        workers = cluster.client.run(_worker_settings)
        saturation = cluster.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
    assert "stealing" not in extensions and saturation == 1.0
    # forked by a server that imported torch and the grading code once for all workers
    assert list(workers.values()) == [{**LOCAL_SETTINGS, "torch imported": True, "fork server": True,
                                       "torch in the fork server": True}]


_PRELOAD = """
import sys
from autograder.grading import warm_imports as imports
import autograder.cluster.preload
print(all(name in sys.modules for name in imports.THREAD_IMPORTS), sorted(imports._done))
"""


def test_a_worker_imports_at_start_what_its_task_threads_would_import_late():
    """The preload (imported once by a ``local:N`` cluster's fork server, or by a hand-started worker) imports
    what the grading threads would import late and renders one page: the task threads render feedback pages."""
    import subprocess

    from tests.conftest import REPO
    done = subprocess.run([sys.executable, "-c", _PRELOAD], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True ['feedback', 'imports']"


def _executed_notebook(path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output
    nb = new_notebook(cells=[new_code_cell("print(4)", outputs=[new_output("stream", name="stdout", text="4\n")]),
                             new_code_cell("### BEGIN HIDDEN TESTS\nhidden_answer_42 = 1\n### END HIDDEN TESTS\n"
                                           "visible_name_7 = 2")])
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    nbformat.write(nb, path)
    return path


def test_a_worker_returns_the_executed_notebook_rendered_for_its_feedback(tmp_path):
    """``task_record`` sends the executed notebook's bytes and its feedback rendering (hidden tests
    removed) and removes the file; a grade without an executed notebook sends neither."""
    from autograder.cluster.worker import task_record
    from autograder.grading.report import notebook_feedback_html
    from autograder.grading.results import CheckResult, StudentGrade

    executed = _executed_notebook(tmp_path / "s1.ipynb")
    data, expected = executed.read_bytes(), notebook_feedback_html(executed)
    assert "hidden_answer_42" not in expected and "visible_name_7" in expected
    grade = StudentGrade("s1", "ok", [CheckResult("a", 1.0, 1.0, [])], ["a note"], executed=executed,
                         timings={"kernel": 3.0})
    record = task_record(grade, "tcp://w1")
    assert record["executed"] == data and record["notebook_html"] == expected and not executed.exists()
    assert record["timings"]["worker"] == "tcp://w1" and record["timings"]["render"] >= 0
    assert record["checks"] == [{"grade_id": "a", "points": 1.0, "max_points": 1.0, "messages": []}]
    bare = task_record(StudentGrade("s2", "error: timeout", []), "tcp://w1")
    assert bare["executed"] is None and bare["notebook_html"] is None and "render" not in bare["timings"]


def test_the_grader_writes_a_workers_rendering_into_the_feedback_page(tmp_path, monkeypatch):
    """A grade that arrives rendered is written as it came (the grader renders nothing); one without a
    rendering is rendered by the grader from its executed notebook."""
    from autograder.grading import report
    from autograder.grading.report import write_feedback
    from autograder.grading.results import StudentGrade

    executed = _executed_notebook(tmp_path / "s1.ipynb")
    rendered = StudentGrade("s1", "ok", [], executed=executed, notebook_html="<p>rendered on the worker</p>")
    monkeypatch.setattr(report, "_notebook_html", lambda path: "<p>rendered by the grader</p>")
    page = write_feedback(tmp_path / "fb", rendered, 1.0).read_text()
    assert "rendered on the worker" in page and "rendered by the grader" not in page
    plain = StudentGrade("s2", "ok", [], executed=executed)
    assert "rendered by the grader" in write_feedback(tmp_path / "fb", plain, 1.0).read_text()


def test_finishing_a_grade_drops_its_rendering_once_the_page_is_written(tmp_path):
    """``finish_grade`` writes the page with the worker's rendering and then lets it go, so that a class's
    pages are not all held in memory until the run ends."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    from autograder.grading.jobs import finish_grade
    from autograder.grading.results import StudentGrade

    course = Future()
    course.set_exception(RuntimeError("no gradebook in this test"))
    run = SimpleNamespace(course=course, cfg=SimpleNamespace(out=tmp_path), points={"a": 1.0}, journal=None)
    grade = StudentGrade("s1", "ok", [], notebook_html="<p>rendered on the worker</p>")
    assert finish_grade(grade, None, False, run) is grade and grade.notebook_html is None
    assert "rendered on the worker" in (tmp_path / "feedback" / "s1.html").read_text()
