"""MiniWoB++ on a real Chromium: `turngym/MiniWoB-<task>-v0` (one task) and `turngym/MiniWoB-v0` (every task).

The task pages come from the `miniwob` PyPI package and are served by a local HTTP server (`server.py`). An episode:
load the task page in this env's own browser context, seed the page's random generator (`Math.seedrandom`, drawn from
the env's seeded generator, so `reset(seed=...)` reproduces the instance), set MiniWoB's episode timer, call
`core.startEpisodeReal()`, read the utterance. Each step parses one action of the grammar in `actions.py`, applies it
and reads MiniWoB's own reward (`WOB_RAW_REWARD_GLOBAL`, `WOB_DONE_GLOBAL`). The browser, the actions, the
observations and `close()` are `BrowserEnv`'s (`env.py`); this class adds MiniWoB's episode start and status read.

Reward: MiniWoB's raw reward r in [-1, 1] when the task ends (its time-discounted `WOB_REWARD_GLOBAL` is not used:
an LLM's thinking time should not change the reward); `score = reward = max(r, 0)`; `success = r >= 1` (stricter
than the literature's r > 0, which counts a half-right click-checkboxes answer); `r` itself is `info["raw_reward"]`. MiniWoB ends an episode after 10 s of wall time; for agents this is off by default
(`episode_max_time_ms=None` sets a 24-day timer), pass a number of milliseconds to get MiniWoB's original behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from turngym.envs.core import Outcome
from turngym.envs.web import observe
from turngym.envs.web.env import BrowserEnv, PageStatus
from turngym.envs.web.schema import WEB_SCHEMA
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


class MiniWoBEnv(BrowserEnv):
    """A MiniWoB++ task in Chromium. Observations: pruned DOM text (+ screenshot, optionally with set-of-marks).

    Args (besides `BrowserEnv`'s, passed by keyword): task: fix one MiniWoB task (a task_id of the `miniwob` pack;
      None samples the pack); episode_max_time_ms: MiniWoB's own timer (None = off); reload_every: reload the task
      page every N episodes (0: only when needed; MiniWoB pages run episode after episode, and a reload costs about
      10x a reset on a loaded page). Defaults: screenshots on, viewport 160x210, action_timeout_ms 1000.
    """

    family = "web"
    default_pack = "miniwob"
    default_max_turns = 20
    task_fields: ClassVar[dict[str, Any]] = WEB_SCHEMA  # fields and checks (envs/web/schema.py)
    default_viewport = DEFAULT_VIEWPORT

    def __init__(
        self,
        task: str | None = None,
        *,
        episode_max_time_ms: int | None = None,
        reload_every: int = 0,
        **options: Any,
    ):
        if episode_max_time_ms is not None and not (0 < int(episode_max_time_ms) <= NO_TIME_LIMIT_MS):
            raise ConfigError(
                f"episode_max_time_ms must be in (0, {NO_TIME_LIMIT_MS}] or None, got {episode_max_time_ms!r}"
            )
        if isinstance(reload_every, bool) or not isinstance(reload_every, int) or reload_every < 0:
            raise ConfigError(f"reload_every must be a non-negative integer, got {reload_every!r}")
        super().__init__(**options)
        self.fixed_task = task
        if task is not None:
            self.load_task_pack().get(task)  # fail now, with the pack's message, on an unknown task
        self.max_time_ms = int(episode_max_time_ms or NO_TIME_LIMIT_MS)
        self.reload_every = reload_every
        self._episodes_on_page = 0
        self.utterance = ""
        self.utterance_fields: dict[str, Any] = {}

    def site_root(self) -> Path:
        return miniwob_html_root()

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
        url = self.page_url(task)
        self.expert_memory: dict[str, Any] = {}

        def load(page: Any) -> None:
            every = 1 if task.get("reload") else self.reload_every
            reuse = page.url == url and (not every or self._episodes_on_page < every)
            if not reuse or not page.evaluate("() => typeof core !== 'undefined'"):
                page.goto(url, wait_until="load")
                page.evaluate(PRELOAD_CSS_IMAGES_JS)
                self._episodes_on_page = 0
            self._episodes_on_page += 1
            # the pointer is state too (CSS :hover): every episode starts it in one place
            page.mouse.move(0, 0)
            utterance = page.evaluate(START_JS, [str(seed), self.max_time_ms])
            # the natural-language variants return {utterance, fields}; fields are what the text asks for
            self.utterance_fields = utterance.get("fields", {}) if isinstance(utterance, dict) else {}
            self.utterance = str(utterance["utterance"] if isinstance(utterance, dict) else utterance)
            page.wait_for_function(
                "() => typeof WOB_TASK_READY === 'undefined' || WOB_TASK_READY", timeout=5000
            )

        return self._open_episode(task, load, f"could not start MiniWoB task {task['task_id']!r} at {url}")

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        return f"Task: {self.utterance}\n\n{self.action_format}"

    def _read(self, page: Any) -> tuple[observe.PageState, PageStatus]:
        # one evaluate reads the page and MiniWoB's reward globals
        raw = page.evaluate(OBSERVE_JS, list(observe.MINIWOB_SKIP_IDS))
        return observe.to_state(raw["obs"]), self._status(raw["status"])

    @staticmethod
    def _status(status: dict[str, Any] | None) -> PageStatus:
        done = bool(status and status["done"])
        raw = float(status["raw"]) if status and done else 0.0
        message = ""
        if done:
            verdict = "succeeded" if raw >= 1.0 - 1e-9 else ("partly succeeded" if raw > 0 else "failed")
            why = f" ({status['reason']})" if status.get("reason") else ""
            message = f"Episode over: the task {verdict}, reward {raw:g}{why}."
        return PageStatus(
            done=done,
            reward=max(0.0, min(1.0, raw)),
            success=done and raw >= 1.0 - 1e-9,
            message=message,
            extra={"raw_reward": raw},
        )

    def _header_lines(self) -> list[str]:
        return [f"Task: {self.utterance}"]

    def _obs_state(self, state: observe.PageState, tree: str, status: PageStatus) -> Any:
        return {"tree": tree, "done": status.done, "raw": status.extra["raw_reward"]}

    def _admissible(self, state: observe.PageState, done: bool) -> list[str]:
        return observe.admissible_actions(state)  # the same list whether or not the episode is over

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
