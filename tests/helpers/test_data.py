"""The CINIC-10 loader: real PNG files in the official layout, archives, caching, bad input."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from PIL import Image

from helpers import evaluation_data, get_CINIC10_data
from helpers._speed import decode as decode_mod
from helpers.config import CINIC10, CinicConfig
from helpers.data import DatasetError, stratified_indices
from helpers.download import DownloadError, download_file
from tests.conftest import make_archive, write_cinic_tree

SPLIT_OF = {"train": "train", "valid": "val", "test": "test"}


def check_matches(data, expected):
    for folder, images in expected.items():
        split = SPLIT_OF[folder]
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        assert X.dtype == np.uint8 and X.shape == images.shape
        np.testing.assert_array_equal(np.asarray(X), images)
        per = len(images) // 10
        np.testing.assert_array_equal(np.asarray(y), np.repeat(np.arange(10), per))
        assert y.dtype == np.int64


def test_reads_extracted_folder(cinic_tree):
    root, expected = cinic_tree
    check_matches(get_CINIC10_data(root, progress=False), expected)


def test_reads_archive_same_arrays(cinic_archive):
    archive, expected = cinic_archive
    check_matches(get_CINIC10_data(archive, progress=False), expected)


def test_archive_in_folder_and_leading_directory(tmp_path, cinic_tree):
    root, expected = cinic_tree
    holder = tmp_path / "holder"
    holder.mkdir()
    make_archive(root, holder / "CINIC-10.tar.gz", prefix="CINIC-10/")
    check_matches(get_CINIC10_data(holder, progress=False), expected)


def test_env_variable_is_used(cinic_tree, monkeypatch):
    root, expected = cinic_tree
    monkeypatch.setenv("CINIC10_ROOT", str(root))
    check_matches(get_CINIC10_data(progress=False), expected)


def test_cached_reload_is_memory_mapped_and_not_decoded_again(cinic_archive, monkeypatch):
    archive, expected = cinic_archive
    get_CINIC10_data(archive, progress=False)

    def fail(*a, **k):
        raise AssertionError("decoded again despite a cache")

    monkeypatch.setattr("helpers.data.build_cache", fail)
    data = get_CINIC10_data(archive, progress=False)
    assert isinstance(data["X_test"], np.memmap)
    assert not data["X_test"].flags.writeable
    check_matches(data, expected)


def test_refresh_rebuilds(cinic_archive, monkeypatch):
    archive, _ = cinic_archive
    get_CINIC10_data(archive, progress=False)
    calls = []
    real = decode_mod.build_cache
    monkeypatch.setattr("helpers.data.build_cache", lambda *a, **k: calls.append(1) or real(*a, **k))
    get_CINIC10_data(archive, refresh=True, progress=False)
    assert calls == [1]


def no_cache_left(cache):
    arrays = cache / "arrays"
    return not arrays.exists() or not any(arrays.iterdir())


def test_corrupt_png_names_file_and_leaves_no_cache(cinic_tree, isolated_cache):
    root, _ = cinic_tree
    bad = root / "valid" / "dog" / "dog-0001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DatasetError, match="dog-0001.png"):
        get_CINIC10_data(root, progress=False)
    assert no_cache_left(isolated_cache)


def test_wrong_size_image_names_file(cinic_tree, isolated_cache):
    root, _ = cinic_tree
    Image.new("RGB", (33, 32)).save(root / "test" / "cat" / "cat-0000.png")
    with pytest.raises(DatasetError, match=r"cat-0000.png is 33x32, expected 32x32"):
        get_CINIC10_data(root, progress=False)
    assert no_cache_left(isolated_cache)


def test_rgba_image_is_refused(cinic_tree):
    root, _ = cinic_tree
    Image.new("RGBA", (32, 32)).save(root / "train" / "ship" / "ship-0000.png")
    with pytest.raises(DatasetError, match="ship-0000.png has mode RGBA"):
        get_CINIC10_data(root, progress=False)


def test_grayscale_image_becomes_rgb(cinic_tree):
    root, _ = cinic_tree
    gray = np.arange(32 * 32, dtype=np.uint32).reshape(32, 32).astype(np.uint8)
    Image.fromarray(gray, mode="L").save(root / "train" / "bird" / "bird-0000.png")
    X = get_CINIC10_data(root, progress=False)["X_train"]
    idx = 2 * 4  # bird is class 2, four train images per class, first file
    np.testing.assert_array_equal(X[idx], np.repeat(gray[..., None], 3, axis=2))


def test_missing_split_folder(cinic_tree):
    root, _ = cinic_tree
    import shutil
    shutil.rmtree(root / "valid")
    with pytest.raises(DatasetError, match="missing split folder"):
        get_CINIC10_data(root, progress=False)


def test_missing_class_folder(cinic_tree):
    root, _ = cinic_tree
    import shutil
    shutil.rmtree(root / "test" / "horse")
    with pytest.raises(DatasetError, match="no images for class folder.*horse"):
        get_CINIC10_data(root, progress=False)


def test_unknown_class_folder(cinic_tree):
    root, _ = cinic_tree
    (root / "train" / "unicorn").mkdir()
    Image.new("RGB", (32, 32)).save(root / "train" / "unicorn" / "u.png")
    with pytest.raises(DatasetError, match="unknown class folder"):
        get_CINIC10_data(root, progress=False)


def test_truncated_archive(cinic_archive, tmp_path, isolated_cache):
    archive, _ = cinic_archive
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        get_CINIC10_data(cut, progress=False)
    assert no_cache_left(isolated_cache)


def test_not_gzip_archive(tmp_path):
    bad = tmp_path / "CINIC-10.tar.gz"
    bad.write_bytes(gzip.compress(b"not a tar file at all" * 100))
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        get_CINIC10_data(bad, progress=False)


def test_missing_data_explains_how_to_provide(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_CINIC10_data(tmp_path / "nowhere", progress=False)
    msg = str(info.value)
    assert "CINIC10_ROOT" in msg and "download=True" in msg and "synthetic" in msg
    assert msg.splitlines()[1].startswith("  - in the course notebook: set DATA_PATH in the paths cell")


def test_default_location_without_download_explains(isolated_cache):
    with pytest.raises(FileNotFoundError, match="not found at .*CINIC-10"):
        get_CINIC10_data(download=False, progress=False)


def test_download_checks_md5_and_is_atomic(cinic_archive, tmp_path):
    archive, expected = cinic_archive
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    dest = tmp_path / "dl" / "CINIC-10.tar.gz"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(archive.as_uri(), dest, md5="0" * 32, progress=False)
    assert not dest.exists() and not any(dest.parent.iterdir()), "partial file left behind"
    download_file(archive.as_uri(), dest, md5=md5, progress=False)
    assert dest.read_bytes() == archive.read_bytes()


def test_download_when_absent_then_loads(cinic_archive, tmp_path, isolated_cache):
    archive, expected = cinic_archive
    config = CinicConfig(url=archive.as_uri(), md5=hashlib.md5(archive.read_bytes()).hexdigest())
    data = get_CINIC10_data(download=True, config=config, progress=False)
    check_matches(data, expected)
    assert (isolated_cache / "CINIC-10" / "CINIC-10.tar.gz").is_file()


def test_download_failure_keeps_instructions(tmp_path):
    config = CinicConfig(url=(tmp_path / "absent.tar.gz").as_uri())
    with pytest.raises(FileNotFoundError, match=r"(?s)could not download.*Provide it"):
        get_CINIC10_data(tmp_path / "target", download=True, config=config, progress=False)


def test_stratified_subset_is_deterministic_and_balanced(tmp_path):
    root = tmp_path / "big"
    write_cinic_tree(root, {"train": 6, "valid": 3, "test": 5})
    a = get_CINIC10_data(root, n_per_class=2, progress=False)
    b = get_CINIC10_data(root, n_per_class=2, progress=False)
    for split in ("train", "val", "test"):
        assert np.bincount(a[f"y_{split}"], minlength=10).tolist() == [2] * 10
        np.testing.assert_array_equal(a[f"X_{split}"], b[f"X_{split}"])
    c = get_CINIC10_data(root, n_per_class=2, subset_seed=1, progress=False)
    assert not np.array_equal(a["X_train"], c["X_train"])


def test_stratified_indices_validation():
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="fewer than n_per_class=5"):
        stratified_indices(labels, 5)
    with pytest.raises(ValueError, match="positive int"):
        stratified_indices(labels, 0)


def test_synthetic_is_explicit_and_deterministic():
    a = get_CINIC10_data("synthetic")
    b = get_CINIC10_data("synthetic")
    assert a["X_train"].shape == (10_000, 32, 32, 3) and a["X_test"].shape == (3000, 32, 32, 3)
    assert a["X_val"].dtype == np.uint8 and a["y_val"].dtype == np.int64
    np.testing.assert_array_equal(a["X_test"], b["X_test"])
    assert np.bincount(a["y_test"]).tolist() == [300] * 10
    # Images of a class vary (shift, noise, blend), so the task is not trivial.
    first = a["X_train"][a["y_train"] == 0][:2].astype(int)
    assert np.abs(first[0] - first[1]).mean() > 30


def test_many_small_chunks_across_worker_processes_keep_order(cinic_tree, monkeypatch):
    root, expected = cinic_tree
    monkeypatch.setattr(decode_mod, "_CHUNK", 7)  # 90 images -> 13 chunks over 2 processes
    folder = decode_mod.build_cache(root, root.parent / "c", workers=2)
    arrays = decode_mod.load_cache(folder)
    np.testing.assert_array_equal(np.asarray(arrays["train"][0]), expected["train"])
    np.testing.assert_array_equal(np.asarray(arrays["test"][0]), expected["test"])


def test_classes_follow_official_order():
    assert CINIC10.classes[0] == "airplane" and CINIC10.classes[-1] == "truck"
    assert list(CINIC10.classes) == sorted(CINIC10.classes)


def test_per_class_from_environment(monkeypatch):
    monkeypatch.setenv("CINIC10_PER_CLASS", "3")
    data = get_CINIC10_data("synthetic")
    assert np.bincount(data["y_test"]).tolist() == [3] * 10
    monkeypatch.setenv("CINIC10_PER_CLASS", "many")
    with pytest.raises(ValueError, match="CINIC10_PER_CLASS must be a positive integer"):
        get_CINIC10_data("synthetic")


def test_real_image_fixture_reads(tmp_path):
    from pathlib import Path
    archive = Path(__file__).parents[1] / "fixtures" / "cinic-mini.tar.gz"
    data = get_CINIC10_data(archive, progress=False)
    assert data["X_test"].shape == (100, 32, 32, 3)
    assert np.bincount(data["y_train"]).tolist() == [3] * 10
    assert data["X_test"].std() > 20, "real photos have varied pixels"


def test_saved_npz_subset_loads_and_bad_ones_are_refused(tmp_path):
    data = get_CINIC10_data("synthetic", n_per_class=2)
    np.savez(tmp_path / "subset.npz", **data)
    again = get_CINIC10_data(tmp_path / "subset.npz")
    for key, value in data.items():
        np.testing.assert_array_equal(again[key], value)
    del data["y_val"]
    np.savez(tmp_path / "broken.npz", **data)
    with pytest.raises(DatasetError, match="lacks X_val or y_val"):
        get_CINIC10_data(tmp_path / "broken.npz")
    np.savez(tmp_path / "pickled.npz", **{**data, "y_val": np.array([object()] * 20)})
    with pytest.raises(DatasetError, match="cannot read"):
        get_CINIC10_data(tmp_path / "pickled.npz")


def test_progress_false_is_silent(cinic_tree, capsys):
    root, _ = cinic_tree
    get_CINIC10_data(root, progress=False)
    captured = capsys.readouterr()
    assert "decoding" not in captured.err and "decoding" not in captured.out


@pytest.mark.parametrize("prefix", ["", "CINIC-10/", "./"])
def test_the_archive_progress_bar_has_its_total(cinic_tree, tmp_path, capsys, prefix):
    root, expected = cinic_tree
    archive = make_archive(root, tmp_path / "CINIC-10.tar.gz", prefix=prefix)
    n = sum(len(a) for a in expected.values())
    assert decode_mod._count_archive(archive, CINIC10) == n
    decode_mod.build_cache(archive, tmp_path / "cache", workers=1, progress=True)
    err = capsys.readouterr().err
    assert f"{n}/{n}" in err and "/?" not in err


def _test_split(per_class: list[int]):
    y = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in enumerate(per_class)])
    order = np.random.default_rng(3).permutation(len(y))
    X = np.arange(len(y), dtype=np.int64)[order].astype(np.uint8).reshape(-1, 1, 1, 1).repeat(32, 1)
    return {"X_test": np.ascontiguousarray(np.broadcast_to(X, (len(y), 32, 32, 3))), "y_test": y[order]}


def test_the_evaluation_sample_is_fixed_stratified_and_in_the_splits_order(monkeypatch):
    monkeypatch.delenv("CINIC10_EVAL_PER_CLASS", raising=False)
    data = _test_split([1500] * 10)
    X, y = evaluation_data(data)
    assert X.shape == (10_000, 32, 32, 3) and X.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [1000] * 10
    again = evaluation_data(data)
    np.testing.assert_array_equal(again[0], X)
    np.testing.assert_array_equal(again[1], y)
    # The sample's images are the split's own, in its order, each with its own label.
    idx = stratified_indices(data["y_test"], 1000)
    np.testing.assert_array_equal(X, data["X_test"][idx])
    np.testing.assert_array_equal(y, data["y_test"][idx])
    assert np.bincount(evaluation_data(data, per_class=7)[1]).tolist() == [7] * 10
    assert not np.array_equal(evaluation_data(data, per_class=7, seed=1)[0], evaluation_data(data, per_class=7)[0])


def test_a_split_no_larger_than_the_sample_is_used_whole(monkeypatch):
    """The grader's data (100 per class) and small test sets are evaluated as they are."""
    monkeypatch.delenv("CINIC10_EVAL_PER_CLASS", raising=False)
    data = _test_split([100] * 10)
    X, y = evaluation_data(data)
    assert X is data["X_test"] and y is data["y_test"]
    data = _test_split([1200] + [100] * 9)  # one class larger than the sample: that class is cut
    assert np.bincount(evaluation_data(data)[1]).tolist() == [100] * 10


def test_the_evaluation_sample_follows_its_variable_and_refuses_bad_values(monkeypatch):
    data = _test_split([1500] * 10)
    monkeypatch.setenv("CINIC10_EVAL_PER_CLASS", "all")
    assert len(evaluation_data(data)[1]) == 15_000
    monkeypatch.setenv("CINIC10_EVAL_PER_CLASS", "20")
    assert len(evaluation_data(data)[1]) == 200
    assert len(evaluation_data(data, per_class=3)[1]) == 30  # an argument wins
    for bad in ("0", "-5", "1.5", "lots"):
        monkeypatch.setenv("CINIC10_EVAL_PER_CLASS", bad)
        with pytest.raises(ValueError, match=r"CINIC10_EVAL_PER_CLASS\) must be a positive integer or 'all', got"):
            evaluation_data(data)
    monkeypatch.delenv("CINIC10_EVAL_PER_CLASS")
    for bad in (0, True, 2.5, None.__class__):
        with pytest.raises(ValueError, match="must be a positive integer or 'all'"):
            evaluation_data(data, per_class=bad)
