"""Training entry point, the demo's reference path, and the project's packaging promises."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import tomllib
import torch

from helpers import get_CINIC10_data, load_model, test_model
from helpers.train import TrainConfig, main, train_model

ROOT = Path(__file__).resolve().parents[1]


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
    assert main(["--data-root", "synthetic", "--epochs", "1", "--n-per-class", "20", "--out", str(out)]) == 0
    assert re.search(r"Test Acc: \d\.\d{4}", capsys.readouterr().out)
    assert load_model(out).fc2.out_features == 10


def test_invalid_epochs():
    with pytest.raises(ValueError, match="epochs"):
        train_model(get_CINIC10_data("synthetic", n_per_class=2), TrainConfig(epochs=0))


def requirement_names(specs):
    return {re.split(r"[<>=!~ ]", s, maxsplit=1)[0].lower(): s.replace(" ", "") for s in specs}


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(meta["dependencies"])
    for specs in meta["optional-dependencies"].values():
        wanted += [s for s in specs if not s.startswith("pruning-course-helpers")]
    env_lines = re.findall(r"^\s{6}- (\S.*)$", (ROOT / "environment.yml").read_text(), re.M)
    env_pip = [s for s in env_lines if s not in ("pip", "-e .") and not s.startswith("python")]
    assert requirement_names(env_pip) == requirement_names(wanted)


def test_student_wheel_contains_only_helpers(tmp_path):
    pytest.importorskip("setuptools")
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert "helpers" in top
    assert not any(t in top for t in ("autograder", "tests", "assignment")), top
    assert not any("reference" in n for n in names)
