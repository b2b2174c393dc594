"""The grading command end to end: real kernels, real nbgrader, every sample submission.

Each sample in autograder/samples/cells (and the built-in hostile ones) declares which graded
cells must score zero and what status it must get; this test grades them all in one run
of ``python -m autograder grade --jobs 2`` and checks every cell of every row.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys

import nbformat
import pytest

from autograder.grading.batch import next_steps
from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.samples import load_samples, write_class
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def run_grade(submitted, out, model, jobs, extra=(), audit=None):
    """``python -m autograder grade``; with ``audit`` (a JSON path) through :mod:`tests.import_audit`."""
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    if audit is not None:
        env["IMPORT_AUDIT_OUT"] = str(audit)
    cmd = [sys.executable, "-m", "autograder" if audit is None else "tests.import_audit", "grade", str(submitted),
           "--data-root", "synthetic",
           "--model", str(model), "--out", str(out), "--jobs", str(jobs), "--timeout", "300",
           "--cell-timeout", "40", "--per-class", "50", *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "grades.csv") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    return proc, rows


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, trained_model_path):
    root = tmp_path_factory.mktemp("class")
    samples = write_class(root / "submitted")
    proc, rows = run_grade(root / "submitted", root / "out", trained_model_path, jobs=2,
                           audit=root / "imports.json")
    return samples, rows, root / "out", proc


def test_every_sample_gets_its_expected_grade(graded_class):
    samples, rows, _, _ = graded_class
    points = read_points()
    assert set(rows) == {s.name for s in samples}
    wrong = []
    for sample in samples:
        row = rows[sample.name]
        expected = sample.expected_points(points)
        got = {gid: float(row[gid]) for gid in CHECKS}
        if got != expected or not row["status"].startswith(sample.expect_status):
            wrong.append(f"{sample.name}: got {got} status {row['status']!r}, expected {expected} "
                         f"status {sample.expect_status!r}")
        assert float(row["max_score"]) == sum(points[g] for g in CHECKS)
        assert float(row["score"]) == sum(got.values())
    assert not wrong, "\n".join(wrong)


def test_hostile_edits_are_reported(graded_class):
    _, rows, _, _ = graded_class
    notes = rows["hostile_edited_tests"]["notes"]
    for expected in ("restored edited cell test_unstructured_sparsity",
                     "restored deleted cell test_unstructured_function",
                     "removed duplicate cell test_structured_accuracy"):
        assert expected in notes
    assert rows["timeout_infinite_loop"]["status"] == "timeout"
    assert rows["invalid_json"]["status"].startswith("error: invalid notebook JSON")


def test_feedback_names_checks_and_hides_hidden_tests(graded_class):
    samples, _, out, _ = graded_class
    for sample in samples:
        page = (out / "feedback" / f"{sample.name}.html").read_text()
        assert "test_unstructured_sparsity" in page
        # Probes that syntax highlighting cannot split: a string literal and one name.
        assert "HIDDEN TESTS" not in page and "PRUNING_EXPORT_CODE" not in page and "_runpy" not in page, sample.name
    page = (out / "feedback" / "mistake_compounding_part1.html").read_text()
    assert "pruning compounds" in page
    page = (out / "feedback" / "mistake_wrong_dim.html").read_text()
    assert "dim=0" in page


def test_feedback_starts_from_the_cell_that_raised(graded_class):
    """The part 2 sweep raised: its page names that cell and its error before any check, and each check it took
    down says so; a notebook whose cells all ran has no such box."""
    _, _, out, _ = graded_class
    page = (out / "feedback" / "mistake_part2_sweep_raises.html").read_text()
    start, table = page.index("Start here"), page.index("<table>")
    assert start < table
    cause = page[start:table]
    assert "<code>sweep_structured</code>" in cause
    assert "ValueError: test_data must be [X_test, y_test], got dict" in cause
    rows = page[table:page.index("</table>")].split("<tr>")
    blamed = {gid for gid in CHECKS for row in rows if f">{gid}</code>" in row
              and "Failed because your cell <code>sweep_structured</code>" in row}
    assert blamed == {"test_structured_filters", "test_structured_accuracy", "test_removal_models",
                      "test_finetuning"}
    assert "Start here" not in (out / "feedback" / "mistake_per_layer.html").read_text()


def test_gradebook_holds_the_same_scores_and_exports(graded_class):
    _, rows, out, _ = graded_class
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{out / 'course' / 'gradebook.db'}") as gb:
        for sid, row in rows.items():
            if row["status"].startswith(("error: invalid", "error: the notebook lost")):
                continue  # never ran: nothing to record (their rows say why)
            for gid in CHECKS:
                assert gb.find_grade(gid, "pruning", "pruning", sid).auto_score == float(row[gid]), (sid, gid)
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "export", "--to",
                           "export.csv"], cwd=out / "course", env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    exported = (out / "course" / "export.csv").read_text()
    assert "reference" in exported and "mistake_per_layer" in exported


def test_summary_table_is_printed(graded_class):
    _, _, out, proc = graded_class
    assert "student" in proc.stdout and "reference" in proc.stdout and "with --jobs 2" in proc.stdout
    # The last line says what to do next, with commands that work when pasted (the folder quoted).
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"Next: grade the written answers in formgrader (cd {shlex.quote(str(out / 'course'))} && "
                           "jupyter lab")
    assert f"python -m autograder export {shlex.quote(str(out))}" in last


def test_next_steps_quote_a_folder_with_spaces(tmp_path):
    line = next_steps(tmp_path / "grading run")
    assert f"cd '{tmp_path}/grading run/course' && jupyter lab" in line
    assert f"python -m autograder export '{tmp_path}/grading run' (" in line


def test_timings_say_where_the_time_went(graded_class):
    _, rows, out, _ = graded_class
    timings = json.loads((out / "timings.json").read_text())
    assert {"data", "reference", "course", "wall"} <= set(timings["run"])
    ref = timings["students"]["reference"]
    assert {"prepare", "kernel", "score", "record", "feedback", "finished"} <= set(ref)
    assert 0 < ref["cells"]["sweep_unstructured"] < ref["kernel"]
    assert 0 < ref["kernel"] < ref["finished"] <= timings["run"]["wall"]  # seconds since the first job was sent
    assert set(timings["students"]) == set(rows)


def test_grading_threads_import_no_library_for_the_first_time(graded_class):
    """Two threads importing IPython's modules for the first time at once once cost a grade
    (``ImportError: cannot import name '_sysinfo' from 'IPython.utils'``): the job threads must find every
    library already imported, and no library may be first imported by two threads."""
    _, _, out, _ = graded_class
    first = json.loads((out.parent / "imports.json").read_text())
    assert any(t.startswith("pgrade-setup") for t in first), "the audit saw the setup threads' imports"
    jobs = {t: names for t, names in first.items() if t.startswith("pgrade-job")}
    assert not jobs, f"modules first imported while grading: {jobs}"
    owner: dict[str, str] = {}
    for thread, names in first.items():
        for package in {n.split(".")[0] for n in names}:
            assert owner.setdefault(package, thread) == thread, f"{package}: first in {owner[package]} and {thread}"


def test_jobs_and_kernel_kind_do_not_change_grades_and_runs_repeat(tmp_path, trained_model_path):
    names = {"reference", "mistake_random_selection", "correct_manual_topk"}
    write_class(tmp_path / "submitted", [s for s in load_samples() if s.name in names])
    _, one = run_grade(tmp_path / "submitted", tmp_path / "out1", trained_model_path, jobs=1,
                       extra=("--spawn-kernels",))
    _, two = run_grade(tmp_path / "submitted", tmp_path / "out2", trained_model_path, jobs=2)
    assert one == two
    points = read_points()
    want = {s.name: sum(s.expected_points(points).values()) for s in load_samples() if s.name in names}
    assert {n: float(one[n]["score"]) for n in names} == want
    assert want["reference"] == sum(points[g] for g in CHECKS) > want["mistake_random_selection"]


def test_full_notebook_mode_runs_visible_checks_with_same_score(tmp_path, trained_model_path):
    write_class(tmp_path / "submitted", [s for s in load_samples() if s.name == "reference"])
    _, rows = run_grade(tmp_path / "submitted", tmp_path / "out", trained_model_path, jobs=1,
                        extra=("--full-notebook",))
    assert float(rows["reference"]["score"]) == sum(read_points()[g] for g in CHECKS)
    import nbformat
    nb = nbformat.read(tmp_path / "out" / "executed" / "reference.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "OK: every target reached within 0.005" in printed, "visible checks ran"
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# --- grading on a Dask cluster (--cluster) ---------------------------------------------------------

def test_a_local_cluster_grades_the_class_like_local_jobs(graded_class, tmp_path, trained_model_path):
    pytest.importorskip("distributed")
    _, rows, out, _ = graded_class
    proc, on_cluster = run_grade(out.parent / "submitted", tmp_path / "out", trained_model_path, jobs=1,
                                 extra=("--cluster", "local:2"), audit=tmp_path / "imports.json")
    assert on_cluster == rows
    # the class report's figures came back from the workers as they are measured locally
    local, remote = ({s["student_id"]: s["figures"] for s in json.loads((o / "class.json").read_text())["students"]}
                     for o in (out, tmp_path / "out"))
    assert set(local) == set(remote) and sum(1 for f in local.values() if f.get("unstructured")) >= 5
    for sid, figures in local.items():
        assert {k: [(r.get("target"), r.get("kind")) for r in v] for k, v in remote[sid].items()} == \
            {k: [(r.get("target"), r.get("kind")) for r in v] for k, v in figures.items()}, sid
        for part, rows_ in figures.items():
            for mine, theirs in zip(rows_, remote[sid][part]):
                assert all(abs(mine[k] - theirs[k]) <= 0.002 for k in mine if isinstance(mine[k], float)), sid
    first = json.loads((tmp_path / "imports.json").read_text())
    assert not {t: n for t, n in first.items() if t.startswith("pgrade-job")}, "job threads import nothing first"
    timings = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert timings["run"]["cluster"] == "local:2" and timings["run"]["jobs"] == 2
    assert len({s.get("worker") for s in timings["students"].values() if "kernel" in s}) == 2, "both workers graded"
    for sid, t in timings["students"].items():  # each executed notebook was rendered on its worker
        if (tmp_path / "out" / "executed" / f"{sid}.ipynb").is_file():
            assert "render" in t, sid
            assert "Your notebook as graded" in (tmp_path / "out" / "feedback" / f"{sid}.html").read_text(), sid


NETWORK_SAMPLES = ("reference", "mistake_random_selection", "untouched_release", "mistake_finetune_masks_dropped",
                   "correct_manual_topk", "mistake_wrong_dim")


def _wait_for(predicate, seconds: float, what: str, procs=()):
    import time
    deadline = time.monotonic() + seconds
    while not predicate():
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"exited while waiting for {what}: {dead}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_cluster_across_a_network_loses_no_grade_when_a_worker_is_killed(graded_class, tmp_path,
                                                                          trained_model_path):
    """Scheduler, two workers and the grader each in their own network namespace; one worker is
    killed (SIGKILL) after the first grade is journaled: every grade is there and equals the local run."""
    pytest.importorskip("distributed")
    from tests.netns import Network, unavailable
    why = unavailable()
    if why:
        pytest.skip(why)
    _, rows, _, _ = graded_class
    write_class(tmp_path / "submitted", [s for s in load_samples() if s.name in NETWORK_SAMPLES])
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "w1", "w2", "grader")}  # noqa: SIM115
    with Network(4) as net:
        address = f"tcp://{net.ip(0)}:8786"
        stock = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # a plain scheduler: no course code
        scheduler = net.popen(0, [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", net.ip(0),
                                  "--port", "8786", "--no-dashboard"], env=stock, cwd=tmp_path,
                              stdout=logs["scheduler"], stderr=subprocess.STDOUT)
        workers = [net.popen(i, [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                 "--no-nanny", "--no-dashboard", "--host", net.ip(i)], env=env, cwd=tmp_path,
                             stdout=logs[f"w{i}"], stderr=subprocess.STDOUT) for i in (1, 2)]
        grader = net.popen(3, [sys.executable, "-m", "autograder", "grade", str(tmp_path / "submitted"),
                               "--data-root", "synthetic", "--model", str(trained_model_path), "--out", str(out),
                               "--timeout", "300", "--cell-timeout", "40", "--per-class", "50",
                               "--cluster", address], cwd=REPO, env=env, stdout=logs["grader"],
                           stderr=subprocess.STDOUT)
        journal = out / "journal.jsonl"
        _wait_for(lambda: journal.is_file() and journal.read_text().count("\n") >= 1, 900, "the first grade",
                  [scheduler, *workers, grader])
        workers[0].kill()
        graded_before_kill = journal.read_text().count("\n")
        assert grader.wait(timeout=900) == 0, (tmp_path / "grader.log").read_text()[-3000:]
    for fh in logs.values():
        fh.close()
    with open(out / "grades.csv") as fh:
        on_network = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert on_network == {name: rows[name] for name in NETWORK_SAMPLES}
    assert graded_before_kill < len(NETWORK_SAMPLES), "the worker was killed while work was left"
    timings = json.loads((out / "timings.json").read_text())
    graded_by = [s["worker"] for s in timings["students"].values()]
    assert all(w.startswith((f"tcp://{net.ip(1)}:", f"tcp://{net.ip(2)}:")) for w in graded_by), graded_by


def test_formgraders_generate_feedback_shows_no_hidden_test(graded_class):
    """nbgrader's own feedback (formgrader's "Generate Feedback" button) from the course folder: the course's
    config takes the hidden tests out and cuts tracebacks, so no page quotes them."""
    _, rows, out, _ = graded_class
    # A check cell that failed visibly (as with --full-notebook), its traceback quoting the hidden lines.
    autograded = out / "course" / "autograded" / "mistake_per_layer" / "pruning" / "pruning.ipynb"
    nb = nbformat.read(autograded, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_unstructured_sparsity")
    cell.outputs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="target 0.70 is per-layer",
                                               traceback=["Traceback (most recent call last)",
                                                          'if _os.environ.get("PRUNING_EXPORT_CODE"):',
                                                          "AssertionError: target 0.70 is per-layer"]))
    nbformat.write(nb, autograded)
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "generate_feedback", "--force",
                           "pruning"], cwd=out / "course", env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p.parts[-3]: p.read_text() for p in (out / "course" / "feedback").glob("*/pruning/pruning.html")}
    assert "reference" in pages and "mistake_per_layer" in pages
    for sid, page in pages.items():
        assert "HIDDEN TESTS" not in page and "PRUNING_EXPORT_CODE" not in page and "_runpy" not in page, sid
    assert "most recent call last" not in pages["mistake_per_layer"]
    assert "AssertionError: target 0.70 is per-layer" in pages["mistake_per_layer"]  # the error's last line stays
