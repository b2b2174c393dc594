"""``make mutation``: mutation testing of the grading decisions, score into ``benchmarks/RESULTS.md``.

Runs mutmut (configured in ``pyproject.toml``, ``[tool.mutmut]``: the modules that decide
grades, mutated one change at a time, against the fast tests only), then records the counts
and every surviving mutant in ``benchmarks/results.json`` under ``mutation``. Survivors are
explained in ``benchmarks/mutation-survivors.md`` (one ``- `name`: why`` line each); the
report lists any survivor that has no explanation there.

    python -m benchmarks.mutation [--max-children N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
EXPLAINED = OUT / "mutation-survivors.md"


def _mutmut(*args: str, check: bool = True) -> str:
    exe = [sys.executable, "-m", "mutmut"]
    # mutmut forks one child per mutant from a process that has run the tests. With torch's
    # thread pools started there, a child can inherit a lock held by a thread that does not exist
    # in it and wait forever (then mutmut's CPU limit ends it as a "timeout"); single-threaded
    # torch starts no pool.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([*exe, *args], cwd=REPO, capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"mutmut {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def explanations() -> dict[str, str]:
    """``{mutant name: why it survives}`` from ``mutation-survivors.md``."""
    if not EXPLAINED.is_file():
        return {}
    found = re.findall(r"^- `([^`]+)`: (.+)$", EXPLAINED.read_text(), re.M)
    return dict(found)


def run(max_children: int) -> dict:
    """Mutate and test from scratch (``mutants/`` is made anew); the record :func:`record` makes."""
    shutil.rmtree(REPO / "mutants", ignore_errors=True)
    start = time.perf_counter()
    out = _mutmut("run", "--max-children", str(max_children), check=False)
    return record(time.perf_counter() - start, out)


def record(seconds: float, output: str = "") -> dict:
    """The counts, score and survivors (each with its explanation) of the mutmut run in ``mutants/``, which
    took ``seconds``. Raises ``RuntimeError`` when no mutant was decided (mutmut's run of the tests failed before
    any mutant ran: its ``output`` says why), so that no empty score is recorded."""
    _mutmut("export-cicd-stats")
    stats = json.loads((REPO / "mutants" / "mutmut-cicd-stats.json").read_text())
    decided = stats["killed"] + stats["survived"] + stats.get("timeout", 0)
    if not decided:
        raise RuntimeError(f"mutmut decided no mutant (its run of the tests failed?):\n{output[-3000:]}")
    survivors = sorted(re.findall(r"^\s+(\S+): survived$", _mutmut("results"), re.M))
    why = explanations()
    return {"command": "make mutation", "seconds": round(seconds, 1), **stats,
            "score": round(stats["killed"] / decided, 4),
            "survivors": {s: why.get(s, "NOT EXPLAINED") for s in survivors}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutation")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    result = run(args.max_children)
    print(json.dumps(result, indent=1))
    save(result)
    return 0


def save(result: dict) -> None:
    """Put ``result`` under ``mutation`` in ``results.json`` and rewrite ``RESULTS.md``."""
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["mutation"] = result
    path.write_text(json.dumps(results, indent=1))
    from benchmarks.report import write_markdown
    write_markdown(results, OUT / "RESULTS.md")


if __name__ == "__main__":
    raise SystemExit(main())
