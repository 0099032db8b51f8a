"""`turngym/ShopAssistant-v0`: serve a simulated customer whose needs are hidden and partly unstated.

Actions:
    ask[QUESTION]                    ask the customer (answered about one topic: budget, an option, or features)
    search[QUERY]                    search the catalog (BM25, top 10 shown)
    view[ASIN]                       a product's title, price, options, features and rating
    recommend[ASIN, NAME: VALUE, ...]  propose a product with chosen options; the customer accepts or rejects
    end                              end the conversation (a failure unless a recommendation was accepted)

Reward: +1 when the customer accepts (the episode ends, success), minus the named costs of every step, reported
in `info["cost"]`: `question` (each ask, default 0.05) and `turn` (each step, default 0.01). So the return is
`success - 0.05 * questions - 0.01 * turns`, and cost-aware training can trade questions against success. The
customer leaves after `patience` (3) rejected recommendations. `score` is 1 on success, else 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from turngym.envs.core import Outcome, TurnEnv
from turngym.envs.shopping.catalog import Product
from turngym.envs.shopping.customer import Customer, RuleCustomer
from turngym.envs.shopping.reward import attribute_matches
from turngym.envs.shopping.schema import ASSISTANT_SCHEMA
from turngym.envs.shopping.text_env import store_for
from turngym.errors import ConfigError
from turngym.tasks.pack import Field

SHOWN = 10
_ACT = re.compile(r"^\s*(ask|search|view|recommend)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
QUESTIONS = {
    "budget": "What is your budget?",
    "features": "Are there any specific features you need?",
    "color": "Which color would you like?",
    "size": "What size do you need?",
    "flavor": "Which flavor would you like?",
    "scent": "Which scent would you like?",
    "model": "Which phone model is it for?",
    "length": "What cable length do you need?",
    "capacity": "What storage capacity do you need?",
    "material": "What material would you like?",
}

TASK_FIELDS = ASSISTANT_SCHEMA  # record fields and checks (envs/shopping/schema.py)


def parse_recommend(arg: str) -> tuple[str, dict[str, str]]:
    """`ASIN, color: red, size: large` -> ("ASIN", {"color": "red", "size": "large"}); bare values keep key ''."""
    parts = [p.strip() for p in arg.split(",")]
    asin = parts[0].upper()
    opts: dict[str, str] = {}
    for i, p in enumerate(parts[1:]):
        if not p:
            continue
        name, sep, value = p.partition(":")
        if sep:
            opts[name.strip().lower()] = value.strip()
        else:
            opts[f"_{i}"] = p
    return asin, opts


class ShopAssistantEnv(TurnEnv):
    family = "shopassistant"
    default_pack = "shopassistant-synth"
    default_max_turns = 20
    task_fields: ClassVar[dict[str, Field]] = TASK_FIELDS
    action_format = (
        "Actions: ask[QUESTION], search[QUERY], view[ASIN], recommend[ASIN, NAME: VALUE, ...] (one value per option "
        "of the product), end. Each question and each turn has a cost; the customer answers one thing per question."
    )

    def __init__(
        self,
        *args: Any,
        question_cost: float = 0.05,
        turn_cost: float = 0.01,
        customer: Callable[[dict[str, Any]], Customer] | None = None,
        **kwargs: Any,
    ):
        """`customer`: a factory profile -> Customer (default `RuleCustomer`; see `customer.LLMCustomer`)."""
        super().__init__(*args, **kwargs)
        if customer is not None and not callable(customer):
            raise ConfigError(
                f"customer must be a callable profile -> Customer, got {type(customer).__name__}"
            )
        self._customer_factory = customer or RuleCustomer
        for name, v in (("question_cost", question_cost), ("turn_cost", turn_cost)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {v!r}")
        self.question_cost = float(question_cost)
        self.turn_cost = float(turn_cost)

    # ---- episode ------------------------------------------------------------------------------------------------
    def make_customer(self, task: dict[str, Any]) -> Customer:
        return self._customer_factory(task)

    def _start(self, task: dict[str, Any]) -> Outcome:
        self.catalog = self.pack.context[0]  # loaded and checked with the pack
        self.store = store_for(self.catalog)
        self.customer = self.make_customer(task)
        self.results: list[str] = []
        self.searches: list[str] = []
        self.viewed: str = ""
        self.accepted = False
        self.last_verdict = ""
        return self._out(f"Customer: {self.customer.opening()}")

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        return f"You are a shopping assistant. {first.text}\n\n{self.action_format}"

    def _admissible(self) -> list[str]:
        acts = [f"ask[{q}]" for q in QUESTIONS.values()]
        acts.append(f"search[{self.task['noun']}]")
        acts += [f"view[{a}]" for a in self.results]
        if self.viewed:
            p = self.catalog[self.viewed]
            opts = ", ".join(f"{k}: {v[0]}" for k, v in p.options.items())
            acts.append(f"recommend[{p.asin}{', ' + opts if opts else ''}]")
        return acts + ["end"]

    def _out(self, text: str, **kw: Any) -> Outcome:
        cost = kw.pop("cost", {})
        return Outcome(
            text=text,
            state=(self.customer.state(), tuple(self.results), self.viewed, self.accepted, text),
            admissible_actions=self._admissible(),
            cost=cost,
            **kw,
        )

    def _act(self, action: str) -> Outcome:
        cost = {"turn": self.turn_cost}
        step_cost = self.turn_cost
        a = action.strip()
        if a.lower() == "end":
            return self._out(
                "You ended the conversation. Customer: Okay, bye.",
                terminated=True,
                reward=-step_cost,
                cost=cost,
            )
        m = _ACT.match(a)
        if not m:
            err = "expected ask[...], search[...], view[...], recommend[...] or end"
            return self._out(
                f"Invalid action: {err}.", invalid_action=True, error=err, reward=-step_cost, cost=cost
            )
        verb, arg = m.group(1).lower(), m.group(2).strip()
        if not arg:
            err = f"{verb}[...] needs an argument"
            return self._out(
                f"Invalid action: {err}.", invalid_action=True, error=err, reward=-step_cost, cost=cost
            )
        if verb == "ask":
            cost["question"] = self.question_cost
            reply = self.customer.reply(arg)
            return self._out(f"Customer: {reply}", reward=-(step_cost + self.question_cost), cost=cost)
        if verb == "search":
            self.searches.append(arg)
            self.results = self.store.results(arg)[:SHOWN]
            if not self.results:
                return self._out(f"No results for {arg!r}.", reward=-step_cost, cost=cost, tool_calls=1)
            lines = [f"[{x}] {self.catalog[x].title} ${self.catalog[x].price:.2f}" for x in self.results]
            return self._out(
                f"Results for {arg!r}:\n" + "\n".join(lines), reward=-step_cost, cost=cost, tool_calls=1
            )
        if verb == "view":
            asin = arg.upper()
            if asin not in self.catalog:
                err = f"no product {arg[:40]!r}"
                return self._out(
                    f"Invalid action: {err}.", invalid_action=True, error=err, reward=-step_cost, cost=cost
                )
            self.viewed = asin
            return self._out(self._describe(self.catalog[asin]), reward=-step_cost, cost=cost, tool_calls=1)
        return self._recommend(arg, cost, step_cost)

    def _describe(self, p: Product) -> str:
        opts = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.options.items()) or "none"
        return (
            f"[{p.asin}] {p.title}\nPrice: ${p.price:.2f}\nOptions: {opts}\nFeatures: {' | '.join(p.features)}\n"
            f"Rating: {p.rating if p.reviews else 'N.A.'}"
        )

    def _recommend(self, arg: str, cost: dict[str, float], step_cost: float) -> Outcome:
        asin, raw = parse_recommend(arg)
        if asin not in self.catalog:
            err = f"no product {asin[:40]!r}"
            return self._out(
                f"Invalid action: {err}.", invalid_action=True, error=err, reward=-step_cost, cost=cost
            )
        p = self.catalog[asin]
        chosen: dict[str, str] = {}
        for key, value in raw.items():
            names = (
                [key]
                if not key.startswith("_")
                else [n for n, vs in p.options.items() if value.lower() in (x.lower() for x in vs)]
            )
            if not names or names[0] not in p.options:
                err = f"product {asin} has no option {value if key.startswith('_') else key!r}; its options: {sorted(p.options)}"
                return self._out(
                    f"Invalid action: {err}.", invalid_action=True, error=err, reward=-step_cost, cost=cost
                )
            match = next((x for x in p.options[names[0]] if x.lower() == value.lower()), None)
            if match is None:
                err = f"{names[0]} {value!r} is not offered for {asin}; choose from {p.options[names[0]]}"
                return self._out(
                    f"Invalid action: {err}.", invalid_action=True, error=err, reward=-step_cost, cost=cost
                )
            chosen[names[0]] = match
        verdict = self.customer.judge(p, chosen)
        self.last_verdict = verdict.reason
        if verdict.accepted:
            self.accepted = True
            return self._out(
                f"Customer: {verdict.text}",
                terminated=True,
                success=True,
                score=1.0,
                reward=1.0 - step_cost,
                cost=cost,
            )
        patience = int(self.task.get("patience", 3))
        if getattr(self.customer, "rejections", 0) >= patience:
            return self._out(
                f"Customer: {verdict.text} I think I'll look elsewhere. Bye.",
                terminated=True,
                reward=-step_cost,
                cost=cost,
            )
        return self._out(f"Customer: {verdict.text}", reward=-step_cost, cost=cost)

    # ---- expert -------------------------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """Ask only what is still hidden and matters (one question per unknown), then search and recommend."""
        c = self.customer
        if not isinstance(c, RuleCustomer):
            raise NotImplementedError("the ShopAssistant expert reads the rule-based customer's state")
        if not c.revealed_budget:
            return f"ask[{QUESTIONS['budget']}]"
        if any(a not in c.revealed_attrs for a in c.must_have):
            return f"ask[{QUESTIONS['features']}]"
        changing = (c.profile.get("change") or {}).get("option") if not c.changed else None
        for name in c.prefs:
            # the option the customer will change their mind about is not worth a question: the first
            # recommendation reveals its final value
            if name not in c.revealed_options and name != changing and name in QUESTIONS:
                return f"ask[{QUESTIONS[name]}]"
        known = {n: c.prefs[n] for n in c.revealed_options if n in c.prefs}
        query = f"{self.task['noun']} {' '.join(c.revealed_attrs)}".strip()
        if query not in self.searches:
            return f"search[{query}]"
        pick = self._pick(self.results, known)
        if pick is None:
            target = self.catalog[self.task["asin"]]
            if target.title not in self.searches:
                return f"search[{target.title}]"
            pick = self._pick(self.results, known) or target
        opts = ", ".join(f"{k}: {v}" for k, v in self._options(pick, known).items())
        return f"recommend[{pick.asin}{', ' + opts if opts else ''}]"

    def _options(self, p: Product, known: dict[str, str]) -> dict[str, str]:
        return {n: next((v for v in vs if v == known.get(n)), vs[0]) for n, vs in p.options.items()}

    def _pick(self, asins: list[str], known: dict[str, str]) -> Product | None:
        c = self.customer
        assert isinstance(c, RuleCustomer)
        for a in asins:
            p = self.catalog[a]
            if (
                p.query == self.task["query"]
                and p.price <= float(self.task["budget"])
                and all(attribute_matches(p, [x]) for x in c.revealed_attrs)
                and all(v in p.options.get(n, []) for n, v in known.items())
            ):
                return p
        return None
