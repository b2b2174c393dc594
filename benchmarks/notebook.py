"""Benchmark step ``notebook``: the source notebook with its reference solution, run once in a fresh kernel on
the generated data."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, SHARED_SAMPLE, venv_env

__all__ = ["bench_notebook"]


def _run_source(data_root: str, model: Path, work: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    from autograder.runner.channels import SteadyKernelManager
    nb = nbformat.read(REPO / "assignment" / "source" / "pruning" / "pruning.ipynb", as_version=4)
    env = venv_env()
    env.update({"CINIC10_ROOT": data_root, "PRUNING_MODEL": str(model), "MPLBACKEND": "Agg",
                "CINIC10_CACHE": str(work / "nb-cache"), "PYTHONPATH": str(REPO)})
    env.pop("PRUNING_EXPORT_DIR", None)
    # First load of a real archive decodes it once; measure the notebook as a student reruns it.
    warm = f"from helpers import get_CINIC10_data; get_CINIC10_data({data_root!r}, progress=False)"
    subprocess.run([sys.executable, "-c", warm], env=env, cwd=REPO, check=True)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3", kernel_manager_class=SteadyKernelManager,
                   resources={"metadata": {"path": str(work)}}).execute(env=env)
    return time.perf_counter() - start


def bench_notebook(work: Path, model: Path) -> dict:
    from autograder.train import train_model
    from helpers import get_CINIC10_data
    from helpers.models import save_model
    out = {"generated_s": round(_run_source("synthetic", model, work), 1)}
    if SHARED_SAMPLE.is_file():
        real_model = work / "real-model.pt"
        save_model(train_model(get_CINIC10_data(str(SHARED_SAMPLE), cache_dir=work / "nb-cache" / "arrays",
                                                progress=False), progress=False), real_model)
        out["real_sample_s"] = round(_run_source(str(SHARED_SAMPLE), real_model, work), 1)
    else:
        out["real_sample_s"] = None
        out["real_sample_note"] = f"{SHARED_SAMPLE} not present on this machine"
    return out
