"""GPU check, step 2: a student's run of the release bundle on the real sample, then its grades.

    OUT=folder SAMPLE_TAR=CINIC-10-sample.tar.gz python benchmarks/device/student.py

0. (``split``) the test-split check with the student's fine-tuning on this machine's default device and
   the grader's on the CPU and on CUDA (the part-3 bench's calibration runs);
1. trains the course model on the real sample's train split (the device's default: CUDA);
2. builds the student bundle with it (``autograder.release.release``: wheel, notebook, model);
3. fills the bundle notebook's solution cells with the reference answers, sets ``DATA_PATH`` in its
   paths cell as a student would, and runs it with a plain Jupyter kernel in the bundle folder, with
   no PYTHONPATH: the set-up cell installs ``helpers`` from the bundle's wheel;
4. grades six samples (two correct, four mistakes) on the real sample with ``python -m autograder grade``
   and compares each with its expected points.
Writes $OUT/student.json and $OUT/student-real.ipynb. ``STUDENT_STEPS`` picks steps (default all).
``STUDENT_CELL_TIMEOUT`` (seconds, default 900) bounds each notebook cell; a cell that runs out of it or a
kernel that dies is reported (``notebook_error`` names the first cell without a result; each cell's ``s`` is
how long it ran) and the outputs so far are kept; every ``STUDENT_STACK_DUMP_S`` seconds (default 60) the
kernel writes its threads' stacks to its stderr. ``KERNEL_THREADS`` sets the kernel's ``OMP_NUM_THREADS``.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # a script run by path, not a notebook

import nbformat  # noqa: E402
import torch  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

from autograder.release import release  # noqa: E402
from autograder.runner.channels import SteadyKernelManager  # noqa: E402
from autograder.samples import build_notebook, load_samples  # noqa: E402
from autograder.train import train_model  # noqa: E402
from benchmarks.student_time import cell_seconds  # noqa: E402
from helpers import get_CINIC10_data, test_model  # noqa: E402
from helpers.models import save_model  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp/gpuout"))
TAR = Path(os.environ["SAMPLE_TAR"]).resolve()  # the notebook runs in the bundle folder
WORK = Path(os.environ.get("STUDENT_WORK", "/tmp/stu"))
STEPS = os.environ.get("STUDENT_STEPS", "split,notebook,grade").split(",")
report = {"cuda": torch.cuda.is_available(),
          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _cell_seconds(cell) -> float | None:
    """How long a cell ran, in seconds to 2 decimals (None if it has no reply)."""
    seconds = cell_seconds(cell)
    return None if seconds is None else round(seconds, 2)


def save():
    (OUT / "student.json").write_text(json.dumps(report, indent=1))


shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
t = time.perf_counter()
data = get_CINIC10_data(str(TAR), cache_dir=WORK / "train-cache", progress=False)
report["decode_s"] = round(time.perf_counter() - t, 1)
t = time.perf_counter()
model = train_model(data, progress=False)
report["train_s"] = round(time.perf_counter() - t, 1)
report["model_test_acc"] = test_model(model, [data["X_test"], data["y_test"]])
model_path = save_model(model.cpu(), WORK / "real-model.pt")
bundle = release(WORK / "bundle", model_path)
report["bundle"] = sorted(p.name for p in bundle.iterdir())
reference = next(s for s in load_samples() if s.name == "reference")
save()

if "split" in STEPS:  # the test-split check with the student's fine-tuning on this device, the grader's on each
    import benchmarks.part3 as part3
    for grader_device in ("cpu", "cuda"):
        try:
            t = time.perf_counter()
            cal = part3._split_calibration(model.cpu(), data, grader_device=grader_device)
            report[f"split_grader_{grader_device}"] = {k: v for k, v in cal.items() if k != "runs"}
            report[f"split_grader_{grader_device}"]["s"] = round(time.perf_counter() - t, 1)
            report[f"split_grader_{grader_device}"]["runs"] = [
                (r["kind"][0], r["split"], r["variant"], r["cos_train"], r["cos_test"]) for r in cal["runs"]]
        except Exception as exc:  # noqa: BLE001 - reported, the next steps still run
            report[f"split_grader_{grader_device}"] = repr(exc)
        save()

if "notebook" in STEPS:
    student = WORK / "student"
    shutil.copytree(bundle, student)
    nb = build_notebook(reference, nbformat.read(bundle / "pruning.ipynb", as_version=4))
    paths_cell = next(c for c in nb.cells if c.cell_type == "code" and "DATA_PATH = None" in c.source)
    paths_cell.source = paths_cell.source.replace("DATA_PATH = None", f"DATA_PATH = {str(TAR)!r}")
    # a stuck cell shows where: every STUDENT_STACK_DUMP_S seconds the kernel writes all its threads' Python
    # stacks to its stderr (student.log)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import faulthandler, sys\n"
        f"faulthandler.dump_traceback_later({int(os.environ.get('STUDENT_STACK_DUMP_S', '60'))}, repeat=True, "
        "file=sys.__stderr__)"))
    home = WORK / "home"
    home.mkdir()
    # PYTHONFAULTHANDLER: a kernel that dies in C code (a signal) writes each thread's Python stack to
    # student.log; KERNEL_THREADS, if set, is the kernel's OMP_NUM_THREADS (default: the machine's).
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "PYTHONFAULTHANDLER": "1"}
    if os.environ.get("KERNEL_THREADS"):
        env["OMP_NUM_THREADS"] = os.environ["KERNEL_THREADS"]
    t = time.perf_counter()
    try:
        # SteadyKernelManager: plain nbclient can miss the slider cell's reply until the cell's timeout
        # (jupyter/nbclient#312; benchmarks/history.md item 24), most likely what stopped this run on the H100
        # in an H100 run
        NotebookClient(nb, timeout=int(os.environ.get("STUDENT_CELL_TIMEOUT", "900")), kernel_name="python3",
                       kernel_manager_class=SteadyKernelManager,
                       resources={"metadata": {"path": str(student)}}).execute(env=env)
        report["notebook_error"] = None
    except CellExecutionError as exc:
        report["notebook_error"] = str(exc)[-3000:]
    except Exception as exc:  # noqa: BLE001 - a cell out of time or a dead kernel: name it, keep the outputs
        # the first code cell with no reply (a stuck cell has its execute_input, so no execution_count test)
        running = next((c.metadata.get("nbgrader", {}).get("grade_id", i) for i, c in enumerate(nb.cells)
                        if c.cell_type == "code" and c.source.strip() and _cell_seconds(c) is None), None)
        report["notebook_error"] = f"{type(exc).__name__}: {exc} (first cell without a result: {running})"
    report["notebook_s"] = round(time.perf_counter() - t, 1)
    nbformat.write(nb, OUT / "student-real.ipynb")
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        out = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        errs = [o.get("ename", "") + ": " + o.get("evalue", "") for o in cell.get("outputs", [])
                if o.get("output_type") == "error"]
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        texts.append({"id": gid, "errors": errs, "text": re.sub(r"\x1b\[[0-9;]*m", "", out)[-600:],
                      "s": _cell_seconds(cell)})
    report["cells"] = texts
    where = subprocess.run([sys.executable, "-c", "import helpers; print(helpers.__file__)"], cwd="/",
                           capture_output=True, text=True)
    report["helpers_installed_at"] = where.stdout.strip() or where.stderr.strip()[-300:]
    save()

if "grade" in STEPS:
    from autograder.samples import write_class
    names = ["reference", "correct_manual_topk", "mistake_finetune_test_split", "mistake_finetune_masks_dropped",
             "mistake_removal_keeps_zeros", "mistake_wrong_dim"]
    samples = [s for s in load_samples() if s.name in names]
    write_class(WORK / "subs", samples, bundle / "pruning.ipynb")
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(WORK / "subs"), "--data-root", str(TAR),
                           "--model", str(model_path), "--out", str(WORK / "grading"), "--jobs", "6"],
                          cwd=REPO, capture_output=True, text=True)
    report["grade_s"] = round(time.perf_counter() - t, 1)
    report["grade_rc"] = done.returncode
    report["grade_tail"] = (done.stdout + done.stderr)[-2500:]
    from benchmarks.device.compare import compare
    path = WORK / "grading" / "grades.csv"
    report["grades"] = compare(path, WORK / "grading" / "feedback") if path.is_file() else None
    save()
print(json.dumps({k: v for k, v in report.items() if k != "cells"}, indent=1))
sys.stdout.flush()
os._exit(0)  # after a dead kernel nbclient's leftover tasks can hold the interpreter's exit (seen on the H100)
