"""Training the course's reference model.

Command line::

    python -m helpers.train --data-root PATH --epochs N --out FILE

``PATH`` may be ``synthetic``. The run is seeded (``--seed``); on CPU the same seed gives
the same model. Progress is shown per epoch with validation accuracy.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._speed.allocator import steady_allocator
from .batches import check_images_labels, iterate_batches, to_model_input
from .data import SYNTHETIC, get_CINIC10_data
from .evaluate import default_device, test_model
from .models import SmallCNN, save_model

__all__ = ["TrainConfig", "train_model", "train_epoch", "seed_everything", "main"]


@dataclass
class TrainConfig:
    """Hyper-parameters of the reference model (defaults reach >= 50% on real CINIC images).

    Attributes:
        epochs: passes over the training split.
        batch_size: images per step.
        lr: Adam learning rate, decayed by cosine annealing to 0.
        weight_decay: Adam L2 penalty.
        seed: seeds python, numpy and torch.
        flip: random horizontal flips as augmentation.
    """

    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    flip: bool = True


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def train_model(data: dict, config: TrainConfig = TrainConfig(), device=None,
                progress: bool = True) -> nn.Module:
    """Train a fresh :class:`SmallCNN` on ``data['X_train'], data['y_train']``.

    Args:
        data: as returned by :func:`helpers.get_CINIC10_data`.
        config: hyper-parameters.
        device: torch device (default: CUDA when available).
        progress: show a progress bar over epochs and batches.

    Returns:
        The trained model on the CPU, in eval mode.
    """
    if config.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {config.epochs}")
    X, y = check_images_labels(data["X_train"], data["y_train"])
    device = torch.device(device) if device is not None else default_device()
    seed_everything(config.seed)
    model = SmallCNN().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * ((len(y) + config.batch_size - 1) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(config.seed)
    labels = torch.from_numpy(np.array(y, dtype=np.int64))
    for epoch in range(config.epochs):
        model.train()
        mean_loss = train_epoch(model, X, labels, config.batch_size, opt, rng, device, loss_fn, flip=config.flip,
                                scheduler=sched, desc=f"epoch {epoch + 1}/{config.epochs}", progress=progress)
        msg = f"epoch {epoch + 1}/{config.epochs}: train loss {mean_loss:.3f}"
        if "X_val" in data and len(data["y_val"]):
            val = test_model(model, [data["X_val"], data["y_val"]], device=device, verbose=False)
            msg += f", val acc {val:.4f}"
        if progress:
            tqdm.write(msg)
    return model.cpu().eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n")[1])
    parser.add_argument("--data-root", default=None,
                        help="CINIC-10 folder or archive, or 'synthetic' (default: $CINIC10_ROOT)")
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--n-per-class", type=int, default=None,
                        help="train on a stratified subset of this many images per class")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    args = parser.parse_args(argv)
    data = get_CINIC10_data(args.data_root, n_per_class=args.n_per_class)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    start = time.perf_counter()
    model = train_model(data, config, device=args.device)
    took = time.perf_counter() - start
    print(f"trained {config.epochs} epochs on {len(data['y_train'])} images in {took:.1f} s")
    test_model(model, [data["X_test"], data["y_test"]], device=args.device)
    trained_on = SYNTHETIC if args.data_root == SYNTHETIC else "CINIC-10"
    if args.n_per_class:
        trained_on += f" ({args.n_per_class} images per class)"
    save_model(model, args.out, trained_on=trained_on)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
