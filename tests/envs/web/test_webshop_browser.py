"""`turngym/WebShopBrowser-v0`: the shopping store's web mode played in the web env's Chromium."""

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gymnasium as gym
import pytest

from turngym.envs.checker import check_env
from turngym.envs.web.browser import _cmdline, browser_main_pids, chromium_pids
from turngym.registration import entry
from turngym.tasks.pack import load_pack

from .conftest import needs_browser
from .test_miniwob import run_in_thread

pytestmark = [needs_browser, pytest.mark.browser]
ID = "turngym/WebShopBrowser-v0"


@pytest.fixture(scope="module")
def shops(shared_browser):
    """Keep the store of each split the tests use alive for the module (building its search index costs seconds)."""
    from turngym.envs.web.webshop import acquire_shop, release_shop

    root = str(load_pack("webshop-synth").root)
    held = [acquire_shop(root, split) for split in ("train", "test")]
    yield {s.split: s for s in held}
    for s in held:
        release_shop(s)


def play_expert(env, task_id, split="test"):
    obs, info = env.reset(options={"task_id": task_id, "split": split})
    for _ in range(env.unwrapped.max_turns):
        obs, r, term, trunc, info = env.step(env.unwrapped.expert_action())
        assert not info["invalid_action"], info["error"]
        if term or trunc:
            return obs, r, info
    raise AssertionError("the expert did not finish")


def test_registered_in_its_own_family():
    e = entry(ID)
    assert e.family == "webshopbrowser" and e.default_pack == "webshop-synth"


def test_check_env(shops):
    check_env(ID, steps=4)


def test_expert_buys_with_reward_1(shops):
    env = gym.make(ID)
    try:
        for tid in load_pack("webshop-synth").task_ids("test")[:3]:
            obs, r, info = play_expert(env, tid)
            assert r == 1.0 and info["success"], (tid, info)
            assert "Episode over: purchased, WebShop reward 1.0000" in obs["text"]
            task = env.unwrapped.task
            # the reward is the store's session: the purchase is the target (or an equally scored product)
            assert info["reward_parts"] and info["purchased"]["options"] == {
                k: v for k, v in task["goal_options"].items() if k in info["purchased"]["options"]
            }
    finally:
        env.close()


def test_observation_and_invalid_actions(shops):
    env = gym.make(ID, image=True, viewport=(640, 480))
    try:
        obs, info = env.reset(seed=1, options={"split": "test"})
        assert obs["image"].shape == (480, 640, 3) and obs["image"].std() > 5
        text = obs["text"]
        assert env.unwrapped.task["instruction_text"] in text and 'placeholder="Search..."' in text
        box = next(ln for ln in text.splitlines() if "placeholder=" in ln).strip().split("]")[0][1:]
        obs, r, term, trunc, info = env.step("click(9999)")
        assert info["invalid_action"] and "no element with id 9999" in info["error"] and not term
        obs, r, term, trunc, info = env.step(f'fill({box}, "zzzqqq nothing")')
        obs, r, term, trunc, info = env.step('press("Enter")')
        assert not info["invalid_action"] and "/search?q=zzzqqq" in obs["text"] and r == 0 and not term
        obs, r, term, trunc, info = env.step('goto("https://example.com/")')
        assert info["invalid_action"] and "example.com" in info["error"]
        shop = env.unwrapped.allowed_origins[0]
        for other in (f"{shop}/fixed_0/", f"{shop}/api/sessions/{env.unwrapped.session['session_id']}"):
            obs, r, term, trunc, info = env.step(f'goto("{other}")')
            assert info["invalid_action"] and "only this episode's store pages" in info["error"], other
        obs, r, term, trunc, info = env.step(f'goto("{env.unwrapped.session["url"]}")')
        assert (
            not info["invalid_action"]
            and obs["text"].splitlines()[1] == f"URL: {env.unwrapped.session['url']}"
        )
    finally:
        env.close()


def test_two_concurrent_envs_are_isolated(shops):
    a, b = gym.make(ID), gym.make(ID)
    try:
        tasks = load_pack("webshop-synth").task_ids("test")
        a.reset(options={"task_id": tasks[5], "split": "test"})
        b.reset(options={"task_id": tasks[6], "split": "test"})
        ua, ub = a.unwrapped, b.unwrapped
        assert ua.session["session_id"] != ub.session["session_id"]
        ua.in_browser(
            ua._page.evaluate, "() => { document.cookie = 'cart=a'; localStorage.setItem('who', 'a'); }"
        )
        js = "() => document.cookie + '|' + localStorage.getItem('who')"
        assert ub.in_browser(ub._page.evaluate, js) == "|null"
        # interleave the two experts step by step: each buys its own target, neither sees the other's purchase
        done = {}
        for _ in range(ua.max_turns):
            for name, env in (("a", a), ("b", b)):
                if name in done:
                    continue
                _, r, term, _, info = env.step(env.unwrapped.expert_action())
                if term:
                    done[name] = info
                    other = ub if name == "a" else ua
                    if ("b" if name == "a" else "a") not in done:
                        assert not other._session_state()["done"]
            if len(done) == 2:
                break
        assert done["a"]["success"] and done["b"]["success"]
        assert ua._session_state()["task_id"] == tasks[5] and ub._session_state()["task_id"] == tasks[6]
        assert done["a"]["purchased"]["asin"] == ua.task["asin"] or done["a"]["reward_parts"]
    finally:
        a.close()
        b.close()


