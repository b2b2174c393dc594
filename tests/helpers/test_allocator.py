"""glibc malloc settings for steady evaluation speed (helpers/_speed/allocator.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from helpers._speed.allocator import steady_allocator
from helpers._speed.inference import eval_batch_size

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's mallopt only")


@glibc
def test_the_setting_is_applied_once_and_kept():
    """What the setting does to page faults is a machine-dependent figure: `make bench` measures
    it (step ``allocator``); here only that it is applied, and the same on every call."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        pytest.skip("the environment fixes the threshold itself")
    first = steady_allocator()
    assert first in (128 << 20, 32 << 20)
    assert [steady_allocator() for _ in range(3)] == [first] * 3
    # CPU evaluation uses the larger batch exactly where the larger threshold was accepted
    assert eval_batch_size("cpu") == (500 if first == 128 << 20 else 200)


@glibc
def test_the_users_own_malloc_setting_is_left_alone():
    code = "from helpers._speed.allocator import steady_allocator; print(steady_allocator())"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


@glibc
def test_training_on_the_cpu_applies_the_setting_where_dask_fixed_the_trim_threshold():
    """A Dask worker's environment has MALLOC_TRIM_THRESHOLD_, which turns glibc's own dynamic mmap
    threshold off: training must fix the thresholds itself, before its first batch, in a process that
    has evaluated nothing yet."""
    code = ("import numpy as np, helpers._speed.allocator as a\n"
            "from helpers.models import SmallCNN\nfrom helpers.finetune import fine_tune\n"
            "before = a._threshold\n"
            "X = np.zeros((8, 32, 32, 3), np.uint8); y = np.arange(8) % 10\n"
            "fine_tune(SmallCNN(), (X, y), device='cpu', progress=False)\n"
            "print(before, a._threshold)")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    env.update(MALLOC_TRIM_THRESHOLD_="65536", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after = out.stdout.split()
    assert before == "None" and int(after) in (128 << 20, 32 << 20)
