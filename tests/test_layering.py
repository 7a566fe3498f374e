"""The layering promise of src/lib.rs and the package: no import circle, no hub file.

Builds the module graph of the Rust crate (``use crate::`` / ``crate::`` / ``super::`` paths in
src/**/*.rs, the vendored src/patches excepted) and of the Python package (``import`` and
``from ... import`` in django_backend/, ``if TYPE_CHECKING:`` blocks excepted), and fails on a
cycle or on a source file over 600 lines.  Run alone: ``python -m pytest tests/test_layering.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PKG_ROOT = ROOT / "django_backend"
MAX_LINES = 600
# Generated tables and golden corpora, exempt from the size rule (paths from the repo root).
LONG_FILES_ALLOWED: set[str] = {
}


def rust_module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return "::".join(parts) or "crate"


def rust_files() -> list[Path]:
    return [p for p in SRC.rglob("*.rs") if "patches" not in p.relative_to(SRC).parts]


_PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
_USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def rust_graph() -> dict[str, set[str]]:
    files = rust_files()
    modules = {rust_module(p): p for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}

    def resolve(base: str, segments: list[str]) -> str | None:
        # The deepest existing module on the path is what the path depends on.
        parts = [] if base == "crate" else base.split("::")
        best = None
        for seg in segments:
            parts.append(seg)
            name = "::".join(parts)
            if name in modules:
                best = name
        return best

    def parent_of(m: str) -> str:
        return m.rsplit("::", 1)[0] if "::" in m else "crate"

    for module, path in modules.items():
        text = _strip_comments(path.read_text())

        def add(root: str, rest: str) -> None:
            segments = [s for s in rest.split("::") if s]
            base = "crate" if root == "crate" else parent_of(module)
            while segments and segments[0] == "super":
                segments.pop(0)
                base = parent_of(base)
            found = resolve(base, segments)
            target = found or (base if base in modules else None)
            if target and target != module:
                graph[module].add(target)

        for root, prefix, group in _USE_GROUP.findall(text):
            for item in re.split(r"[,\s]+", re.sub(r"\{[^}]*\}", "", group)):
                if item and item != "self":
                    add(root, prefix + "::" + item)
            add(root, prefix)
        for root, rest in _PATH.findall(text):
            add(root, rest)
    graph.pop("crate", None)
    for deps in graph.values():
        deps.discard("crate")
    return graph


def python_modules() -> dict[str, Path]:
    out = {}
    for p in PKG_ROOT.rglob("*.py"):
        rel = p.relative_to(PKG_ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def python_graph() -> dict[str, set[str]]:
    modules = python_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(), str(path))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _type_checking_only(node):
                for inner in node.body:
                    for n in ast.walk(inner):
                        skip.add(id(n))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    targets.append(sub if sub in modules else mod)
            for t in targets:
                while t and t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_find_cycle_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_rust_graph_resolves_paths():
    graph = rust_graph()
    # Spot checks that the parser sees real edges (a parser that sees none would pass anything).
    assert "session" in graph["cursor"]
    assert "row" in graph["materialize"]
    assert "session" in graph["session::run"]
    assert "sql::classify" in graph["sql::fingerprint"]


def test_rust_modules_form_no_circle():
    cycle = find_cycle(rust_graph())
    assert cycle is None, "import circle in src/: " + " -> ".join(cycle or [])


def test_python_graph_resolves_imports():
    graph = python_graph()
    assert "django_rustpg.dbapi" in graph["django_rustpg.base"]


def test_python_modules_form_no_circle():
    cycle = find_cycle(python_graph())
    assert cycle is None, "import circle in django_backend/: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "path",
    sorted(
        str(p.relative_to(ROOT))
        for p in [*rust_files(), *PKG_ROOT.rglob("*.py"), *PKG_ROOT.rglob("*.pyi")]
    ),
)
def test_no_source_file_over_600_lines(path):
    if path in LONG_FILES_ALLOWED:
        pytest.skip("generated table or golden corpus")
    n = len((ROOT / path).read_text().splitlines())
    assert n <= MAX_LINES, f"{path} has {n} lines (> {MAX_LINES}): split it by concern"
