"""``python -m autograder demo``, the whole instructor path on the generated dataset.

1. train (or reuse) the reference model and print its accuracy;
2. print correct unstructured and structured pruning sweeps;
3. generate the student release with the real ``nbgrader generate_assignment``;
4. fill it with a handful of sample submissions (correct ones and typical mistakes);
5. grade them with ``--jobs 2``: grade table, ``grades.csv``, feedback, gradebook; then check that every
   sample got the grade it declares (the exit status says so);
6. write the same class as a Canvas and a Moodle download, each with its roster, and print the commands that
   grade them and send the grades back;
7. end with the class report's path (grading built it: :mod:`autograder.classreport`): the samples'
   points, the checks by pass rate, the mistakes grouped, the class curves and the one pair of samples that
   share their code (``copied_manual_topk``, a copy of ``correct_manual_topk`` in disguise).

Everything is written under ``--out`` (default ``demo-output/``).

Runs in the grader's process.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

from helpers import get_CINIC10_data, load_model, test_model
from helpers.models import save_model
from helpers.parts import STRUCTURED, UNSTRUCTURED

from .classreport import REPORT_FILE
from .config import ASSIGNMENT, NOTEBOOK, DemoConfig, GradeConfig, TrainConfig
from .grading.errors import InputError, PreflightError
from .grading.grade import grade
from .grading.gradebook import Course, read_points
from .grading.results import not_graded_summary
from .grading.solutions import prune_structured, prune_unstructured, sweep
from .runner.sandbox import sandbox_support
from .samples import load_samples, write_class
from .samples.lms import canvas_download, canvas_gradebook, class_list, moodle_download, moodle_worksheet
from .train import train_model

__all__ = ["reference_model", "main", "DEMO_SAMPLES"]

#: Sample submissions graded by the demo (see autograder/samples/cells/).
DEMO_SAMPLES = ("reference", "correct_manual_topk", "mistake_compounding_part1", "mistake_per_layer",
                "mistake_wrong_dim", "mistake_fake_numbers", "mistake_removal_keeps_zeros",
                "mistake_finetune_masks_dropped", "mistake_finetune_test_split", "untouched_release",
                "copied_manual_topk")


def reference_model(out: Path, data_root: str = "synthetic", data: dict | None = None,
                    config: TrainConfig = TrainConfig()) -> Path:
    """Return the path of the reference checkpoint in ``out``, training it if absent."""
    path = Path(out) / "reference-model.pt"
    if path.is_file():
        print(f"reusing reference model {path}")
        return path
    data = data if data is not None else get_CINIC10_data(data_root)
    start = time.perf_counter()
    model = train_model(data, config)
    print(f"trained reference model in {time.perf_counter() - start:.1f} s")
    return save_model(model, path, trained_on="synthetic" if data_root == "synthetic" else "CINIC-10")


def main(config: DemoConfig = DemoConfig()) -> int:
    """Run the five steps above with ``config``; return the process exit status (0: every sample got the grade
    it declares; 1: some did not; 2: the machine cannot grade, with the reason printed)."""

    out, data_root, jobs = config.out, config.data_root, config.jobs
    out.mkdir(parents=True, exist_ok=True)
    print("== 1. Reference model")
    data = get_CINIC10_data(data_root)
    model_path = reference_model(out, data_root, data)
    model = load_model(model_path)
    test_data = [data["X_test"], data["y_test"]]
    test_model(model, test_data)

    print("\n== 2. Global unstructured pruning (fresh copy per target)")
    sweep(model, prune_unstructured, test_data, UNSTRUCTURED)
    print("\n== 2b. Structured L2 filter pruning of the conv layers")
    sweep(model, prune_structured, test_data, STRUCTURED)

    print("\n== 3. Student release (nbgrader generate_assignment)")
    course = out / "release-course"
    shutil.rmtree(course, ignore_errors=True)
    Course(course)
    release = course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    print(f"release notebook: {release}")

    print(f"\n== 4. Sample submissions: {', '.join(DEMO_SAMPLES)}")
    submitted = out / "submitted"
    shutil.rmtree(submitted, ignore_errors=True)
    samples = [s for s in load_samples() if s.name in DEMO_SAMPLES]
    write_class(submitted, samples, release)

    print(f"\n== 5. Grading with --jobs {jobs}")
    why = sandbox_support()
    if why:
        print(f"note: grading without the sandbox here ({why}); a real class needs it")
    try:
        grades = grade(GradeConfig(submissions=submitted, data_root=data_root, model=model_path, out=out / "grading",
                                   jobs=jobs, timeout=config.timeout, per_class=config.per_class,
                                   sandbox=why is None, regrade=True))
    except (InputError, PreflightError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = _compare(grades, samples)
    _lms_files(out, samples, model_path, data_root)
    report = out / "grading" / REPORT_FILE
    if report.is_file():
        print(f"\n== 7. Class report (open it in a browser): {report}")
    else:
        print("\n== 7. NO class report: see the warning above", file=sys.stderr)
        status = status or 1
    return status


def _lms_files(out: Path, samples: list, model: Path, data_root: str) -> None:
    """The same class as Canvas and Moodle hand it over, with two more students of the roster who handed in
    nothing, and the commands that grade each download and send its grades back."""
    absent = 2
    people = class_list(samples, absent=absent)
    print(f"\n== 6. The same class as Canvas and Moodle hand it over ({len(people)} students, {absent} handed in "
          "nothing)")
    folder = out / "lms"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    files = {"canvas": (canvas_download(folder / "canvas-submissions.zip", people),
                        canvas_gradebook(folder / "canvas-gradebook.csv", people)),
             "moodle": (moodle_download(folder / "moodle-submissions.zip", people),
                        moodle_worksheet(folder / "moodle-worksheet.csv", people))}
    for lms, (download, roster) in files.items():
        graded = shlex.quote(str(out / f"{lms}-grading"))
        print(f"{lms.title()}: python -m autograder grade {shlex.quote(str(download))} --roster "
              f"{shlex.quote(str(roster))} --data-root {shlex.quote(data_root)} --model {shlex.quote(str(model))} "
              f"--out {graded} --jobs 2 && python -m autograder export {graded}")


def _compare(grades: list, samples: list) -> int:
    """Say whether every sample got the grade it declares (:mod:`autograder.samples`); the exit status."""
    points = read_points()
    by_id = {g.student_id: g for g in grades}
    wrong = []
    for sample in samples:
        g = by_id.get(sample.name)
        got = {c.grade_id: c.points for c in g.checks} if g is not None else {}
        expected = sample.expected_points(points)
        if g is None or not g.graded or got != expected or not g.status.startswith(sample.expect_status):
            wrong.append(f"  {sample.name}: {g.status if g else 'no row'}, expected {sample.expect_status} with "
                         f"zero in {', '.join(sorted(sample.expect_zero)) or 'nothing'}")
    summary = not_graded_summary(grades)
    if summary:
        print(f"error: {summary}", file=sys.stderr)
    if wrong:
        print("The demo's samples did NOT all get the grades they declare:\n" + "\n".join(wrong), file=sys.stderr)
        return 1
    print(f"All {len(samples)} samples got the grades they declare.")
    return 0
