"""The shape the code keeps: packages talk through public names, and imports form no
circle.

* Nothing outside ``crypto/`` imports a ``crypto`` submodule: ``crypto``'s package
  namespace is its whole interface (what ``store`` needs, such as a stanza hint, is
  exported there).
* No module imports another package's private (``_underscore``) name.
* Following every import (also those inside functions), no module reaches itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("crypto", "store", "intake", "review")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import in the file."""
    package = _package(name, path)
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.extend((module, alias.name, node.lineno) for alias in node.names)
    return out


def test_only_crypto_imports_its_submodules():
    offences = []
    for name, path in _modules().items():
        if name.split(".")[0] == "crypto":
            continue
        for module, _imported, line in _imports(name, path):
            if module.startswith("crypto."):
                offences.append("%s:%d imports %s" % (path.relative_to(ROOT), line, module))
    assert offences == []


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def test_no_package_imports_a_private_name_of_another():
    modules = _modules()
    offences = []
    for name, path in modules.items():
        for module, imported, line in _imports(name, path):
            if imported is None or not imported.startswith("_") or imported.startswith("__"):
                continue
            if module not in modules or _package(module, modules[module]) == _package(name, path):
                continue
            offences.append(
                "%s:%d imports %s from %s" % (path.relative_to(ROOT), line, imported, module)
            )
    assert offences == []


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, imported, _line in _imports(name, path):
            target = "%s.%s" % (module, imported) if imported else module
            if target in modules:
                graph[name].add(target)
            elif module in modules:
                graph[name].add(module)
        graph[name].discard(name)
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, or None (depth-first search, colouring visited modules)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_imports_form_no_circle():
    graph = _graph()
    circle = _circle(graph)
    # A package importing its own submodules (review/__init__ registering its views) is
    # not a circle unless a submodule imports the package back; both count here.
    assert circle is None, " -> ".join(circle)


def test_the_circle_finder_finds_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None
