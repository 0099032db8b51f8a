"""MiniWoB++ on a real Chromium: `turngym/MiniWoB-<task>-v0` (one task) and `turngym/MiniWoB-v0` (every task).

The task pages come from the `miniwob` PyPI package and are served by a local HTTP server (`server.py`). An episode:
load the task page in this env's own browser context, seed the page's random generator (`Math.seedrandom`, drawn from
the env's seeded generator, so `reset(seed=...)` reproduces the instance), set MiniWoB's episode timer, call
`core.startEpisodeReal()`, read the utterance. Each step parses one action of the grammar in `actions.py`, applies it
and reads MiniWoB's own reward (`WOB_RAW_REWARD_GLOBAL`, `WOB_DONE_GLOBAL`).

Reward: MiniWoB's raw reward r in [-1, 1] when the task ends (its time-discounted `WOB_REWARD_GLOBAL` is not used:
an LLM's thinking time should not change the reward); `score = reward = max(r, 0)`; `success = r >= 1` (stricter
than the literature's r > 0, which counts a half-right click-checkboxes answer); `r` itself is `info["raw_reward"]`. MiniWoB ends an episode after 10 s of wall time; for agents this is off by default
(`episode_max_time_ms=None` sets a 24-day timer), pass a number of milliseconds to get MiniWoB's original behaviour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from turngym.envs.core import Outcome, TurnEnv
from turngym.envs.web import observe
from turngym.envs.web.actions import ACTION_HELP, ActionError, execute, parse_action
from turngym.envs.web.browser import BrowserConfig, BrowserThread, acquire_pool, release_pool
from turngym.envs.web.schema import WEB_SCHEMA
from turngym.envs.web.server import acquire_server, release_server
from turngym.errors import ConfigError, EnvError
from turngym.optional import require
from turngym.tasks.pack import TaskPack

log = logging.getLogger(__name__)

NO_TIME_LIMIT_MS = 2**31 - 1  # setTimeout's largest delay (about 24.8 days)
DEFAULT_VIEWPORT = (160, 210)  # MiniWoB's task area: 160 px wide, 50 px utterance + 160 px task

# Starting an episode on an already loaded task page (as MiniWoB's own Python env does): stop a running episode,
# forget our element ids and the focus so that ids restart from 1, then seed and start.
START_JS = """
([seed, maxTime]) => {
  if (core.EP_TIMER !== null) core.endEpisode(0, false, "reset");
  document.querySelectorAll("[data-tg-id]").forEach((e) => e.removeAttribute("data-tg-id"));
  window.__tgNext = 1;
  if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
  if (window.jQuery) {
    jQuery.fx.off = true;  // jQuery animations end at once: what the agent sees does not race a timer
    // jQuery UI keeps its popups in <body>, outside the task area that a new episode rebuilds: close what the last
    // episode left open (a datepicker, an autocomplete menu), or the new episode starts with them showing
    if (jQuery.datepicker && jQuery.datepicker._hideDatepicker) jQuery.datepicker._hideDatepicker();
    jQuery("ul.ui-autocomplete").hide();
  }
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = maxTime;
  core.startEpisodeReal();
  return core.getUtterance();
}
"""
STATUS_JS = """
() => (typeof WOB_DONE_GLOBAL === "undefined") ? null :
  {done: WOB_DONE_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, reason: WOB_REWARD_REASON == null ? "" : String(WOB_REWARD_REASON)}
