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
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
