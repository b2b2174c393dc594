"""Fine-tuning a pruned model for a short budget, so that it recovers accuracy.

Pruning with ``torch.nn.utils.prune`` keeps each mask as a buffer and computes
``weight = weight_orig * weight_mask`` before every forward pass: while the masks are attached,
training changes only the surviving weights and the zeros stay zeros. After
``prune.remove`` the zeros are ordinary weights and the first optimizer step makes them
nonzero again. A model whose filters were removed has no masks: it is simply a smaller dense
model and trains like one.

Example:
    >>> import numpy as np
    >>> from helpers.models import SmallCNN
    >>> X = np.zeros((8, 32, 32, 3), np.uint8); y = np.arange(8) % 10
    >>> model = fine_tune(SmallCNN(), (X, y), epochs=1, progress=False)
    >>> model.training
    False
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._batches import iterate_batches, to_model_input
from ._speed.allocator import steady_allocator
from .data import check_images_labels
from .evaluate import default_device

__all__ = ["fine_tune", "train_epoch"]


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


def train_epoch(model: nn.Module, X, labels: torch.Tensor, batch_size: int, opt, rng: np.random.Generator, device,
                loss_fn, flip: bool = True, scheduler=None, desc: str = "", progress: bool = True) -> float:
    """One pass over ``X`` (uint8 ``(N, 32, 32, 3)``) in shuffled batches; returns the mean loss.

    ``labels`` is an int64 CPU tensor ``(N,)``; ``rng`` orders the batches and draws the random
    horizontal flips (``flip``); ``scheduler`` (if any) steps after every optimizer step. The model
    is trained in place; its mode is left as it is (call ``model.train()`` first).

    On the CPU this first applies :func:`helpers._speed.allocator.steady_allocator` (process-wide:
    glibc keeps freed activation blocks for reuse instead of unmapping them; without it, in a process
    whose environment fixes ``MALLOC_TRIM_THRESHOLD_``, as a Dask worker's does, an epoch of
    fine-tuning took 1.5 s instead of 0.85 s).
    """
    if torch.device(device).type == "cpu":
        steady_allocator()
    batches = list(iterate_batches(len(labels), batch_size, shuffle=True, generator=rng))
    bar = tqdm(batches, desc=desc, disable=not progress, leave=False)
    total_loss = 0.0
    for idx in bar:
        x = to_model_input(X[idx], device)
        if flip:
            flipped = torch.from_numpy(rng.random(len(idx)) < 0.5).to(device)
            x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(3), x)
        loss = loss_fn(model(x), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.item() * len(idx)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return total_loss / max(len(labels), 1)
