"""``python -m autograder release``, the student bundle.

The bundle (``dist/student/`` unless ``--out`` says otherwise) is everything a student needs and
nothing else:

* ``pruning.ipynb``: the release notebook, made by nbgrader's ``generate_assignment`` from the
  source notebook with the model's SHA-256 and the optional ``--helpers-url`` and
  ``--model-url`` baked into its set-up cell (so nbgrader's checksums of the locked cells hold);
* ``pruning_course_helpers-<version>-py3-none-any.whl``: the ``helpers`` package, built with
  pip from this repository (``helpers/`` only), its version labelled with a digest of the code
  (:func:`helpers_version`, also baked into the set-up cell as ``HELPERS_VERSION``); the set-up cell
  installs it from here, also over an older version a student installed from an earlier bundle;
* ``pruning-model.pt`` and ``pruning-model.pt.sha256``: the pretrained model and its digest;
* ``README.md``: what to do with the folder, for students.

Before the bundle is written in place, :func:`find_leaks` reads every file of it (inside the
wheel too) for any line of the source notebook's solution and hidden-test regions and of the
reference solutions (:mod:`autograder.grading.solutions`); a bundle with one is refused.

Runs in the instructor's process.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

from helpers.config import MODEL_FILE
from helpers.download import sha256sum
from helpers.models import checkpoint_trained_on

from .config import ASSIGNMENT, NOTEBOOK, REPO_ROOT, SOURCE_NOTEBOOK
from .grading.gradebook import Course

__all__ = ["release", "find_leaks", "secret_lines", "bake_setup", "check_helpers_url", "helpers_version",
           "build_wheel", "ReleaseError",
           "TRAIN_COMMAND"]

#: How an instructor trains the model a class prunes (printed when a release refuses the stand-in model).
TRAIN_COMMAND = "python -m autograder train --data-root /path/to/CINIC-10.tar.gz --out pruning-model.pt"
_WHEEL_URL = re.compile(r"^https?://[^\s?#]+/pruning_course_helpers-[0-9][^/\s?#]*-py3-none-any\.whl([?#]\S*)?$")


class ReleaseError(ValueError):
    """The release cannot be made as asked (a stand-in model, a helpers URL pip cannot install); says what to do."""


def check_helpers_url(url: str) -> str:
    """``url`` if pip can install the helpers wheel from it in Colab, else :class:`ReleaseError`.

    pip installs a wheel from a URL only when the URL's last part is the wheel's file name
    (``https://.../pruning_course_helpers-0.1.0-py3-none-any.whl``): a sharing page (a Google Drive
    "view" link) or a folder is not one.

    >>> check_helpers_url("https://course.example.org/files/pruning_course_helpers-0.1.0-py3-none-any.whl")
    'https://course.example.org/files/pruning_course_helpers-0.1.0-py3-none-any.whl'
    """
    if not _WHEEL_URL.match(url):
        raise ReleaseError(f"--helpers-url {url!r} is not a direct http(s) link to the wheel: it must end in the "
                           "wheel's file name, e.g. https://course.example.org/pruning_course_helpers-0.1.0-py3-none"
                           "-any.whl (upload the .whl of the bundle to a web server that serves the file itself)")
    return url

_REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
_MIN_CHARS = 16  # shorter lines ("return pruned", "else:") say nothing about an answer

STUDENT_README = """# Pruning assignment: your files

| file | what it is | size |
|---|---|---|
| `pruning.ipynb` | the assignment: read it from the top, it says what to write and how it is graded | {nb_kb} KB |
| `{wheel}` | the course's helper package; the notebook's set-up cell installs it | {wheel_kb} KB |
| `{model}` | the pretrained model you prune (its SHA-256 is in `{model}.sha256`) | {model_mb} MB |

The notebook downloads the CINIC-10 dataset (about 700 MB) the first time it runs and keeps it in a cache. If you
already have `CINIC-10.tar.gz` or its extracted folder, put its path in `DATA_PATH`, in the notebook's paths cell
(the first code cell).

## In JupyterLab (your own machine)

