"""Training the reference model: ``python -m autograder train`` and :func:`autograder.train.train_model`."""

from __future__ import annotations

import re

import pytest
import torch

from autograder.cli import main
from autograder.config import TrainConfig
from autograder.train import train_model
from helpers import get_CINIC10_data, load_model, test_model

pytestmark = pytest.mark.slow  # trains models


def test_training_is_seeded_and_learns():
    data = get_CINIC10_data("synthetic", n_per_class=200)
    cfg = TrainConfig(epochs=3, batch_size=50)
    a = train_model(data, cfg, device="cpu", progress=False)
    b = train_model(data, cfg, device="cpu", progress=False)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    acc = test_model(a, [data["X_train"], data["y_train"]], verbose=False)
    assert acc > 0.15, "three epochs should beat chance on the training images"


def test_cli_writes_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--data-root", "synthetic", "--epochs", "1", "--n-per-class", "20", "--out", str(out)]) == 0
    assert re.search(r"Test Acc: \d\.\d{4}", capsys.readouterr().out)
    assert load_model(out).fc2.out_features == 10


def test_invalid_epochs():
    with pytest.raises(ValueError, match="epochs"):
        train_model(get_CINIC10_data("synthetic", n_per_class=2), TrainConfig(epochs=0))
