"""Executing notebooks in real Jupyter kernels for the tests."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.runner.channels import SteadyKernelManager

REPO = Path(__file__).resolve().parents[1]


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of a test kernel: grader-style variables, headless plotting, and, as for an
    instructor in JupyterLab, nothing of the repository but the installed ``helpers`` (the source
    notebook's hidden regions must run without ``autograder`` importable)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PRUNING_EXPORT_DIR", "PRUNING_EXPORT_CODE")}
    env.update({"MPLBACKEND": "Agg", "CINIC10_CACHE": str(tmp_path / "kcache"), "PYTHONPATH": ""})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def execute(nb: nbformat.NotebookNode, env: dict[str, str], cwd: Path, allow_errors: bool = False,
            timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` (modified in place) in a fresh python3 kernel."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            kernel_manager_class=SteadyKernelManager, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return nb


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def cell_by_id(nb, gid: str):
    return next(c for c in nb.cells if grade_id(c) == gid)


def outputs_of(cell, kind: str):
    return [o for o in cell.get("outputs", []) if o.output_type == kind]


def stream_text(cell, name: str = "stdout") -> str:
    return "".join(o.text for o in outputs_of(cell, "stream") if o.name == name)
