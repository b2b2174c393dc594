"""How long a student's notebook computes at CINIC-10's real sizes (``make bench``, step ``student_time``).

The goal: on a 2-core CPU, with the notebook's defaults and the reference solution, the whole notebook
computes in at most 10 minutes. The real dataset's sizes are stood in for by the generated data at those
sizes (9,000 images of each class in the training and test splits, 90,000 each; the validation split,
which the notebook never reads, has one per class), saved once as a ``.npz`` that the notebook loads with
``CINIC10_ROOT``. The source notebook (reference solution; its hidden regions do nothing without the
grader) runs in a fresh kernel on this machine's default device; each cell's time comes from the
timestamps Jupyter records, summed per part of the notebook. Nothing here asserts a time.

    python -m benchmarks.run --only student_time
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["bench_student_time", "run_source", "GOAL_S", "PER_CLASS"]

REPO = Path(__file__).resolve().parents[1]
#: Seconds the whole notebook may compute on a 2-core CPU.
GOAL_S = 600
#: Images per class of the training and test splits (CINIC-10's real sizes).
PER_CLASS = 9000
#: The first cell of each part (its markdown heading's grade id) -> the part's name.
PARTS = {"intro": "0. set-up, data, model", "part1_intro": "1. unstructured", "part2_intro": "2. structured",
         "part3_intro": "3. removal, cost, fine-tuning", "closing": "closing"}


def cell_seconds(cell) -> float | None:
    """How long a code cell ran, from the timestamps nbclient records (None without a reply)."""
    times = cell.metadata.get("execution", {})
    try:
        start, end = (datetime.datetime.fromisoformat(times[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def full_size_data(work: Path) -> Path:
    """The generated data at CINIC-10's sizes, saved as ``work/full-size.npz`` (about 550 MB, 30 s)."""
    from helpers._synthetic import make_synthetic
    path = work / "full-size.npz"
    if not path.is_file():
        np.savez(path, **make_synthetic({"train": PER_CLASS, "val": 1, "test": PER_CLASS}))
    return path


def run_source(nb, data_root: str, model: Path, work: Path, cache: Path) -> tuple:
    """Execute notebook ``nb`` (the source notebook, maybe with cells added) in a fresh kernel in ``work``,
    on ``data_root`` and ``model``, with the repository's ``helpers``; return it executed, and its wall time."""
    from nbclient import NotebookClient

    from autograder.runner.channels import SteadyKernelManager
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRUNING_", "CINIC10_"))}
    env.update({"CINIC10_ROOT": data_root, "PRUNING_MODEL": str(model), "MPLBACKEND": "Agg",
                "CINIC10_CACHE": str(cache), "PYTHONPATH": str(REPO)})
    start = time.perf_counter()
    NotebookClient(nb, timeout=3600, kernel_name="python3", kernel_manager_class=SteadyKernelManager,
                   resources={"metadata": {"path": str(work)}}).execute(env=env)
    return nb, time.perf_counter() - start


def bench_student_time(work: Path, model: Path) -> dict:
    """Run the source notebook at full size; return the total and per-part compute times, in seconds."""
    import nbformat
    nb = nbformat.read(REPO / "assignment" / "source" / "pruning" / "pruning.ipynb", as_version=4)
    nb, wall = run_source(nb, str(full_size_data(work)), model, work, work / "student-cache")
    parts: dict[str, float] = {}
    cells: dict[str, float] = {}
    part = PARTS["intro"]
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        part = PARTS.get(gid, part)
        seconds = cell_seconds(cell) if cell.cell_type == "code" else None
        if seconds is not None:
            parts[part] = parts.get(part, 0.0) + seconds
            if gid:
                cells[gid] = round(seconds, 1)
    total = sum(parts.values())
    return {"device": "cuda" if torch.cuda.is_available() else "cpu", "threads": torch.get_num_threads(),
            "train_images": PER_CLASS * 10, "test_images": PER_CLASS * 10,
            "total_s": round(total, 1), "wall_s": round(wall, 1), "goal_s": GOAL_S,
            "parts_s": {k: round(v, 1) for k, v in parts.items()}, "cells_s": cells,
            "python": sys.version.split()[0], "torch": torch.__version__}
