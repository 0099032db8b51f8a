"""The experiments sit on top of the library: no module of the core (envs, agents, trainers, sandboxes, tasks)
imports `turngym.experiments`, directly, by a relative import or through importlib."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ("envs", "agents", "trainers", "sandboxes", "tasks")
TARGET = "turngym.experiments"


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import in `tree`: `import a.b`, `from a import b` (as a.b), and the string given to
    `importlib.import_module` / `__import__`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = "." * node.level + (node.module or "")
            sep = "." if node.module else ""  # `from . import x` is `.x`, `from .a import x` is `.a.x`
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}{sep}{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def reaches_experiments(module: str, path: Path) -> bool:
    if module.startswith("."):  # relative: resolve against the file's folder inside the `turngym` package
        level = len(module) - len(module.lstrip("."))
        parts = ["turngym", *path.relative_to(ROOT).parent.parts]
        parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
        module = ".".join([*parts, module.lstrip(".")]).rstrip(".")
    return module == TARGET or module.startswith(TARGET + ".")


def test_no_core_module_imports_the_experiments() -> None:
    bad = []
    files = [p for folder in CORE for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 100  # the walk found the core's sources
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_names(tree):
            if reaches_experiments(module, path):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not bad, "the core must not import turngym.experiments:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "import turngym.experiments.demo",
        "from turngym.experiments import run_arms",
        "from turngym import experiments",
        "from .. import experiments",
        "import importlib\nimportlib.import_module('turngym.experiments.demo')",
    ],
)
def test_the_walk_sees_each_way_of_importing(source: str) -> None:
    names = [m for _, m in imported_names(ast.parse(source))]
    assert any(reaches_experiments(m, ROOT / "trainers" / "x.py") for m in names)


def test_a_relative_import_resolves_inside_the_package() -> None:
    # trainers/x.py: `from ..experiments import demo` is turngym.experiments.demo
    assert reaches_experiments("..experiments.demo", ROOT / "trainers" / "x.py")
    assert not reaches_experiments(".experiments", ROOT / "trainers" / "x.py")  # turngym.trainers.experiments
