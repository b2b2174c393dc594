"""Private: how :func:`helpers.predict` runs batches fast on the CPU and on a GPU.

Both loops take the same batches and do the same arithmetic (:func:`helpers._batches.to_model_input`
then the model), so a model gives the same predictions with either on a given device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._batches import iterate_batches, to_model_input
from .allocator import steady_allocator

__all__ = ["eval_batch_size", "predict_cpu", "predict_cuda",
           "EVAL_BATCH_SIZE", "LARGE_EVAL_BATCH_SIZE", "CUDA_EVAL_BATCH_SIZE"]

#: Batch size used for evaluation on the CPU. Its largest activation (200 x 32 x 32 x 32
#: float32, 26 MB) stays under even the smallest mmap threshold that :func:`steady_allocator`
#: sets (32 MiB), so no batch maps fresh pages.
EVAL_BATCH_SIZE = 200

#: CPU batch size where :func:`steady_allocator` could set a 128 MiB threshold (largest
#: activation 62.5 MiB). Paired on a 2-core CPU (the course repository's benchmark history): the bare model ran
#: alike at 200 and 500, while ``test_model``'s own per-batch work (copy, normalize) fell from
#: 3% of the time to 1%.
LARGE_EVAL_BATCH_SIZE = 500

#: Batch size on a GPU, where a 100-image batch leaves the device waiting on kernel launches
#: (on an H100, 90,000 images: 147k img/s at 100, 954k at 2,000, 1.06M at 5,000, 1.09M at
#: 10,000; measured in the course repository's benchmarks). 5,000 images take 61 MB of float input and about 160 MB
#: for the largest activation, well within any Colab GPU.
CUDA_EVAL_BATCH_SIZE = 5000


def eval_batch_size(device: torch.device | str) -> int:
    """Images per forward pass that :func:`test_model` uses on ``device`` by default.

    Fixed per device type and machine, so repeated calls give identical results. On the CPU
    this applies :func:`steady_allocator` (its side effect is documented there).
    """
    if torch.device(device).type == "cuda":
        return CUDA_EVAL_BATCH_SIZE
    return LARGE_EVAL_BATCH_SIZE if steady_allocator() >= 128 << 20 else EVAL_BATCH_SIZE


def predict_cpu(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Batches one after another through two buffers (uint8 pixels, normalized input) reused by
    every batch: no per-batch allocation (which cost up to 40% on a 2-core CPU). The model's
    own activations are kept from being re-mapped every batch by :func:`steady_allocator`."""
    steady_allocator()
    size = min(batch_size, len(images))
    pixels = torch.empty((size, *images.shape[1:]), dtype=torch.uint8)
    normalized = torch.empty(pixels.shape, dtype=torch.float32, device=device)
    preds = torch.empty(len(images), dtype=torch.int64, device=device)
    for idx in iterate_batches(len(images), batch_size):
        start, stop = int(idx[0]), int(idx[-1]) + 1
        n = stop - start
        pixels.numpy()[:n] = images[start:stop]
        x = to_model_input(pixels[:n], device, out=normalized[:n])
        torch.argmax(model(x), dim=1, out=preds[start:stop])
    return preds.cpu().numpy()


_UPLOAD_STREAMS: dict = {}


def _upload_stream(device: torch.device) -> torch.cuda.Stream:
    """One side stream per GPU for uploads, kept across calls."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _UPLOAD_STREAMS:
        _UPLOAD_STREAMS[index] = torch.cuda.Stream(index)
    return _UPLOAD_STREAMS[index]


def predict_cuda(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Double-buffered GPU evaluation: while the GPU runs batch ``b``, the CPU copies batch
    ``b + 1`` into the other pinned host buffer and a side stream uploads it, so neither the
    host copy nor the upload waits for the model (a plain loop spent a third of its time on them;
    measured in the course repository's benchmarks). Only uint8 pixels cross the bus; predictions stay on the GPU until
    the end. Same batches and arithmetic as :func:`predict_cpu`, so the same predictions as an
    unbuffered loop on this GPU.
    """
    size = min(batch_size, len(images))
    shape = (size, *images.shape[1:])
    host = [torch.empty(shape, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
    pixels = [torch.empty(shape, dtype=torch.uint8, device=device) for _ in range(2)]
    normalized = torch.empty(shape, dtype=torch.float32, device=device)
    preds = torch.empty(len(images), dtype=torch.int64, device=device)
    compute, upload = torch.cuda.current_stream(device), _upload_stream(device)
    uploaded = [None, None]  # event per buffer: its last upload finished (host buffer free again)
    consumed = [None, None]  # event per buffer: the model's stream has normalized its pixels
    for b, idx in enumerate(iterate_batches(len(images), batch_size)):
        k, start, stop = b % 2, int(idx[0]), int(idx[-1]) + 1
        n = stop - start
        if uploaded[k] is not None:
            uploaded[k].synchronize()
        host[k].numpy()[:n] = images[start:stop]
        with torch.cuda.stream(upload):
            if consumed[k] is not None:
                upload.wait_event(consumed[k])
            pixels[k][:n].copy_(host[k][:n], non_blocking=True)
            uploaded[k] = upload.record_event()
        compute.wait_event(uploaded[k])
        x = to_model_input(pixels[k][:n], device, out=normalized[:n])
        consumed[k] = compute.record_event()
        torch.argmax(model(x), dim=1, out=preds[start:stop])
    return preds.cpu().numpy()
