"""Scripted experts for MiniWoB++ tasks: `EXPERTS[task](view) -> action string` in the env's grammar.

Each expert reads the utterance and the current page (the same element list the agent sees, plus the page itself for
hidden state) and returns the next action; most are stateless (they look at what is already done), so they recover
from an agent's earlier moves. Success rates per task are measured by `benchmarks/web_experts.py` and recorded in
`tasks/miniwob/` records (`expert_success`) and docs/web.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turngym.envs.web.observe import PageState


@dataclass
class ExpertView:
    utterance: str
    state: PageState
    page: Any  # the Playwright page (for state the observation does not show)
    memory: dict[str, Any] = field(default_factory=dict)  # per-episode scratch space

    @property
    def els(self) -> list[dict[str, Any]]:
        return self.state.elements

    def find(self, tag: str | None = None, text: str | None = None, **attrs: Any) -> list[dict[str, Any]]:
        out = []
        for e in self.els:
            if tag is not None and e["tag"] != tag:
                continue
            if text is not None and e.get("text", "") != text:
                continue
            if any(e.get(k) != v for k, v in attrs.items()):
                continue
            out.append(e)
        return out

    def one(self, tag: str | None = None, text: str | None = None, **attrs: Any) -> dict[str, Any]:
        hits = self.find(tag, text, **attrs)
        if not hits:
            raise LookupError(f"expert: no element tag={tag} text={text!r} {attrs} on the page")
        return hits[0]

    def quoted(self) -> list[str]:
        return re.findall(r'"([^"]*)"', self.utterance)

    def inputs(self, type_: str = "text") -> list[dict[str, Any]]:
        return [e for e in self.els if e["tag"] == "input" and e.get("type") == type_]


def q(text: str) -> str:
    """A string literal for the action grammar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _submit(v: ExpertView, text: str = "Submit") -> str:
    for e in v.find("button"):
        if e.get("text", "").lower() == text.lower():
            return f"click({e['id']})"
    return f"click({v.one('button')['id']})"


def click_test(v: ExpertView) -> str:
    return f"click({v.one('button')['id']})"


def click_button_text(v: ExpertView) -> str:  # click-button, click-test-2, unicode-test, click-dialog-2
    m = re.search(r'"(.*)"', v.utterance) or re.search(r"button (\w+)", v.utterance)
    assert m, v.utterance
    if m.group(1) == "x":  # a dialog's close icon
        return click_dialog(v)
    for e in v.els:
        if e["tag"] == "button" and e.get("text") == m.group(1):
            return f"click({e['id']})"
    raise LookupError(f"no button {m.group(1)!r}")


def click_test_2(v: ExpertView) -> str:
    m = re.search(r"Click button (\w+)\.", v.utterance)
    assert m, v.utterance
    return f"click({v.one('button', m.group(1))['id']})"


def click_link(v: ExpertView) -> str:
    return (
        f"click({v.one('span', v.quoted()[-1])['id']})"
        if not v.find("a", v.quoted()[-1])
        else (f"click({v.one('a', v.quoted()[-1])['id']})")
    )


def _fill_then_submit(v: ExpertView, boxes: list[dict[str, Any]], want: str) -> str:
    """Fill the first of `boxes` that does not hold `want` yet (one per step); once all do, submit."""
    for box in boxes:
        if box.get("value") != want:
            return f"fill({box['id']}, {q(want)})"
    return _submit(v)


def enter_text(v: ExpertView) -> str:  # enter-text, enter-text-dynamic
    return _fill_then_submit(v, [v.inputs()[0]], v.quoted()[0])


def enter_text_2(v: ExpertView) -> str:
    want = v.quoted()[0]
    want = want.lower() if "lower case" in v.utterance else want.upper()
    return _fill_then_submit(v, [v.inputs()[0]], want)


def enter_password(v: ExpertView) -> str:
    return _fill_then_submit(v, v.inputs("password"), v.quoted()[0])


def login_user(v: ExpertView) -> str:
    user, password = v.quoted()[:2]
    for domid, want in (("username", user), ("password", password)):
        box = v.one("input", domid=domid)
        if box.get("value") != want:
            return f"fill({box['id']}, {q(want)})"
    return _submit(v, "Login")


