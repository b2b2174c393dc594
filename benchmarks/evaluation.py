"""Benchmark steps ``eval`` (and ``eval_cuda``) and ``allocator``: ``test_model``'s speed against a plain
evaluation loop, and the page faults per evaluation batch with and without the allocator setting."""

from __future__ import annotations

import functools
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.common import REPO, spread, venv_env

__all__ = ["bench_eval", "bench_allocator", "EVAL_SLICE_IMAGES"]


#: Images per paired slice of the evaluation benchmark (history.md item 22: 10,000-image
#: slices, about 2 s per side, left a +-8% spread between rounds of the same code).
EVAL_SLICE_IMAGES = 2_000


def bench_eval(n_images: int, rounds: int, device: str = "cpu") -> dict:
    """``test_model`` vs a bare ``model(x)`` loop over pre-normalized input, both on ``device``.

    First the bare loop's best batch size: the first 20,000 images (30,000 on CUDA) twice, each
    slice of 2,000 (10,000) images timed at every size back to back; the lowest total wins.
    Then ``rounds`` rounds over all images in slices of 2,000 (or the batch size if larger),
    each slice timed for the bare
    loop (at that size) and ``test_model`` back to back, the order alternating; a round's
    ratio is its summed bare time over its summed ``test_model`` time, and the median over
    rounds is reported, so neither side gains from being measured at a quieter moment.
    Finally one ``test_model`` call over the whole split, for its images per second.
    On CUDA the bare loop's input is already on the GPU and each timing ends with a
    synchronize; ``test_model`` starts from the uint8 arrays in host memory, as students call it.
    """
    from helpers import test_model
    from helpers._batches import to_model_input
    from helpers._speed.allocator import steady_allocator
    from helpers._synthetic import make_synthetic
    from helpers.models import SmallCNN

    # The allocator settings test_model applies on its first call, applied before either side
    # is measured: both run under the same malloc thresholds (helpers/_speed/allocator.py).
    mmap_threshold = steady_allocator()
    per_class = n_images // 10
    data = make_synthetic({"train": 1, "val": 1, "test": per_class})
    X, y = data["X_test"], data["y_test"]
    torch.manual_seed(0)
    model = SmallCNN().eval().to(device)
    pre = torch.cat([to_model_input(X[i:i + 5000], device) for i in range(0, len(X), 5000)])
    cuda = torch.device(device).type == "cuda"

    def seconds(fn, *args):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(*args)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def bare(bs, n=len(pre), start=0):
        with torch.inference_mode():
            for i in range(start, n, bs):
                model(pre[i:min(i + bs, n)]).argmax(1)

    quiet = functools.partial(test_model, verbose=False, device=device)

    def ours():
        quiet(model, [X, y])

    if cuda:  # warm-up: cuDNN picks its kernels per shape on first use
        for bs in (500, 1000, 2000, 5000, 10000):
            bare(bs, min(len(pre), 2 * bs))
        ours()
    sizes = (500, 1000, 2000, 5000, 10000) if cuda else (100, 200, 500, 1000, 2000)
    # The scan is paired like the rounds below: every slice of max(sizes) images is timed at
    # each size back to back, the order of sizes rotating from slice to slice.
    by_size = {bs: 0.0 for bs in sizes}
    step = max(sizes)
    scan = max(step, min(len(pre) // step * step, 20_000 if not cuda else 30_000))
    for p in range(2):
        for k, lo in enumerate(range(0, scan, step)):
            shift = (k + p) % len(sizes)
            for bs in sizes[shift:] + sizes[:shift]:
                by_size[bs] += seconds(bare, bs, lo + step, lo)
    best_bs = min(sizes, key=lambda bs: by_size[bs])
    print(f"bare loop by batch size ({scan:,} images, twice): " + ", ".join(
        f"{bs}: {2 * scan / t:,.0f}" for bs, t in by_size.items()) + " img/s", flush=True)
    # Paired in short slices: on a shared 2-core machine the speed drifts by 10-20% within
    # seconds, so each slice of `chunk` images (about 0.4 s per side on a 2-core CPU) is timed for
    # both sides back to back (order alternating) and a round sums its slices over the whole
    # split. test_model's fixed cost per call (argument checks, buffers) is counted every slice.
    chunk = min(len(X), max(EVAL_SLICE_IMAGES, best_bs))
    bare_times, ours_times, ratios = [], [], []
    for r in range(rounds):
        bare_s = ours_s = 0.0
        for k, lo in enumerate(range(0, len(X), chunk)):
            hi = min(lo + chunk, len(X))
            part = [X[lo:hi], y[lo:hi]]
            if (r + k) % 2:
                ours_s += seconds(quiet, model, part)
                bare_s += seconds(bare, best_bs, hi, lo)
            else:
                bare_s += seconds(bare, best_bs, hi, lo)
                ours_s += seconds(quiet, model, part)
        bare_times.append(bare_s)
        ours_times.append(ours_s)
        ratios.append(bare_s / ours_s)
        print(f"round {r + 1}/{rounds}: bare (batch {best_bs}) {len(X) / bare_s:,.0f} img/s, "
              f"test_model {len(X) / ours_s:,.0f} img/s, ratio {ratios[-1]:.3f}", flush=True)
    whole = seconds(ours)

    def stats(times):
        return statistics.median(times), min(times), max(times), None

    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "images": len(X),
        "malloc_mmap_threshold_bytes": mmap_threshold,
        "rounds": len(ratios),
        "slice_images": chunk,
        "bare_best_batch_size": best_bs,
        "bare_images_per_s": round(len(X) / statistics.median(bare_times)),
        "bare": spread(stats(bare_times)),
        "bare_scan_images": scan,
        "bare_scan_passes": 2,
        "bare_by_batch_size": {bs: round(2 * scan / t) for bs, t in by_size.items()},
        "test_model_images_per_s": round(len(X) / statistics.median(ours_times)),
        "test_model": spread(stats(ours_times)),
        "test_model_whole_split_s": round(whole, 3),
        "test_model_whole_split_images_per_s": round(len(X) / whole),
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio": round(statistics.median(ratios), 3),
        "target_ratio": 0.95,
    }


_FAULTS = """
import resource, torch
from helpers.models import SmallCNN
from helpers._speed.allocator import steady_allocator
from helpers._speed.inference import eval_batch_size
threshold = steady_allocator()
model = SmallCNN().eval()
x = torch.randn(eval_batch_size("cpu"), 3, 32, 32).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        model(x)
print(threshold, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def bench_allocator() -> dict:
    """Page faults per evaluation batch with the allocator setting, and with glibc's own 128 KiB
    threshold (``MALLOC_MMAP_THRESHOLD_`` set, which turns the setting off); a fresh process each."""
    out = {}
    for name, extra in (("steady", {}), ("glibc_default", {"MALLOC_MMAP_THRESHOLD_": "131072"})):
        env = {k: v for k, v in venv_env().items() if k != "MALLOC_MMAP_THRESHOLD_"}
        env.update(extra, PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        threshold, faults = done.stdout.split()
        out[name] = {"mmap_threshold": int(threshold), "faults_per_batch": float(faults)}
    return out
