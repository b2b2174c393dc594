"""glibc malloc settings for steady evaluation speed (helpers/allocator.py)."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import SmallCNN
from helpers.allocator import steady_allocator
from helpers.evaluate import eval_batch_size

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's mallopt only")


@glibc
def test_activations_are_not_mapped_again_every_batch():
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        pytest.skip("the environment fixes the threshold itself")
    assert steady_allocator() >= 32 << 20 and steady_allocator() == steady_allocator()
    model = SmallCNN().eval()
    # as test_model feeds it: channels last; conv1's output is 26 MB, above glibc's default threshold
    # (62.5 MiB at the batch of 500 used where the threshold is 128 MiB)
    x = torch.randn(eval_batch_size("cpu"), 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            model(x)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # mapping the activations afresh costs about 12,800 faults (50 MB of 4 KiB pages) per batch
    assert faults / 10 < 1_000, faults


@glibc
def test_the_users_own_malloc_setting_is_left_alone():
    code = "from helpers.allocator import steady_allocator; print(steady_allocator())"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
