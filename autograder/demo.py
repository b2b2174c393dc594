"""``python -m autograder demo``: the main job end to end on the generated dataset.

Trains (or reuses) the reference model, prints its accuracy and a correct global
unstructured pruning sweep. Everything is written under ``--out``.
"""

from __future__ import annotations

import time
from pathlib import Path

from helpers import get_CINIC10_data, load_model, save_model, test_model
from helpers.train import TrainConfig, train_model

from .reference import prune_structured, prune_unstructured, sweep

__all__ = ["reference_model", "main"]


def reference_model(out: Path, data_root: str = "synthetic", data: dict | None = None,
                    config: TrainConfig = TrainConfig()) -> Path:
    """Return the path of the reference checkpoint in ``out``, training it if absent."""
    path = Path(out) / "reference-model.pt"
    if path.is_file():
        print(f"reusing reference model {path}")
        return path
    data = data if data is not None else get_CINIC10_data(data_root)
    start = time.perf_counter()
    model = train_model(data, config)
    print(f"trained reference model in {time.perf_counter() - start:.1f} s")
    return save_model(model, path)


def main(out: str | Path, data_root: str = "synthetic") -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = get_CINIC10_data(data_root)
    model = load_model(reference_model(out, data_root, data))
    test_data = [data["X_test"], data["y_test"]]
    print("\nReference model:")
    test_model(model, test_data)
    print("\nGlobal unstructured pruning (fresh copy per target):")
    sweep(model, prune_unstructured, test_data)
    print("\nStructured L2 filter pruning of the conv layers:")
    sweep(model, prune_structured, test_data, structured=True)
    return 0
