"""django_rustpg/_native.pyi declares the whole native surface: every public name of the
extension module, and every public method and attribute of its classes, is in the stub
(and the stub declares nothing the module lacks). mypy checks the package against it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from django_rustpg import _native

STUB = Path(__file__).resolve().parent.parent / "django_backend" / "django_rustpg" / "_native.pyi"
# Names only the stub has: types for the records that cross the boundary.
STUB_ONLY = {
    "ColumnConverters", "ModelSpec", "RelatedModelSpec", "Analysis", "AnalyzedSql", "ExportedGroup",
    "ExportedDuplicate", "Export",
}


def _stub():
    tree = ast.parse(STUB.read_text())
    names, classes = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            classes[node.name] = members
    return names, classes


def _public(names):
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def test_every_module_name_is_declared():
    names, _ = _stub()
    runtime = _public(dir(_native))
    assert runtime - names == set(), "missing from _native.pyi"
    assert _public(names) - runtime - STUB_ONLY == set(), "declared in _native.pyi but not in _native"


@pytest.mark.parametrize("cls", sorted(n for n in _public(dir(_native)) if isinstance(getattr(_native, n), type)))
def test_every_class_member_is_declared(cls):
    _, classes = _stub()
    runtime = {n for n in vars(getattr(_native, cls)) if not n.startswith("_")}
    declared = {n for n in classes[cls] if not n.startswith("_")}
    assert runtime - declared == set(), f"{cls}: missing from _native.pyi"
    assert declared - runtime == set(), f"{cls}: declared in _native.pyi but not in _native"
