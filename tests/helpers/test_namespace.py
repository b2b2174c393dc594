"""The students' interface: the notebook imports every name it uses from ``helpers`` alone, ``helpers.__all__``
is exactly those names, and the package's public modules are the documented ones."""

from __future__ import annotations

import ast
import pkgutil

import nbformat
import pytest

import helpers
from autograder.config import REPO_ROOT, SOURCE_NOTEBOOK

RELEASE_NOTEBOOK = REPO_ROOT / "assignment" / "release" / "pruning" / "pruning.ipynb"


def _helpers_imports(path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import of ``helpers`` in the notebook's code cells."""
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers":
                found.append((node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "helpers"]
    return found


@pytest.mark.parametrize("path", [SOURCE_NOTEBOOK, RELEASE_NOTEBOOK], ids=["source", "release"])
def test_the_notebook_imports_its_names_from_helpers_alone_and_they_are_all_of_its_interface(path):
    imports = _helpers_imports(path)
    assert ("helpers.notebook", []) in imports, "the set-up cell calls helpers.notebook.setup"
    elsewhere = [(module, names) for module, names in imports if module != "helpers" and names]
    assert elsewhere == [], "the notebook imports from helpers' modules instead of from helpers"
    used = {name for module, names in imports if module == "helpers" for name in names}
    assert used == set(helpers.__all__)
    assert all(hasattr(helpers, name) for name in helpers.__all__)


def test_the_package_shows_its_documented_modules_and_hides_its_own():
    public = {m.name for m in pkgutil.iter_modules(helpers.__path__) if not m.name.startswith("_")}
    assert public == {"checks", "config", "cost", "data", "download", "evaluate", "finetune", "inspection", "models",
                      "notebook", "parts", "plots", "removal", "removal_checks", "sparsity"}
    assert "train" not in public, "the instructor's training command is python -m autograder train"