1. Keep the bundle's files together in one folder.
2. In a terminal, in that folder, with a Python environment of your own active (Python 3.9 or newer; a
   virtual environment or conda environment, not your system's Python), start `jupyter lab` and open
   `pruning.ipynb`.
3. Run the first cells: the set-up cell installs the helper package from `{wheel}`{url_note} (with PyTorch
   and Torch-Pruning if your environment lacks them), finds
   `{model}` next to the notebook{model_note} and prints where data and model come from.

## In Google Colab

1. In your Google Drive, make a folder `pruning-course` in *My Drive* and upload `{wheel}` and `{model}` into it.
2. Upload `pruning.ipynb` to Colab (*File > Upload notebook*). A GPU runtime (*Runtime > Change runtime type*) is
   faster; if none is free, a CPU runtime works too (about 3 minutes of computing, see below).
3. Run the first cells: the set-up cell asks to connect your Google Drive, installs the helper package from the
   `pruning-course` folder{url_note} and finds the model there. The dataset is cached in that folder too (about
   1.5 GB of your Drive: the 700 MB archive and its decoded arrays), so a new session does not download it
   again.

## How long it takes

On a 2-core CPU a correct notebook computes for about 3 minutes in all (about 75 evaluations of a fixed
10,000-image sample of the test split, about 1.5 s each, and two fine-tuning passes over the 90,000 training
images, about 30 s each), plus the first download of the dataset (about 700 MB) and its decoding (under a minute).
On a Colab GPU, less.

## What to hand in

`pruning.ipynb`, with its outputs: run *Kernel > Restart Kernel and Run All Cells* (Colab: *Runtime > Restart
and run all*), save, and submit the file as your course says. Keep its name, keep your code in the cells marked
*YOUR CODE HERE* and your answers in the answer cells, and do not edit, move or delete the locked cells (the grader
runs its own copies of them: an edited check passes nothing).

If a check still fails, hand the notebook in anyway: the grader runs every cell, also after one that fails, and a
failing check costs only its own points. *Run All* stops at the failing cell, so run the cells below it too
(*Run > Run Selected Cell and All Below*; Colab: *Runtime > Run after*) before you save.
"""


def _normal(line: str) -> str:
    return " ".join(line.split())


def _code_lines(text: str) -> set[str]:
    return {n for n in map(_normal, text.splitlines()) if len(n) >= _MIN_CHARS and not n.startswith("#")}


def _reference_lines(path: Path) -> set[str]:
    """Code lines of the function bodies of ``path`` (docstrings left out)."""
    text = path.read_text()
    lines = text.splitlines()
    out: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for stmt in body:
                out |= _code_lines("\n".join(lines[stmt.lineno - 1:stmt.end_lineno]))
    return out


def secret_lines(source: Path = SOURCE_NOTEBOOK) -> set[str]:
    """Lines a student must never receive: those of the solution and hidden-test regions of
    ``source`` and of the reference solutions, less any line the notebook also shows openly
    (whitespace-normalized, comments and lines under 16 characters left out)."""
    nb = nbformat.read(source, as_version=4)
    hidden: set[str] = set()
    shown: set[str] = set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            hidden |= _code_lines(cell.source) - {_normal("YOUR ANSWER HERE")}
            continue
        hidden |= {n for _, region in _REGION.findall(cell.source) for n in _code_lines(region)}
        shown |= _code_lines(_REGION.sub("", cell.source))
    hidden |= _reference_lines(REPO_ROOT / "autograder" / "grading" / "solutions.py")
    return hidden - shown


def _texts(path: Path):
    """``(name, text)`` of every readable text in ``path``: a file, a notebook's cells, a wheel's members."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            for member in whl.namelist():
                yield f"{path.name}!{member}", whl.read(member).decode("utf-8", errors="replace")
    elif path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb.get("cells", [])):
            source = cell.get("source", "")
            yield f"{path.name} cell {i}", "".join(source) if isinstance(source, list) else source
            yield f"{path.name} cell {i} outputs", json.dumps(cell.get("outputs", []))
        yield f"{path.name} metadata", json.dumps(nb.get("metadata", {}))
    elif path.suffix != ".pt":  # a checkpoint holds tensors and their names, no text
        yield path.name, path.read_bytes().decode("utf-8", errors="replace")


def find_leaks(bundle: Path, source: Path = SOURCE_NOTEBOOK) -> list[str]:
    """Every ``"<file>: <line>"`` of ``bundle`` that gives away an answer; empty when clean."""
    secrets = secret_lines(source)
    leaks = []
    for path in sorted(p for p in Path(bundle).rglob("*") if p.is_file()):
        for name, text in _texts(path):
            for line in sorted(_code_lines(text) & secrets):
                leaks.append(f"{name}: {line}")
    return leaks


def bake_setup(nb, helpers_url: str | None, model_url: str | None, model_sha256: str, helpers_version: str = ""):
    """Write the release's values into the set-up cell's ``HELPERS_URL = ""`` lines (in place)."""
    values = {"HELPERS_URL": helpers_url or "", "HELPERS_VERSION": helpers_version, "MODEL_URL": model_url or "",
              "MODEL_SHA256": model_sha256}
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    for name, value in values.items():
        cell.source, n = re.subn(rf'^{name} = ""$', f"{name} = {json.dumps(value)}", cell.source, flags=re.M)
        if n != 1:
            raise ValueError(f"the set-up cell of the source notebook has no line {name} = \"\"")
    return nb


