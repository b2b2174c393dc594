"""``test_model``: accuracy of a model on ``[X_test, y_test]``, as in the original notebook."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .allocator import steady_allocator
from .batches import check_images_labels, iterate_batches, to_model_input

__all__ = ["test_model", "predict", "default_device", "eval_batch_size"]

#: Batch size used for evaluation on the CPU. Its largest activation (200 x 32 x 32 x 32
#: float32, 26 MB) stays under even the smallest mmap threshold that :func:`steady_allocator`
#: sets (32 MiB), so no batch maps fresh pages.
EVAL_BATCH_SIZE = 200

#: CPU batch size where :func:`steady_allocator` could set a 128 MiB threshold (largest
#: activation 62.5 MiB). Paired on a 2-core CPU (benchmarks/history.md): the bare model ran
#: alike at 200 and 500, while ``test_model``'s own per-batch work (copy, normalize) fell from
#: 3% of the time to 1%.
LARGE_EVAL_BATCH_SIZE = 500

#: Batch size on a GPU, where a 100-image batch leaves the device waiting on kernel launches
#: (on an H100, 90,000 images: 147k img/s at 100, 954k at 2,000, 1.06M at 5,000, 1.09M at
#: 10,000; benchmarks/history.md). 5,000 images take 61 MB of float input and about 160 MB
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


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def predict(model: nn.Module, images, batch_size: int | None = None,
            device: torch.device | str | None = None) -> np.ndarray:
    """Return int64 class predictions of shape ``(N,)`` for uint8 ``(N, 32, 32, 3)`` images.

    Runs in eval mode without gradients on ``device`` (default: CUDA if available), in
    batches of ``batch_size`` images (default: :func:`eval_batch_size` of the device). The
    model's train/eval mode and device are restored afterwards, even if it raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images, _ = check_images_labels(images, np.zeros(len(images), dtype=np.int64))
    device = torch.device(device) if device is not None else default_device()
    batch_size = eval_batch_size(device) if batch_size is None else batch_size
    was_training, old_device = model.training, _model_device(model)
    try:
        model.to(device).eval()
        with torch.inference_mode():
            run = _predict_cuda if device.type == "cuda" else _predict_cpu
            return run(model, images, batch_size, device)
    finally:
        model.to(old_device)
        model.train(was_training)


def _predict_cpu(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
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


def _predict_cuda(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Double-buffered GPU evaluation: while the GPU runs batch ``b``, the CPU copies batch
    ``b + 1`` into the other pinned host buffer and a side stream uploads it, so neither the
    host copy nor the upload waits for the model (a plain loop spent a third of its time on them;
    benchmarks/history.md). Only uint8 pixels cross the bus; predictions stay on the GPU until
    the end. Same batches and arithmetic as :func:`_predict_cpu`, so the same predictions as an
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


def test_model(model: nn.Module, test_data, mode: str = "torch", batch_size: int | None = None,
               device: torch.device | str | None = None, verbose: bool = True) -> float:
    """Print and return the accuracy of ``model`` on ``test_data``.

    Args:
        model: a classifier taking normalized ``(B, 3, 32, 32)`` float input.
        test_data: ``[X_test, y_test]`` with uint8 images ``(N, 32, 32, 3)`` and labels
            ``(N,)``, as returned by :func:`helpers.get_CINIC10_data`.
        mode: ``"torch"`` (the only supported framework).
        batch_size: images per forward pass (default: :func:`eval_batch_size` of the device).
        device: where to run; default CUDA when available, else CPU.
        verbose: print ``Test Acc: 0.5120`` (four decimals).

    Returns:
        Accuracy in [0, 1] as a Python float. The same model and data give the same number
        on every call; the model's mode and device are left as they were.

    Example:
        >>> from helpers import SmallCNN
        >>> X = np.zeros((4, 32, 32, 3), dtype=np.uint8); y = np.zeros(4, dtype=np.int64)
        >>> 0.0 <= test_model(SmallCNN(), [X, y], verbose=False) <= 1.0
        True
    """
    if mode != "torch":
        raise NotImplementedError(f"mode={mode!r} is not supported; use mode='torch'")
    if not isinstance(test_data, (list, tuple)) or len(test_data) != 2:
        raise ValueError(f"test_data must be [X_test, y_test], got {type(test_data).__name__}")
    images, labels = check_images_labels(*test_data)
    if len(labels) == 0:
        raise ValueError("test_data is empty")
    preds = predict(model, images, batch_size=batch_size, device=device)
    acc = float((preds == np.asarray(labels)).mean())
    if verbose:
        print(f"Test Acc: {acc:.4f}")
    return acc

# ``test_model`` is not a pytest test, though its name says so.
test_model.__test__ = False