def focus_text(v: ExpertView) -> str:
    return f"click({v.inputs()[0]['id']})"


def focus_text_2(v: ExpertView) -> str:
    pos = {"1st": 0, "2nd": 1, "3rd": 2}[re.search(r"the (\w+) input", v.utterance).group(1)]
    return f"click({v.inputs()[pos]['id']})"


def _label_checkbox(v: ExpertView) -> list[tuple[str, dict[str, Any]]]:
    """(label text, its input) pairs for checkboxes/radios written as <label><input>TEXT</label>."""
    out = []
    for e in v.els:
        if e["tag"] == "label":
            kids = [x for x in v.els if x["tag"] == "input" and x["depth"] == e["depth"] + 1]
            mine = [x for x in kids if x["id"] > e["id"]]
            if mine:
                out.append((e.get("text", ""), min(mine, key=lambda x: x["id"])))
    return out


def click_checkboxes(v: ExpertView) -> str:  # click-checkboxes, -large, -transfer
    m = re.search(r"Select (.*) and click Submit", v.utterance)
    assert m, v.utterance
    wanted = set() if m.group(1) == "nothing" else {w.strip() for w in m.group(1).split(",")}
    for text, box in _label_checkbox(v):
        if (text in wanted) != bool(box.get("checked")):
            return f"click({box['id']})"
    return _submit(v)


def click_option(v: ExpertView) -> str:
    m = re.search(r"Select (.*) and click Submit", v.utterance)
    assert m, v.utterance
    for text, box in _label_checkbox(v):
        if text == m.group(1):
            if not box.get("checked"):
                return f"click({box['id']})"
            return _submit(v)
    raise LookupError(f"no option {m.group(1)!r}")


def choose_list(v: ExpertView) -> str:
    m = re.search(r"Select (.*) from the list and click Submit", v.utterance)
    assert m, v.utterance
    sel = v.one("select")
    if sel.get("value") != m.group(1):
        return f"select({sel['id']}, {q(m.group(1))})"
    return _submit(v)


def click_dialog(v: ExpertView) -> str:
    for e in v.els:
        if e["tag"] == "button" and (e.get("label") == "Close" or "close" in e.get("cls", "")):
            return f"click({e['id']})"
    raise LookupError("no dialog close button")


def click_tab(v: ExpertView) -> str:
    n = re.search(r"Tab #(\d)", v.utterance).group(1)
    return f"click({v.one('a', f'Tab #{n}')['id']})"


def click_widget(v: ExpertView) -> str:
    kind = v.quoted()[0]
    for e in v.els:
        if kind == "button" and e["tag"] == "button":
            return f"click({e['id']})"
        if kind == "textarea" and e["tag"] == "textarea":
            return f"click({e['id']})"
        if e["tag"] == "input" and e.get("type") == kind:
            return f"click({e['id']})"
        if kind == "text" and e["tag"] == "input" and e.get("type") == "text":
            return f"click({e['id']})"
    raise LookupError(f"no {kind} widget")


def click_button_sequence(v: ExpertView) -> str:
    one, two = v.one("button", "ONE"), v.one("button", "TWO")
    done = v.memory.get("clicked", 0)
    v.memory["clicked"] = done + 1
    return f"click({(one if done == 0 else two)['id']})"


def click_collapsible(v: ExpertView) -> str:
    header = next(e for e in v.els if e.get("expanded") is not None)
    if not header["expanded"]:
        return f"click({header['id']})"
    return _submit(v)


def use_autocomplete(v: ExpertView) -> str:
    parts = v.quoted()
    start, end = parts[0], parts[1] if len(parts) > 1 else ""
    box = v.inputs()[0]
    val = box.get("value", "")
    if (
        val
        and val.lower().startswith(start.lower())
        and val.lower().endswith(end.lower())
        and len(val) > len(start)
    ):
        return _submit(v)
    items = [
        e
        for e in v.els
        if e["tag"] in ("li", "div") and "ui-menu-item" in e.get("cls", "") + " " + e.get("role", "")
    ]
    for e in items:
        t = e.get("text", "")
        if t.lower().startswith(start.lower()) and t.lower().endswith(end.lower()):
            return f"click({e['id']})"
    if val != start:
        if v.state.focused is None or v.state.focused["id"] != box["id"]:
            return f"click({box['id']})"
        return (
            f"type({q(start[len(val) :] if start.startswith(val) else start)})"
            if not val
            else 'press("Control+A")'
        )
    return "noop(300)"


