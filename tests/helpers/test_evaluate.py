"""test_model: format, determinism, restoration of mode and device, input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import test_model
from helpers._batches import to_model_input
from helpers._speed.inference import EVAL_BATCH_SIZE, LARGE_EVAL_BATCH_SIZE, eval_batch_size
from helpers.config import CINIC10
from helpers.evaluate import predict
from helpers.models import SmallCNN


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(250, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=250).astype(np.int64)
    return [X, y]


def reference_accuracy(model, X, y):
    with torch.no_grad():
        logits = model.eval()(to_model_input(X))
    return float((logits.argmax(1).numpy() == y).mean())


def test_prints_original_format_and_returns_float(small_data, capsys):
    torch.manual_seed(0)
    model = SmallCNN()
    acc = test_model(model, small_data)
    out = capsys.readouterr().out.strip()
    assert out == f"Test Acc: {acc:.4f}"
    assert isinstance(acc, float)
    assert acc == pytest.approx(reference_accuracy(model, *small_data))


def test_batches_do_not_change_the_result(small_data):
    torch.manual_seed(1)
    model = SmallCNN()
    a = test_model(model, small_data, batch_size=7, verbose=False)
    b = test_model(model, small_data, batch_size=1000, verbose=False)
    assert a == b


def test_same_number_every_call_and_mode_restored(small_data):
    torch.manual_seed(0)
    model = SmallCNN().train()  # dropout active in train mode
    results = {test_model(model, small_data, verbose=False) for _ in range(3)}
    assert len(results) == 1
    assert model.training, "train mode must be restored"
    model.eval()
    test_model(model, small_data, verbose=False)
    assert not model.training


def test_normalization_uses_official_statistics():
    x = np.full((1, 32, 32, 3), 255, dtype=np.uint8)
    t = to_model_input(x)
    expected = [(1 - m) / s for m, s in zip(CINIC10.mean, CINIC10.std)]
    np.testing.assert_allclose(t[0, :, 0, 0].numpy(), expected, rtol=1e-6)


def test_normalization_matches_torchvision_on_every_pixel():
    from torchvision.transforms import functional as F
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    before = x.copy()
    t = to_model_input(x)
    assert t.shape == (5, 3, 32, 32) and t.dtype == torch.float32
    assert t.is_contiguous(memory_format=torch.channels_last)
    expected = F.normalize(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, CINIC10.mean, CINIC10.std)
    torch.testing.assert_close(t, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(x, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_used_and_device_restored(small_data):
    model = SmallCNN()
    cpu_acc = test_model(model, small_data, device="cpu", verbose=False)
    gpu_acc = test_model(model, small_data, verbose=False)
    assert next(model.parameters()).device.type == "cpu"
    assert abs(cpu_acc - gpu_acc) <= 2 / len(small_data[1])
    assert test_model(model, small_data, verbose=False) == gpu_acc
    # GPU batches are larger; predictions by batch size must agree (up to float ties)
    preds = predict(model, small_data[0])
    small = predict(model, small_data[0], batch_size=7)
    assert (preds != small).sum() <= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_double_buffered_gpu_loop_matches_a_plain_loop():
    # 9 batches of 64 through the two alternating buffers, the last one partial
    X = np.random.default_rng(1).integers(0, 256, (550, 32, 32, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = SmallCNN().eval().cuda()
    with torch.inference_mode():
        plain = torch.cat([model(to_model_input(X[i:i + 64], "cuda")).argmax(1) for i in range(0, len(X), 64)])
    np.testing.assert_array_equal(predict(model, X, batch_size=64, device="cuda"), plain.cpu().numpy())


def test_default_batch_size_depends_only_on_the_device_type():
    assert eval_batch_size("cpu") in (EVAL_BATCH_SIZE, LARGE_EVAL_BATCH_SIZE)
    assert eval_batch_size("cpu") == eval_batch_size(torch.device("cpu"))
    assert eval_batch_size(torch.device("cuda:0")) == eval_batch_size("cuda") > EVAL_BATCH_SIZE


def test_explicit_device_leaves_model_where_it_was(small_data):
    model = SmallCNN()
    test_model(model, small_data, device="cpu", verbose=False)
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("bad, message", [
    ("not a list", "must be \\[X_test, y_test\\]"),
    ([np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2, np.int64)], "shape \\(N, 32, 32, 3\\)"),
    ([np.zeros((2, 32, 32, 3), np.float32), np.zeros(2, np.int64)], "uint8"),
    ([np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3, np.int64)], "labels must have shape"),
])
def test_bad_test_data(bad, message):
    with pytest.raises(ValueError, match=message):
        test_model(SmallCNN(), bad)


def test_tensorflow_mode_is_refused(small_data):
    with pytest.raises(NotImplementedError):
        test_model(SmallCNN(), small_data, mode="tensorflow")


def test_memory_mapped_input_is_silent(tmp_path, small_data, recwarn):
    X, y = small_data
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    torch.manual_seed(0)
    model = SmallCNN()
    assert test_model(model, [mm, y], verbose=False) == test_model(model, [X, y], verbose=False)
    assert not [w for w in recwarn if "not writable" in str(w.message)]
