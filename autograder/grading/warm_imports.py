"""The libraries the grading threads would import late.

Several threads grade at once (``--jobs``, a worker's Dask threads, the setup threads beside them), and
some libraries are first imported deep inside their work: jupyter_client imports IPython when the first
kernel manager looks up its kernel spec, nbconvert imports IPython's lexers when it renders the first
feedback page, and torch imports ``torch._dynamo`` (with sympy) at the first optimiser step of a
fine-tuning replay. Python's import locks are per module, and when two threads import packages that
import each other (IPython's do) for the first time at once, one of them can be handed a half-imported
module: a grading run once lost a grade to ``ImportError: cannot import name '_sysinfo' from
'IPython.utils'``. :func:`import_before_threads` imports them all in one thread first, so the grading
threads only find them in ``sys.modules``.

Runs in the grader's process (or a cluster worker's).
"""

from __future__ import annotations

import importlib
import threading

from .report import warm_up_rendering

__all__ = ["THREAD_IMPORTS", "import_before_threads"]

#: Modules the grading threads would otherwise import for the first time (seen with an import audit
#: hook on a ``--jobs 2`` run of the samples; ``tests/e2e/test_grading_app.py`` checks the list still covers them).
THREAD_IMPORTS = (
    "IPython",  # the kernel spec lookup (IPython.paths, ipykernel.kernelspec), feedback pages
    "IPython.paths",
    "ipykernel.kernelspec",
    "nbconvert",  # feedback pages (HTMLExporter) and nbgrader
    "IPython.lib.lexers",  # nbconvert's syntax highlighting of the executed notebook
    "torch._dynamo",  # torch's optimisers import it at their first step (sympy with it): fine-tuning replays
    "torch_pruning",  # part 3's MAC counts (helpers.cost)
)

_lock = threading.Lock()
_done: set[str] = set()  # "imports", "feedback"


def import_before_threads() -> None:
    """Import :data:`THREAD_IMPORTS` and render one small page, for what nbconvert imports at its first
    page (:func:`~autograder.grading.report.warm_up_rendering`, 0.5 s): about 2.5 s the first time, nothing
    after; call it before the threads that grade (and render feedback pages) start. Side effect: only the
    imports."""
    with _lock:
        if "imports" not in _done:
            for name in THREAD_IMPORTS:
                importlib.import_module(name)
            _done.add("imports")
        if "feedback" not in _done:
            warm_up_rendering()
            _done.add("feedback")