"""
# Installed before any page script runs: a fixed-seed Math.random (mulberry32), so randomness a page draws while it
# loads (before the episode's Math.seedrandom) is the same on every load.
SEEDED_RANDOM_INIT = """
(() => {
  let s = 0x2f6b3a1d;
  Math.random = function () {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})();
"""
# Images that stylesheets name (`content: url(...)`, backgrounds) load only when a rule first applies, e.g. a star
# icon that appears once clicked; until it has loaded its box is 0x0, so an observation taken right after the click
# depends on the network race. Loading them all once the page has loaded makes every later render use the cache.
PRELOAD_CSS_IMAGES_JS = """
async () => {
  const urls = new Set();
  for (const sheet of document.styleSheets) {
    let rules;
    try { rules = sheet.cssRules; } catch (e) { continue; }
    for (const rule of rules || []) {
      for (const m of (rule.cssText || "").matchAll(/url\\(["']?([^"')]+)["']?\\)/g)) {
        if (!m[1].startsWith("data:")) urls.add(new URL(m[1], sheet.href || location.href).href);
      }
    }
  }
  await Promise.all([...urls].map((u) => { const img = new Image(); img.src = u; return img.decode().catch(() => null); }));
  return urls.size;
}
"""
OBSERVE_JS = f"(skip) => ({{obs: ({observe.EXTRACT_JS})(skip), status: ({STATUS_JS})()}})"


def miniwob_html_root() -> Path:
    """The folder holding MiniWoB's `miniwob/*.html` (from the `miniwob` package)."""
    require("miniwob", extra="web", purpose="the MiniWoB++ task pages")
    import importlib.util

    spec = importlib.util.find_spec("miniwob")
    assert spec is not None and spec.submodule_search_locations
    root = Path(list(spec.submodule_search_locations)[0]) / "html"
    if not (root / "miniwob").is_dir():
        raise EnvError(
            f"the miniwob package at {root.parent} has no html/miniwob folder; reinstall `miniwob`"
        )
    return root


def _is_closed_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("has been closed", "target closed", "connection closed", "browser closed"))


_NAVIGATION_ERRORS = (
    "execution context was destroyed",
    "cannot find context",
    "frame was detached",
    "navigat",
)
READ_DEADLINE_S = 15.0


def _is_navigation_error(exc: BaseException) -> bool:
    """A read that raced a navigation (a submit, a link, a redirect): the page is fine, read it again."""
    msg = str(exc).split("\n", 1)[0].lower()
    return any(s in msg for s in _NAVIGATION_ERRORS)


