"""`BrowserEnv`: the base class of the browser env families (`MiniWoBEnv`, `WebShopBrowserEnv`, yours).

It owns what every browser task shares: the env's browser thread and its Chromium (`browser.py`), one isolated
context and page per env, crash recovery, the action grammar (`actions.py`) and its execution, observations (pruned
DOM text with `[N]` element ids, optionally a screenshot with set-of-marks: `observe.py`), rendering, and `close()`,
which leaves no Chromium behind. A family subclasses it and supplies only what is its own:

- `page_status(page, state)`: after every observation, whether the episode is over and its reward (a `PageStatus`);
- which page an episode opens: `site_root()`, a folder served by the process's local HTTP server (`server.py`),
  whose records name their page in a `page` field; or `page_url(task)`; or its own `_start(task)` when an episode
  needs more than a page load (it calls `_open_episode`);
- the class attributes of every `TurnEnv` (`family`, `default_pack`, `task_fields`, ...) and the defaults of the
  browser options (`default_viewport`, `default_image`, `default_action_timeout_ms`).

Optional hooks: `_header_lines()` (lines above the page in every observation), `_obs_state` (what `info["obs_key"]`
digests), `_admissible` (the admissible actions), `_read` (how a page and its status are read), `_expert_move` (the
scripted expert), `_release_services` (what `close()` releases besides the browser and the site).
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from turngym.envs.core import Outcome, TurnEnv
from turngym.envs.web import observe
from turngym.envs.web.actions import ACTION_HELP, ActionError, execute, navigation_pending, parse_action
from turngym.envs.web.browser import BrowserConfig, BrowserThread, acquire_pool, release_pool
from turngym.envs.web.server import StaticServer, acquire_server, release_server
from turngym.errors import ConfigError, EnvError

log = logging.getLogger(__name__)

# Installed before any page script runs: a fixed-seed Math.random (mulberry32), so randomness a page draws while it
# loads (before the episode's own seeding, if any) is the same on every load.
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
# Two animation frames: what a script queued for the next rendering (an `autofocus`, a layout) has happened.
SETTLE_JS = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(0))))"
READ_DEADLINE_S = 15.0
NAVIGATION_TIMEOUT_S = 10.0  # how long a step waits for the page an action started loading (as `goto`: 10 s)
_NAVIGATION_ERRORS = (
    "execution context was destroyed",
    "cannot find context",
    "frame was detached",
    "navigat",
)


def _is_closed_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("has been closed", "target closed", "connection closed", "browser closed"))


def _is_navigation_error(exc: BaseException) -> bool:
    """A read that raced a navigation (a submit, a link, a redirect): the page is fine, read it again."""
    msg = str(exc).split("\n", 1)[0].lower()
    return any(s in msg for s in _NAVIGATION_ERRORS)


@dataclass
class PageStatus:
    """What a family reads from the page (or its server) after every action.

    done: the episode is over; reward: its reward (counted only when done); success: None means `reward >= 1`;
    message: a line the observation shows once the episode is over; extra: more `info` keys for this step.
    """

    done: bool = False
    reward: float = 0.0
    success: bool | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class BrowserEnv(TurnEnv):
    """A web task in Chromium. Observations: pruned DOM text (+ screenshot, optionally with set-of-marks); actions:
    the web grammar (`actions.py`).

    Args, all by keyword: image: screenshots in observations (default: `default_image`); viewport: (width, height)
      in CSS pixels (default: `default_viewport`); marks: draw element ids on the screenshot; action_timeout_ms: how
      long an element action waits for the element to become actionable (default: `default_action_timeout_ms`);
      browser: a `BrowserConfig` or a dict of its fields; options: TurnEnv's (task_pack, split, max_turns,
      render_mode).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    action_format = ACTION_HELP
    accepts_free_text = False
    default_viewport: ClassVar[tuple[int, int]] = (800, 600)
    default_image: ClassVar[bool] = True
    default_action_timeout_ms: ClassVar[float] = 1000

    def __init__(
        self,
        *,
        image: bool | None = None,
        viewport: tuple[int, int] | None = None,
        marks: bool = False,
        action_timeout_ms: float | None = None,
        browser: BrowserConfig | dict[str, Any] | None = None,
        **options: Any,
    ):
        w, h = self._check_viewport(self.default_viewport if viewport is None else viewport)
        self.image_shape = (h, w, 3)
        timeout = self.default_action_timeout_ms if action_timeout_ms is None else action_timeout_ms
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
            raise ConfigError(f"action_timeout_ms must be a positive number, got {action_timeout_ms!r}")
        if isinstance(browser, dict):
            browser = BrowserConfig(**browser)
        elif browser is not None and not isinstance(browser, BrowserConfig):
            raise ConfigError(f"browser must be a BrowserConfig or a dict of its fields, got {browser!r}")
        super().__init__(image=self.default_image if image is None else image, **options)
        self.viewport = (w, h)
        self.marks = bool(marks)
        self.action_timeout_ms = float(timeout)
        self.browser_config = browser or BrowserConfig()
        self.browser_config.resolved_executable()  # a missing executable is a ConfigError now, not at reset
        self._site_root = self.site_root()
        self._site: StaticServer | None = None
        # what goto() may open: the site's origin (set at the first reset), or what the family sets
        self.allowed_origins: list[str] = []
        self._browser: BrowserThread | None = None
        self._pool: Any = None
        self._cdp: Any = None
        self._context: Any = None
        self._page: Any = None
        self._generation = -1
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

    # ---- hooks for families --------------------------------------------------------------------------------------
    def site_root(self) -> Path | None:
        """A folder of pages served on 127.0.0.1 (one server per folder, shared by the envs of the process, started
        at the first reset), or None. With a site, `goto` may open the site's pages."""
        return None

    def page_url(self, task: dict[str, Any]) -> str:
        """The URL an episode of `task` opens. Default: the record's `page`, relative to the site."""
        if self._site is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no site: override site_root(), page_url(task) or _start(task)"
            )
        return f"{self._site.origin}/{str(task['page']).lstrip('/')}"

    def page_status(self, page: Any, state: observe.PageState) -> PageStatus:
        """Whether the episode is over and its reward, read after every action (on the browser thread: `page` is
        this env's Playwright page, `state` what the agent is about to see)."""
        raise NotImplementedError(f"{type(self).__name__} must implement page_status(page, state)")

    def _header_lines(self) -> list[str]:
        """Lines every observation starts with (e.g. the task statement)."""
        return []

    def _obs_state(self, state: observe.PageState, tree: str, status: PageStatus) -> Any:
        """What identifies the environment state (digested into `info["obs_key"]`)."""
        return {"tree": tree, "done": status.done}

    def _admissible(self, state: observe.PageState, done: bool) -> list[str]:
        return [] if done else observe.admissible_actions(state)

    def _release_services(self) -> None:
        """Release what the family holds besides the browser and the site (servers, sessions). Called once."""

    # ---- browser plumbing ----------------------------------------------------------------------------------------
    # Every Playwright call of the env runs on its own browser thread (Playwright's sync API is bound to one thread),
    # so reset/step/render/expert_action/close work from any thread, e.g. the rollout engine's pool. The thread and
    # its Chromium start at the first reset: making an env (to list its tasks, to plan episodes) launches nothing.
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
        if self._site is None and self._site_root is not None:
            self._site = acquire_server(self._site_root)
            self.allowed_origins = [self._site.origin]
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

    def _expert_move(self) -> str:
        """On the browser thread: the scripted expert's next action (families with an expert override this)."""
        return super().expert_action()  # raises: no expert

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

    @staticmethod
    def _is_playwright_error(exc: BaseException) -> bool:
        return type(exc).__module__.startswith("playwright")

    # ---- episode -------------------------------------------------------------------------------------------------
    def _start(self, task: dict[str, Any]) -> Outcome:
        url = self.page_url(task)
        return self._open_episode(
            task,
            lambda page: page.goto(url, wait_until="load"),
            f"could not open {url} for task {task['task_id']!r}",
        )

    def _open_episode(self, task: dict[str, Any], load: Callable[[Any], None], failure: str) -> Outcome:
        """Run `load(page)` on this env's page and return the first observation. When the browser fails, once more
        on a fresh context (and a fresh Chromium if the old one died); then an `EnvError` saying `failure`."""
        self.crashed = False
        last_exc: Exception | None = None
        for _attempt in range(2):
            try:
                load(self._ensure_page())
                return self._observe(prefix="")
            except Exception as exc:
                if not self._is_playwright_error(exc):
                    raise
                last_exc = exc
                log.warning("reset of %s failed (%s); retrying on a fresh context", task["task_id"], exc)
                self._generation = -1  # forces a new context (and a new browser when the old one died)
        raise EnvError(f"{failure}: {last_exc}")

    def _act(self, action: str) -> Outcome:
        try:
            parsed = parse_action(action)
        except ActionError as exc:
            return self._observe(prefix=f"Invalid action: {exc}", invalid=str(exc))
        except Exception as exc:  # the parser missed a case: still an invalid action, and logged
            log.warning("parse_action(%.80r) raised %s: %s", action, type(exc).__name__, exc)
            err = f"the action could not be parsed ({type(exc).__name__}: {str(exc)[:200]})"
            return self._observe(prefix=f"Invalid action: {err}", invalid=err)
        document = self._document_id(self._page)
        try:
            execute(self._page, parsed, self.allowed_origins, timeout_ms=self.action_timeout_ms)
        except ActionError as exc:
            return self._observe(prefix=f"Action failed: {exc}", invalid=str(exc))
        except Exception as exc:
            if not self._is_playwright_error(exc):
                raise
            if _is_closed_error(exc) or not self._pool.alive():
                return self._crash(exc)
            if not navigation_pending(exc):
                msg = str(exc).split("\n", 1)[0]
                return self._observe(
                    prefix=f"Action failed: {parsed}: {msg}", invalid=f"{parsed} failed: {msg}"
                )
            died = self._await_navigation(self._page, document)  # the action was done; its page is on its way
            if died is not None:
                return self._crash(died)
        return self._observe(prefix=f"Last action: {parsed}")

    def _document_id(self, page: Any) -> float | None:
        """An id of the document now in `page` (its `performance.timeOrigin`: a new document, even a reload of the
        same URL, gets a new one), or None when it cannot be read (e.g. a navigation is committing)."""
        try:
            return float(page.evaluate("() => performance.timeOrigin"))
        except Exception as exc:
            if not self._is_playwright_error(exc):
                raise
            return None

    def _await_navigation(self, page: Any, document: float | None) -> BaseException | None:
        """After an action whose navigation was still pending when the action's timeout ran out: wait (up to
        NAVIGATION_TIMEOUT_S) until a new document replaces `document`, then until it has loaded. Without this the
        observation could be the old page, which stays `complete` until the new one commits. Returns the exception
        when the browser died, else None (also when nothing committed in time: the page is then read as it is)."""
        deadline = time.monotonic() + NAVIGATION_TIMEOUT_S
        while document is not None and time.monotonic() < deadline:
            try:
                if page.evaluate("() => performance.timeOrigin") != document:
                    break
                page.wait_for_timeout(50)
            except Exception as exc:
                if not self._is_playwright_error(exc):
                    raise
                if _is_closed_error(exc) or not self._pool.alive():
                    return exc
                if not _is_navigation_error(exc):
                    return None
                break  # the old document died: the new one is committing
        return self._wait_until_loaded(page, deadline)

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
                died = self._wait_until_loaded(page, deadline)
                if died is not None:
                    return None, died

    def _wait_until_loaded(self, page: Any, deadline: float) -> BaseException | None:
        """Wait until the document now in `page` has loaded, after a read raced a navigation. Playwright's
        `wait_for_load_state` answers from the load states it last heard of, and right after the race these can
        still be the dying document's: it then returns at once and the read lands in a page still `loading` or
        `interactive`. So the new document's own `readyState` decides. Returns the exception when the browser
        died, else None (also at the deadline or on another error: the read that follows reports what is wrong)."""
        while True:
            timeout_ms = max(1.0, deadline - time.monotonic()) * 1000
            try:
                page.wait_for_load_state("load", timeout=timeout_ms)
                page.wait_for_function("() => document.readyState === 'complete'", timeout=timeout_ms)
                return None
            except Exception as exc:
                if not self._is_playwright_error(exc):
                    raise
                if _is_closed_error(exc) or not self._pool.alive():
                    return exc
                if not _is_navigation_error(exc) or time.monotonic() > deadline:
                    return None  # e.g. a page that never finishes loading: read it as it is

    def _read(self, page: Any) -> tuple[observe.PageState, PageStatus]:
        """The page as the agent sees it and the episode's status. Default: wait for a navigation in flight and
        for the next rendering, extract the page, then `page_status`."""
        page.wait_for_load_state("load")  # a click on a link or a submit may still be navigating
        page.evaluate(SETTLE_JS)  # e.g. an `autofocus` lands at the next rendering
        state = observe.extract(page)
        return state, self.page_status(page, state)

    def _observe(self, prefix: str, invalid: str = "") -> Outcome:
        def read(page: Any) -> tuple[observe.PageState, PageStatus, np.ndarray | None]:
            state, status = self._read(page)
            return state, status, (self._screenshot(page, state) if self.use_image else None)

        value, exc = self._read_page(read)
        if exc is not None:
            return self._crash(exc)
        state, status, image = value
        self.page_state = state
        tree = observe.render_tree(state)
        done = bool(status.done)
        reward = float(status.reward) if done else 0.0
        lines = self._header_lines()
        if prefix:
            lines.append(prefix)
        if done and status.message:
            lines.append(status.message)
        lines.append(tree)
        success = done and (reward >= 1.0 - 1e-9 if status.success is None else bool(status.success))
        return Outcome(
            text="\n".join(lines),
            reward=reward,
            terminated=done,
            success=success,
            score=reward,
            invalid_action=bool(invalid),
            error=invalid,
            state=self._obs_state(state, tree, status),
            admissible_actions=self._admissible(state, done),
            image=image,
            extra={"url": state.url, "browser_crashed": False, "raw_reward": reward, **status.extra},
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

    # ---- close ---------------------------------------------------------------------------------------------------
    def _close(self) -> None:
        browser, self._browser = self._browser, None
        try:
            if browser is not None:
                try:
                    browser.call(self._close_browser)
                finally:
                    browser.stop()
        finally:
            try:
                self._release_services()
            finally:
                site, self._site = self._site, None
                if site is not None:
                    release_server(site)

    def _close_browser(self) -> None:
        """On the browser thread: drop the context and this env's use of the browser (the last user stops it)."""
        self._drop_context()
        release_pool(self._pool)
