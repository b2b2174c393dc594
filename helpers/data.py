"""``get_CINIC10_data``: the CINIC-10 loader used by the notebook, training and grading.

Where the data comes from, in order:

1. the ``root`` argument;
2. the ``CINIC10_ROOT`` environment variable;
3. ``<cache>/CINIC-10`` where ``<cache>`` is :func:`helpers.config.default_cache_dir`
   (``$CINIC10_CACHE``, else ``~/.cache/pruning-course``).

A root may be a folder with ``train/ valid/ test/`` inside, a folder holding
``CINIC-10.tar.gz``, a path to such an archive, a ``.npz`` file holding the six arrays that
:func:`get_CINIC10_data` returns (a saved subset, as the autograder hands to notebooks), or
the word ``"synthetic"`` for the generated stand-in (never used unless asked for). Decoded arrays are cached under
``<cache>/arrays/`` and memory-mapped on later calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ._batches import to_model_input
from ._speed.decode import DatasetError, build_cache, cache_key, load_cache
from ._synthetic import make_synthetic
from .config import CINIC10, ENV_EVAL_PER_CLASS, ENV_PER_CLASS, ENV_ROOT, EVAL_PER_CLASS, CinicConfig, default_cache_dir
from .download import download_file

__all__ = ["get_CINIC10_data", "evaluation_data", "to_model_input", "check_images_labels", "resolve_source",
           "stratified_indices",
           "DatasetError", "SYNTHETIC"]

#: The root value that selects the generated dataset.
SYNTHETIC = "synthetic"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def check_images_labels(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate an ``(images, labels)`` pair and return them as numpy arrays.

    ``images`` must be uint8 of shape ``(N, 32, 32, 3)`` (channels last, as returned by
    :func:`get_CINIC10_data`) and ``labels`` integers of shape ``(N,)``.

    Raises:
        ValueError: naming the wrong shape or dtype.
    """
    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    images = np.asanyarray(images)
    labels = np.asanyarray(labels)
    if images.ndim != 4 or images.shape[1:] != CINIC10.image_shape:
        raise ValueError(f"images must have shape (N, 32, 32, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 pixels 0..255, got dtype {images.dtype}")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},) to match the images, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return images, labels


def _how_to_provide(where: Path, config: CinicConfig) -> str:
    return (
        f"CINIC-10 was not found at {where}. Provide it in one of these ways:\n"
        f"  - in the course notebook: set DATA_PATH in the paths cell (the first code cell) to your "
        f"{config.archive_name} or the extracted folder, then run that cell and the set-up cell again\n"
        f"  - download {config.url} and pass its path: get_CINIC10_data('/path/to/{config.archive_name}')\n"
        f"  - extract it and pass the folder holding train/ valid/ test/\n"
        f"  - set the environment variable {ENV_ROOT} to either of those\n"
        f"  - call get_CINIC10_data(download=True) on a machine with internet access\n"
        f"  - or use the generated stand-in for offline work: get_CINIC10_data('{SYNTHETIC}')")


def resolve_source(root: str | os.PathLike | None = None, download: bool | None = None,
                   config: CinicConfig = CINIC10, progress: bool = True) -> Path | str:
    """Find the dataset and return the folder or archive to read, or ``"synthetic"``.

    ``download=None`` downloads only into the default location (no ``root`` and no
    ``CINIC10_ROOT``): an explicit path that does not exist is more likely a typo than a
    request for a 700 MB download.

    Raises:
        FileNotFoundError: nothing usable at the location; the message says how to provide it.
        DatasetError: a folder exists but lacks one of the split folders.
    """
    explicit = root is not None or bool(os.environ.get(ENV_ROOT))
    if root is None:
        root = os.environ.get(ENV_ROOT) or default_cache_dir() / "CINIC-10"
    if str(root) == SYNTHETIC:
        return SYNTHETIC
    path = Path(root).expanduser()
    if path.is_file():
        if path.suffix == ".npz":
            return path
        if not path.name.endswith(_ARCHIVE_SUFFIXES):
            raise DatasetError(f"{path} is a file but not a .tar.gz archive of CINIC-10")
        return path
    if path.is_dir():
        folders = [f for f in config.splits.values() if (path / f).is_dir()]
        if folders:
            missing = [f for f in config.splits.values() if f not in folders]
            if missing:
                raise DatasetError(f"{path}: missing split folder(s) {', '.join(missing)} "
                                   f"(expected {', '.join(config.splits.values())})")
            return path
        if (path / config.archive_name).is_file():
            return path / config.archive_name
    if download is None:
        download = not explicit
    if not download:
        raise FileNotFoundError(_how_to_provide(path, config))
    target = (path if not path.name.endswith(_ARCHIVE_SUFFIXES) else path.parent)
    try:
        return download_file(config.url, target / config.archive_name, md5=config.md5,
                             progress=progress)
    except RuntimeError as exc:
        raise FileNotFoundError(f"{exc}\n\n{_how_to_provide(path, config)}") from exc


