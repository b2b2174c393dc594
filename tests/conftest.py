"""Shared fixtures: a tiny CINIC-10 layout of real PNG files, an archive of it, isolated caches."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.config import CINIC10

PER_CLASS = {"train": 4, "valid": 2, "test": 3}
#: Data, not tests: the independent solutions of tests/fixtures/similarity/ are notebook cells, not modules.
collect_ignore_glob = ["fixtures/*"]


def write_cinic_tree(root: Path, per_class=PER_CLASS, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/{train,valid,test}/<class>/*.png`` with random pixels.

    Returns the expected arrays per folder, ordered by class then file name.
    """
    rng = np.random.default_rng(seed)
    expected = {}
    for folder, n in per_class.items():
        images = []
        for cls in CINIC10.classes:
            d = root / folder / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{cls}-{i:04d}.png")
                images.append(img)
        expected[folder] = np.stack(images)
    return expected


def make_archive(src: Path, dest: Path, prefix: str = "") -> Path:
    """Tar-gzip the layout under ``src`` into ``dest`` (optionally under a leading folder)."""
    with tarfile.open(dest, "w:gz") as tar:
        for folder in ("train", "valid", "test"):
            tar.add(src / folder, arcname=f"{prefix}{folder}")
    return dest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder and no CINIC10_ROOT from the caller's shell."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CINIC10_CACHE", str(cache))
    monkeypatch.delenv("CINIC10_ROOT", raising=False)
    monkeypatch.delenv("CINIC10_PER_CLASS", raising=False)
    return cache


@pytest.fixture
def cinic_tree(tmp_path):
    root = tmp_path / "CINIC-10"
    expected = write_cinic_tree(root)
    return root, expected


@pytest.fixture
def cinic_archive(tmp_path, cinic_tree):
    root, expected = cinic_tree
    return make_archive(root, tmp_path / "CINIC-10.tar.gz"), expected


REPO = Path(__file__).resolve().parents[1]
SOURCE_NB = REPO / "assignment" / "source" / "pruning" / "pruning.ipynb"
RELEASE_NB = REPO / "assignment" / "release" / "pruning" / "pruning.ipynb"


@pytest.fixture(scope="module")
def source():
    """The instructor's source notebook (shared by a module's tests: do not change it)."""
    import nbformat
    return nbformat.read(SOURCE_NB, as_version=4)


@pytest.fixture()
def release():
    """A fresh copy of the student release notebook (a test may change it)."""
    import nbformat
    return nbformat.read(RELEASE_NB, as_version=4)
REAL_FIXTURE = Path(__file__).parent / "fixtures" / "cinic-mini.tar.gz"


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory):
    """A SmallCNN trained briefly on the generated data (about 10 s on two cores)."""
    from autograder.config import TrainConfig
    from autograder.train import train_model
    from helpers._synthetic import make_synthetic
    from helpers.models import save_model
    data = make_synthetic({"train": 500, "val": 20, "test": 20})
    model = train_model(data, TrainConfig(epochs=3), device="cpu", progress=False)
    return save_model(model, tmp_path_factory.mktemp("model") / "model.pt", trained_on="synthetic")
