"""The class report at scale: a class of 300 made from the samples, report and pairs built from its ``class.json``.

The template is a real graded class (the demo's samples, graded by ``python -m autograder grade``): each of the
300 students is a sample's code in disguise (:func:`autograder.samples.corpus.large_class`) with the points,
messages, figures and time of a graded student. :func:`autograder.classreport.build_report` is timed whole
(median of ``rounds``), and its pairs step alone. The goal: report and pairs together under a minute on the
2-core machine.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from benchmarks.common import REPO, spread, timed, venv_env

__all__ = ["bench_class_report", "CLASS_SIZE"]

CLASS_SIZE = 300


def _graded_template(work: Path, model: Path) -> list:
    from autograder.classreport.record import read_class_record
    from autograder.demo import DEMO_SAMPLES
    from autograder.samples import load_samples, write_class
    submitted, out = work / "report-template" / "submitted", work / "report-template" / "out"
    write_class(submitted, [s for s in load_samples() if s.name in DEMO_SAMPLES])
    subprocess.run(["python", "-m", "autograder", "grade", str(submitted), "--data-root", "synthetic", "--model",
                    str(model), "--out", str(out), "--jobs", "2", "--per-class", "50"], cwd=REPO, env=venv_env(),
                   check=True, capture_output=True)
    return read_class_record(out)


def bench_class_report(work: Path, model: Path, rounds: int = 3, size: int = CLASS_SIZE) -> dict:
    from autograder.classreport import build_report
    from autograder.classreport.record import ClassRecord, read_class_record, write_class_record
    from autograder.classreport.similarity import similar_pairs
    from autograder.samples.corpus import large_class
    template = _graded_template(work, model)
    start = time.perf_counter()
    students = large_class(size, seed=1, template=[s for s in template.students if s.has_points])
    made = time.perf_counter() - start
    folder = work / f"class-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    write_class_record(folder, ClassRecord(template.assignment, template.max_score, template.checks, students,
                                           template.reference, template.release, template.run))
    record = read_class_record(folder)
    whole = timed(lambda: build_report(folder), rounds)
    pairs = timed(lambda: similar_pairs(record), rounds)
    return {"students": size, "rounds": rounds, "build_report": spread(whole), "pairs_only": spread(pairs),
            "pairs_listed": whole[3].pairs, "page_bytes": (folder / "report.html").stat().st_size,
            "class_json_bytes": (folder / "class.json").stat().st_size, "making_the_class_s": round(made, 2),
            "goal_s": 60}