def test_crash_recovery_and_close_leaves_no_chromium(shops):
    """In a fresh thread (its own Chromium): kill Chromium mid-episode, the episode ends with a clear error, the next
    reset runs on a fresh browser, and close() leaves none of this thread's Chromium processes behind."""

    def episode():
        before = chromium_pids()
        # browsers already running in this process (the session's shared browser) may start helpers at any time;
        # those are theirs, not this env's
        others = browser_main_pids() & before

        def theirs():
            return set().union(*(chromium_pids(m) for m in others if m in chromium_pids()))

        env = gym.make(ID)
        env.reset(seed=0, options={"split": "test"})
        env.step(env.unwrapped.expert_action())
        old = env.unwrapped._pool.main_pid
        assert old in browser_main_pids() and chromium_pids() - before
        os.kill(old, signal.SIGKILL)
        obs, r, term, trunc, info = env.step(env.unwrapped.expert_action())
        assert term and not info["success"] and info["browser_crashed"] and "browser died" in info["error"]
        obs, info = env.reset(seed=1, options={"split": "test"})
        assert env.unwrapped._pool.main_pid != old and env.unwrapped.task["instruction_text"] in obs["text"]
        obs, r, term, trunc, info = env.step(env.unwrapped.expert_action())
        assert not info["invalid_action"] and not info["browser_crashed"]
        mine = chromium_pids() - before - theirs()
        assert env.unwrapped._pool.main_pid in mine
        env.close()
        deadline = time.time() + 5
        while mine & chromium_pids() and time.time() < deadline:
            time.sleep(0.05)
        return {p: " ".join(_cmdline(p))[:120] for p in mine & chromium_pids()}

    left = run_in_thread(episode)
    assert left == {}, f"Chromium processes left after close(): {left}"


@pytest.fixture
def slow_page():
    """A real HTTP server whose pages stay `interactive` for 0.5 s after they commit (their image answers late);
    its form at /form submits to /result, which answers 1.5 s late."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            image = self.path.startswith("/img")
            if image or self.path.startswith("/result"):
                time.sleep(0.5 if image else 1.5)
            if image:
                body = b"GIF89a"
            elif self.path.startswith("/form"):
                body = b"<html><body><form action='/result'><input name='q'><button>Send</button></form></body></html>"
            else:
                body = f"<html><body><h1>at {self.path}</h1><img src='/img'></body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "image/gif" if image else "text/html")
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:  # the browser left the page before the image came
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/page"
    server.shutdown()
    server.server_close()


def test_an_action_whose_page_loads_slower_than_its_timeout_did_not_fail(shops, slow_page):
    """A click on a submit button whose server answers after the action's timeout: Playwright times out waiting for
    the navigation the click started. The click happened, so it is not a failed (invalid) action, and the
    observation is the new page once it has loaded, not the old one (which stays `complete` until the new one
    commits). Pressing Enter in the form (Playwright's own 10 s wait) gives the same page."""
    env = gym.make(
        ID, action_timeout_ms=600
    )  # long enough to find the button under load, shorter than /result
    try:
        env.reset(seed=3, options={"split": "test"})
        inner = env.unwrapped
        form = slow_page.replace("/page", "/form")
        for i, action in enumerate(["click", "press"]):
            inner.in_browser(lambda u=f"{form}?try={i}": inner._page.goto(u))
            obs, *_ = env.step("noop()")
            lines = obs["text"].splitlines()
            box = next(ln for ln in lines if " input" in ln).strip().split("]")[0][1:]
            send = next(ln for ln in lines if '"Send"' in ln).strip().split("]")[0][1:]
            env.step(f'fill({box}, "q{i}")')
            act = f"click({send})" if action == "click" else 'press("Enter")'
            obs, r, term, trunc, info = env.step(act)
            assert not info["invalid_action"] and not info["error"], (act, info["error"])
            assert f"at /result?q=q{i}" in obs["text"], (act, obs["text"][:300])
            assert inner.in_browser(lambda: inner._page.evaluate("() => document.readyState")) == "complete"
        assert not inner.crashed
    finally:
        env.close()


def test_a_read_that_races_a_navigation_is_read_again(shops, slow_page):
    """A submit returns before the new document commits; a read landing in the dying context must be retried on the
    new page once it has loaded, never reported as a dead browser (the race CI once hit after press("Enter")), and
    never read while the new page is still loading: right after the race Playwright's own load state can still be
    the old document's (its `wait_for_load_state` then returned at once and the read found `interactive`, about one
    try in two)."""
    env = gym.make(ID)
    try:
        env.reset(seed=3, options={"split": "test"})
        inner = env.unwrapped
        for i in range(4):
            calls = []

            def read(page, calls=calls, url=f"{slow_page}?try={i}"):
                calls.append(page.url)
                if len(calls) == 1:  # navigate away while this very evaluate is running
                    return page.evaluate(
                        "(u) => { location.href = u; return new Promise((r) => setTimeout(r, 5000)); }", url
                    )
                return page.evaluate("() => [document.readyState, location.href]")

            value, exc = inner.in_browser(inner._read_page, read)
            assert exc is None and value == ["complete", f"{slow_page}?try={i}"] and len(calls) >= 2, (
                value,
                exc,
            )
        assert not inner.crashed
        # and the real thing, many times over: search by pressing Enter never kills the episode
        for i in range(6):
            obs, info = env.reset(seed=i, options={"split": "test"})
            box = (
                next(ln for ln in obs["text"].splitlines() if "placeholder=" in ln).strip().split("]")[0][1:]
            )
            env.step(f'fill({box}, "race{i}")')
            obs, r, term, trunc, info = env.step('press("Enter")')
            assert not term and not info["error"] and f"/search?q=race{i}" in obs["text"], obs["text"][:300]
    finally:
        env.close()
