"""The package's layers (docs/architecture.md): each subpackage imports only from the ones
below it, so data flows one way and a newcomer can read the package from the bottom up."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "action" / "image_factory"
FOUNDATIONS = {"errors", "timestamps", "user_text"}
# Bottom to top; a package may import from any package before it in this list, never after.
LAYERS = ["speed", "enrolment", "edges", "state", "discovery", "trust", "kargo", "rebuilds", "output", "federation"]
LAYERS += ["cli"]


def imported_modules(package: Path, path: Path) -> set[str]:
    """Every image_factory module (dotted, below the package) that `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {
                alias.name.removeprefix("image_factory.")
                for alias in node.names
                if alias.name.startswith("image_factory.")
            }
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        assert not node.level, f"{path}: a relative import (the package imports itself by its full name)"
        if node.module and node.module.split(".")[0] == "image_factory":
            base = node.module.removeprefix("image_factory").lstrip(".")
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                folder = package / full.replace(".", "/")
                found.add(full if folder.with_suffix(".py").exists() or folder.is_dir() else base)
    return {module for module in found if module}


def against_layers(package: Path) -> list[str]:
    """Each import of a module in `package` that goes against LAYERS."""
    against = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package).with_suffix("").parts)
        mine = module.split(".")[0] if "." in module else None  # None: a foundation at the top
        for target in imported_modules(package, path):
            theirs = target.split(".")[0]
            if theirs in FOUNDATIONS or theirs == mine:
                continue
            if mine is None:
                allowed = module == "__main__" and theirs == "cli"
            else:
                allowed = theirs in LAYERS and LAYERS.index(theirs) < LAYERS.index(mine)
            if not allowed:
                against.append(f"{module} imports {target}")
    return against


def test_every_subpackage_imports_only_from_the_layers_below_it():
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS), "a new subpackage belongs in LAYERS and docs/architecture.md"
    assert {path.stem for path in PACKAGE.glob("*.py")} == FOUNDATIONS | {"__init__", "__main__"}
    assert against_layers(PACKAGE) == []


def test_an_import_against_the_layers_is_found(tmp_path):
    """The check above fails on what it must refuse (a check that cannot fail proves nothing)."""
    for folder in ("rebuilds", "output", "state"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "errors.py").write_text("from image_factory.state import store\n")
    (tmp_path / "state" / "store.py").write_text("from image_factory.errors import FactoryError\n")
    (tmp_path / "output" / "report.py").write_text("from image_factory.rebuilds.planner import plan\n")
    (tmp_path / "rebuilds" / "planner.py").write_text(
        "from image_factory.state.store import State\nfrom image_factory.output import report\n"
    )
    (tmp_path / "state" / "index.py").write_text("import image_factory.rebuilds.planner\n")
    assert against_layers(tmp_path) == [
        "errors imports state.store",
        "rebuilds.planner imports output.report",
        "state.index imports rebuilds.planner",
    ]


MAX_LINES = 450


def test_every_module_is_short_enough_to_hold():
    """A module does one job: none of the package's or the cdk8s app's is over MAX_LINES lines."""
    modules = [*PACKAGE.rglob("*.py"), *(REPO_ROOT / "cdk8s").glob("*.py")]
    long = {
        str(path.relative_to(REPO_ROOT)): n for path in modules if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
