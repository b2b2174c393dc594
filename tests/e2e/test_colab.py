"""Installing the course's wheel in Google Colab changes none of the packages Colab already has.

Colab's runtime is stood in for by its published package list (``fixtures/colab-pip-freeze.txt``): a fresh
virtual environment gets one installed-package record (``.dist-info`` metadata, no code) per package of that
list, at Colab's version, and pip resolves the bundle's wheel against them with ``--dry-run --report`` (pip's
install report). The report must install only the course's package and what Colab lacks (Torch-Pruning),
never another version of a package Colab has: such an upgrade (ipywidgets 7 -> 8, say) would happen under
Colab's front end.

The second test is a Colab-like runtime: a virtualenv on Python 3.13 (Colab's) with Colab's versions of every
package the course touches and of what they pull in (the list's ``==`` pins as pip constraints), a stand-in
``google.colab`` whose ``drive.mount`` only records the call, and the course folder "in Drive" holding the
release bundle's wheel and model. The bundle's notebook, with the reference solution, runs there from
``/content`` (no wheel beside it) to its end; the slider is moved once. Substituted, because the registry has no
CPU build: torch 2.11.0 and torchvision 0.26.0 are PyPI's builds of Colab's versions (CUDA 13, running on the
CPU) instead of ``2.11.0+cpu`` / ``0.26.0+cpu``; Colab's ``nvidia-*``, ``cuda-*`` and ``triton`` pins (its GPU
libraries) give way to those that build needs. The runtime's libraries (about 5 GB) are built once into
``$XDG_CACHE_HOME/pruning-course`` (about a minute from PyPI) and layered under a fresh venv per run, so the
notebook's install never changes the cached copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.release import build_wheel, helpers_version, release
from autograder.samples import build_notebook, load_samples
from tests.notebooks import cell_by_id

FREEZE = Path(__file__).parents[1] / "fixtures" / "colab-pip-freeze.txt"

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


#: What the course touches in Colab's runtime (with its pins, what they pull in comes at Colab's versions too).
COURSE_PACKAGES = ("torch==2.11.0", "torchvision==0.26.0", "numpy", "matplotlib", "pillow", "tqdm", "ipywidgets",
                   "ipykernel", "ipython", "traitlets", "nbformat", "nbclient", "nbconvert", "jupyter_client")
#: Colab's GPU libraries: PyPI's torch build needs its own versions of these.
_GPU_LIBRARIES = re.compile(r"^(nvidia-|cuda-|triton)")


def python313() -> str | None:
    """A Python 3.13 interpreter: ``$PRUNING_COLAB_PYTHON``, ``python3.13`` on PATH, or pyenv's."""
    found = [os.environ.get("PRUNING_COLAB_PYTHON"), shutil.which("python3.13"),
             *sorted(map(str, Path.home().glob(".pyenv/versions/3.13*/bin/python3.13")))]
    for python in filter(None, found):
        done = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
                              capture_output=True, text=True)
        if done.stdout.strip() == "True":
            return python
    return None


