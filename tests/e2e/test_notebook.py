"""The assignment notebook, executed in real Jupyter kernels: source, release, Colab start-up."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time

import nbformat
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REAL_FIXTURE, RELEASE_NB, REPO, SOURCE_NB
from tests.notebooks import cell_by_id, execute, grade_id, kernel_env, outputs_of, stream_text

pytestmark = pytest.mark.slow

TEST_CELLS = ["test_unstructured_sparsity", "test_unstructured_accuracy", "test_unstructured_function",
              "test_structured_filters", "test_structured_accuracy", "test_structured_function",
              "test_removal_models", "test_removal_function", "test_finetuning"]

MEASURE = r'''
import json
import shutil
from torch import nn
from helpers import global_sparsity, zeroed_filters
out = {"unstructured": [], "structured": [], "out_channels": {}}
for r in unstructured_results:
    out["unstructured"].append([r["target"], global_sparsity(r["model"])])
for r in structured_results:
    out["structured"].append([r["target"], {k: len(v) for k, v in zeroed_filters(r["model"]).items()},
                              global_sparsity(r["model"], (nn.Linear,))])
out["out_channels"] = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
print("MEASURED" + json.dumps(out))
'''


def run_source(tmp_path, model_path, data_root):
    nb = nbformat.read(SOURCE_NB, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(MEASURE))
    env = kernel_env(tmp_path, CINIC10_ROOT=data_root, PRUNING_MODEL=model_path)
    start = time.perf_counter()
    execute(nb, env, SOURCE_NB.parent)
    return nb, time.perf_counter() - start


def check_executed_source(nb):
    for gid in TEST_CELLS:
        cell = cell_by_id(nb, gid)
        assert not outputs_of(cell, "error"), gid
        assert stream_text(cell, "stderr") == "", f"{gid} wrote to stderr"
        assert "OK:" in stream_text(cell)
    measured = json.loads(stream_text(nb.cells[-1]).split("MEASURED", 1)[1])
    assert [t for t, _ in measured["unstructured"]] == pytest.approx([0.1 * i for i in range(1, 10)] + [0.95, 0.98])
    for target, sparsity in measured["unstructured"]:
        assert abs(sparsity - target) <= 0.001
    for target, zeroed, linear_sparsity in measured["structured"]:
        for layer, count in zeroed.items():
            assert count == round(target * measured["out_channels"][layer]), (target, layer)
        assert linear_sparsity == 0.0
    return measured


def test_source_runs_on_generated_data(tmp_path, trained_model_path):
    nb, seconds = run_source(tmp_path, trained_model_path, "synthetic")
    print(f"source notebook on the generated dataset: {seconds:.1f} s")
    check_executed_source(nb)
    figures = []
    for gid in ("part1_plots", "part2_plots"):
        figures += [o.data["image/png"] for o in outputs_of(cell_by_id(nb, gid), "display_data")
                    if "image/png" in o.data]
    assert len(figures) == 4, "part 1: its sweep, the weight histograms and per-layer bars; part 2: both sweeps"
    for i, encoded in enumerate(figures):
        png = tmp_path / f"figure{i}.png"
        png.write_bytes(base64.b64decode(encoded))
        pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert png.stat().st_size > 10_000 and pixels.std() > 10, f"{png.name} looks empty"
    assert outputs_of(cell_by_id(nb, "slider"), "display_data"), "slider widget was not displayed"


def test_source_runs_on_real_image_fixture(tmp_path, trained_model_path):
    nb, _ = run_source(tmp_path, trained_model_path, REAL_FIXTURE)
    check_executed_source(nb)
    assert "100 test images" in stream_text(cell_by_id(nb, "load"))


def test_release_fails_visible_checks_with_messages(tmp_path, trained_model_path):
    nb = nbformat.read(RELEASE_NB, as_version=4)
    env = kernel_env(tmp_path, CINIC10_ROOT="synthetic", PRUNING_MODEL=trained_model_path)
    execute(nb, env, RELEASE_NB.parent, allow_errors=True)
    for cell in nb.cells:
        errors = outputs_of(cell, "error")
        gid = grade_id(cell)
        if gid in ("sweep_unstructured", "sweep_structured", "sweep_removal", "finetune"):
            assert errors and errors[0].ename == "NotImplementedError"  # the functions only raise once called
        elif gid in TEST_CELLS:
            assert errors and errors[0].ename == "AssertionError", gid
            assert errors[0].evalue.strip(), f"{gid} failed without a message"
            trace = "\n".join(errors[0].traceback)
            assert "helpers/" not in trace and "autograder" not in trace, f"{gid}: traceback from our code"
        elif cell.cell_type == "code":
            assert not errors, f"{gid} crashed in the release: {errors[0].evalue if errors else ''}"
    assert "is empty" in outputs_of(cell_by_id(nb, "test_unstructured_sparsity"), "error")[0].evalue
    assert "not written yet" in outputs_of(cell_by_id(nb, "test_structured_function"), "error")[0].evalue


def test_colab_branch_with_stand_in_module(tmp_path, trained_model_path):
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    log = tmp_path / "mounts.txt"
    (fake / "google" / "colab" / "drive.py").write_text(
        f"def mount(path):\n    open({str(log)!r}, 'a').write(path + '\\n')\n")
    course = tmp_path / "MyDrive" / "pruning-course"
    course.mkdir(parents=True)
    shutil.copy(trained_model_path, course / "pruning-model.pt")  # the student put it in Drive
    env = kernel_env(tmp_path, PRUNING_COURSE_DIR=course)
    env["PYTHONPATH"] = str(fake)
    for var in ("CINIC10_CACHE", "PRUNING_MODEL", "CINIC10_ROOT"):
        env.pop(var, None)
    nb = nbformat.read(SOURCE_NB, as_version=4)
    nb.cells = [cell_by_id(nb, "setup"), nbformat.v4.new_code_cell(
        "import os; print('ENV', os.environ['CINIC10_CACHE'], paths['model_path'], paths['in_colab'])")]
    execute(nb, env, tmp_path)
    assert log.read_text().splitlines() == ["/content/drive"]
    printed = stream_text(nb.cells[1])
    assert f"ENV {course}/cache {course}/pruning-model.pt True" in printed
    assert "Running in Google Colab" in stream_text(nb.cells[0])
    assert course.is_dir()


def _paths_and_setup(path=SOURCE_NB):
    """The notebook's unlocked paths cell and its set-up cell."""
    nb = nbformat.read(path, as_version=4)
    setup = cell_by_id(nb, "setup")
    paths = nb.cells[nb.cells.index(setup) - 1]
    assert "MODEL_PATH = None" in paths.source and "nbgrader" not in paths.metadata
    nb.cells = [paths, setup]
    return nb


