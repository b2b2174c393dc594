"""Fine-tuning a pruned model for a short budget, so that it recovers accuracy.

Pruning with ``torch.nn.utils.prune`` keeps each mask as a buffer and computes
``weight = weight_orig * weight_mask`` before every forward pass: while the masks are attached,
training changes only the surviving weights and the zeros stay zeros. After
``prune.remove`` the zeros are ordinary weights and the first optimizer step makes them
nonzero again. A model whose filters were removed has no masks: it is simply a smaller dense
model and trains like one.

Example:
    >>> import numpy as np
    >>> from helpers import SmallCNN
    >>> X = np.zeros((8, 32, 32, 3), np.uint8); y = np.arange(8) % 10
    >>> model = fine_tune(SmallCNN(), (X, y), epochs=1, progress=False)
    >>> model.training
    False
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .batches import check_images_labels
from .evaluate import default_device
from .train import train_epoch

__all__ = ["fine_tune"]


def fine_tune(model: nn.Module, train_data, epochs: int = 1, lr: float = 3e-4, batch_size: int = 128,
              seed: int = 0, device=None, progress: bool = True) -> nn.Module:
    """Train ``model`` in place on ``train_data`` with Adam and cross-entropy; return it in eval mode.

    Args:
        model: a :class:`helpers.SmallCNN` (masked, removed or dense). Pruning masks that are
            attached stay attached, so masked weights stay zero.
        train_data: ``[images, labels]``: uint8 ``(N, 32, 32, 3)`` and integer ``(N,)``, the
            *training* split (``data["X_train"], data["y_train"]``); the test split must stay
            unseen, or its accuracy no longer measures anything.
        epochs: passes over ``train_data``.
        lr: Adam learning rate, constant (fine-tuning starts from trained weights, so it is
            smaller than a training run's).
        batch_size: images per step.
        seed: seeds the order of the images and the random flips.
        device: torch device (default: CUDA when available); the model is moved there and back.
        progress: show a progress bar with the loss.

    Returns:
        ``model`` itself, on its original device, in eval mode.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(train_data, (list, tuple)) or len(train_data) != 2:
        raise ValueError("train_data must be [images, labels], e.g. [data['X_train'], data['y_train']]")
    X, y = check_images_labels(*train_data)
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device) if device is not None else default_device()
    model.to(device).train()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    labels = torch.from_numpy(np.array(y, dtype=np.int64))  # a copy: y may be a read-only memory map
    for epoch in range(epochs):
        train_epoch(model, X, labels, batch_size, opt, rng, device, loss_fn,
                    desc=f"fine-tuning, epoch {epoch + 1}/{epochs}", progress=progress)
    return model.to(home).eval()