def simple_arithmetic(v: ExpertView) -> str:
    expr = next(e["text"] for e in v.els if re.fullmatch(r"-?\d+ [-+x*] -?\d+ =", e.get("text", "")))
    a, op, b, _ = expr.split()
    val = {"+": int(a) + int(b), "-": int(a) - int(b), "x": int(a) * int(b), "*": int(a) * int(b)}[op]
    box = v.inputs()[0]
    if box.get("value") != str(val):
        return f"fill({box['id']}, {q(str(val))})"
    return _submit(v)


def _centre(e: dict[str, Any]) -> tuple[float, float]:
    return e["x"] + e["w"] / 2, e["y"] + e["h"] / 2


def drag_box(v: ExpertView) -> str:
    small, large = v.one("div", "s"), v.one("div", "L")
    inside = large["x"] < small["x"] and small["x"] + small["w"] < large["x"] + large["w"]
    inside = inside and large["y"] < small["y"] and small["y"] + small["h"] < large["y"] + large["h"]
    return _submit(v) if inside else f"drag({small['id']}, {large['id']})"


def _list_items(v: ExpertView) -> list[dict[str, Any]]:
    """The <div>s of a jQuery UI sortable list (drag-items, drag-sort-numbers), top to bottom."""
    return sorted((e for e in v.find("div") if e.get("text")), key=lambda e: e["y"])


ORDINAL = {"top": 1, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}


def drag_items(v: ExpertView) -> str:
    """ "Drag NAME to the top. / to the bottom. / down by one position. / up by one position. / to the 3rd position."."""
    name, where = re.match(
        r"Drag (.+?) (to the .+|down by one position|up by one position)\.$", v.utterance
    ).groups()
    items = _list_items(v)
    names = [e["text"] for e in items]
    ix = names.index(name)
    if where == "down by one position":
        target = ix + 1
    elif where == "up by one position":
        target = ix - 1
    elif where == "to the bottom":
        target = len(items) - 1
    else:
        target = ORDINAL[re.match(r"to the (\w+)", where).group(1)] - 1
    return _sortable_move(items[ix], items[target])


def _sortable_move(item: dict[str, Any], onto: dict[str, Any]) -> str:
    """Drag a sortable item onto another's place. jQuery UI moves the placeholder once the pointer crosses the half
    of the item it passes in the direction of motion, so a downward move aims below the target's middle."""
    if onto["y"] < item["y"]:
        return f"drag({item['id']}, {onto['id']})"
    x, y = _centre(item)
    tx, ty = _centre(onto)
    return f"drag_xy({x:.0f}, {y:.0f}, {tx:.0f}, {ty + onto['h'] * 0.4:.0f})"


def drag_sort_numbers(v: ExpertView) -> str:
    items = _list_items(v)
    values = [int(e["text"]) for e in items]
    goal = sorted(values)
    for i, want in enumerate(goal):
        if values[i] != want:
            j = next(k for k in range(i + 1, len(values)) if values[k] == want)
            return _sortable_move(items[j], items[i])
    return _submit(v)


DRAG_BY = 15  # pixels; the shapes start at least 20 px inside their 160x160 area


def drag_shape_direction(v: ExpertView) -> str:
    """drag-circle, drag-single-shape: "Drag the circle/item DIRECTION then press Submit."."""
    if v.memory.get("dragged"):
        return _submit(v)
    direction = re.search(r"Drag the \w+ (left|right|up|down) ", v.utterance).group(1)
    shape = next(e for e in v.els if e["tag"] in ("circle", "rect", "polygon"))
    x, y = _centre(shape)
    dx, dy = {"left": (-DRAG_BY, 0), "right": (DRAG_BY, 0), "up": (0, -DRAG_BY), "down": (0, DRAG_BY)}[
        direction
    ]
    v.memory["dragged"] = True
    return f"drag_xy({x:.0f}, {y:.0f}, {x + dx:.0f}, {y + dy:.0f})"