def test_jupyter_branch_finds_the_model_next_to_the_notebook(tmp_path, trained_model_path):
    shutil.copy(trained_model_path, tmp_path / "pruning-model.pt")
    env = kernel_env(tmp_path)
    env.pop("PRUNING_MODEL", None)
    nb = _paths_and_setup()
    execute(nb, env, tmp_path)
    printed = stream_text(nb.cells[1])
    assert "Running in Jupyter" in printed and f"model: {tmp_path}/pruning-model.pt" in printed
    assert "torch " in printed and "computing on the CPU" in printed


def test_a_missing_model_gets_one_sentence_saying_what_to_do(tmp_path):
    env = kernel_env(tmp_path)
    env.pop("PRUNING_MODEL", None)
    nb = _paths_and_setup()
    execute(nb, env, tmp_path, allow_errors=True)
    errors = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["SetupError"]
    assert errors[0].evalue.startswith("No pretrained model found (looked for pruning-model.pt in ")
    assert errors[0].evalue.endswith("put the pruning-model.pt of your course bundle next to this notebook, or "
                                     "set MODEL_PATH in the paths cell, then run the set-up cell again.")


def test_model_path_of_the_paths_cell_is_used_and_checked(tmp_path, trained_model_path):
    env = kernel_env(tmp_path)
    env.pop("PRUNING_MODEL", None)
    nb = _paths_and_setup()
    nb.cells[0].source = nb.cells[0].source.replace("MODEL_PATH = None", f"MODEL_PATH = {str(trained_model_path)!r}")
    execute(nb, env, tmp_path)
    assert f"model: {trained_model_path}" in stream_text(nb.cells[1])
    nb = _paths_and_setup()
    nb.cells[0].source = nb.cells[0].source.replace("MODEL_PATH = None", "MODEL_PATH = 'nowhere/model.pt'")
    execute(nb, env, tmp_path, allow_errors=True)
    error = next(o for o in nb.cells[1].outputs if o.output_type == "error")
    assert error.evalue == ("MODEL_PATH is 'nowhere/model.pt', which is not a file: fix MODEL_PATH in the paths cell "
                            "(or set it to None to use the course's model), then run both cells again.")


