"""Compare a grading run's ``grades.csv`` with what each sample submission must get.

    python -m benchmarks.device.compare OUT/grades.csv [FEEDBACK_DIR]

Prints one line per sample (points got and expected per check, and the feedback's messages of any
check that differs) and exits 1 when any sample differs. The samples are
:func:`autograder.samples.load_samples`; the points come from the source notebook.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from autograder.grading.gradebook import read_points
from autograder.grading.parts import CHECKS
from autograder.samples import load_samples

__all__ = ["compare", "main"]


def compare(grades_csv: Path, feedback: Path | None = None) -> list[str]:
    """Lines describing each graded sample; a line starting with ``DIFFERENT`` for each that differs."""
    points = read_points()
    rows = {r["student_id"]: r for r in csv.DictReader(open(grades_csv))}
    lines = []
    for sample in load_samples():
        row = rows.get(sample.name)
        if row is None:
            continue
        want = sample.expected_points(points)
        got = {gid: float(row[gid]) for gid in CHECKS if gid in row}
        same = got == {g: want[g] for g in got}
        diff = {g: f"{got[g]:g} (expected {want[g]:g})" for g in got if got[g] != want[g]}
        lines.append(f"{'same     ' if same else 'DIFFERENT'} {sample.name}: {row['score']}/{row['max_score']}"
                     + ("" if same else f" {diff}"))
        if not same and feedback is not None:
            for path in sorted(Path(feedback).glob(f"{sample.name}*")):
                text = path.read_text(errors="replace")
                lines += [f"    {line.strip()}" for line in text.splitlines()
                          if any(g in line for g, v in got.items() if v != want[g]) or "expected" in line][:12]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    lines = compare(Path(args[0]), Path(args[1]) if len(args) > 1 else None)
    print("\n".join(lines))
    return 1 if any(line.startswith("DIFFERENT") for line in lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())
