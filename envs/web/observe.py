"""Observation extraction: a pruned DOM tree with stable element ids, the URL and focused element, screenshots.

One `page.evaluate` walks the DOM, gives every element a stable id (attribute `data-tg-id`, assigned in document order
the first time an element is seen and kept while it lives, so ids do not shift between steps) and returns the
visible elements that carry text or can be acted on. `render_tree` turns them into the text observation::

    URL: http://127.0.0.1:PORT/miniwob/click-button.html
    Focused: [7] input
    [3] div
      [4] button "Submit"
      [5] input type=text value="" placeholder="name"

Screenshots are PNG from Chromium decoded to uint8 HxWx3; `draw_marks` overlays element boxes and ids
(set-of-marks prompting, Yang et al. 2023).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from turngym.envs.actiontext import bad_char

EXTRACT_JS = r"""
(skip) => {
  const W = window;
  if (typeof W.__tgNext !== "number") W.__tgNext = 1;
  const SKIPTAG = new Set(["SCRIPT","STYLE","NOSCRIPT","META","LINK","HEAD","TEMPLATE","TITLE","BR"]);
  const ACT = new Set(["A","BUTTON","INPUT","SELECT","TEXTAREA","OPTION","SUMMARY","LABEL"]);
  const SHAPES = new Set(["circle","rect","polygon","ellipse","line","path","text","polyline"]);
  const skipSet = new Set(skip);
  const out = [];
  const clean = (s) => (s || "").replace(/\s+/g, " ").trim();
  const idOf = (el) => {
    let id = el.getAttribute("data-tg-id");
    if (!id) { id = String(W.__tgNext++); el.setAttribute("data-tg-id", id); }
    return +id;
  };
  // Reachability: can Playwright bring the element into the viewport and click it there? A region is
  // {reach, vis}, each [x0, y0, x1, y1] in viewport coordinates: `reach` what scrolling can bring into view, `vis`
  // what shows now. `clip` carries three regions down the walk (CSS containing blocks): for in-flow children, for
  // absolutely positioned descendants (the nearest positioned ancestor's) and for fixed ones (the viewport, or a
  // transformed ancestor's). A scroll container (overflow hidden/auto/scroll) limits its content to its scrollable
  // area (content left of or above its origin can never be scrolled to) and shows its padding box; overflow:clip
  // limits to its padding box; the document reaches its scrollable area and shows the viewport; fixed elements reach
  // only the viewport.
  const vw = document.documentElement.clientWidth || W.innerWidth, vh = document.documentElement.clientHeight || W.innerHeight;
  const INF = 1e9;
  const se = document.scrollingElement || document.documentElement;
  const vp = [0, 0, vw, vh];
  const docReach = [-W.scrollX, -W.scrollY, -W.scrollX + Math.max(se.scrollWidth, vw), -W.scrollY + Math.max(se.scrollHeight, vh)];
  const meet = (a, b) => [Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.min(a[2], b[2]), Math.min(a[3], b[3])];
  function ownClip(el, cs, r) {
    if (el === document.body || el === document.documentElement) return null;  // their overflow is the document's
    const ox = cs.overflowX, oy = cs.overflowY;
    if (ox === "visible" && oy === "visible") return null;
    const left = r.left + el.clientLeft, top = r.top + el.clientTop;
    const span = (o, start, client, scrollPos, scrollSize) => o === "visible" ? [-INF, INF] :
      o === "clip" ? [start, start + client] : [start - scrollPos, start - scrollPos + Math.max(scrollSize, client)];
    const shown = (o, start, client) => o === "visible" ? [-INF, INF] : [start, start + client];
    const [x0, x1] = span(ox, left, el.clientWidth, el.scrollLeft, el.scrollWidth);
    const [y0, y1] = span(oy, top, el.clientHeight, el.scrollTop, el.scrollHeight);
    const [vx0, vx1] = shown(ox, left, el.clientWidth), [vy0, vy1] = shown(oy, top, el.clientHeight);
    return {reach: [x0, y0, x1, y1], vis: [vx0, vy0, vx1, vy1]};
  }
  const norm = (s) => s.replace(/[\u200b\u00ad]/g, "").trim().replace(/\s+/g, " ");  // Playwright's normalizeWhiteSpace
  const disabledOf = (el) => (el.matches && el.matches(":disabled")) || !!(el.closest && el.closest('[aria-disabled="true"]'));
  function reachable(el, region) {
    if (el.checkVisibility && !el.checkVisibility({visibilityProperty: true})) return false;
    // Playwright clicks the middle of the element's first box of at least ~1 px^2
    const box = [...el.getClientRects()].find((q) => q.width * q.height > 0.99);
    if (!box) return false;
    const cx = box.left + box.width / 2, cy = box.top + box.height / 2;
    const R = region.reach, V = region.vis;
    if (!(cx >= R[0] && cx < R[2] && cy >= R[1] && cy < R[3])) return false;  // no scrolling brings it into view
    if (box.left >= V[0] && box.top >= V[1] && box.right <= V[2] && box.bottom <= V[3]) {
      // fully shown, so Playwright will not scroll: what receives a click at that point?
      const hit = document.elementFromPoint(cx, cy);
      if (!hit || !(hit === el || el.contains(hit))) return false;
    }
    return true;
  }
  function walk(el, depth, parentShown, clip) {
    if (SKIPTAG.has(el.tagName) || (el.id && skipSet.has(el.id))) return;
    const cs = getComputedStyle(el);
    if (cs.display === "none") return;
    const id = idOf(el);
    const tag = el.tagName.toLowerCase();
    const r = el.getBoundingClientRect();
    const pos = cs.position;
    const region = pos === "fixed" ? clip.fixed : pos === "absolute" ? clip.abs : clip.flow;
    const visible = cs.visibility !== "hidden" && cs.opacity !== "0" && ((r.width > 0 && r.height > 0) || tag === "option");
    let own = "";
    for (const n of el.childNodes) if (n.nodeType === 3) own += n.textContent;
    own = clean(own);
    const isSvg = el instanceof SVGElement;
    const act = ACT.has(el.tagName) || el.hasAttribute("onclick") || el.hasAttribute("tabindex") ||
      el.getAttribute("role") !== null || el.isContentEditable || (isSvg && SHAPES.has(tag)) || cs.cursor === "pointer";
    const show = visible && (own.length > 0 || act || tag === "canvas");
    const e = {id, tag, depth, act};
    if (show) {
      e.text = own.slice(0, 200);
      if (el.id) e.domid = el.id;
      const cls = el.getAttribute("class"); if (cls) e.cls = cls;
      e.x = r.x; e.y = r.y; e.w = r.width; e.h = r.height;
      if (el.tagName === "INPUT") {
        e.type = (el.type || "text").toLowerCase();
        if (e.type === "checkbox" || e.type === "radio") e.checked = !!el.checked;
        else e.value = el.value;
        if (el.placeholder) e.placeholder = el.placeholder;
      } else if (el.tagName === "TEXTAREA") {
        e.value = el.value;
      } else if (el.tagName === "SELECT") {
        e.value = el.selectedIndex >= 0 ? clean(el.options[el.selectedIndex].text) : "";
        // what select(ID, "label") can choose: each label whose first matching option (the one Playwright picks;
        // it matches the label exactly or with whitespace normalised) is enabled
        const opts = [...el.options], labels = [];
        for (const o of opts) {
          const first = opts.find((p) => p.label === o.label || norm(p.label) === norm(o.label));
          if (first === o && !disabledOf(o) && !labels.includes(o.label)) labels.push(o.label);
        }
        e.options = labels;
      } else if (el.tagName === "OPTION") {
        e.selected = !!el.selected;
      }
      const role = el.getAttribute("role"); if (role) e.role = role;
      const ex = el.getAttribute("aria-expanded"); if (ex !== null) e.expanded = ex === "true";
      if (el.disabled) e.disabled = true;
      if (act) {
        // not rendered: whether click(ID) can work now (enabled, a box, its centre reachable and not covered)
        e.enabled = !disabledOf(el);
        e.reach = e.enabled && tag !== "option" && reachable(el, region);
      }
      if (tag === "a" && el.getAttribute("href")) e.href = el.getAttribute("href");
      const label = el.getAttribute("aria-label") || el.getAttribute("title"); if (label) e.label = clean(label).slice(0, 100);
      if (isSvg) { const f = el.getAttribute("fill"); if (f) e.fill = f; }
      if (tag === "canvas") e.canvas = true;
      out.push(e);
    }
    const d = show ? depth + 1 : depth;
    const oc = ownClip(el, cs, r);
    const mine = oc ? {reach: meet(region.reach, oc.reach), vis: meet(region.vis, oc.vis)} : region;
    const positioned = pos !== "static" || cs.transform !== "none";
    const sub = {flow: mine, abs: positioned ? mine : clip.abs, fixed: cs.transform !== "none" ? mine : clip.fixed};
    for (const c of el.children) walk(c, d, show, sub);
  }
  const doc = {reach: docReach, vis: vp}, fixed = {reach: vp, vis: vp};
  if (document.body) walk(document.body, 0, false, {flow: doc, abs: doc, fixed});
  const a = document.activeElement;
  let focused = null;
  if (a && a !== document.body && a.getAttribute) focused = {id: idOf(a), tag: a.tagName.toLowerCase()};
  return {url: location.href, focused, elements: out, scrollX: W.scrollX, scrollY: W.scrollY};
}
"""

# MiniWoB's own human-facing overlays (the reward box, the click canvas, the "START" cover) carry no task content.
MINIWOB_SKIP_IDS = ("reward-display", "click-canvas", "sync-task-cover", "query")


@dataclass
class PageState:
    url: str
    focused: dict[str, Any] | None
    elements: list[dict[str, Any]]

    def by_id(self, eid: int) -> dict[str, Any] | None:
        for e in self.elements:
            if e["id"] == eid:
                return e
        return None


def extract(page: Any, skip_ids: tuple[str, ...] = ()) -> PageState:
    return to_state(page.evaluate(EXTRACT_JS, list(skip_ids)))


def to_state(raw: dict[str, Any]) -> PageState:
    """A `PageState` from what `EXTRACT_JS` returned (also when it ran inside a larger script)."""
    return PageState(url=raw["url"], focused=raw["focused"], elements=raw["elements"])


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def element_line(e: dict[str, Any]) -> str:
    parts = [f"[{e['id']}]", e.get("role") or e["tag"]]
    if e.get("text"):
        parts.append(_quote(e["text"]))
    if "type" in e and e["type"] != "text":
        parts.append(f"type={e['type']}")
    if "value" in e:
        parts.append(f"value={_quote(str(e['value']))}")
    if e.get("placeholder"):
        parts.append(f"placeholder={_quote(e['placeholder'])}")
    if e.get("label"):
        parts.append(f"label={_quote(e['label'])}")
    if "checked" in e:
        parts.append("checked" if e["checked"] else "unchecked")
    if e.get("selected"):
        parts.append("selected")
    if "expanded" in e:
        parts.append("expanded" if e["expanded"] else "collapsed")
    if e.get("disabled"):
        parts.append("disabled")
    if e.get("href"):
        parts.append(f"href={_quote(e['href'][:80])}")
    if e.get("fill"):
        parts.append(f"fill={e['fill']}")
    return " ".join(parts)


def render_tree(state: PageState) -> str:
    """The text observation: URL, focused element, then one indented line per kept element."""
    lines = [f"URL: {state.url}"]
    if state.focused:
        lines.append(f"Focused: [{state.focused['id']}] {state.focused['tag']}")
    else:
        lines.append("Focused: none")
    for e in state.elements:
        lines.append("  " * e["depth"] + element_line(e))
    return "\n".join(lines)


def screenshot(page: Any, cdp: Any = None) -> np.ndarray:
    """The viewport as uint8 HxWx3. With a CDP session (Chromium), one `Page.captureScreenshot` call: it skips
    Playwright's screenshot bookkeeping (font and animation waits), about a third faster on small viewports."""
    from PIL import Image

    if cdp is not None:
        png = base64.b64decode(
            cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})["data"]
        )
    else:
        png = page.screenshot(type="png", animations="allow", caret="initial")
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def draw_marks(image: np.ndarray, elements: list[dict[str, Any]], scale: float = 1.0) -> np.ndarray:
    """Set-of-marks: a box and the id label on every actionable element (Yang et al. 2023, arXiv:2310.11441)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    h, w = image.shape[:2]
    for e in elements:
        if not e.get("w") or not e.get("h"):
            continue
        x0, y0 = e["x"] * scale, e["y"] * scale
        x1, y1 = x0 + e["w"] * scale, y0 + e["h"] * scale
        if x1 < 0 or y1 < 0 or x0 >= w or y0 >= h:
            continue
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(255, 0, 0))
        label = str(e["id"])
        tw = 6 * len(label) + 2
        draw.rectangle([x0, y0, x0 + tw, y0 + 10], fill=(255, 0, 0))
        draw.text((x0 + 1, y0 - 1), label, fill=(255, 255, 255))
    return np.asarray(im, dtype=np.uint8)


def option_action(select_id: int, label: str) -> str:
    """`select(ID, "label")` with the label written as a string literal the action parser reads back exactly."""
    return f"select({int(select_id)}, {json.dumps(label, ensure_ascii=False)})"


def admissible_actions(state: PageState, skip_tags: tuple[str, ...] = (), noop: bool = True) -> list[str]:
    """Actions that can execute on the page as observed: `click(ID)` for every actionable element that is enabled
    and reachable (`reach`: a box, its centre inside every clipping ancestor's reachable area, not covered by
    another element), `select(ID, "label")` for each enabled option of an enabled `<select>` (never `click` on an
    `<option>`: a closed select's options have no box), then `noop()` (unless `noop=False`). Elements whose tag is
    in `skip_tags` are left out."""
    out: list[str] = []
    for e in state.elements:
        if not e.get("act") or e["tag"] in skip_tags or e["tag"] == "option":
            continue
        if e["tag"] == "select" and e.get("enabled", True):
            for label in dict.fromkeys(e.get("options", ())):
                if label and not bad_char(label):
                    out.append(option_action(e["id"], label))
        if e.get("reach", True):
            out.append(f"click({e['id']})")
    if noop:
        out.append("noop()")
    return out
