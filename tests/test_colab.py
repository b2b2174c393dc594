"""Installing the course's wheel in Google Colab changes none of the packages Colab already has.

Colab's runtime is stood in for by its published package list (``fixtures/colab-pip-freeze.txt``): a fresh
virtual environment gets one installed-package record (``.dist-info`` metadata, no code) per package of that
list, at Colab's version, and pip resolves the bundle's wheel against them with ``--dry-run --report`` (pip's
install report). The report must install only the course's package and what Colab lacks (Torch-Pruning),
never another version of a package Colab has: such an upgrade (ipywidgets 7 -> 8, say) would happen under
Colab's front end. What this does not check: the notebook's code on Colab's Python 3.13 and library versions
(this machine has Python 3.11 and one torch build).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.release import build_wheel

FREEZE = Path(__file__).parent / "fixtures" / "colab-pip-freeze.txt"

pytestmark = pytest.mark.slow


def colab_packages() -> dict[str, str]:
    """``{normalized name: version}`` of Colab's list (``name==version`` lines, and ``name @ url`` lines whose
    url names a wheel or archive with its version)."""
    out = {}
    for line in FREEZE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
        else:
            name, _, url = line.partition(" @ ")
            found = re.search(r"/[A-Za-z0-9_.]+?-([0-9][^-/]*?)(?:%2B|\+)?([a-z0-9.]*)?(?:-|\.tar\.gz)", url)
            if not found:
                continue  # a git checkout: no version in its name
            version = found.group(1) + (f"+{found.group(2)}" if found.group(2) else "")
        out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return out


def fake_colab(root: Path) -> Path:
    """A venv (with its own pip) holding Colab's packages as metadata only; returns its python."""
    venv = root / "colab"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    for name, version in colab_packages().items():
        if name == "pip":
            continue
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("colab\n")
        (info / "RECORD").write_text("")
    return venv / "bin" / "python"


def test_the_wheel_installs_in_colab_without_changing_any_package_colab_has(tmp_path):
    colab = colab_packages()
    assert colab["ipywidgets"] == "7.7.1" and colab["torch"] == "2.11.0+cpu" and colab["numpy"] == "2.1.3"
    assert "torch-pruning" not in colab
    python = fake_colab(tmp_path)
    wheel = build_wheel(tmp_path)
    report = tmp_path / "report.json"
    done = subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           "--ignore-requires-python", str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    installs = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    changed = {name: f"{colab[name]} -> {version}" for name, version in installs.items() if name in colab}
    assert changed == {}, f"the wheel would change Colab's packages: {changed}"
    assert set(installs) == {"pruning-course-helpers", "torch-pruning"}, installs
