"""The benchmarks' arithmetic (:mod:`benchmarks.figures`) and the report's rows built from it
(:mod:`benchmarks.report_cluster`), on figures given here.
"""

from __future__ import annotations

import pytest


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
