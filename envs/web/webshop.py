"""`turngym/WebShopBrowser-v0`: the WebShop store (envs/shopping) played in a real Chromium through the web env.

Same store, tasks (`webshop-synth`) and WebShop reward as `turngym/WebShop-v0`, but the agent sees the store's HTML
pages the way every web env here does (`observe.py`: pruned DOM text with `[N]` element ids, URL, focused element,
optionally a screenshot) and acts with the web grammar (`actions.py`: `click(ID)`, `fill(ID, "text")`,
`press("Enter")`, ...). An episode: `POST /api/sessions` on the shopping HTTP store (`envs/shopping/server.py`, one
server per pack/split shared by the process) for the episode's task, open the returned `url` in this env's own
browser context (`browser.py`'s pool, so concurrent envs never share cookies or state), and after every action read
the session at `GET /api/sessions/<sid>`: when it is `done` (the agent pressed Buy Now) the episode ends with the
session's WebShop reward; `success` is reward 1.

The browser plumbing (contexts, crash recovery, action execution, observations, screenshots, close) is
`BrowserEnv`'s (`env.py`): this class adds only what is WebShop's (the store and its sessions, the episode start, the
status read, which `goto` targets are allowed, the expert).
`expert_action()` plays the shopping oracle (`envs/shopping/expert.py`) through browser actions.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any, ClassVar
from urllib.parse import urlsplit

from turngym.envs.core import Outcome
from turngym.envs.shopping.expert import WebShopExpert
from turngym.envs.shopping.server import ShopServer
from turngym.envs.shopping.store import BACK, BUY, NEXT, PREV, SUBPAGES
from turngym.envs.shopping.text_env import TASK_FIELDS, lexicon_for
from turngym.envs.web import observe
from turngym.envs.web.actions import origin, parse_action
from turngym.envs.web.env import BrowserEnv, PageStatus
from turngym.errors import EnvError
from turngym.tasks.pack import TaskPack

log = logging.getLogger(__name__)

DEFAULT_VIEWPORT = (800, 600)


# ---- one shopping HTTP store per (pack, split), shared by the envs of the process ----------------------------------
_SHOPS: dict[tuple[str, str], ShopServer] = {}
_SHOP_USERS: dict[tuple[str, str], int] = {}
_LOCK = threading.Lock()


def acquire_shop(pack: str, split: str) -> ShopServer:
    """The running store for `pack`/`split` (started on first use); pair every call with `release_shop`."""
    key = (pack, split)
    with _LOCK:
        shop = _SHOPS.get(key)
        if shop is None:
            shop = _SHOPS[key] = ShopServer(pack, split).start()
            log.debug("shopping store for %s/%s at %s", pack, split, shop.url)
        _SHOP_USERS[key] = _SHOP_USERS.get(key, 0) + 1
        return shop


def release_shop(shop: ShopServer) -> None:
    with _LOCK:
        key = next((k for k, v in _SHOPS.items() if v is shop), None)
        if key is None:
            return
        _SHOP_USERS[key] -= 1
        if _SHOP_USERS[key] <= 0:
            del _SHOPS[key], _SHOP_USERS[key]
            shop.close()


def _http_json(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


class WebShopBrowserEnv(BrowserEnv):
    """WebShop in Chromium. Observations: pruned DOM text (+ screenshot); actions: the web grammar.

    Args: `BrowserEnv`'s, passed by keyword. Defaults: no screenshots (the store is text-rich and a 800x600
      screenshot per step is costly), viewport 800x600, action_timeout_ms 2000.
    """

    family = "webshopbrowser"
    default_pack = "webshop-synth"
    default_split = "train"
    default_max_turns = 30  # the text env's 15, doubled: a search is fill + click here
    task_fields: ClassVar[dict[str, Any]] = TASK_FIELDS
    pack_family = "shopping"  # plays the shopping family's packs, validated with its fields
    default_viewport = DEFAULT_VIEWPORT
    default_image = False
    default_action_timeout_ms = 2000

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._shops: dict[str, ShopServer] = {}  # by split, acquired on first use
        self._shop: ShopServer | None = None
        self.session: dict[str, Any] = {}
        self.expert: WebShopExpert | None = None

    def _shop_for(self, pack: TaskPack, split: str) -> ShopServer:
        key = f"{pack.root}::{split}"
        if key not in self._shops:
            self._shops[key] = acquire_shop(str(pack.root), split)
        return self._shops[key]

    # ---- episode -------------------------------------------------------------------------------------------------
    def _start(self, task: dict[str, Any]) -> Outcome:
        assert self.pack is not None
        self._shop = shop = self._shop_for(self.pack, self.split)
        self.allowed_origins = [shop.url]
        self._delete_session()  # the previous episode's session is no longer needed
        created = self._create_session(shop, task["task_id"])
        self.session = {"session_id": created["session_id"], "url": created["url"], "shop": shop.url}
        self.expert = WebShopExpert(shop.store, task, lexicon_for(shop.catalog))
        url = created["url"]
        return self._open_episode(
            task,
            lambda page: page.goto(url, wait_until="load"),
            f"could not open the WebShop session at {url}",
        )

    def _create_session(self, shop: ShopServer, task_id: str) -> dict[str, Any]:
        """A store session for `task_id`. Its id (part of every page URL, so of the observation) is drawn from the
        env's seeded generator, so a seeded reset is reproducible; if another live env drew the same id (same seed),
        the store refuses it and a random id is used instead."""
        sid = f"ep{int(self.np_random.integers(2**63 - 1)):016x}"
        try:
            return _http_json(f"{shop.url}/api/sessions", "POST", {"task_id": task_id, "session_id": sid})
        except urllib.error.HTTPError as exc:
            if exc.code != 400:
                raise
            log.info("session id %s is taken (%s); using a random one", sid, exc)
            return _http_json(f"{shop.url}/api/sessions", "POST", {"task_id": task_id})

    def _delete_session(self) -> None:
        if not self.session.get("session_id"):
            return
        try:
            _http_json(f"{self.session['shop']}/api/sessions/{self.session['session_id']}", "DELETE")
        except OSError as exc:
            log.debug("deleting session %s: %s", self.session["session_id"], exc)
        self.session = {}

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        return f"WebShop (browser). Instruction: {task['instruction_text']}\n\n{self.action_format}"

    def _act(self, action: str) -> Outcome:
        # `goto` may only open this episode's own store pages: another session's URL (or `fixed_<n>`) would let the
        # agent act in, or buy for, a session that is not its own.
        try:
            parsed = parse_action(action)
            own_shop = parsed.name == "goto" and origin(str(parsed.args[0])) == origin(self.session["shop"])
        except Exception:
            return super()._act(action)  # reports what is wrong with the action
        if own_shop:
            path = urlsplit(str(parsed.args[0])).path
            if not path.startswith(f"/{self.session['session_id']}/"):
                err = f"goto(): only this episode's store pages ({self.session['url']}...) may be opened"
                return self._observe(prefix=f"Invalid action: {err}", invalid=err)
        return super()._act(action)

    def _session_state(self) -> dict[str, Any]:
        return _http_json(f"{self.session['shop']}/api/sessions/{self.session['session_id']}")

    def page_status(self, page: Any, state: observe.PageState) -> PageStatus:
        sess = self._session_state()
        if not sess["done"]:  # the agent has not pressed Buy Now
            return PageStatus()
        reward = float(sess["reward"] or 0.0)
        return PageStatus(
            done=True,
            reward=reward,
            message=f"Episode over: purchased, WebShop reward {reward:.4f}.",
            extra={"reward_parts": sess["reward_parts"], "purchased": sess["purchased"]},
        )

    def _obs_state(self, state: observe.PageState, tree: str, status: PageStatus) -> Any:
        return {"url": state.url, "done": status.done}

    def _admissible(self, state: observe.PageState, done: bool) -> list[str]:
        return [] if done else observe.admissible_actions(state, skip_tags=("input",), noop=False)

    # ---- expert --------------------------------------------------------------------------------------------------
    def _dom_id(self, selector: str, text: str | None = None, prefer_unselected: bool = False) -> int | None:
        """The `[N]` id of the first element matching `selector` (and, if given, whose text is `text`, any case)."""
        found = self._page.eval_on_selector_all(
            selector,
            "els => els.map(e => [e.getAttribute('data-tg-id'), e.textContent.trim(), e.className])",
        )
        hits = [f for f in found if f[0] and (text is None or f[1].lower() == text.lower())]
        if prefer_unselected:
            hits.sort(key=lambda f: "selected" in (f[2] or ""))
        return int(hits[0][0]) if hits else None

    def _expert_move(self) -> str:
        """The shopping oracle's next move, as a browser action: `search[q]` becomes `fill(search box, q)` then
        `click(Search)`; `click[label]` becomes `click(id)` of the link/button the store renders for that label."""
        if self.task is None or self.page_state is None or self._shop is None or self.expert is None:
            raise NotImplementedError("call reset() first")
        try:
            return self._expert_action()
        except Exception as exc:
            if not self._is_playwright_error(exc):
                raise
            # the page cannot be read (the browser died): a no-op step reports the crash as the episode's end
            log.warning("expert could not read the page (%s); answering noop()", str(exc).split("\n", 1)[0])
            return "noop()"

    def _expert_action(self) -> str:
        assert self._shop is not None and self.page_state is not None and self.expert is not None
        _, page = self._shop.page_from_url(self.page_state.url)
        if page is None:
            return f'goto("{self.session["url"]}")'
        if page.kind == "search":
            box = self.page_state.by_id(self._dom_id("#search_input") or -1)
            if box is not None and box.get("value"):
                return f"click({self._dom_id('#search-button')})"
            text = self.expert.act(page)  # advances the oracle's query list: only once per search
            query = text[len("search[") : -1]
            return f"fill({self._dom_id('#search_input')}, {json.dumps(query)})"
        text = self.expert.act(page)
        label = text[len("click[") : -1]
        fixed = {
            BACK: "#back-to-search",
            NEXT: "#next",
            PREV: "#prev",
            BUY: "#buy-now",
            **{sp: f"a.btn#{sp}" for sp in SUBPAGES},
        }
        if label in fixed:
            eid = self._dom_id(fixed[label])
        elif page.kind == "results":
            eid = self._dom_id("a.product-link", label)
        else:
            eid = self._dom_id("a.opt", label, prefer_unselected=True)
        if eid is None:
            raise EnvError(f"the expert's {text} has no element on {self.page_state.url}")
        return f"click({eid})"

    def _release_services(self) -> None:
        self._delete_session()
        for shop in self._shops.values():
            release_shop(shop)
        self._shops.clear()