def helpers_version() -> str:
    """The version of the ``helpers`` wheel a release ships: ``pyproject.toml``'s, with a digest of ``helpers/``
    and ``pyproject.toml`` as a local label (``0.1.0+3f9c2a1b7d``), so that a re-released bundle whose code
    changed has another version, which the set-up cell installs over an older one."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    base = re.search(r'^version = "([^"]+)"$', text, re.M).group(1)
    digest = hashlib.sha256(text.encode())
    for path in sorted((REPO_ROOT / "helpers").rglob("*.py")):
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{base}+{digest.hexdigest()[:10]}"


def build_wheel(dest: Path, version: str | None = None) -> Path:
    """Build the ``helpers`` wheel into ``dest`` with pip (no dependencies, no network), as ``version``
    (default: :func:`helpers_version`).

    Built from a copy of ``pyproject.toml`` and ``helpers/`` alone: setuptools reuses a
    ``build/`` folder left in the repository, which can hold modules that no longer exist.
    """
    version = version or helpers_version()
    with tempfile.TemporaryDirectory() as tmp:
        src, wheels_dir = Path(tmp) / "src", Path(tmp) / "wheels"
        src.mkdir()
        text = (REPO_ROOT / "pyproject.toml").read_text()
        (src / "pyproject.toml").write_text(re.sub(r'^version = "[^"]+"$', f'version = "{version}"', text,
                                                   count=1, flags=re.M))
        shutil.copytree(REPO_ROOT / "helpers", src / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                               "-w", str(wheels_dir), str(src)], capture_output=True, text=True)
        wheels = sorted(wheels_dir.glob("pruning_course_helpers-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"building the helpers wheel failed:\n{done.stderr[-2000:]}")
        return Path(shutil.copy(wheels[0], dest))


def release(out: Path, model: Path, helpers_url: str | None = None, model_url: str | None = None,
            allow_generated: bool = False) -> Path:
    """Write the student bundle to ``out`` (replacing it) and return ``out``.

    ``allow_generated``: ship a model trained on the generated stand-in data (for trying the bundle out;
    students would prune a near-chance model on the real CINIC-10).

    Raises:
        FileNotFoundError: ``model`` is missing.
        ReleaseError: ``model`` records it was trained on the generated data (and ``allow_generated`` is off),
            or ``helpers_url`` is not a link pip can install the wheel from.
        RuntimeError: the wheel could not be built, or the bundle would leak an answer.
    """
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise FileNotFoundError(f"model checkpoint {model} does not exist")
    if helpers_url:
        check_helpers_url(helpers_url)
    trained_on = checkpoint_trained_on(model)
    if (trained_on or "").startswith("synthetic") and not allow_generated:
        raise ReleaseError(f"{model} was trained on the generated stand-in data, not on CINIC-10: students would "
                           f"prune a near-chance model. Train one on CINIC-10 ({TRAIN_COMMAND}), then release it: "
                           "make release MODEL=pruning-model.pt (or python -m autograder release --model "
                           "pruning-model.pt)")
    digest = sha256sum(model)
    version = helpers_version()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        baked = tmp / f"{NOTEBOOK}.ipynb"
        nbformat.write(bake_setup(nbformat.read(SOURCE_NOTEBOOK, as_version=4), helpers_url, model_url, digest,
                                  version), baked)
        Course(tmp / "course", source=baked)
        bundle = tmp / "bundle"
        bundle.mkdir()
        shutil.copy(tmp / "course" / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", bundle)
        wheel = build_wheel(bundle, version)
        shutil.copy(model, bundle / MODEL_FILE)
        (bundle / f"{MODEL_FILE}.sha256").write_text(f"{digest}  {MODEL_FILE}\n")
        (bundle / "README.md").write_text(STUDENT_README.format(
            wheel=wheel.name, model=MODEL_FILE, nb_kb=round((bundle / f"{NOTEBOOK}.ipynb").stat().st_size / 1024),
            wheel_kb=round(wheel.stat().st_size / 1024), model_mb=f"{model.stat().st_size / 1e6:.1f}",
            url_note=f" (else from {helpers_url})" if helpers_url else "",
            model_note=f" (else it downloads it from {model_url})" if model_url else ""))
        leaks = find_leaks(bundle)
        if leaks:
            raise RuntimeError("the student bundle would give answers away:\n" + "\n".join(leaks[:20]))
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundle, out)
    return out
