"""The errors that stop ``python -m autograder grade`` before any row is written.

Both are the TA's to fix, not a student's: the command prints the message as one paragraph and exits with
status 2 (:mod:`autograder.cli`). Light to import (no torch), so the command line can name them.

Runs in the grader's process.
"""

from __future__ import annotations

__all__ = ["InputError", "PreflightError"]


class InputError(ValueError):
    """An argument of the command cannot be used (no submissions, a model that is not a checkpoint, grading
    data that cannot be read, an output folder that cannot be written); one sentence says which and why."""


class PreflightError(RuntimeError):
    """A job slot cannot run the set-up of a notebook (:mod:`autograder.grading.preflight`); the message says
    why, with the last lines of the kernel's log, and what to do."""
