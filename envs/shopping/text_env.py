"""`turngym/WebShop-v0`: the WebShop task in text mode (Yao et al., 2022), on a generated or user-supplied catalog.

The agent reads WebShop's "simple" text observation (page elements joined by `[SEP]`), acts with `search[query]`
on the search page and `click[element]` elsewhere, and gets the WebShop reward (`reward.py`) when it clicks
`Buy Now`; `success` means reward 1. `info["admissible_actions"]` lists every clickable element, and on the search
page one search with the instruction text. `expert_action()` is an oracle that reads the goal.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from turngym.envs.core import Outcome, TurnEnv
from turngym.envs.shopping.catalog import Catalog
from turngym.envs.shopping.expert import WebShopExpert
from turngym.envs.shopping.reward import type_lexicon, webshop_reward
from turngym.envs.shopping.schema import WEBSHOP_SCHEMA
from turngym.envs.shopping.search import index_for
from turngym.envs.shopping.store import Page, Store
from turngym.tasks.pack import Field

TASK_FIELDS = WEBSHOP_SCHEMA  # record fields and checks (envs/shopping/schema.py)


@lru_cache(maxsize=4)
def store_for(catalog: Catalog) -> Store:
    return Store(catalog, index_for(catalog))


@lru_cache(maxsize=4)
def lexicon_for(catalog: Catalog) -> frozenset[str]:
    return type_lexicon(catalog)


class WebShopEnv(TurnEnv):
    family = "shopping"
    default_pack = "webshop-synth"
    default_split = "train"
    default_max_turns = 15
    task_fields: ClassVar[dict[str, Field]] = TASK_FIELDS
    action_format = (
        "Actions: search[QUERY] on the search page; click[ELEMENT] to click an element shown on the page "
        "(a product id, an option value, description, features, reviews, < prev, next >, back to search, buy now)."
    )

    def _start(self, task: dict[str, Any]) -> Outcome:
        self.catalog, self.lexicon = self.pack.context  # loaded and checked with the pack
        self.store = store_for(self.catalog)
        self.goal = task
        self.page = Page()
        self.expert = WebShopExpert(self.store, task, self.lexicon)
        return self._outcome()

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        return f"WebShop. Instruction: {task['instruction_text']}\n\n{self.action_format}"

    def _admissible(self) -> list[str]:
        if self.page.kind == "search":
            return [f"search[{self.goal['instruction_text']}]"]
        return self.store.admissible_actions(self.page)

    def _outcome(self, prefix: str = "", **kw: Any) -> Outcome:
        text = self.store.render_text(self.page, self.goal["instruction_text"])
        return Outcome(
            text=prefix + text,
            state=self.page.state(),
            admissible_actions=[] if self.page.kind == "done" else self._admissible(),
            **kw,
        )

    def _act(self, action: str) -> Outcome:
        nxt, err = self.store.step(self.page, action)
        if nxt is None:
            return self._outcome(f"Invalid action: {err}.\n", invalid_action=True, error=err)
        self.page = nxt
        if nxt.kind != "done":
            return self._outcome()
        product = self.catalog[nxt.asin]
        reward, parts = webshop_reward(product, self.goal, nxt.chosen, self.lexicon)
        ok = reward >= 1.0 - 1e-9
        return self._outcome(
            reward=reward,
            terminated=True,
            success=ok,
            score=reward,
            extra={"reward_parts": parts, "purchased": {"asin": nxt.asin, "options": nxt.chosen}},
        )

    def expert_action(self) -> str:
        return self.expert.act(self.page)
