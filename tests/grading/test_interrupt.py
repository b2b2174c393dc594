"""Ctrl-C while a class is graded stops at once: nothing waits for the submissions still running or queued."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from autograder.grading import batch
from autograder.grading.submission import Submission


def test_ctrl_c_stops_the_run_without_waiting_for_the_class(monkeypatch, tmp_path):
    started, release = [], threading.Event()

    def slow(sub, run):
        started.append(sub.student_id)
        release.wait(20)

    monkeypatch.setattr(batch, "grade_one", slow)
    subs = [Submission(f"s{i}", tmp_path / f"s{i}.ipynb") for i in range(6)]
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C
    begin = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        batch._run_all(subs, None, [], 31.0, False, 2)
    assert time.perf_counter() - begin < 5, "did not wait for the running or the queued submissions"
    release.set()
    assert len(started) == 2  # the queued four never started
