"""A student's machine for the bundle tests: a clean virtualenv that has the libraries but no course code.

The venv sees the test environment's installed libraries (torch, ipykernel, JupyterLab, ...)
through one ``.pth`` line naming a folder of links to them, leaving out the course package
(``pruning_course_helpers``, installed there in editable mode from this repository). It has no
``pip`` of its own: the linked one installs into the venv. So ``import helpers`` fails in it
until the bundle's notebook installs the wheel, and nothing of the repository is reachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["clean_venv", "student_env"]

_LEFT_OUT = ("pruning_course_helpers", "__editable__")


def clean_venv(root: Path) -> Path:
    """Create the venv under ``root`` and return its python."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    view = root / "libraries"
    view.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(_LEFT_OUT) and entry.suffix != ".pth":
            (view / entry.name).symlink_to(entry)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "libraries.pth").write_text(f"{view}\n")
    python = venv / "bin" / "python"
    # Jupyter's data of the venv: a python3 kernel that is the venv's own python, and the
    # JupyterLab extensions (widgets) of the test environment.
    share = venv / "share" / "jupyter"
    (share / "kernels" / "python3").mkdir(parents=True)
    (share / "kernels" / "python3" / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    ours = Path(sys.prefix) / "share" / "jupyter"
    if (ours / "lab").is_dir():
        (share / "lab").symlink_to(ours / "lab")
    (share / "labextensions").mkdir()
    for name in ("@jupyter-widgets", "jupyterlab_pygments"):  # not nbgrader's: students do not have it
        if (ours / "labextensions" / name).is_dir():
            (share / "labextensions" / name).symlink_to(ours / "labextensions" / name)
    return python


def student_env(home: Path, **extra: str) -> dict[str, str]:
    """A student's environment: a home of their own, no repository on any path, no course variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PRUNING_", "CINIC10_", "JUPYTER", "PYTHON", "VIRTUAL_ENV"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "MPLBACKEND": "Agg",
                "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    env.update(extra)
    return env
