"""The benchmark scripts under benchmarks/ (not a package), loaded by path for the tests of their statistics."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(stem: str) -> ModuleType:
    """benchmarks/<stem>.py as a module named `<stem>_bench`."""
    spec = importlib.util.spec_from_file_location(f"{stem}_bench", ROOT / "benchmarks" / f"{stem}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
