"""Task-record schema of the `coding` family (Coding-v0).

Loading a pack checks what an episode and its grading rely on: file paths stay inside the workdir, every Python
source parses, a HumanEval-style record names an `entry_point` that its solution defines and hidden tests that
define `check`, and the unittest ids in `fail_to_pass`/`pass_to_pass` exist in the hidden tests.
"""

from __future__ import annotations

import ast
from pathlib import PurePosixPath
from typing import Any

from turngym.tasks.pack import Field, FieldError, TaskSchema

SOLUTION_FILE = "solution.py"  # the file HumanEval-style grading imports


def _check_paths(task: dict[str, Any], field: str) -> None:
    for path in task[field]:
        parts = PurePosixPath(path).parts
        if not path.strip() or path.startswith(("/", "\\")) or ".." in parts or "\\" in path:
            raise FieldError(field, f"path {path!r} must be relative to the workdir, without '..'")


def _parse(source: str, path: str, field: str) -> ast.Module:
    try:
        return ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        raise FieldError(
            field, f"{path}{f' line {line}' if line else ''} is not valid Python: {exc}"
        ) from None


def _defines(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _test_ids(trees: dict[str, ast.Module]) -> set[str]:
    """`package.module.Class.method` ids of the unittest methods in hidden test sources."""
    ids: set[str] = set()
    for path, tree in trees.items():
        module = path[:-3].replace("/", ".")
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith(
                        "test"
                    ):
                        ids.add(f"{module}.{node.name}.{item.name}")
    return ids


def check_task(task: dict[str, Any], context: Any = None) -> None:
    """Raise `FieldError` naming the field of `task` that an episode or its grading could not use."""
    for field in ("files", "solution", "hidden_tests"):
        _check_paths(task, field)
    after = {**task["files"], **task["solution"]}
    for field, sources in (("files", task["files"]), ("solution", task["solution"])):
        for path, code in sources.items():
            if path.endswith(".py"):
                _parse(code, path, field)
    if not task["hidden_tests"]:
        raise FieldError("hidden_tests", "a task needs hidden tests to be graded")
    if task["grader"] == "humaneval":
        if "entry_point" not in task:
            raise FieldError(
                "entry_point", "required when grader is 'humaneval': the function check() is given"
            )
        if SOLUTION_FILE not in after:
            raise FieldError(
                "solution", f"grader 'humaneval' imports {SOLUTION_FILE}, which no file provides"
            )
        tree = _parse(after[SOLUTION_FILE], SOLUTION_FILE, "solution")
        if task["entry_point"] not in _defines(tree):
            raise FieldError(
                "entry_point",
                f"{task['entry_point']!r} is not defined at the top level of the solution's {SOLUTION_FILE}",
            )
        test = "".join(task["hidden_tests"].values())
        if "check" not in _defines(_parse(test, "hidden tests", "hidden_tests")):
            raise FieldError(
                "hidden_tests", "grader 'humaneval' calls check(candidate), which the tests do not define"
            )
        return
    trees = {}
    for path, code in task["hidden_tests"].items():
        if not path.endswith(".py"):
            raise FieldError("hidden_tests", f"{path!r}: unittest sources must be .py files")
        trees[path] = _parse(code, path, "hidden_tests")
    ids = _test_ids(trees)
    for field in ("fail_to_pass", "pass_to_pass"):
        for tid in task.get(field, []):
            if tid not in ids:
                raise FieldError(
                    field, f"{tid!r} is not a test method of hidden_tests (they have {sorted(ids)[:8]})"
                )


CODING_SCHEMA = TaskSchema(
    "coding",
    {
        "kind": Field(
            str, choices=("function", "repo"), doc="function completion or repository repair", example="repo"
        ),
        "instruction": Field(
            str, doc="the task statement shown to the agent", example="Fix the bug in wraptext/wrap.py ..."
        ),
        "files": Field(
            dict,
            items=str,
            doc="the workdir at the start: {relative path: text}; visible tests go under tests/",
            example={"solution.py": "def f(x):\n    ..."},
        ),
        "solution": Field(
            dict,
            items=str,
            doc="reference files replacing those of `files` (canonical solution / fix): {path: text}",
            example={"solution.py": "def f(x):\n    return x"},
        ),
        "grader": Field(
            str,
            choices=("humaneval", "unittest"),
            doc="how the hidden tests run: `check(entry_point)` on solution.py, or unittest",
            example="unittest",
        ),
        "hidden_tests": Field(
            dict,
            items=str,
            doc="{file: code} of the tests submit() runs (humaneval: code defining check(candidate))",
            example={"tests/test_hidden.py": "import unittest\n..."},
        ),
        "entry_point": Field(
            str,
            required=False,
            doc="humaneval (required there): the function check() is given; defined in solution.py",
            example="has_close_elements",
        ),
        "fail_to_pass": Field(
            list,
            required=False,
            items=str,
            doc="unittest ids in hidden_tests that fail before the fix and pass after",
            example=["tests.test_wrap.TestWrap.test_split"],
        ),
        "pass_to_pass": Field(
            list,
            required=False,
            items=str,
            doc="unittest ids in hidden_tests that pass before and after",
            example=["tests.test_wrap.TestWrap.test_long_word"],
        ),
    },
    check=check_task,
    doc="paths are relative without `..`; Python files parse; humaneval: `entry_point` is given and defined in "
    "solution.py, and the hidden tests define `check`; unittest: hidden tests are .py files and every "
    "`fail_to_pass`/`pass_to_pass` id is a test method in them.",
)
