"""Fast tests of grading on a Dask cluster: the address, a worker's refusals, the scaling estimate.

Grading a class on a cluster end to end (``local:2``, and across network namespaces with a
worker killed) is in ``tests/test_grading_app.py``.
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

distributed = pytest.importorskip("distributed")


def test_cluster_addresses_are_parsed_and_local_sets_the_jobs(tmp_path):
    assert local_workers("local:3") == 3
    assert local_workers("tcp://10.0.0.1:8786") is None and local_workers("scheduler:8786") is None
    for bad, why in (("local:0", "--cluster local:N needs N workers, a whole number of at least 1; got 'local:0'"),
                     ("local:two", "--cluster local:N needs N workers, a whole number of at least 1; got 'local:two'"),
                     ("scheduler", "--cluster must be a scheduler address like tcp://host:8786 or local:N, "
                                   "got 'scheduler'")):
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


def test_the_scaling_estimate_names_its_bound():
    from benchmarks.figures import scaling
    rows = scaling(task_s=6.0, scheduler_s=0.002, grader_s=0.2, workers=(1, 10, 30, 100))
    assert rows == [{"workers": 1, "speedup": 1, "limited_by": "workers"},
                    {"workers": 10, "speedup": 10, "limited_by": "workers"},
                    {"workers": 30, "speedup": 30.0, "limited_by": "workers"},
                    {"workers": 100, "speedup": 30.0, "limited_by": "grader"}]
    assert scaling(6.0, 0.5, 0.01, (100,)) == [{"workers": 100, "speedup": 12.0, "limited_by": "scheduler"}]


def test_a_run_splits_into_a_steady_cost_per_submission_and_a_fixed_cost():
    from benchmarks.figures import steady_and_fixed
    # two slots: the first wave ends at 12 s; then 3 submissions in 28 s; 100 s in all
    steady, fixed = steady_and_fixed(100.0, [30.0, 12.0, 10.0, 40.0, 20.0], slots=2)
    assert (round(steady, 6), round(fixed, 6)) == (round(28 / 3, 6), round(100 - 5 * 28 / 3, 6))
    with pytest.raises(ValueError, match="^need more than 2 submissions to see a steady rate, got 2$"):
        steady_and_fixed(10.0, [1.0, 2.0], slots=2)


def test_the_cluster_is_compared_with_jobs_only_for_worker_counts_run_both_ways():
    from benchmarks.figures import added_over_jobs
    walls = {"local1": [400.0, 420.0], "jobs2": [200.0, 210.0], "local2": [232.0, 226.0]}
    split = {"local1": [(12.0, 16.0), (13.0, 15.0)], "jobs2": [(6.0, 8.0), (6.5, 2.0)],
             "local2": [(7.0, 8.0), (6.0, 34.0)]}
    whole, steady, fixed = added_over_jobs(walls, split, 32)
    assert whole == {2: [1.0, 0.5]} and steady == {2: [1.0, -0.5]} and fixed == {2: [0.0, 32.0]}
    both = added_over_jobs({**walls, "jobs1": [368.0, 452.0]}, {**split, "jobs1": [(11.0, 9.0), (14.0, 3.0)]}, 32)
    assert both[0] == {1: [1.0, -1.0], 2: [1.0, 0.5]} and sorted(both[2]) == [1, 2]
    assert added_over_jobs({"local1": [1.0], "local2": [1.0]}, {}, 8) == ({}, {}, {})


def test_results_list_a_class_runs_added_figures_beside_its_workers_ratios():
    from benchmarks.report_cluster import cluster_rows as _cluster_rows
    span = {"median_s": 1.0, "min_s": 0.9, "max_s": 1.1}
    cl = {"submissions": 32, "rounds": 2, "target_ratio": 1.8, "target_added_s": 0.5, "scores_identical": True,
          "seconds_per_submission": {"local1": span, "jobs2": span, "local2": span},
          "throughput_2_workers_over_1": span, "steady_throughput_2_workers_over_1": span,
          "fixed_s_per_run": {"local1": [16.3], "jobs2": [18.8], "local2": [28.5]},
          "kernel_s_per_submission": {"local1": [13.0], "jobs2": [12.6], "local2": [15.0]},
          "cluster_added_s_per_submission": {"2 worker(s)": span},
          "steady_added_s_per_submission": {"2 worker(s)": {"median_s": 0.4, "min_s": 0.3, "max_s": 0.5}},
          "fixed_added_s_per_run": {"2 worker(s)": span}}
    cl["run_phases_s"] = {"local1": [{"process": 500.0}, {"process": 480.0}], "jobs2": [{"process": 250.0},
                                                                                       {"process": 300.0}]}
    rows = _cluster_rows(cl)
    assert ("| cluster: in the same rounds, `--cluster local:1` / `--jobs 2` (two notebooks at once without a "
            "cluster), 32 submissions, per round | 2.00, 1.60x | - | - |") in rows
    assert ("| cluster: fixed seconds per run, `--cluster local:1` / `--jobs 2` / `--cluster local:2`, 32 "
            "submissions (per round) / seconds each notebook's kernel ran | 16.3 / 18.8 / 28.5 / 13.00 / 12.60 / "
            "15.00 s | - | - |") in rows
    added = [r for r in rows if "added over `--jobs`" in r]
    assert len(added) == 2 and "2 worker(s), 32 submissions (whole run" in added[0]
    assert added[0].endswith("| < 0.5 s | **missed** |") and added[1].endswith("| < 0.5 s / - | met |")
    del cl["cluster_added_s_per_submission"], cl["steady_added_s_per_submission"], cl["run_phases_s"]["jobs2"]
    assert not [r for r in _cluster_rows(cl) if "added over `--jobs`" in r or "in the same rounds" in r]


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

    from .conftest import REPO
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


def test_the_cpu_census_names_each_process_of_a_run_by_its_role():
    from benchmarks.figures import role
    zygote = "/venv/bin/python /repo/autograder/runner/zygote.py torch helpers"
    forkserver = "/venv/bin/python -c from multiprocessing.forkserver import main; main(8, 9, ['distributed'])"
    assert role("/venv/bin/python -m autograder grade subs", None, True) == "grader"
    assert role(zygote, "sandbox", False) == "kernel server"
    assert role(zygote, "kernel server", False) == "kernel"  # forked by the server: a notebook's kernel
    assert role(zygote, "kernel", False) == "kernel"
    assert role("/usr/bin/bwrap --unshare-all --die-with-parent /venv/bin/python /slot/zygote.py torch", "worker",
                False) == "sandbox"  # it names the server it starts
    assert role(forkserver, "grader", False) == "fork server"
    assert role(forkserver, "fork server", False) == "worker"
    assert role("/venv/bin/python -c from multiprocessing.spawn import spawn_main; spawn_main()", "grader",
                False) == "worker"
    assert role("fc-list --format=%{file}", "grader", False) == "other"


def test_the_cpu_census_counts_only_the_steady_window_per_submission():
    from benchmarks.figures import steady_cpu
    snaps = [(0.0, 0, {"grader": 1.0}),
             (10.0, 1, {"grader": 3.0, "kernel": 5.0}),
             (12.0, 2, {"grader": 4.0, "kernel": 8.0}),  # the first wave (2 slots) ends here
             (20.0, 3, {"grader": 5.0, "kernel": 14.0, "worker": 1.0}),
             (30.0, 5, {"grader": 8.0, "kernel": 26.0, "worker": 4.0}),
             (31.0, 5, {"grader": 9.0, "kernel": 26.0, "worker": 4.0})]  # after the last grade: not counted
    assert steady_cpu(snaps, 2) == {"wall": 6.0, "grader": 4 / 3, "kernel": 6.0, "worker": 4 / 3}
    with pytest.raises(ValueError, match="^need more than 2 grades to see a steady rate, got 2$"):
        steady_cpu(snaps[:3], 2)


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


def test_results_list_the_census_grading_side_apart_from_the_kernels():
    from benchmarks.report_cluster import census_rows as _census_rows
    row = lambda grader, worker, kernel: {"wall": 7.5, "grader": grader, "worker": worker,  # noqa: E731
                                          "kernel server": 0.0, "kernel": kernel}
    c = {"submissions": 16, "rounds": 2,
         "steady_per_submission": {"jobs2": [row(2.86, 0.0, 11.32), row(2.9, 0.0, 11.0)],
                                   "local2": [row(0.71, 2.3, 11.05), row(0.7, 2.4, 11.1)]},
         "steady_added_cpu_s": [0.15, 0.2], "whole_added_cpu_s": [1.0, 0.9], "steady_added_wall_s": [-0.07, 0.1]}
    rows = _census_rows(c)
    assert rows[0].endswith("per round | 2.86 + 11.32, 2.90 + 11.00 / 3.01 + 11.05, 3.10 + 11.10 s | - | - |")
    assert "| 0.15, 0.2 / 1.0, 0.9 s |" in rows[1] and "| -0.07, 0.1 s |" in rows[2]
    assert rows[3].endswith("| 0.71, 0.70 s | - | - |") and len(rows) == 4  # no class bench: no bound
    cl = {"seconds_per_submission": {"local1": {"median_s": 14.2}}, "scheduler_s_per_task": 0.002}
    bound = _census_rows(c, cl)[4]  # 14.2 s tasks / 0.71 CPU s of the grader's: 20 workers at most
    assert "tasks of 14.2 s (bound: workers, workers, workers, grader) | 1x, 2x, 10x, 20.0x |" in bound
