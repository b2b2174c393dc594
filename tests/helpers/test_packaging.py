"""What the students' package promises as a package: its wheel holds ``helpers`` alone, and ``environment.yml``
installs what ``pyproject.toml`` asks for."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.slow  # builds the wheel
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
