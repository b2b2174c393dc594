"""Finding the pretrained model for a student's notebook: the order of places, checksums, downloads, messages."""

from __future__ import annotations

import hashlib

import pytest

from helpers._locate import SetupError, find_model


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "shipped" / "pruning-model.pt"
    path.parent.mkdir()
    path.write_bytes(b"the course's model")
    return path, hashlib.sha256(b"the course's model").hexdigest()


@pytest.fixture(autouse=True)
def no_model_variable(monkeypatch):
    monkeypatch.delenv("PRUNING_MODEL", raising=False)


def test_the_notebooks_folder_comes_before_the_cache(tmp_path, model_file):
    path, digest = model_file
    cached = tmp_path / "cache" / "pruning-model.pt"  # CINIC10_CACHE is tmp_path/cache (conftest)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"older")
    assert find_model(here=path.parent, sha256=digest) == path
    assert find_model(here=tmp_path / "elsewhere") == cached


def test_the_environment_variable_wins_and_is_not_checked(tmp_path, model_file, monkeypatch):
    path, _ = model_file
    other = tmp_path / "grader-model.pt"
    other.write_bytes(b"a retrained model")
    monkeypatch.setenv("PRUNING_MODEL", str(other))
    assert find_model(model_path=path, here=path.parent, sha256="0" * 64) == other
    monkeypatch.setenv("PRUNING_MODEL", str(tmp_path / "gone.pt"))
    with pytest.raises(SetupError) as err:
        find_model()
    assert str(err.value) == (f"PRUNING_MODEL is set to {tmp_path / 'gone.pt'}, which is not a file: fix or unset it "
                              "(then restart the kernel).")


def test_a_found_file_with_another_checksum_is_named(model_file):
    path, _ = model_file
    with pytest.raises(SetupError) as err:
        find_model(here=path.parent, sha256="0" * 64)
    assert str(err.value) == (f"{path} (found) is not the course's pretrained model (its SHA-256 differs): delete "
                              "it or point MODEL_PATH in the paths cell at the file from your course bundle, then run "
                              "the set-up cell again.")
    with pytest.raises(SetupError, match=r"\(MODEL_PATH\) is not the course's pretrained model"):
        find_model(model_path=path, sha256="0" * 64)


def test_the_model_is_downloaded_and_checked_when_nowhere_else(tmp_path, model_file):
    path, digest = model_file
    dest = tmp_path / "drive"
    got = find_model(model_url=path.as_uri(), sha256=digest, here=tmp_path / "empty", download_to=dest,
                     progress=False)
    assert got == dest / "pruning-model.pt" and got.read_bytes() == path.read_bytes()
    with pytest.raises(SetupError) as err:
        find_model(model_url=path.as_uri(), sha256="0" * 64, here=tmp_path / "empty",
                   download_to=tmp_path / "other", progress=False)
    assert str(err.value).startswith(f"The pretrained model could not be downloaded (checksum mismatch for "
                                     f"{path.as_uri()}: SHA-256 {digest}, expected {'0' * 64}; ")
    assert str(err.value).endswith(f"): the address {path.as_uri()} gives another file than the course's model; "
                                   "tell your instructor, and meanwhile put the pruning-model.pt of your course "
                                   f"bundle in {tmp_path / 'other'}.")
    assert not (tmp_path / "other" / "pruning-model.pt").exists()


def test_no_model_and_no_url_says_where_it_looked(tmp_path):
    with pytest.raises(SetupError) as err:
        find_model(here=tmp_path / "nb", search=(tmp_path / "drive",))
    assert str(err.value) == (
        f"No pretrained model found (looked for pruning-model.pt in {tmp_path / 'nb'}, {tmp_path / 'drive'}, "
        f"{tmp_path / 'cache'}): put the pruning-model.pt of your course bundle next to this notebook, or set "
        "MODEL_PATH in the paths cell, then run the set-up cell again.")