def colab_libraries(python: str) -> Path:
    """The cached venv with Colab's libraries (built on first use); returns its site-packages."""
    pins = sorted(f"{name}=={version}" for name, version in colab_packages().items()
                  if "+" not in version and not _GPU_LIBRARIES.match(name))
    key = hashlib.sha256("\n".join([*pins, *COURSE_PACKAGES]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pruning-course" / f"colab-{key}"
    if not (cache / "ready").is_file():
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        subprocess.run([python, "-m", "venv", str(cache / "venv")], check=True, capture_output=True)
        (cache / "constraints.txt").write_text("\n".join(pins) + "\n")
        done = subprocess.run([str(cache / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                               "--disable-pip-version-check", "-c", str(cache / "constraints.txt"),
                               *COURSE_PACKAGES], capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"building the Colab-like runtime failed:\n{done.stderr[-3000:]}"
        (cache / "ready").write_text("")
    return next((cache / "venv" / "lib").glob("python3.13/site-packages"))


def colab_runtime(root: Path, python: str) -> Path:
    """A fresh venv over the cached libraries, with the stand-in ``google.colab``; returns its python."""
    venv = root / "runtime"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.13/site-packages"))
    (site / "colab-libraries.pth").write_text(f"{colab_libraries(python)}\n")
    stand_in = site / "google" / "colab"  # no google/__init__.py: `google` stays a namespace package
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab: Drive only."""\n')
    (stand_in / "drive.py").write_text(
        "import os\n\n\n"
        "def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):\n"
        "    with open(os.environ['FAKE_COLAB_MOUNTS'], 'a') as fh:\n"
        "        fh.write(mountpoint + '\\n')\n"
        "    print(f'Mounted at {mountpoint}')\n")
    return venv / "bin" / "python"


def _freeze(python: Path, env: dict) -> dict[str, str]:
    done = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                          env=env, capture_output=True, text=True, check=True)
    return {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(done.stdout)}


def test_the_bundle_runs_to_its_end_in_a_colab_like_runtime(tmp_path, trained_model_path):
    python = python313()
    if python is None:
        pytest.skip("no Python 3.13 here (Colab's): install one (pyenv install 3.13) or set PRUNING_COLAB_PYTHON")
    runtime = colab_runtime(tmp_path, python)
    home, drive = tmp_path / "home", tmp_path / "drive" / "MyDrive" / "pruning-course"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "PRUNING_COURSE_DIR": str(drive), "FAKE_COLAB_MOUNTS": str(tmp_path / "mounts.txt"),
           "CINIC10_ROOT": "synthetic", "CINIC10_PER_CLASS": "30", "PIP_NO_INPUT": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    home.mkdir()
    before = _freeze(runtime, env)
    assert {k: before[k] for k in ("torch", "numpy", "ipywidgets", "ipykernel", "matplotlib")} == {
        "torch": "2.11.0", "numpy": "2.1.3", "ipywidgets": "7.7.1", "ipykernel": "6.17.1", "matplotlib": "3.10.0"}
    assert subprocess.run([str(runtime), "-c", "import helpers"], env=env, cwd=home,
                          capture_output=True).returncode != 0

    # The student uploads the bundle's files to Drive's course folder and opens the notebook from there:
    # Colab runs it in /content, where no wheel lies.
    bundle = release(tmp_path / "bundle", trained_model_path, allow_generated=True)
    shutil.copytree(bundle, drive, ignore=shutil.ignore_patterns("*.ipynb"))
    content = tmp_path / "content"
    content.mkdir()
    nb = build_notebook(next(s for s in load_samples() if s.name == "reference"),
                        nbformat.read(bundle / "pruning.ipynb", as_version=4))
    at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "slider")
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("slider.children[0].value = 0.8  # the student moves it"))
    nbformat.write(nb, content / "pruning.ipynb")
    done = subprocess.run([str(runtime), "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                           "--allow-errors", "--ExecutePreprocessor.timeout=600", "pruning.ipynb"],
                          cwd=content, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = nbformat.read(content / "pruning.ipynb", as_version=4)

    errors = [f"{o.ename}: {o.evalue}" for c in ran.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert all(c.get("execution_count") for c in ran.cells if c.cell_type == "code")
    said = {c.metadata.get("nbgrader", {}).get("grade_id"): "".join(o.get("text", "") for o in c.outputs)
            for c in ran.cells if c.cell_type == "code"}
    for check in ("test_unstructured_sparsity", "test_unstructured_accuracy", "test_unstructured_function",
                  "test_structured_filters", "test_structured_accuracy", "test_structured_function",
                  "test_removal_models", "test_removal_function", "test_finetuning"):
        assert said[check].startswith("OK:"), (check, said[check])
    wheel = f"pruning_course_helpers-{helpers_version()}-py3-none-any.whl"
    assert "Mounted at /content/drive" in said["setup"]
    assert f"Installing the course's helper package from {wheel}" in said["setup"]
    assert f"model: {drive}/pruning-model.pt" in said["setup"]
    assert re.search(rf"helpers {re.escape(helpers_version())}, torch 2\.11\.0\S*, Python 3\.13\.\d+; "
                     r"computing on the CPU", said["setup"])  # the line a student pastes into a question
    assert (tmp_path / "mounts.txt").read_text().split() == ["/content/drive", "/content/drive"]
    # The slider is an ipywidgets 7 widget, and moving it prunes and tests a copy.
    slider = cell_by_id(ran, "slider")
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in slider.outputs)
    state = ran.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(w["model_name"] == "FloatSliderModel" and w["model_module_version"].startswith("1.")
               for w in state.values())  # ipywidgets 7's controls are version 1.x
    assert re.search(r"amount 0\.80: sparsity 0\.800, accuracy 0\.\d{4}", (content / "pruning.ipynb").read_text())

    # The install added the course's package and what Colab lacks, and changed none of Colab's.
    after = _freeze(runtime, env)
    assert {k: f"{before[k]} -> {after.get(k)}" for k in before if after.get(k) != before[k]} == {}
    assert set(after) - set(before) == {"pruning-course-helpers", "torch-pruning"}