EXPERTS: dict[str, Callable[[ExpertView], str]] = {
    "click-test": click_test,
    "click-test-2": click_test_2,
    "click-button": click_button_text,
    "click-dialog-2": click_button_text,
    "unicode-test": click_button_text,
    "click-link": click_link,
    "enter-text": enter_text,
    "enter-text-dynamic": enter_text,
    "enter-text-2": enter_text_2,
    "enter-password": enter_password,
    "login-user": login_user,
    "focus-text": focus_text,
    "focus-text-2": focus_text_2,
    "click-checkboxes": click_checkboxes,
    "click-checkboxes-large": click_checkboxes,
    "click-checkboxes-transfer": click_checkboxes,
    "click-option": click_option,
    "choose-list": choose_list,
    "click-dialog": click_dialog,
    "click-tab": click_tab,
    "click-widget": click_widget,
    "click-button-sequence": click_button_sequence,
    "click-collapsible-nodelay": click_collapsible,
    "use-autocomplete-nodelay": use_autocomplete,
    "use-autocomplete": use_autocomplete,
    "simple-arithmetic": simple_arithmetic,
    "drag-box": drag_box,
    "drag-items": drag_items,
    "drag-sort-numbers": drag_sort_numbers,
    "drag-circle": drag_shape_direction,
    "drag-single-shape": drag_shape_direction,
}


EMAIL_JS = """
(name) => {
  const id = (el) => el && el.getAttribute("data-tg-id") ? +el.getAttribute("data-tg-id") : null;
  const vis = (sel) => { const el = document.querySelector(sel); return el && el.offsetParent !== null ? el : null; };
  const thread = [...document.querySelectorAll("#main .email-thread")]
    .find((t) => t.querySelector(".email-sender").textContent.trim() === name);
  return {
    replyText: id(vis("#reply-text")), replyValue: vis("#reply-text") ? vis("#reply-text").value : null,
    sendReply: id(vis("#send-reply")),
    forwardTo: id(vis(".forward-sender")), forwardValue: vis(".forward-sender") ? vis(".forward-sender").value : null,
    sendForward: id(vis("#send-forward")),
    replyButton: id(vis("#email .email-reply")), forwardButton: id(vis("#email .email-forward")),
    thread: thread && thread.offsetParent !== null ? id(thread.querySelector(".email-sender")) : null,
    trash: thread ? id(thread.querySelector(".trash")) : null,
    star: thread ? id(thread.querySelector(".star")) : null,
  };
}
"""


def email_inbox(v: ExpertView) -> str:
    """email-inbox (and -noscroll, -delete, -important, -reply, -forward, -star-reply): the four actions."""
    name = re.search(r"email by (.+?) and ", v.utterance).group(1)
    s = v.page.evaluate(EMAIL_JS, name)
    if "reply to them with the text" in v.utterance:
        text = v.quoted()[-1]
        if s["replyText"] is not None:
            if s["replyValue"] != text:
                return f"fill({s['replyText']}, {q(text)})"
            return f"click({s['sendReply']})"
        if s["replyButton"] is not None:
            return f"click({s['replyButton']})"
        return f"click({s['thread']})"
    if "forward that email to" in v.utterance:
        to = re.search(r"forward that email to (.+?)\.$", v.utterance).group(1)
        if s["forwardTo"] is not None:
            if s["forwardValue"] != to:
                return f"fill({s['forwardTo']}, {q(to)})"
            return f"click({s['sendForward']})"
        if s["forwardButton"] is not None:
            return f"click({s['forwardButton']})"
        return f"click({s['thread']})"
    if "trash icon" in v.utterance:
        return f"click({s['trash']})"
    return f"click({s['star']})"


EXPERTS.update(
    {
        t: email_inbox
        for t in (
            "email-inbox",
            "email-inbox-noscroll",
            "email-inbox-delete",
            "email-inbox-important",
            "email-inbox-reply",
            "email-inbox-forward",
        )
    }
)
