"""The tree shows the architecture (docs/architecture.md): one package per subject, each
with an `__init__` docstring saying what it owns and what it may import, and imports
that only point down the layers. Read from the source with `ast`, lazy imports included.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
import tomllib

from conftest import REPO

PACKAGE = REPO / "dmdb"

# The layers, lowest first. A module may import its own package's modules and anything
# of a lower layer, never a layer of its own rank or above. A new package or root module
# must be placed here (and in docs/architecture.md) before the suite passes.
LAYERS = {
    "errors": 0,
    "config": 1, "files": 1, "resources": 1, "render": 1,
    "server": 2,
    "db": 3, "privacy": 3,
    "migrate": 4,
    "partitions": 5, "indexes": 5, "citus": 5,
    "maintenance": 6, "backup": 6, "events": 6,
    "monitor": 7, "learning": 7, "optimize": 7,
    "cli": 8,
    "__main__": 9,
}
# Not code: package data shipped beside the modules.
DATA = {"data"}


def _node(module: str) -> str:
    """`dmdb.migrate.engine` -> `migrate`; a root module is its own node."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """Every dmdb module `path` imports, at top level or inside a function
    (`from dmdb.monitor import history` imports dmdb.monitor.history)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "dmdb")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] != "dmdb":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules or base == "dmdb" else base)
    return found


def test_every_package_and_root_module_has_a_layer():
    nodes = {_node(m) for m in _modules()} - {"__init__"}
    assert nodes - DATA == set(LAYERS), "place new packages in LAYERS and the architecture doc"


def test_imports_only_point_down():
    wrong = []
    modules = _modules()
    for module, path in modules.items():
        source = _node(module)
        if source == "__init__":
            continue
        for target in _imports(path, module, modules):
            dest = _node(target)
            if dest in ("__init__", "__version__") or dest == source:
                continue  # `from dmdb import __version__`, or the same package
            if LAYERS[dest] >= LAYERS[source]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


@pytest.mark.parametrize("package", sorted(set(LAYERS) - {"errors", "config", "files",
                                                           "resources", "render", "db",
                                                           "__main__"}))
def test_a_package_says_what_it_owns_and_may_import(package):
    init = PACKAGE / package / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc, f"{init} has no docstring"
    if package != "cli":
        assert "May import" in doc, f"{init}'s docstring does not say what it may import"


def test_modules_inside_a_package_import_each_other_one_way():
    edges = defaultdict(set)
    modules = _modules()
    for module, path in modules.items():
        for target in _imports(path, module, modules):
            if target != module and _node(target) == _node(module) != "__init__":
                edges[module].add(target)

    def reaches(start: str, goal: str, seen: set) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and not seen.add(nxt)
                               and reaches(nxt, goal, seen)):
                return True
        return False

    assert sorted(m for m in edges if reaches(m, m, set())) == []


def test_the_wheel_lists_every_package():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= listed
