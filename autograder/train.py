"""Training the course's reference model (the instructor's step; students get the trained checkpoint).

Command line::

    python -m autograder train --data-root PATH --epochs N --out FILE

``PATH`` may be ``synthetic``. The run is seeded (``--seed``); on CPU the same seed gives
the same model. Progress is shown per epoch with validation accuracy.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.data import SYNTHETIC, check_images_labels, get_CINIC10_data
from helpers.evaluate import default_device, test_model
from helpers.finetune import train_epoch
from helpers.models import SmallCNN, save_model

from .config import TrainConfig

__all__ = ["train_model", "seed_everything", "main"]


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    parser = argparse.ArgumentParser(prog="python -m autograder train", description=__doc__.split("\n")[0])
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