#: The one place a notebook names Google Drive: the set-up cell must find the wheel there before ``helpers`` can be
#: imported, so it spells out Colab's mount point and the course folder (``$PRUNING_COURSE_DIR``), as helpers does.
COLAB_LINES = ('COLAB_DRIVE = "/content/drive"',
               'COLAB_COURSE = os.environ.get("PRUNING_COURSE_DIR", COLAB_DRIVE + "/MyDrive/pruning-course")')


def test_notebooks_have_no_outputs_and_no_path_hacks():
    from helpers.config import COLAB_COURSE_DIR, COLAB_MOUNT, ENV_COURSE_DIR
    assert COLAB_LINES[0] == f'COLAB_DRIVE = "{COLAB_MOUNT}"'
    assert f'"{ENV_COURSE_DIR}"' in COLAB_LINES[1] and COLAB_MOUNT + "/MyDrive/pruning-course" == COLAB_COURSE_DIR
    for path in (SOURCE_NB, RELEASE_NB):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path
                source = cell.source
                if cell.metadata.get("nbgrader", {}).get("grade_id") == "setup":
                    assert all(line in source for line in COLAB_LINES), path
                    for line in COLAB_LINES:
                        source = source.replace(line, "")
                assert "sys.path" not in source and "/content/drive" not in source, path
    assert not [p for p in SOURCE_NB.parent.iterdir() if p.suffix != ".ipynb"], \
        "nbgrader copies every other file of source/pruning/ to each student"


def nbgrader(*args, cwd=REPO / "assignment", env=None):
    """Run the real nbgrader command (alembic must be on PATH, hence the venv's bin first)."""
    import os
    bin_dir = f"{sys.prefix}/bin"
    env = dict(env or os.environ)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return subprocess.run([f"{bin_dir}/nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_nbgrader_validate_source_and_inverted_release(tmp_path, trained_model_path):
    env = kernel_env(tmp_path, CINIC10_ROOT="synthetic", PRUNING_MODEL=trained_model_path)
    src = nbgrader("validate", str(SOURCE_NB), env=env)
    assert src.returncode == 0 and "Success!" in src.stdout, src.stdout + src.stderr
    rel = nbgrader("validate", "--invert", str(RELEASE_NB), env=env)
    assert rel.returncode == 0 and "Success!" in rel.stdout, rel.stdout + rel.stderr


def comparable(nb):
    nb = json.loads(json.dumps(nb))
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        cell.pop("id", None)
        cell.get("metadata", {}).get("nbgrader", {}).pop("checksum", None)
    return nb


def test_committed_release_matches_fresh_generation(tmp_path):
    import shutil
    course = tmp_path / "course"
    shutil.copytree(REPO / "assignment" / "source", course / "source")
    shutil.copy(REPO / "assignment" / "nbgrader_config.py", course)
    out = nbgrader("generate_assignment", "pruning", "--force", cwd=course)
    assert out.returncode == 0, out.stderr
    fresh = json.loads((course / "release" / "pruning" / "pruning.ipynb").read_text())
    committed = json.loads(RELEASE_NB.read_text())
    assert comparable(fresh) == comparable(committed), "run `make release` and commit the result"
    text = RELEASE_NB.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "autograder",
                   "global_unstructured(params", "ln_structured(m,"):
        assert marker not in text, marker
