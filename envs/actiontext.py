"""Checks and parsing shared by the action parsers of every env family.

An action is text that goes on to an engine (a browser, a sandboxed process, TextWorld, an HTTP server). Text that no
engine can take is refused here with a message saying what and where: lone surrogates (not encodable as UTF-8) and
NUL characters (they cut C strings and cannot be passed as process arguments). `parse_expr`, `literal` and `loads_json`
wrap `ast` and `json` so that any input, however deep or long, ends in a `ValueError` with a clear message instead of
a `RecursionError`, `MemoryError` or `UnicodeEncodeError` from inside the parser.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def bad_char(text: str, allow_nul: bool = False) -> str | None:
    """What makes `text` unusable as engine input (a lone surrogate or a NUL character, with its position), or None."""
    m = _SURROGATE.search(text)
    if m:
        return f"a lone surrogate U+{ord(m.group()):04X} at position {m.start()} (not valid Unicode text)"
    if not allow_nul:
        pos = text.find("\x00")
        if pos >= 0:
            return f"a NUL character at position {pos}"
    return None


def parse_expr(src: str) -> ast.expr:
    """`src` parsed as one Python expression (never evaluated); raises `ValueError` saying why it is not one."""
    why = bad_char(src)
    if why:
        raise ValueError(f"it contains {why}")
    try:
        return ast.parse(src, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"{exc.msg} (column {exc.offset})") from None
    except (RecursionError, MemoryError):  # CPython's parser reports deep nesting with either
        raise ValueError("it is nested too deeply to parse") from None
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def literal(node: ast.expr) -> Any:
    """The value of a literal expression node; raises `ValueError` when it is not a literal."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{source(node)} is not a literal") from None


def source(node: ast.AST, limit: int = 60) -> str:
    """The node's source text, quoted and cut to `limit` characters (a placeholder when it is too deep to print)."""
    try:
        text = ast.unparse(node)
    except (RecursionError, MemoryError, ValueError):
        return f"<a {type(node).__name__} nested too deeply to show>"
    return f"{text[:limit]!r}" + ("..." if len(text) > limit else "")


def loads_json(text: str) -> Any:
    """`json.loads(text)`; raises `json.JSONDecodeError` for bad JSON and `ValueError` for JSON nested too deeply."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to decode") from None


def check_strings(value: Any, what: str, allow_nul: bool = False) -> None:
    """Raise `ValueError` naming `what` when the string `value` holds a lone surrogate (or a NUL, unless allowed)."""
    if isinstance(value, str):
        why = bad_char(value, allow_nul=allow_nul)
        if why:
            raise ValueError(f"{what} contains {why}")
