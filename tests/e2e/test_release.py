"""The student bundle (``python -m autograder release``): what it holds, what it must never hold,
and that its notebook installs ``helpers`` from it and finds its model on a clean machine."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.release import find_leaks, helpers_version, release, secret_lines
from autograder.samples import build_notebook, load_samples
from helpers.download import sha256sum
from tests.bundle import clean_venv, student_env
from tests.notebooks import cell_by_id

pytestmark = pytest.mark.slow  # builds the bundle (a wheel), and clean virtualenvs that run its notebook

HELPERS_URL = "https://course.example.org/pruning_course_helpers-0.1.0-py3-none-any.whl"
MODEL_URL = "https://course.example.org/pruning-model.pt"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, trained_model_path):
    out = tmp_path_factory.mktemp("release") / "student"
    return release(out, trained_model_path, helpers_url=HELPERS_URL, model_url=MODEL_URL, allow_generated=True)


@pytest.fixture(scope="module")
def student_python(tmp_path_factory):
    return clean_venv(tmp_path_factory.mktemp("student-machine"))


def test_the_bundle_holds_what_a_student_needs(bundle, trained_model_path):
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["README.md", "pruning-model.pt", "pruning-model.pt.sha256", "pruning.ipynb",
                     f"pruning_course_helpers-{helpers_version()}-py3-none-any.whl"]
    assert re.fullmatch(r"0\.1\.0\+[0-9a-f]{10}", helpers_version())
    digest = hashlib.sha256(trained_model_path.read_bytes()).hexdigest()
    assert (bundle / "pruning-model.pt.sha256").read_text() == f"{digest}  pruning-model.pt\n"
    assert sha256sum(bundle / "pruning-model.pt") == digest
    setup = cell_by_id(nbformat.read(bundle / "pruning.ipynb", as_version=4), "setup").source
    assert f'HELPERS_URL = "{HELPERS_URL}"' in setup
    assert f'MODEL_URL = "{MODEL_URL}"' in setup
    assert f'MODEL_SHA256 = "{digest}"' in setup
    assert f'HELPERS_VERSION = "{helpers_version()}"' in setup


def test_the_wheel_ships_helpers_alone(bundle):
    wheel = next(bundle.glob("*.whl"))
    with zipfile.ZipFile(wheel) as whl:
        tops = {name.split("/")[0] for name in whl.namelist()}
        names = whl.namelist()
    assert tops == {"helpers", f"pruning_course_helpers-{helpers_version()}.dist-info"}
    assert "helpers/_speed/inference.py" in names and "helpers/_locate.py" in names and "helpers/checks.py" in names
    assert not [n for n in names if n.endswith(".pyc")]


def test_the_release_notebook_has_no_solutions_or_hidden_tests(bundle):
    nb = nbformat.read(bundle / "pruning.ipynb", as_version=4)
    text = json.dumps(nb)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "PRUNING_EXPORT_CODE"):
        assert marker not in text
    assert "prune.global_unstructured(params" not in text and "ln_structured(m" not in text


def test_no_file_of_the_bundle_gives_an_answer_away(bundle):
    secrets = secret_lines()
    # The secrets are real lines of the answers (the check cannot pass for want of any).
    assert 'prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)' in secrets
    assert any("global_unstructured" in s for s in secrets)
    assert any("PRUNING_EXPORT_CODE" in s for s in secrets)
    assert find_leaks(bundle) == []


@pytest.mark.parametrize("where", ["README.md", "wheel", "notebook"])
def test_a_leak_anywhere_in_the_bundle_is_found(bundle, tmp_path, where):
    leaky = tmp_path / "leaky"
    shutil.copytree(bundle, leaky)
    line = '        prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)'
    if where == "README.md":
        (leaky / "README.md").write_text((leaky / "README.md").read_text() + f"\n{line}\n")
    elif where == "wheel":
        with zipfile.ZipFile(next(leaky.glob("*.whl")), "a") as whl:
            whl.writestr("helpers/answers.py", f"def f(m, amount):\n{line}\n")
    else:
        nb = nbformat.read(leaky / "pruning.ipynb", as_version=4)
        nb.cells[-1].source += f"\n{line.strip()}"
        nbformat.write(nb, leaky / "pruning.ipynb")
    leaks = find_leaks(leaky)
    assert len(leaks) == 1 and leaks[0].endswith('prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)')


def _run(python, nb_path, cwd, env, timeout=600):
    """Execute ``nb_path`` in place with nbconvert in the student's venv; return the executed notebook."""
    done = subprocess.run([str(python), "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                           "--allow-errors", f"--ExecutePreprocessor.timeout={timeout}", nb_path.name],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout + 120)
    assert done.returncode == 0, done.stderr[-3000:]
    return nbformat.read(nb_path, as_version=4)


def _errors(nb):
    return [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def test_in_a_clean_venv_the_notebook_installs_helpers_from_the_bundle_and_runs(bundle, student_python, tmp_path):
    """A correct solution in the bundle's notebook, run by a student's python that has never seen
    ``helpers``: the set-up cell installs the wheel next to it, finds the model there, every check passes."""
    env = student_env(tmp_path / "home", CINIC10_ROOT="synthetic", CINIC10_PER_CLASS="30")
    assert subprocess.run([str(student_python), "-c", "import helpers"], env=env, cwd=tmp_path,
                          capture_output=True).returncode != 0
    work = tmp_path / "student"
    shutil.copytree(bundle, work)
    reference = next(s for s in load_samples() if s.name == "reference")
    nbformat.write(build_notebook(reference, nbformat.read(work / "pruning.ipynb", as_version=4)),
                   work / "pruning.ipynb")
    nb = _run(student_python, work / "pruning.ipynb", work, env)
    assert _errors(nb) == []
    setup = "".join(o.get("text", "") for o in cell_by_id(nb, "setup").outputs)
    assert f"Installing the course's helper package from pruning_course_helpers-{helpers_version()}-py3-none-any.whl" \
        in setup
    assert f"model: {work}/pruning-model.pt" in setup
    shown = subprocess.run([str(student_python), "-c", "import helpers; print(helpers.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True).stdout
    assert shown.startswith(str(student_python.parents[1]))  # installed in the student's venv


def test_a_bundle_without_its_wheel_says_what_to_do(bundle, tmp_path):
    student_python = clean_venv(tmp_path / "machine")
    env = student_env(tmp_path / "home", CINIC10_ROOT="synthetic")
    work = tmp_path / "student"
    work.mkdir()
    nb = nbformat.read(bundle / "pruning.ipynb", as_version=4)
    setup = cell_by_id(nb, "setup")
    setup.source = setup.source.replace(f'HELPERS_URL = "{HELPERS_URL}"', 'HELPERS_URL = ""')
    nb.cells = nb.cells[:nb.cells.index(setup) + 1]
    nbformat.write(nb, work / "pruning.ipynb")
    ran = _run(student_python, work / "pruning.ipynb", work, env)
    assert _errors(ran) == ["SystemExit: The course's helper package is missing: put the "
                            "pruning_course_helpers-*.whl file of your course bundle next to this notebook (in Colab: "
                            "in the pruning-course folder of your Google Drive), then run this cell again."]


def test_a_model_nowhere_and_an_unreachable_url_say_what_to_do(bundle, student_python, tmp_path):
    env = student_env(tmp_path / "home", CINIC10_ROOT="synthetic")
    work = tmp_path / "student"
    work.mkdir()
    shutil.copy(next(bundle.glob("*.whl")), work)  # the wheel, not the model
    nb = nbformat.read(bundle / "pruning.ipynb", as_version=4)
    setup = cell_by_id(nb, "setup")
    unreachable = "http://127.0.0.1:9/pruning-model.pt"  # refused at once, also on a machine without DNS
    setup.source = setup.source.replace(MODEL_URL, unreachable)
    nb.cells = nb.cells[:nb.cells.index(setup) + 1]
    nbformat.write(nb, work / "pruning.ipynb")
    ran = _run(student_python, work / "pruning.ipynb", work, env)
    [error] = _errors(ran)
    assert error.startswith("SetupError: The pretrained model could not be downloaded "
                            f"(could not download {unreachable}")
    assert error.endswith("): check your internet connection and run the set-up cell again, or put pruning-model.pt "
                          "next to this notebook.")


# --- a release for a real class -------------------------------------------------------------------------------

def test_a_release_refuses_a_model_trained_on_the_generated_data(tmp_path, trained_model_path):
    from autograder.release import ReleaseError
    from helpers import load_model
    from helpers.models import checkpoint_trained_on, save_model
    assert checkpoint_trained_on(trained_model_path) == "synthetic"
    with pytest.raises(ReleaseError, match="trained on the generated stand-in data.*python -m autograder train"):
        release(tmp_path / "out", trained_model_path)
    assert not (tmp_path / "out").exists()
    real = save_model(load_model(trained_model_path), tmp_path / "real.pt", trained_on="CINIC-10")
    assert checkpoint_trained_on(real) == "CINIC-10"
    unknown = save_model(load_model(trained_model_path), tmp_path / "old.pt")
    assert checkpoint_trained_on(unknown) is None  # an older checkpoint: nothing recorded, not refused


def test_release_without_a_model_stops_with_the_command_to_run(tmp_path, capsys):
    """``make release`` without ``MODEL=`` runs ``python -m autograder release`` without ``--model``."""
    from autograder.cli import main
    assert main(["release", "--out", str(tmp_path / "bundle")]) == 2
    err = capsys.readouterr().err
    assert "python -m autograder train --data-root" in err and "make release MODEL=pruning-model.pt" in err, err
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("url", ["https://drive.google.com/file/d/abc/view?usp=sharing",
                                 "https://course.example.org/files/",
                                 "ftp://course.example.org/pruning_course_helpers-0.1.0-py3-none-any.whl",
                                 "https://course.example.org/helpers.whl",
                                 "course.example.org/pruning_course_helpers-0.1.0-py3-none-any.whl"])
def test_a_helpers_url_pip_cannot_install_from_is_refused(url):
    from autograder.release import ReleaseError, check_helpers_url
    with pytest.raises(ReleaseError, match="must end in the wheel's file name"):
        check_helpers_url(url)
    assert check_helpers_url(HELPERS_URL) == HELPERS_URL


# --- the set-up cell on a student's machine ----------------------------------------------------------------------

def _setup_only(bundle, work: Path, **replace: str) -> Path:
    """The bundle's notebook cut after its set-up cell, written into ``work`` (with ``replace``d set-up text)."""
    nb = nbformat.read(bundle / "pruning.ipynb", as_version=4)
    setup = cell_by_id(nb, "setup")
    for old, new in replace.items():
        setup.source = setup.source.replace(old, new)
    nb.cells = nb.cells[:nb.cells.index(setup) + 1]
    work.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, work / "pruning.ipynb")
    return work / "pruning.ipynb"


def _version(python: Path, env: dict) -> str:
    code = "import importlib.metadata as m; print(m.version('pruning-course-helpers'))"
    return subprocess.run([str(python), "-c", code], env=env, cwd=python.parents[2], capture_output=True,
                          text=True).stdout.strip()


def test_a_newer_bundle_installs_its_helpers_over_an_older_one(bundle, tmp_path):
    """A student who installed the helpers of an earlier bundle gets this bundle's version from its set-up cell."""
    from autograder.release import build_wheel
    python = clean_venv(tmp_path / "machine")
    env = student_env(tmp_path / "home", CINIC10_ROOT="synthetic")
    old = build_wheel(tmp_path, version="0.0.9")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(old)], env=env, cwd=tmp_path,
                   check=True)
    assert _version(python, env) == "0.0.9"
    work = tmp_path / "student"
    nb_path = _setup_only(bundle, work)
    for name in ("pruning-model.pt", next(bundle.glob("*.whl")).name):
        shutil.copy(bundle / name, work)
    ran = _run(python, nb_path, work, env)
    assert _errors(ran) == []
    assert f"from pruning_course_helpers-{helpers_version()}-py3-none-any.whl" in "".join(
        o.get("text", "") for o in cell_by_id(ran, "setup").outputs)
    assert _version(python, env) == helpers_version()


def test_a_helpers_file_next_to_the_notebook_is_named_as_what_hides_the_package(bundle, student_python, tmp_path):
    env = student_env(tmp_path / "home", CINIC10_ROOT="synthetic")
    work = tmp_path / "student"
    nb_path = _setup_only(bundle, work)
    (work / "helpers.py").write_text("# my own helper functions\n")
    [error] = _errors(_run(student_python, nb_path, work, env))
    assert error == (f"SystemExit: {work / 'helpers.py'} is not the course's helper package but hides it (it has the "
                     "same name, helpers): rename or move it, restart the kernel and run this cell again.")


def test_a_failed_install_names_its_cause(bundle, tmp_path):
    """A wheel whose requirement pip cannot find (no index reachable): the message names that, not the network
    alone or the wheel's place."""
    python = clean_venv(tmp_path / "machine")
    env = student_env(tmp_path / "home", CINIC10_ROOT="synthetic", PIP_NO_INDEX="1")
    work = tmp_path / "student"
    nb_path = _setup_only(bundle, work, **{f'HELPERS_VERSION = "{helpers_version()}"': 'HELPERS_VERSION = "9.9.9"'})
    wheel = work / "pruning_course_helpers-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:  # a real wheel whose one requirement exists nowhere
        info = "pruning_course_helpers-9.9.9.dist-info"
        whl.writestr("helpers_stub.py", "")
        whl.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: pruning-course-helpers\nVersion: 9.9.9\n"
                                         "Requires-Dist: pruning-course-requirement-nowhere\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    [error] = _errors(_run(python, nb_path, work, env))
    assert error.startswith(f"SystemExit: Installing the helper package from ./{wheel.name} failed: a package the "
                            "helpers need has no version for this Python"), error


def test_the_student_readme_says_how_to_start_in_both_places_and_what_to_hand_in(bundle):
    text = (bundle / "README.md").read_text()
    wheel = next(bundle.glob("*.whl"))
    for needed in ("## In JupyterLab", "## In Google Colab", "## What to hand in", "## How long it takes",
                   "folder `pruning-course` in *My Drive*", f"upload `{wheel.name}` and `pruning-model.pt`",
                   "GPU runtime", "a CPU runtime works too", "Restart Kernel and Run All Cells",
                   f"(else from {HELPERS_URL})", "(with PyTorch and Torch-Pruning if your environment lacks them)",
                   "a failing check costs only its own points", "do not edit, move or delete the locked cells",
                   f"| {round(wheel.stat().st_size / 1024)} KB |",
                   f"| {(bundle / 'pruning-model.pt').stat().st_size / 1e6:.1f} MB |"):
        assert " ".join(needed.split()) in " ".join(text.split()), needed
