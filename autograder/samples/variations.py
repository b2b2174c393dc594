"""Copies in disguise, for calibrating and testing the pairs worth comparing (and for the report's benchmark).

:func:`disguise` rewrites a cell's code the way a student hiding a copy would: names changed, independent
statements reordered, comments added, the layout redone (parsed and unparsed). What the code does is unchanged:
only names the notebook and the libraries do not need are renamed, and two statements swap only when neither
reads or writes a name the other writes.

Runs anywhere (no torch).
"""

from __future__ import annotations

import ast
import builtins
import random

__all__ = ["disguise", "disguise_cells", "KEPT_NAMES"]

#: Names a renamer must keep: what the notebook defines or the grader reads, and the helpers' names.
KEPT_NAMES = frozenset({
    "model", "data", "test_data", "train_data", "TARGETS", "unstructured_results", "structured_results",
    "removal_results", "finetune_results", "prune_unstructured", "prune_structured", "remove_filters",
    "self", "cls", "copy", "torch", "nn", "np", "prune", "tp", "F", "plt", "helpers",
}) | frozenset(dir(builtins))

_COMMENTS = ("# keep a copy so the original model is not changed", "# loop over every target",
             "# collect the layers first", "# see the lecture notes", "# TODO tidy this up", "# this part was tricky",
             "# check the numbers against the plot", "# store the results for the checks",
             "# the smallest ones go first", "# same as above")
_WORDS = ("net", "m", "layer", "lyr", "tmp", "val", "result", "out", "res", "thing", "arr", "mdl", "k", "idx", "w",
          "cur", "item", "xs", "my", "the")


def _assigned(tree: ast.AST) -> set[str]:
    """Names the code binds itself (assignments, loop targets, parameters, its functions and classes)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    keywords = {k.arg for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg}
    imported = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    return names - KEPT_NAMES - keywords - imported  # a keyword argument's name is the callee's


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.mapping.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_ClassDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node


def _names(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    """(names ``stmt`` reads, names it writes)."""
    reads, writes = set(), set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name):
            (writes if isinstance(node.ctx, (ast.Store, ast.Del)) else reads).add(node.id)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            base = node.value
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                writes.add(base.id)  # x[i] = 0 and x.y = 0 change x
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            writes.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            writes.update(a.asname or a.name.split(".")[0] for a in node.names)
    return reads, writes


def _independent(a: ast.stmt, b: ast.stmt) -> bool:
    movable = (ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    if not (isinstance(a, movable) and isinstance(b, movable)):
        return False  # calls (prints, training), loops, blocks and control flow keep their place
    ra, wa = _names(a)
    rb, wb = _names(b)
    return not (wa & (rb | wb) or wb & ra)


def _reorder(body: list[ast.stmt], rng: random.Random) -> None:
    for i in range(len(body) - 1):
        if rng.random() < 0.6 and _independent(body[i], body[i + 1]):
            body[i], body[i + 1] = body[i + 1], body[i]
    for stmt in body:
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                _reorder(inner, rng)


def _mapping(trees: list[ast.AST], rng: random.Random) -> dict[str, str]:
    own = sorted(set().union(*(_assigned(t) for t in trees))) if trees else []
    return {name: f"{rng.choice(_WORDS)}_{name[:3]}{rng.randint(1, 99)}" for name in own}


def disguise(code: str, seed: int = 0, mapping: dict[str, str] | None = None) -> str:
    """``code`` with its own names changed (``mapping``, default: a new name for each), independent statements
    reordered and comments added (``seed`` picks which); code that does not parse gets comments only."""
    rng = random.Random(seed)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        lines = code.splitlines()
    else:
        tree = _Rename(mapping if mapping is not None else _mapping([tree], rng)).visit(tree)
        _reorder(tree.body, rng)
        lines = ast.unparse(ast.fix_missing_locations(tree)).splitlines()
    out = []
    for line in lines:
        if line.strip() and rng.random() < 0.25:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(indent + rng.choice(_COMMENTS))
        out.append(line)
    return "\n".join(out) + "\n"


def disguise_cells(cells: dict[str, str], seed: int = 0) -> dict[str, str]:
    """Every cell of one notebook disguised with one renaming, so that a name one cell defines and another uses
    still matches."""
    rng = random.Random(seed)
    trees = []
    for code in cells.values():
        try:
            trees.append(ast.parse(code))
        except SyntaxError:
            continue
    mapping = _mapping(trees, rng)
    return {key: disguise(code, seed * 1000 + i, mapping) for i, (key, code) in enumerate(cells.items())}
