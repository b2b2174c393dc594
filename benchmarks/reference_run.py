"""The reference run on real pixels (``make bench``, step ``reference_run``): the figures behind the notebook's
"what to expect" sentences and the reference run of docs/design.md.

On the real CINIC-10 sample beside the repository (``../shared/data/CINIC-10-sample.tar.gz``: 1,000 training,
200 validation and 300 test images of each class, in the official layout), the course model is trained with
the course's training command's defaults (:class:`autograder.config.TrainConfig`, seeded), then the source notebook
runs with the reference solution on this machine's default device, and a cell appended at its end prints what
it computed: the unpruned accuracy, both sweeps, the removed models' MACs and accuracy, and the fine-tuning.
These are a sample-trained model's figures: a model trained on the whole of CINIC-10 scores higher, and the
shape of the curves is what the notebook's texts rely on. Nothing here asserts a figure.

    python -m benchmarks.run --only reference_run
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import nbformat
import torch

from benchmarks.student_time import run_source

__all__ = ["bench_reference_run", "REPORT_CELL", "SWEEPS_PNG"]

#: Where the run leaves the notebook's figure of both sweeps, for the documentation.
SWEEPS_PNG = Path(__file__).resolve().parents[1] / "docs" / "_static" / "sweeps.png"

#: Appended to the notebook: prints its results as one JSON line.
REPORT_CELL = """import json as _json
print("REFERENCE-RUN " + _json.dumps({
    "test_images": len(test_data[1]), "baseline": baseline_acc,
    "unstructured": {str(r["target"]): r["accuracy"] for r in unstructured_results},
    "structured": {str(r["target"]): r["accuracy"] for r in structured_results},
    "removal": {str(r["target"]): {"macs": r["macs"], "accuracy": r["accuracy"]} for r in removal_results},
    "pretrained_macs": count_macs(model)[0],
    "finetune": [{k: r[k] for k in ("kind", "target", "before", "after")} for r in finetune_results],
    "finetune_epochs": FINETUNE_EPOCHS}))
"""


def bench_reference_run(work: Path, sample: Path) -> dict:
    """Train on ``sample``, run the notebook on it, return its figures (accuracies in [0, 1])."""
    if not sample.is_file():
        return {"note": f"{sample} not present on this machine: not measured"}
    from autograder.config import TrainConfig
    from autograder.train import train_model
    from helpers import get_CINIC10_data
    from helpers.models import save_model
    config = TrainConfig()
    start = time.perf_counter()
    data = get_CINIC10_data(str(sample), cache_dir=work / "reference-cache" / "arrays", progress=False)
    model = save_model(train_model(data, config, progress=False), work / "sample-model.pt",
                       trained_on=f"CINIC-10 sample ({sample.name})")
    trained_s = time.perf_counter() - start
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "assignment" / "source" / "pruning" / "pruning.ipynb",
                       as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    nb, wall = run_source(nb, str(sample), model, work, cache=work / "reference-cache")
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    line = next(x for x in printed.splitlines() if x.startswith("REFERENCE-RUN "))
    figures = json.loads(line.removeprefix("REFERENCE-RUN "))
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    figures["cost_table"] = "".join(o.get("text", "") for o in cells["cost_table"].outputs
                                    if o.output_type == "stream")
    # The documentation's picture: part 2's figure of both sweeps, as the notebook drew it.
    png = next(o["data"]["image/png"] for o in cells["part2_plots"].outputs if "image/png" in o.get("data", {}))
    SWEEPS_PNG.parent.mkdir(parents=True, exist_ok=True)
    SWEEPS_PNG.write_bytes(base64.b64decode(png))
    return {"device": "cuda" if torch.cuda.is_available() else "cpu", "threads": torch.get_num_threads(),
            "train_images": int(len(data["y_train"])), "train_epochs": config.epochs,
            "train_s": round(trained_s, 1), "notebook_s": round(wall, 1), **figures}
