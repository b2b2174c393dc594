"""The course's small CNN and its checkpoint format.

A checkpoint is a ``torch.save`` of a plain dict::

    {"format": "pruning-course-model/1", "arch": "SmallCNN",
     "config": {...constructor kwargs...}, "state_dict": {...}}

It holds only tensors, strings, numbers and dicts, so it loads with
``torch.load(weights_only=True)``: a file that would run code when unpickled is refused.
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

__all__ = ["SmallCNN", "build_model", "model_config", "save_model", "load_model", "copy_model", "plain_state_dict",
           "checkpoint_trained_on", "CheckpointError", "ARCHITECTURES"]

_FORMAT = "pruning-course-model/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unsafe, or not one of this course's models."""


class SmallCNN(nn.Module):
    """Three conv blocks and two linear layers for 32x32 RGB images (about 0.6M parameters).

    Input: float32 ``(B, 3, 32, 32)`` normalized images. Output: ``(B, num_classes)`` logits.

    Layers (names are stable; pruning code and the autograder refer to them):
    ``conv1`` 3->c1, ``conv2`` c1->c2, ``conv3`` c2->c3 (3x3, padding 1, each followed by
    ReLU and 2x2 max-pooling), ``fc1`` (c3*4*4)->hidden with ReLU and dropout, ``fc2``
    hidden->num_classes.

    Example:
        >>> m = SmallCNN()
        >>> m(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), hidden: int = 256,
                 num_classes: int = 10, dropout: float = 0.3):
        super().__init__()
        if len(channels) != 3 or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be three positive ints, got {channels!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        c1, c2, c3 = (int(c) for c in channels)
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        self.fc1 = nn.Linear(c3 * 4 * 4, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        x = self.pool(self.act(self.conv3(x)))
        x = self.drop(self.act(self.fc1(x.flatten(1))))
        return self.fc2(x)


#: Architectures a checkpoint may name.
ARCHITECTURES = {"SmallCNN": SmallCNN}


def build_model(arch: str = "SmallCNN", **config) -> nn.Module:
    """Construct an architecture by name with its keyword config."""
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config)


def model_config(model: nn.Module) -> tuple[str, dict]:
    """Return ``(architecture name, constructor kwargs)`` of a model this package can save."""
    if isinstance(model, SmallCNN):
        return "SmallCNN", {
            "channels": [model.conv1.out_channels, model.conv2.out_channels, model.conv3.out_channels],
            "hidden": model.fc1.out_features, "num_classes": model.fc2.out_features,
            "dropout": model.drop.p,
        }
    raise ValueError(f"save_model supports {', '.join(ARCHITECTURES)}, got {type(model).__name__}")


def save_model(model: nn.Module, path: str | os.PathLike, trained_on: str | None = None) -> Path:
    """Write ``model`` to ``path`` (atomically) in the checkpoint format above.

    A model with active ``torch.nn.utils.prune`` masks is saved with its ``weight_orig`` /
    ``weight_mask`` entries and comes back pruned from :func:`load_model`. ``trained_on``: the data
    the model was trained on (``"CINIC-10"``, or ``"synthetic"`` for the generated stand-in), kept in
    the checkpoint (:func:`checkpoint_trained_on`) so that a release can refuse a stand-in model.
    """
    arch, config = model_config(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    ckpt = {"format": _FORMAT, "arch": arch, "config": config, "state_dict": state}
    if trained_on is not None:
        ckpt["trained_on"] = str(trained_on)
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def _load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a plain or pruned state dict; pruned entries are re-applied as pruning masks."""
    masked = {k[: -len("_mask")] for k in state if k.endswith("_mask")}
    plain = {}
    for key, value in state.items():
        if key.endswith("_orig") and key[: -len("_orig")] in masked:
            continue
        if key.endswith("_mask") and key[: -len("_mask")] in masked:
            continue
        plain[key] = value
    for full in masked:
        plain[full] = state[full + "_orig"]
    model.load_state_dict(plain, strict=True)
    for full in sorted(masked):
        module_name, _, param = full.rpartition(".")
        module = model.get_submodule(module_name)
        prune.custom_from_mask(module, param, state[full + "_mask"].to(torch.bool))


def load_model(path: str | os.PathLike, mode: str = "torch",
               map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a checkpoint written by :func:`save_model` and return the model in eval mode.

    Args:
        path: checkpoint file.
        mode: only ``"torch"`` is supported (the original course also had TensorFlow).
        map_location: device for the tensors.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not a checkpoint of this course, or would execute code
            when unpickled (refused by ``weights_only=True``).
        NotImplementedError: ``mode`` other than ``"torch"``.
    """
    if mode != "torch":
        raise NotImplementedError(
            f"mode={mode!r} is not supported: this course ships PyTorch models only; use mode='torch'")
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no model checkpoint at {path}: students, use the pruning-model.pt of your course's "
                                "bundle (put its path in MODEL_PATH, in the notebook's paths cell); instructors, "
                                "train one with `python -m autograder train --out PATH` in the course repository, "
                                "or set PRUNING_MODEL")
    ckpt = _read_checkpoint(path, map_location)
    try:
        model = build_model(ckpt["arch"], **ckpt.get("config", {}))
        _load_state(model, ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its architecture or weights do not match ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None
    return model.to(map_location).eval()


def checkpoint_trained_on(path: str | os.PathLike) -> str | None:
    """The training data a checkpoint of :func:`save_model` records (``None``: not recorded).

    Raises :class:`CheckpointError` like :func:`load_model` when ``path`` is not such a checkpoint.
    """
    return _read_checkpoint(Path(path).expanduser(), "cpu").get("trained_on")


def _read_checkpoint(path: Path, map_location) -> dict:
    """The dict :func:`save_model` wrote at ``path``, read with ``weights_only=True``; :class:`CheckpointError`
    when the file would run code when unpickled, is not a torch file, or is not one of this course's."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it contains objects other than tensors and plain data "
            f"(it could run code when unpickled). Only checkpoints from save_model are accepted. "
            f"Detail: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - torch's unpickler fails on other files with any error (KeyError: 174812789)
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint written by helpers.save_model")
    return ckpt


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works on a model pruned with ``torch.nn.utils.prune``.

    A plain deepcopy of a pruned model fails ("Only Tensors created explicitly by the user
    (graph leaves) support the deepcopy protocol") once the masked ``weight`` attribute was
    computed with gradients enabled. Here each such attribute is replaced by a detached
    copy first; pruning hooks recompute it before every forward pass, so ``model`` behaves
    exactly as before. Masks, ``weight_orig`` and the train/eval mode are copied.
    """
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                name = hook._tensor_name
                current = getattr(module, name)
                if isinstance(current, torch.Tensor) and not current.is_leaf:
                    setattr(module, name, current.detach())
    return copy.deepcopy(model)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with pruning folded in: ``weight`` = ``weight_orig * weight_mask``.

    Keys are those of an unpruned model (``conv1.weight``, ...), tensors are detached CPU
    copies, so the result loads into a fresh model with ``strict=True``.
    """
    state = model.state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            base = key[: -len("_orig")]
            value = value * state[base + "_mask"]
            key = base
        out[key] = value.detach().cpu().clone()
    return out
