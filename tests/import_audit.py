"""Runs ``python -m autograder`` with an import audit hook: ``python -m tests.import_audit grade ...``.

Writes, to the JSON file named by ``IMPORT_AUDIT_OUT``, every module that a thread other than the main
one imported for the first time (not yet in ``sys.modules``; the standard library left out), by thread
name: ``{"pgrade-job_0": ["IPython", ...], ...}``. ``tests/e2e/test_grading_app.py`` uses it to check that
the grading threads find their libraries already imported (:mod:`autograder.grading.warm_imports`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import defaultdict

__all__ = ["main"]


def main(argv: list[str]) -> int:
    out = os.environ["IMPORT_AUDIT_OUT"]
    first: dict[str, list[str]] = defaultdict(list)

    def hook(event: str, args: tuple) -> None:
        if event != "import":
            return
        name, thread = args[0], threading.current_thread().name
        if thread != "MainThread" and name not in sys.modules and name.split(".")[0] not in sys.stdlib_module_names:
            first[thread].append(name)

    sys.addaudithook(hook)
    from autograder.cli import main as grader
    try:
        return grader(argv)
    finally:
        with open(out, "w") as fh:
            json.dump({thread: sorted(set(names)) for thread, names in first.items()}, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