class MiniWoBEnv(TurnEnv):
    """A MiniWoB++ task in Chromium. Observations: pruned DOM text (+ screenshot, optionally with set-of-marks).

    Args (besides TurnEnv's): task: fix one MiniWoB task (a task_id of the `miniwob` pack; None samples the pack);
      image: screenshots in observations (default True); viewport: (width, height) in CSS pixels; marks: draw element
      ids on the screenshot; episode_max_time_ms: MiniWoB's own timer (None = off); action_timeout_ms: how long an
      element action waits for the element to become actionable; browser: a `BrowserConfig` or a dict of its fields;
      reload_every: reload the task page every N episodes (0: only when needed; MiniWoB pages run episode after
      episode, and a reload costs about 10x a reset on a loaded page).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    family = "web"
    default_pack = "miniwob"
    default_max_turns = 20
    task_fields: ClassVar[dict[str, Any]] = WEB_SCHEMA  # fields and checks (envs/web/schema.py)
    action_format = ACTION_HELP
    accepts_free_text = False

    def __init__(
        self,
        task: str | None = None,
        task_pack: str | None = None,
        split: str | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        image: bool | None = None,
        viewport: tuple[int, int] = DEFAULT_VIEWPORT,
        marks: bool = False,
        episode_max_time_ms: int | None = None,
        action_timeout_ms: float = 1000,
        browser: BrowserConfig | dict[str, Any] | None = None,
        reload_every: int = 0,
    ):
        w, h = self._check_viewport(viewport)
        self.image_shape = (h, w, 3)
        if episode_max_time_ms is not None and not (0 < int(episode_max_time_ms) <= NO_TIME_LIMIT_MS):
            raise ConfigError(
                f"episode_max_time_ms must be in (0, {NO_TIME_LIMIT_MS}] or None, got {episode_max_time_ms!r}"
            )
        if isinstance(browser, dict):
            browser = BrowserConfig(**browser)
        super().__init__(
            task_pack=task_pack, split=split, max_turns=max_turns, render_mode=render_mode, image=image
        )
        self.fixed_task = task
        if task is not None:
            self.load_task_pack().get(task)  # fail now, with the pack's message, on an unknown task
        self.viewport = (w, h)
        self.marks = bool(marks)
        self.max_time_ms = int(episode_max_time_ms or NO_TIME_LIMIT_MS)
        self.action_timeout_ms = float(action_timeout_ms)
        if isinstance(reload_every, bool) or not isinstance(reload_every, int) or reload_every < 0:
            raise ConfigError(f"reload_every must be a non-negative integer, got {reload_every!r}")
        self.reload_every = reload_every
        self._episodes_on_page = 0
        self._cdp: Any = None
        self.browser_config = browser or BrowserConfig()
        self._server = acquire_server(miniwob_html_root())
        self.allowed_origins = [self._server.origin]
        try:
            self._open_browser()
        except Exception:
            release_server(self._server)
            raise
        self._context: Any = None
        self._page: Any = None
        self._generation = -1
        self.utterance = ""
        self.utterance_fields: dict[str, Any] = {}
        self.page_state: observe.PageState | None = None
        self.crashed = False

    @staticmethod
    def _check_viewport(viewport: Any) -> tuple[int, int]:
        try:
            w, h = (int(v) for v in viewport)
        except (TypeError, ValueError):
            raise ConfigError(f"viewport must be (width, height), got {viewport!r}") from None
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise ConfigError(f"viewport sides must be between 16 and 4096 pixels, got {viewport!r}")
        return w, h

    # ---- browser plumbing ----------------------------------------------------------------------------------------
    # Every Playwright call of the env runs on its own browser thread (Playwright's sync API is bound to one thread),
    # so reset/step/render/expert_action/close work from any thread, e.g. the rollout engine's pool. The thread and
    # its Chromium start at the first reset: making an env (to list its tasks, to plan episodes) launches nothing.
    def _open_browser(self) -> None:
        self.browser_config.resolved_executable()  # a missing executable is a ConfigError now, not at reset
        self._browser: BrowserThread | None = None
        self._pool: Any = None

    def in_browser(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` on this env's browser thread (the only thread its page may be used from),
        starting the thread and its Chromium on first use."""
        if self._browser is None:
            if self._closed:
                raise ConfigError(f"{type(self).__name__} was closed; make a new env")
            browser = BrowserThread(name=f"turngym-browser-{type(self).__name__}")
            try:
                self._pool = browser.call(acquire_pool, self.browser_config)
            except BaseException:
                browser.stop()
                raise
            browser.stop_when_collected(self)
            self._browser = browser
        return self._browser.call(fn, *args, **kwargs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        if self._closed:
            return super().reset(seed=seed, options=options)  # raises: closed
        return self.in_browser(super().reset, seed=seed, options=options)

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self._browser is None:  # not reset yet: TurnEnv says so
            return super().step(action)
        return self.in_browser(super().step, action)

    def render(self) -> str | np.ndarray | None:
        if self._browser is None or self._closed:
            return super().render()
        return self.in_browser(super().render)

    def expert_action(self) -> str:
        if self._browser is None:
            raise NotImplementedError("call reset() first")
        return self.in_browser(self._expert_move)

    def _ensure_page(self) -> Any:
        if self._page is not None and self._generation == self._pool.generation and self._pool.alive():
            return self._page
        self._drop_context()
        self._context = self._pool.new_context(
            viewport={"width": self.viewport[0], "height": self.viewport[1]}, device_scale_factor=1
        )
        self._generation = self._pool.generation
        self._context.add_init_script(SEEDED_RANDOM_INIT)
        self._page = self._context.new_page()
        self._page.set_default_timeout(10_000)
        try:
            self._cdp = self._context.new_cdp_session(self._page)
        except Exception:  # not Chromium: Playwright's screenshot path
            self._cdp = None
        return self._page

    def _drop_context(self) -> None:
        ctx, self._context, self._page, self._cdp = self._context, None, None, None
        if ctx is not None:
            try:
                ctx.close()
            except Exception as exc:  # the browser may be gone already
                log.debug("context.close(): %s", exc)

    def task_filter(self, options: Mapping[str, Any]) -> tuple[Callable[[dict[str, Any]], bool], str] | None:
        if self.fixed_task is None:
            return None
        fixed = self.fixed_task
        return (lambda t: t["task_id"] == fixed), f"the task {fixed!r}"

    def _select_task(self, options: Mapping[str, Any]) -> tuple[TaskPack, str, dict[str, Any]]:
        if self.fixed_task is not None and options.get("task_id") is None:
            options = {**options, "task_id": self.fixed_task}
        return super()._select_task(options)

    # ---- episode -------------------------------------------------------------------------------------------------
    def _start(self, task: dict[str, Any]) -> Outcome:
        seed = int(self.np_random.integers(2**31 - 1))
        url = f"{self._server.origin}/{task['page'].lstrip('/')}"
        self.crashed = False
        self.expert_memory: dict[str, Any] = {}
        last_exc: Exception | None = None
        for _attempt in range(2):
            try:
                page = self._ensure_page()
                every = 1 if task.get("reload") else self.reload_every
                reuse = page.url == url and (not every or self._episodes_on_page < every)
                if not reuse or not page.evaluate("() => typeof core !== 'undefined'"):
                    page.goto(url, wait_until="load")
                    page.evaluate(PRELOAD_CSS_IMAGES_JS)
                    self._episodes_on_page = 0
                self._episodes_on_page += 1
                page.mouse.move(
                    0, 0
                )  # the pointer is state too (CSS :hover): every episode starts it in one place
                utterance = page.evaluate(START_JS, [str(seed), self.max_time_ms])
                # the natural-language variants return {utterance, fields}; fields are what the text asks for
                self.utterance_fields = utterance.get("fields", {}) if isinstance(utterance, dict) else {}
                self.utterance = str(utterance["utterance"] if isinstance(utterance, dict) else utterance)
                page.wait_for_function(
                    "() => typeof WOB_TASK_READY === 'undefined' || WOB_TASK_READY", timeout=5000
                )
                return self._observe(prefix="")
            except Exception as exc:
                if not self._is_playwright_error(exc):
                    raise
                last_exc = exc
                log.warning("reset of %s failed (%s); retrying on a fresh context", task["task_id"], exc)
                self._generation = -1  # forces a new context (and a new browser when the old one died)
        raise EnvError(f"could not start MiniWoB task {task['task_id']!r} at {url}: {last_exc}")

    @staticmethod
    def _is_playwright_error(exc: BaseException) -> bool:
        return type(exc).__module__.startswith("playwright")

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        return f"Task: {self.utterance}\n\n{self.action_format}"

    def _act(self, action: str) -> Outcome:
        try:
            parsed = parse_action(action)
        except ActionError as exc:
            return self._observe(prefix=f"Invalid action: {exc}", invalid=str(exc))
        except Exception as exc:  # the parser missed a case: still an invalid action, and logged
            log.warning("parse_action(%.80r) raised %s: %s", action, type(exc).__name__, exc)
            err = f"the action could not be parsed ({type(exc).__name__}: {str(exc)[:200]})"
            return self._observe(prefix=f"Invalid action: {err}", invalid=err)
        try:
            execute(self._page, parsed, self.allowed_origins, timeout_ms=self.action_timeout_ms)
        except ActionError as exc:
            return self._observe(prefix=f"Action failed: {exc}", invalid=str(exc))
        except Exception as exc:
            if not self._is_playwright_error(exc):
                raise
            if _is_closed_error(exc) or not self._pool.alive():
                return self._crash(exc)
            msg = str(exc).split("\n", 1)[0]
            return self._observe(prefix=f"Action failed: {parsed}: {msg}", invalid=f"{parsed} failed: {msg}")
        return self._observe(prefix=f"Last action: {parsed}")

    def _crash(self, exc: BaseException) -> Outcome:
        self.crashed = True
        self._generation = -1
        err = f"the browser died during the episode ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        log.warning(err)
        return Outcome(
            text=f"Error: {err}. The episode is over; reset() starts a fresh browser.",
            terminated=True,
            error=err,
            state={"crashed": True},
            admissible_actions=[],
            extra={"raw_reward": 0.0, "browser_crashed": True, "url": ""},
        )

    def _read_page(self, read: Callable[[Any], Any]) -> tuple[Any, BaseException | None]:
        """Run `read(page)` until it does not race a navigation. A click or Enter that submits a form returns before
        the new document commits, so a read may land in the old document's dying context; we wait for the page to
        load and read again (until READ_DEADLINE_S). Returns (value, None), or (None, exc) when the browser died or
        the read kept failing for another reason."""
        page = self._page
        deadline = time.monotonic() + READ_DEADLINE_S
        failures = 0
        while True:
            try:
                return read(page), None
            except Exception as exc:
                if not self._is_playwright_error(exc):
                    raise
                if _is_closed_error(exc) or not self._pool.alive():
                    return None, exc
                failures += not _is_navigation_error(exc)
                if failures > 1 or time.monotonic() > deadline:
                    return None, exc
                log.debug("page read raced a navigation, reading again: %s", str(exc).split("\n", 1)[0])
                try:
                    page.wait_for_load_state("load", timeout=max(1.0, deadline - time.monotonic()) * 1000)
                except Exception as wait_exc:
                    if not self._is_playwright_error(wait_exc):
                        raise
                    if _is_closed_error(wait_exc) or not self._pool.alive():
                        return None, wait_exc

    def _observe(self, prefix: str, invalid: str = "") -> Outcome:
        def read(page: Any) -> tuple[Any, observe.PageState, np.ndarray | None]:
            raw = page.evaluate(OBSERVE_JS, list(observe.MINIWOB_SKIP_IDS))
            state = observe.to_state(raw["obs"])
            return raw["status"], state, (self._screenshot(page, state) if self.use_image else None)

        value, exc = self._read_page(read)
        if exc is not None:
            return self._crash(exc)
        status, state, image = value
        self.page_state = state
        tree = observe.render_tree(state)
        done = bool(status and status["done"])
        raw = float(status["raw"]) if status and done else 0.0
        lines = [f"Task: {self.utterance}"]
        if prefix:
            lines.append(prefix)
        if done:
            verdict = "succeeded" if raw >= 1.0 - 1e-9 else ("partly succeeded" if raw > 0 else "failed")
            why = f" ({status['reason']})" if status.get("reason") else ""
            lines.append(f"Episode over: the task {verdict}, reward {raw:g}{why}.")
        lines.append(tree)
        score = max(0.0, min(1.0, raw))
        adm = observe.admissible_actions(state)
        return Outcome(
            text="\n".join(lines),
            reward=score if done else 0.0,
            terminated=done,
            success=done and raw >= 1.0 - 1e-9,
            score=score,
            invalid_action=bool(invalid),
            error=invalid,
            state={"tree": tree, "done": done, "raw": raw},
            admissible_actions=adm,
            image=image,
            extra={"raw_reward": raw, "browser_crashed": False, "url": state.url},
        )

    def _screenshot(self, page: Any, state: observe.PageState) -> np.ndarray:
        img = observe.screenshot(page, self._cdp)
        h, w = self.image_shape[:2]
        if img.shape[:2] != (h, w):  # device pixel ratio or a resized window: fit the declared space
            from PIL import Image

            img = np.asarray(Image.fromarray(img).resize((w, h)), dtype=np.uint8)
        if self.marks:
            img = observe.draw_marks(img, [e for e in state.elements if e.get("act")])
        return img

    def _render_image(self) -> np.ndarray | None:
        """The last observation's screenshot; in text-only mode, a fresh one (for render_mode="rgb_array")."""
        if self._last is not None and self._last.image is not None:
            return self._last.image
        if self._page is None or self.page_state is None or self.crashed:
            return None
        try:
            return self._screenshot(self._page, self.page_state)
        except Exception as exc:
            if not self._is_playwright_error(exc):
                raise
            return None

    # ---- expert --------------------------------------------------------------------------------------------------
    def _expert_move(self) -> str:
        from turngym.envs.web.experts import EXPERTS, ExpertView

        if self.task is None or self.page_state is None:
            raise NotImplementedError("call reset() first")
        name = self.task["task_id"]
        fn = EXPERTS.get(name)
        if fn is None:
            raise NotImplementedError(
                f"no scripted expert for MiniWoB task {name!r}; experts: {sorted(EXPERTS)}"
            )
        return fn(ExpertView(self.utterance, self.page_state, self._page, self.expert_memory))

    def _close(self) -> None:
        browser, self._browser = self._browser, None
        try:
            if browser is not None:
                try:
                    browser.call(self._close_browser)
                finally:
                    browser.stop()
        finally:
            self._release_services()

    def _close_browser(self) -> None:
        """On the browser thread: drop the context and this env's use of the browser (the last user stops it)."""
        self._drop_context()
        release_pool(self._pool)

    def _release_services(self) -> None:
        release_server(self._server)
