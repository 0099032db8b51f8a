"""The web action grammar: one string per step, parsed into an `Action`, then executed on a Playwright page.

Grammar (Python call syntax, literal arguments only; ids are the `[N]` numbers of the text observation)::

    click(ID)              click an element                      fill(ID, "text")    set an input's value
    select(ID, "option")   choose an option of a <select>        hover(ID)           move the mouse over an element
    press("Key")           a key on the focused element (Playwright key names: "Enter", "Tab", "Control+A")
    type("text")           type text into the focused element    scroll(DX, DY)      scroll by pixels
    click_xy(X, Y)         click at viewport pixel coordinates   go_back()           browser history back
    goto("url")            navigate (allowed origins only)       noop() / noop(MS)   wait (at most 2000 ms)
    drag(ID, ID)           drag an element onto another one (mouse down at the first's centre, up at the second's)
    drag_xy(X1, Y1, X2, Y2)  press the mouse at (X1, Y1), move to (X2, Y2) and release (viewport pixels)

Parsing is pure Python (`ast`), so a malformed action is reported before the browser is touched; execution errors
(an id that does not exist, an element that cannot be clicked) come back as an error string, never an exception.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from turngym.envs.actiontext import check_strings, literal, parse_expr, source

# what every action looks like before it is parsed: a name, then parentheses (cheap to check on any input)
_CALL_SHAPE = re.compile(r"[A-Za-z_]\w*\s*\(.*\)\Z", re.DOTALL)
# name -> argument kinds: "id" (element id), "str", "num" (int/float), "int"
SIGNATURES: dict[str, tuple[str, ...]] = {
    "click": ("id",),
    "fill": ("id", "str"),
    "select": ("id", "str"),
    "hover": ("id",),
    "press": ("str",),
    "type": ("str",),
    "scroll": ("num", "num"),
    "click_xy": ("num", "num"),
    "drag": ("id", "id"),
    "drag_xy": ("num", "num", "num", "num"),
    "go_back": (),
    "goto": ("str",),
    "noop": (),
}
OPTIONAL_ARGS: dict[str, tuple[str, ...]] = {"noop": ("num",)}
MAX_WAIT_MS = 2000
ACTION_HELP = (
    'Actions (one per turn, Python call syntax): click(ID), fill(ID, "text"), select(ID, "option"), '
    'hover(ID), press("Key"), type("text"), scroll(DX, DY), click_xy(X, Y), drag(ID, ID), drag_xy(X1, Y1, X2, Y2), '
    'go_back(), goto("url"), noop(). '
    "ID is the number in [brackets] before an element."
)


class ActionError(ValueError):
    """A malformed action or one that could not be applied; the message says why."""


@dataclass(frozen=True)
class Action:
    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"


def _arg(kind: str, node: ast.expr, name: str, pos: int) -> Any:
    try:
        value = literal(node)
    except ValueError:
        raise ActionError(f"{name}(): argument {pos + 1} must be a literal, got {source(node)}") from None
    if kind == "id":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ActionError(
                f"{name}(): argument {pos + 1} must be an element id (a number like 12), got {value!r:.60}"
            )
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ActionError(f"{name}(): argument {pos + 1} must be a quoted string, got {value!r:.60}")
        try:
            check_strings(value, f"{name}(): argument {pos + 1}")
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ActionError(f"{name}(): argument {pos + 1} must be a number, got {value!r:.60}")
    if value != value or abs(value) > 1e6:
        raise ActionError(f"{name}(): argument {pos + 1} is out of range: {value!r}")
    return value


def parse_action(text: str) -> Action:
    """Parse one action string; raises `ActionError` naming what is wrong (also for non-str input)."""
    if not isinstance(text, str):
        raise ActionError(f"an action must be a str, got {type(text).__name__}")
    src = text.strip()
    if src.startswith("`") and src.endswith("`"):
        src = src.strip("`").strip()
    if not src:
        raise ActionError(f"empty action. {ACTION_HELP}")
    if not _CALL_SHAPE.match(src):
        raise ActionError(f"malformed action {src!r:.80}: not a call like click(12). {ACTION_HELP}")
    try:
        call = parse_expr(src)
    except ValueError as exc:
        raise ActionError(
            f"malformed action {src!r:.80}: not a call like click(12) ({exc}). {ACTION_HELP}"
        ) from None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ActionError(f"malformed action {src!r:.80}: not a call like click(12). {ACTION_HELP}")
    name = call.func.id
    if name not in SIGNATURES:
        raise ActionError(f"unknown action {name!r}; known actions: {', '.join(SIGNATURES)}")
    if call.keywords:
        raise ActionError(f"{name}(): keyword arguments are not accepted; write {name}{_sig(name)}")
    kinds = SIGNATURES[name]
    allowed = (kinds, kinds + OPTIONAL_ARGS.get(name, ()))
    if len(call.args) not in {len(k) for k in allowed}:
        raise ActionError(
            f"{name}() takes {len(kinds)} argument(s), got {len(call.args)}; write {name}{_sig(name)}"
        )
    full = allowed[1]
    return Action(name, tuple(_arg(full[i], a, name, i) for i, a in enumerate(call.args)))


def _sig(name: str) -> str:
    words = {"id": "ID", "str": '"text"', "num": "N"}
    return "(" + ", ".join(words[k] for k in SIGNATURES[name]) + ")"


def _split(url: str) -> Any:
    try:
        return urlsplit(url)
    except ValueError as exc:  # e.g. "http://[" (an unclosed IPv6 host)
        raise ActionError(f"goto(): {url!r:.80} is not a valid URL ({exc})") from None


def origin(url: str) -> str:
    """scheme://host[:port] of `url`, lower-cased; raises `ActionError` for a URL that cannot be split."""
    parts = _split(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_url(url: str, allowed_origins: list[str]) -> None:
    parts = _split(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ActionError(f"goto(): {url!r:.80} is not an absolute http(s) URL")
    if origin(url) not in {o.rstrip("/").lower() for o in allowed_origins}:
        raise ActionError(
            f"goto(): origin {origin(url)!r} is not allowed; allowed origins: {allowed_origins}"
        )


_REASONS = (
    "intercepts pointer events",
    "outside of the viewport",
    "not visible",
    "not enabled",
    "not editable",
    "not stable",
    "not attached",
    "detached",
    "did not find some options",
    "not a <select>",
    "not an <input>",
)


def explain(exc: BaseException) -> str:
    """Playwright's first error line plus the reason from its call log (e.g. "<div> intercepts pointer events",
    "element is outside of the viewport"). Only reasons are kept, not the timing lines (waits, retries), so the same
    state gives the same message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    reasons = [ln.lstrip("- ").strip() for ln in lines[1:] if any(r in ln for r in _REASONS)]
    return f"{lines[0]} ({reasons[-1]})" if reasons else lines[0]


def navigation_pending(exc: BaseException) -> bool:
    """Playwright timed out after the action itself was done, while it waited for a navigation the action started
    (a submit to a server slower than the action's timeout): the action happened and the page is on its way, which
    is not the agent's error."""
    text = str(exc)
    return (
        "timeout" in text.split("\n", 1)[0].lower() and "waiting for scheduled navigations to finish" in text
    )


def element_selector(eid: int) -> str:
    return f'[data-tg-id="{int(eid)}"]'


DRAG_STEPS = (
    12  # intermediate mouse moves: drag libraries (jQuery UI, HTML5 sortables) need moves, not a jump
)


def _in_viewport(page: Any, name: str, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    vp = page.viewport_size or {"width": 10**6, "height": 10**6}
    for x, y in points:
        if not (0 <= x < vp["width"] and 0 <= y < vp["height"]):
            raise ActionError(
                f"{name}(): ({x:g}, {y:g}) is outside the {vp['width']}x{vp['height']} viewport"
            )
    return points


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    try:
        page.mouse.move(*end, steps=DRAG_STEPS)
    finally:
        page.mouse.up()


def execute(page: Any, action: Action, allowed_origins: list[str], timeout_ms: float = 1500) -> None:
    """Apply `action` to a Playwright page. Raises `ActionError` for problems the agent caused (unknown id, an
    element that is not an input, a disallowed origin); Playwright errors (timeouts, closed browser, a navigation
    still pending after the action was done: `navigation_pending`) propagate."""
    from playwright.sync_api import Error as PlaywrightError

    name, args = action.name, action.args
    if name in ("click", "fill", "select", "hover"):
        loc = page.locator(element_selector(args[0]))
        if loc.count() == 0:
            raise ActionError(f"{name}(): there is no element with id {args[0]} on the page")
        loc = loc.first
        try:
            if name == "click":
                loc.click(timeout=timeout_ms)
            elif name == "hover":
                loc.hover(timeout=timeout_ms)
            elif name == "fill":
                loc.fill(args[1], timeout=timeout_ms)
            else:
                loc.select_option(label=args[1], timeout=timeout_ms)
        except PlaywrightError as exc:
            if "closed" in str(exc).split("\n", 1)[0].lower() or navigation_pending(exc):
                raise
            raise ActionError(f"{action} failed: {explain(exc)}") from None
    elif name == "press":
        try:
            page.keyboard.press(args[0])
        except PlaywrightError as exc:
            msg = str(exc).split("\n", 1)[0]
            if "closed" in msg.lower() or navigation_pending(exc):
                raise
            raise ActionError(f"press(): {msg}") from None
    elif name == "type":
        page.keyboard.type(args[0])
    elif name == "scroll":
        page.mouse.wheel(float(args[0]), float(args[1]))
    elif name == "click_xy":
        ((x, y),) = _in_viewport(page, name, [(float(args[0]), float(args[1]))])
        page.mouse.click(x, y)
    elif name == "drag":
        ends = []
        for eid in args:
            loc = page.locator(element_selector(eid))
            box = loc.first.bounding_box() if loc.count() else None
            if box is None:
                raise ActionError(f"drag(): there is no visible element with id {eid} on the page")
            ends.append((box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
        _drag(page, *_in_viewport(page, name, ends))
    elif name == "drag_xy":
        _drag(
            page,
            *_in_viewport(page, name, [(float(args[0]), float(args[1])), (float(args[2]), float(args[3]))]),
        )
    elif name == "go_back":
        page.go_back(timeout=5000)
    elif name == "goto":
        check_url(args[0], allowed_origins)
        page.goto(args[0], timeout=10000)
    elif name == "noop":
        wait = float(args[0]) if args else 0.0
        if not 0 <= wait <= MAX_WAIT_MS:
            raise ActionError(f"noop(): the wait must be between 0 and {MAX_WAIT_MS} ms, got {wait:g}")
        if wait:
            page.wait_for_timeout(wait)
