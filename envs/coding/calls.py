"""Parse one tool call from an agent's action text (the format the agents' parser emits; see docs/coding.md).

Accepted, in this order:
  1. `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes/Qwen style). Text around the tag (e.g. the
     model's reasoning) is ignored; more than one tag is an error (one tool call per action).
  2. A bare JSON object `{"name": ..., "arguments": {...}}` (OpenAI function-call style; `arguments` may also be a
     JSON-encoded string, as the OpenAI API returns it). A ```json fence around it is allowed.
  3. The short Python-call form `python("print(1)")`, `read_file(path="a.py")`, `submit()`: one call expression whose
     arguments are all literals (strings, numbers, ...), parsed with `ast` — never evaluated.
Anything else raises `CallError` with a message saying what was wrong; the env turns it into an invalid action.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from turngym.envs.actiontext import bad_char, literal, loads_json, parse_expr

# tool name -> ordered (argument name, required)
TOOLS: dict[str, tuple[tuple[str, bool], ...]] = {
    "python": (("code", True),),
    "bash": (("cmd", True),),
    "read_file": (("path", True),),
    "write_file": (("path", True), ("content", True)),
    "run_tests": (),
    "submit": (),
}
OPEN, CLOSE = "<tool_call>", "</tool_call>"
FENCE_HEAD = re.compile(r"```(?:json)?[ \t]*\n?")
NUL_ALLOWED = {"content"}  # file contents may hold NUL bytes; code, commands and paths cannot


# the short form's shape, checked before parsing: a name, then parentheses
_CALL_SHAPE = re.compile(r"[A-Za-z_]\w*\s*\(.*\)\Z", re.DOTALL)


class CallError(ValueError):
    """The action is not a well-formed tool call; the message says why."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, str]


def _check(name: Any, args: Any) -> ToolCall:
    if not isinstance(name, str) or name not in TOOLS:
        raise CallError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    if args is None:
        args = {}
    if isinstance(args, str):
        try:
            args = loads_json(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise CallError(f"'arguments' of {name} is a string but not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise CallError(f"'arguments' of {name}: {exc}") from None
    if not isinstance(args, dict):
        raise CallError(f"'arguments' of {name} must be an object, got {type(args).__name__}")
    spec = dict(TOOLS[name])
    extra = set(args) - set(spec)
    if extra:
        raise CallError(f"{name} got unknown argument(s) {sorted(extra)}; it takes {list(spec) or 'none'}")
    for arg, required in spec.items():
        if required and arg not in args:
            raise CallError(f"{name} needs the argument {arg!r} (it takes {list(spec)})")
        if arg in args and not isinstance(args[arg], str):
            raise CallError(f"argument {arg!r} of {name} must be a string, got {type(args[arg]).__name__}")
        why = bad_char(args[arg], allow_nul=arg in NUL_ALLOWED) if arg in args else None
        if why:
            raise CallError(f"argument {arg!r} of {name} contains {why}")
    return ToolCall(name, dict(args))


def _from_json(text: str) -> ToolCall:
    try:
        obj = loads_json(text)
    except json.JSONDecodeError as exc:
        raise CallError(
            f"the tool call is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise CallError(f"the tool call cannot be read: {exc}") from None
    if not isinstance(obj, dict):
        raise CallError(f"a tool call must be a JSON object, got {type(obj).__name__}")
    if "function" in obj and isinstance(obj["function"], dict):  # {"type": "function", "function": {...}}
        obj = obj["function"]
    if "name" not in obj:
        raise CallError(
            'a tool call needs a "name" (and "arguments"), e.g. {"name": "python", "arguments": {"code": "print(1)"}}'
        )
    return _check(obj["name"], obj.get("arguments", obj.get("parameters")))


def _from_python(text: str) -> ToolCall:
    text = text.strip()
    if not _CALL_SHAPE.match(text):
        raise CallError('not a tool call; write one JSON object or one call like python(code="...")')
    try:
        call = parse_expr(text)
    except ValueError as exc:
        raise CallError(f"not a tool call: {exc}; write one JSON object or name(args)") from None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise CallError('not a tool call; write one JSON object or one call like python(code="...")')
    name = call.func.id
    if name not in TOOLS:
        raise CallError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    spec = [a for a, _ in TOOLS[name]]
    if len(call.args) > len(spec):
        raise CallError(f"{name} takes {len(spec)} argument(s) ({spec}), got {len(call.args)}")
    args: dict[str, Any] = {}
    try:
        for pos, node in enumerate(call.args):
            args[spec[pos]] = literal(node)
        for kw in call.keywords:
            if kw.arg is None:
                raise CallError(f"{name}: **kwargs are not allowed in a tool call")
            if kw.arg in args:
                raise CallError(f"{name}: argument {kw.arg!r} given twice")
            args[kw.arg] = literal(kw.value)
    except ValueError:
        raise CallError(f"{name}: arguments must be literal strings (no variables or expressions)") from None
    return _check(name, args)


def parse_call(action: str) -> ToolCall:
    """The one tool call in `action`; raises CallError naming what was wrong."""
    if not isinstance(action, str):
        raise CallError(f"an action must be a string, got {type(action).__name__}")
    why = bad_char(action)
    if why:
        raise CallError(f"not a tool call: the action contains {why}")
    tags = _tags(action)
    if len(tags) > 1:
        raise CallError(f"found {len(tags)} <tool_call> blocks; make one tool call per action")
    if tags:
        return _from_json(tags[0].strip())
    if OPEN in action:
        raise CallError("<tool_call> is not closed with </tool_call>")
    text = action.strip()
    if not text:
        raise CallError('empty action; make one tool call, e.g. {"name": "submit", "arguments": {}}')
    text = _unfence(text)
    if text.startswith("{"):
        return _from_json(text)
    return _from_python(text)


def _tags(action: str) -> list[str]:
    """The bodies of the `<tool_call>...</tool_call>` blocks, in one left-to-right pass (linear in the length)."""
    bodies, pos = [], 0
    while True:
        start = action.find(OPEN, pos)
        if start < 0:
            return bodies
        end = action.find(CLOSE, start + len(OPEN))
        if end < 0:
            return bodies
        bodies.append(action[start + len(OPEN) : end])
        pos = end + len(CLOSE)


def _unfence(text: str) -> str:
    """The inside of a ```json ... ``` fence around the whole text, or the text itself."""
    if len(text) >= 6 and text.endswith("```"):
        head = FENCE_HEAD.match(text)
        if head and head.end() <= len(text) - 3:
            return text[head.end() : -3].strip()
    return text


def format_call(name: str, **arguments: str) -> str:
    """The canonical action text of a call (what experts emit): a `<tool_call>` with a JSON object."""
    _check(name, arguments)
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"
