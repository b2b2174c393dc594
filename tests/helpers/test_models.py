"""Checkpoints: round trip, pruned state dicts, refusal of unsafe pickles."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.nn.utils import prune

from helpers import global_sparsity, load_model
from helpers.models import CheckpointError, SmallCNN, save_model


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not loaded.training
    assert 400_000 < sum(p.numel() for p in loaded.parameters()) < 1_000_000


def test_custom_config_is_kept(tmp_path):
    model = SmallCNN(channels=(8, 16, 24), hidden=32)
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    assert loaded.conv3.out_channels == 24 and loaded.fc1.out_features == 32


def test_pruned_state_dict_loads_with_masks(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN()
    prune.global_unstructured([(model.conv2, "weight"), (model.fc1, "weight")],
                              pruning_method=prune.L1Unstructured, amount=0.5)
    prune.ln_structured(model.conv1, "weight", amount=0.25, n=2, dim=0)
    loaded = load_model(save_model(model, tmp_path / "p.pt"))
    assert hasattr(loaded.conv2, "weight_mask") and hasattr(loaded.conv1, "weight_orig")
    torch.testing.assert_close(loaded.conv2.weight, model.conv2.weight)
    assert global_sparsity(loaded) == pytest.approx(global_sparsity(model))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


class Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_malicious_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "pruning-course-model/1", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_model(path)
    assert "this would run code" not in capsys.readouterr().out


def test_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_model(path)


def test_foreign_state_dict_is_refused(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(SmallCNN().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a checkpoint written by helpers.save_model"):
        load_model(path)


def test_missing_file_and_tensorflow_mode(tmp_path):
    with pytest.raises(FileNotFoundError, match="PRUNING_MODEL"):
        load_model(tmp_path / "none.pt")
    with pytest.raises(NotImplementedError, match="mode='torch'"):
        load_model(tmp_path / "none.pt", mode="tensorflow")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="channels"):
        SmallCNN(channels=(8, 0, 8))
    with pytest.raises(ValueError, match="dropout"):
        SmallCNN(dropout=1.5)


def test_copy_model_works_where_deepcopy_fails():
    import copy

    from helpers import copy_model
    torch.manual_seed(0)
    model = SmallCNN()
    prune.global_unstructured([(model.conv1, "weight"), (model.fc1, "weight")],
                              pruning_method=prune.L1Unstructured, amount=0.4)
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(model)  # the failure students and graders hit
    clone = copy_model(model)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(clone.eval()(x), model.eval()(x))
    assert global_sparsity(clone) == global_sparsity(model)
    prune.l1_unstructured(clone.fc2, "weight", amount=0.5)  # the copy is independent
    assert not hasattr(model.fc2, "weight_mask")
