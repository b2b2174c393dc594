"""A generated stand-in for CINIC-10, for offline demos and tests.

Same shapes and dtypes as the real data (uint8 ``(N, 32, 32, 3)`` images, int64 labels
0..9), made from a fixed seed so every machine generates the same arrays. Each class is a
family of smooth colour patterns (oriented gratings and blobs); every image shows one of
its class's patterns at a random shift and contrast, blended with a pattern of another
class and covered in noise. The mix is tuned so the reference CNN reaches roughly 60-70%
test accuracy, leaving room for pruning to hurt, as on real CINIC-10.

It is only ever used when asked for explicitly (``get_CINIC10_data("synthetic")``).
"""

from __future__ import annotations

import numpy as np

from .config import CINIC10

__all__ = ["make_synthetic", "SYNTHETIC_SIZES"]

#: Default images per class for each split (train, val, test), like the real sample.
SYNTHETIC_SIZES = {"train": 1000, "val": 200, "test": 300}

_PATTERNS_PER_CLASS = 4
_NOISE = 80.0       # std of pixel noise, in 0..255 units
_DISTRACT = (0.5, 1.0)  # weight range of the other class's pattern
_SHIFT = 8          # maximum shift in pixels


def _prototypes(rng: np.random.Generator) -> np.ndarray:
    """Return float32 patterns of shape ``(classes, patterns, 32, 32, 3)`` in about -1..1."""
    n_cls = CINIC10.num_classes
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 32.0
    protos = np.zeros((n_cls, _PATTERNS_PER_CLASS, 32, 32, 3), dtype=np.float32)
    for c in range(n_cls):
        base_angle = np.pi * c / n_cls
        base_freq = 1.5 + (c % 5) * 0.8
        base_color = rng.uniform(-1, 1, size=3)
        for k in range(_PATTERNS_PER_CLASS):
            angle = base_angle + rng.normal(0, 0.15)
            freq = base_freq * rng.uniform(0.85, 1.15)
            phase = rng.uniform(0, 2 * np.pi)
            grating = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
            cy, cx = rng.uniform(0.25, 0.75, size=2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.18 ** 2))
            color = np.clip(base_color + rng.normal(0, 0.3, size=3), -1, 1)
            second = rng.uniform(-1, 1, size=3)
            img = (0.6 * grating[..., None] * color + 0.8 * blob[..., None] * second)
            protos[c, k] = img / max(1e-6, np.abs(img).max())
    return protos


def _sample(protos: np.ndarray, n_per_class: int, rng: np.random.Generator):
    n_cls = protos.shape[0]
    labels = np.repeat(np.arange(n_cls), n_per_class)
    n = len(labels)
    k = rng.integers(0, _PATTERNS_PER_CLASS, size=n)
    other = (labels + rng.integers(1, n_cls, size=n)) % n_cls
    k2 = rng.integers(0, _PATTERNS_PER_CLASS, size=n)
    contrast = rng.uniform(0.6, 1.2, size=(n, 1, 1, 1)).astype(np.float32)
    weight = rng.uniform(*_DISTRACT, size=(n, 1, 1, 1)).astype(np.float32)
    img = contrast * protos[labels, k] + weight * protos[other, k2]
    shifts = rng.integers(-_SHIFT, _SHIFT + 1, size=(n, 2))
    for i in range(n):  # per-image shift; 15k images take well under a second
        img[i] = np.roll(img[i], tuple(shifts[i]), axis=(0, 1))
    pixels = 128.0 + 70.0 * img + rng.normal(0, _NOISE, size=img.shape).astype(np.float32)
    pixels += rng.normal(0, 20, size=(n, 1, 1, 3)).astype(np.float32)  # colour cast
    order = rng.permutation(n)
    X = np.clip(pixels, 0, 255).astype(np.uint8)[order]
    return X, labels[order].astype(np.int64)


def make_synthetic(sizes: dict[str, int] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Generate the dataset.

    Args:
        sizes: images per class for ``train``, ``val`` and ``test`` (defaults:
            :data:`SYNTHETIC_SIZES`).
        seed: seed of the patterns and the samples; the same seed gives identical arrays.

    Returns:
        A dict with ``X_train, y_train, X_val, y_val, X_test, y_test`` as
        :func:`helpers.get_CINIC10_data` returns them.

    Example:
        >>> d = make_synthetic({"train": 2, "val": 1, "test": 1})
        >>> d["X_train"].shape, d["X_train"].dtype, d["y_test"].tolist()[:0]
        ((20, 32, 32, 3), dtype('uint8'), [])
    """
    sizes = {**SYNTHETIC_SIZES, **(sizes or {})}
    for split, n in sizes.items():
        if split not in SYNTHETIC_SIZES or int(n) < 1:
            raise ValueError(f"sizes must map train/val/test to positive ints, got {split}={n!r}")
    protos = _prototypes(np.random.default_rng(seed))
    out = {}
    for i, split in enumerate(("train", "val", "test")):
        X, y = _sample(protos, int(sizes[split]), np.random.default_rng([seed, i + 1]))
        out[f"X_{split}"], out[f"y_{split}"] = X, y
    return out