def stratified_indices(labels: np.ndarray, n_per_class: int, seed: int = 0,
                       num_classes: int | None = None) -> np.ndarray:
    """Pick ``n_per_class`` indices of every class, deterministically, in ascending order.

    Raises:
        ValueError: ``n_per_class`` is not positive or exceeds a class's count.
    """
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r}")
    labels = np.asarray(labels)
    classes = range(num_classes) if num_classes else np.unique(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than n_per_class={n_per_class}")
        picked.append(idx[rng.permutation(len(idx))[:n_per_class]])
    return np.sort(np.concatenate(picked))


def _load_npz(path: Path, config: CinicConfig) -> dict[str, np.ndarray]:
    """Read a saved dataset (``np.savez`` of the six arrays); pickled objects are refused."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read saved dataset {path}: {exc}") from None
    for split in config.splits:
        keys = (f"X_{split}", f"y_{split}")
        if any(k not in data for k in keys):
            raise DatasetError(f"{path} lacks {' or '.join(keys)} (has {sorted(data)})")
        try:
            check_images_labels(data[keys[0]], data[keys[1]])
        except ValueError as exc:
            raise DatasetError(f"{path}: {split} split: {exc}") from None
        data[keys[1]] = data[keys[1]].astype(np.int64, copy=False)
    return data


def get_CINIC10_data(root: str | os.PathLike | None = None, *, n_per_class: int | None = None,
                     subset_seed: int = 0, download: bool | None = None,
                     cache_dir: str | os.PathLike | None = None, refresh: bool = False,
                     progress: bool = True, config: CinicConfig = CINIC10) -> dict[str, np.ndarray]:
    """Load CINIC-10 (or the generated stand-in) as uint8 arrays.

    Args:
        root: folder, archive, or ``"synthetic"``; ``None`` uses ``$CINIC10_ROOT`` or the
            default cache location (see the module docstring).
        n_per_class: keep only this many images of each class in every split, picked by a
            deterministic stratified draw (``subset_seed``); ``None`` uses
            ``$CINIC10_PER_CLASS`` if set, else keeps everything.
        download: fetch the official archive when absent (``None``: only into the default
            location).
        cache_dir: where decoded arrays live (default ``<cache>/arrays``).
        refresh: decode again even if a cache exists.
        progress: show progress bars while downloading and decoding.

    Returns:
        dict with ``X_train, X_val, X_test``: uint8 arrays of shape ``(N, 32, 32, 3)``
        (RGB, channels last; memory-mapped, read-only, for the full set) and ``y_train,
        y_val, y_test``: int64 arrays of shape ``(N,)`` with labels 0..9 in the order of
        :attr:`helpers.config.CinicConfig.classes`. ``val`` is CINIC-10's ``valid`` split.
        Normalization is applied later, per batch (:func:`to_model_input`: what a model of this course takes).

    Raises:
        FileNotFoundError: no data at the location (the message lists the ways to provide it).
        DatasetError: missing folders, corrupt or wrong-size images, truncated archive.

    Example:
        >>> data = get_CINIC10_data("synthetic", n_per_class=5, progress=False)
        >>> data["X_test"].shape, int(data["y_test"].max())
        ((50, 32, 32, 3), 9)
    """
    source = resolve_source(root, download=download, config=config, progress=progress)
    if source == SYNTHETIC:
        data = make_synthetic()
    elif source.suffix == ".npz":
        data = _load_npz(source, config)
    else:
        parent = Path(cache_dir).expanduser() if cache_dir else default_cache_dir() / "arrays"
        folder = parent / cache_key(source)
        arrays = None if refresh else load_cache(folder, config)
        if arrays is None:
            folder = build_cache(source, parent, config, progress=progress)
            arrays = load_cache(folder, config)
            if arrays is None:
                raise DatasetError(f"cache at {folder} could not be read back after building it")
        data = {}
        for split, (X, y) in arrays.items():
            data[f"X_{split}"], data[f"y_{split}"] = X, y
    if n_per_class is None and os.environ.get(ENV_PER_CLASS):
        try:
            n_per_class = int(os.environ[ENV_PER_CLASS])
        except ValueError:
            raise ValueError(f"{ENV_PER_CLASS} must be a positive integer, got "
                             f"{os.environ[ENV_PER_CLASS]!r}") from None
    if n_per_class is not None:
        for split in config.splits:
            idx = stratified_indices(data[f"y_{split}"], n_per_class, subset_seed,
                                     config.num_classes)
            data[f"X_{split}"] = np.ascontiguousarray(data[f"X_{split}"][idx])
            data[f"y_{split}"] = np.ascontiguousarray(data[f"y_{split}"][idx])
    return data


def evaluation_data(data: dict, per_class: int | str | None = None, seed: int = 0) -> list[np.ndarray]:
    """The notebook's ``test_data``: a fixed stratified sample of the test split, ``[X, y]``.

    Every ``test_model`` call in the notebook evaluates on this sample, so that the notebook's
    roughly 75 evaluations stay quick on a CPU: 1,000 images of each class (10,000 of CINIC-10's
    90,000 test images) take about 1.5 s per evaluation on 2 cores, the whole split about 12 s.
    The accuracy of 10,000 images is within about 0.5 percentage points (one standard error) of
    the whole split's. The same data and arguments give the same images, in the split's order.

    Args:
        data: the dict :func:`get_CINIC10_data` returns (``X_test`` uint8 ``(N, 32, 32, 3)``,
            ``y_test`` int ``(N,)``).
        per_class: images of each class; ``"all"`` for the whole split. ``None`` uses
            ``$CINIC10_EVAL_PER_CLASS`` if set, else :data:`helpers.config.EVAL_PER_CLASS`
            (1000). A split with at most ``per_class`` images of every class is returned whole.
        seed: seed of the draw.

    Returns:
        ``[X, y]``: uint8 ``(M, 32, 32, 3)`` and int64 ``(M,)``, ready for :func:`helpers.test_model`.

    Raises:
        ValueError: ``per_class`` (or the variable) is neither a positive integer nor ``"all"``.

    Example:
        >>> data = get_CINIC10_data("synthetic", n_per_class=5, progress=False)
        >>> [len(part) for part in evaluation_data(data, per_class=2)]
        [20, 20]
        >>> len(evaluation_data(data)[1])  # 5 per class: fewer than 1,000, so all of them
        50
    """
    if per_class is None:
        per_class = os.environ.get(ENV_EVAL_PER_CLASS) or EVAL_PER_CLASS
    X, y = data["X_test"], np.asarray(data["y_test"])
    if str(per_class).strip().lower() == "all":
        return [X, y]
    try:
        count = int(per_class)
    except (TypeError, ValueError):
        count = 0
    if isinstance(per_class, bool) or count < 1 or float(per_class) != count:
        raise ValueError(f"per_class (or ${ENV_EVAL_PER_CLASS}) must be a positive integer or 'all', "
                         f"got {per_class!r}")
    if len(y) == 0 or np.bincount(y).max() <= count:
        return [X, y]
    classes = np.unique(y)
    smallest = min(int((y == c).sum()) for c in classes)
    idx = stratified_indices(y, min(count, smallest), seed)
    return [np.ascontiguousarray(X[idx]), y[idx]]
