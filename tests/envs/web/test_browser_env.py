"""`BrowserEnv`: a new browser task family written against the base with only its task-specific hooks.

The family here is a one-page task pack (a folder made by the test: manifest, records, one HTML page) whose page has
two buttons; the record names the one to press. The env class supplies `site_root()` (the pack folder, served by
the process's local HTTP server) and `page_status()` (the page's own `window.result`); everything else (browser,
actions, observations, screenshots, close) is the base's. It runs on a real Chromium.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from turngym.envs.checker import check_env, check_info
from turngym.envs.web.browser import BrowserConfig, chromium_pids
from turngym.envs.web.env import BrowserEnv, PageStatus
from turngym.errors import ConfigError
from turngym.optional import is_available
from turngym.tasks.pack import Field

needs_chromium = pytest.mark.skipif(
    not (is_available("playwright") and BrowserConfig().resolved_executable()),
    reason="needs playwright and Debian chromium (pip install 'turngym[web]'; apt-get install chromium)",
)

PAGE = """<!doctype html>
<html><body>
<p id="goal"></p>
<button onclick="press(this)">Go</button>
<button onclick="press(this)">Stop</button>
<script>
  const target = new URLSearchParams(location.search).get("target");
  document.getElementById("goal").textContent = "Press " + target;
  function press(button) {
    const label = button.textContent;
    window.result = {label: label, reward: label === target ? 1 : 0};
  }
</script>
</body></html>
"""


class OneButtonEnv(BrowserEnv):
    """Press the button the task names: reward 1 for it, 0 for the other one; either press ends the episode."""

    family = "onebutton"
    default_max_turns = 5
    task_fields = {
        "page": Field(str, doc="the page, relative to the pack folder", example="press.html?target=Go")
    }

    def site_root(self) -> Path:
        return self.load_task_pack().root

    def page_status(self, page: Any, state: Any) -> PageStatus:
        result = page.evaluate("() => window.result || null")
        if result is None:
            return PageStatus()
        return PageStatus(
            done=True, reward=float(result["reward"]), message=f"Episode over: pressed {result['label']}."
        )


@pytest.fixture
def pack(tmp_path: Path) -> str:
    root = tmp_path / "one-button"
    root.mkdir()
    (root / "press.html").write_text(PAGE, encoding="utf-8")
    manifest = {
        "name": "one-button",
        "version": "1.0.0",
        "family": "onebutton",
        "schema_version": 1,
        "splits": {"train": "train.jsonl"},
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    records = [{"task_id": f"press-{t.lower()}", "page": f"press.html?target={t}"} for t in ("Go", "Stop")]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(root)


def button(env: OneButtonEnv, label: str) -> int:
    return next(e["id"] for e in env.page_state.elements if e["tag"] == "button" and e.get("text") == label)


def settle_no_chromium(before: set[int]) -> set[int]:
    deadline = time.time() + 5
    while chromium_pids() - before and time.time() < deadline:
        time.sleep(0.05)
    return chromium_pids() - before


@needs_chromium
@pytest.mark.browser
def test_a_one_button_family_plays_on_chromium_and_leaves_no_process(pack):
    before, threads = chromium_pids(), set(threading.enumerate())
    env = OneButtonEnv(task_pack=pack, viewport=(240, 120))
    assert not chromium_pids() - before, "making the env launched a browser"
    try:
        obs, info = env.reset(options={"task_id": "press-go"})
        check_info(info, "reset")
        assert chromium_pids() - before
        text = obs["text"]
        assert "Press Go" in text and 'button "Go"' in text and 'button "Stop"' in text
        assert text.splitlines()[0].startswith("URL: http://127.0.0.1:") and "press.html?target=Go" in text
        assert obs["image"].shape == (120, 240, 3) and obs["image"].std() > 5  # a real screenshot
        go, stop = button(env, "Go"), button(env, "Stop")
        assert info["admissible_actions"] == [f"click({go})", f"click({stop})", "noop()"]

        obs, r, term, trunc, info = env.step("click(9999)")
        assert info["invalid_action"] and "9999" in info["error"] and not term and r == 0.0
        obs, r, term, trunc, info = env.step("press the button")
        assert info["invalid_action"] and info["error"] and not term
        obs, r, term, trunc, info = env.step('goto("https://example.com/")')
        assert info["invalid_action"] and not term  # only the site's origin may be opened

        obs, r, term, trunc, info = env.step(f"click({go})")
        assert term and not trunc and r == 1.0 and info["success"] and info["score"] == 1.0
        assert info["raw_reward"] == 1.0 and not info["browser_crashed"] and info["admissible_actions"] == []
        assert "Episode over: pressed Go." in obs["text"] and info["url"].endswith("press.html?target=Go")

        obs, info = env.reset(options={"task_id": "press-go"})
        assert "Episode over" not in obs["text"]  # a fresh page: the last episode's press is gone
        obs, r, term, trunc, info = env.step(f"click({button(env, 'Stop')})")
        assert term and r == 0.0 and not info["success"] and "pressed Stop" in obs["text"]

        # same seed, same task; the pack's two tasks both come up
        assert env.reset(seed=3)[1]["task_id"] == env.reset(seed=3)[1]["task_id"]
        assert {env.reset(seed=s)[1]["task_id"] for s in range(6)} == {"press-go", "press-stop"}
    finally:
        env.close()
    assert not settle_no_chromium(before), "Chromium processes left after close()"
    left = [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert not left, f"threads left after close(): {left}"  # the browser thread and the site's HTTP server


@needs_chromium
@pytest.mark.browser
def test_the_one_button_family_passes_check_env(pack):
    before = chromium_pids()
    check_env(
        OneButtonEnv(task_pack=pack, viewport=(240, 120)), make=lambda: OneButtonEnv(task_pack=pack), steps=3
    )
    assert not settle_no_chromium(before)


def test_bad_browser_options_are_config_errors(pack):
    for kwargs, words in [
        ({"viewport": (10, 10)}, "between 16 and 4096"),
        ({"viewport": "big"}, "(width, height)"),
        ({"action_timeout_ms": 0}, "positive number"),
        ({"action_timeout_ms": "fast"}, "positive number"),
        ({"browser": "chromium"}, "BrowserConfig"),
        ({"browser": {"executable_path": "/no/such/chromium"}}, "does not exist"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(words)):
            OneButtonEnv(task_pack=pack, **kwargs)


@needs_chromium
@pytest.mark.browser
def test_a_family_without_a_page_is_told_what_to_override(pack):
    class NoPage(BrowserEnv):
        family = "onebutton"
        task_fields = OneButtonEnv.task_fields

    before = chromium_pids()
    env = NoPage(task_pack=pack)
    try:
        with pytest.raises(NotImplementedError, match=r"site_root\(\), page_url\(task\) or _start\(task\)"):
            env.reset(seed=0)
    finally:
        env.close()
    assert not settle_no_chromium(before)
