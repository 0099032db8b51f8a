"""Scripted policies for EmbodiedSearch: the cost-optimal expert, a wasteful expert and a never-ask baseline.

Expert (`expert_action`, used by `ExpertAgent` through `env.unwrapped.expert_action()`): knows the hidden state
(which object is meant and where it is) and takes the cheapest plan that never commits on unjustified grounds:
it identifies the object before acting on it (asks its colour when the request is ambiguous) and gets evidence for
its location before walking (recalls memory when memory is still right and cheaper than asking, otherwise asks the
person where it is), then walks the shortest path there, opens, picks up if asked to fetch, and says done. It is
the upper bound used for SFT data and in the report. `oracle_action` drops the evidence rule (walks straight to
the object): its cost is the lower bound on any policy's cost.

Never-ask baseline (`NeverAskPolicy`): sees only what an agent sees (the request, the map, observations, memory).
It recalls memory once, visits remembered places of matching objects nearest-first, then searches the remaining
receptacles greedily by nearest distance, opening closed ones, and takes the first object that matches the
request. On an ambiguous request it therefore guesses among the candidates.

Wasteful expert (`WastefulPolicy`, `env.unwrapped.wasteful_action()`, agent `scripted:wasteful`): the expert's plan
plus waste that changes nothing the episode needs, each piece drawn per episode (seeded) with its own probability,
so the expert's cheap path stays inside the policy's support: a start policy that a cost-pricing RL objective
(HC-GRPO) has something to cut from, at the expert's success.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turngym.envs.embodied.house import COLOURS, PRIORS

if TYPE_CHECKING:
    from turngym.envs.embodied.env import EmbodiedSearchEnv


def expert_action(env: EmbodiedSearchEnv) -> str:
    t = env.target.name
    rec = env.where[t]
    vis = env.visible()
    if env.holding == t:
        return f"done({t})"
    needs_colour = env.ambiguous and "colour" not in env.told
    if needs_colour:
        return f"ask(Which {env.target.type} do you mean? What colour is it?)"
    if t in vis:
        return f"pick({t})" if env.fetch and env.holding is None else f"done({t})"
    if env.at == rec:
        return f"open({rec})"  # the only reason to be here and not see it: it is inside, closed
    knows = "location" in env.told or (env.recalled and env.memory.get(t) == rec)
    if not knows:
        fresh = env.memory.get(t) == rec
        if fresh and not env.recalled and env.costs.memory() <= env.costs.ask(env.n_asks):
            return f"get_memory({env.target.type})"
        return f"ask(Where did you leave your {env.target.type}?)"
    return f"navigate({rec})"


def oracle_action(env: EmbodiedSearchEnv) -> str:
    """The cheapest plan with no evidence rule: walk straight to the hidden object, never ask or recall.

    Its cost is a lower bound on any policy's (c_nav x shortest path), not a behaviour to imitate: it "knows"
    which of several mugs is meant without asking."""
    t = env.target.name
    rec = env.where[t]
    if env.holding == t:
        return f"done({t})"
    if t in env.visible():
        return f"pick({t})" if env.fetch and env.holding is None else f"done({t})"
    return f"open({rec})" if env.at == rec else f"navigate({rec})"


def requested(request: str) -> tuple[str | None, str | None]:
    """(colour, type) named in a request; either may be None."""
    text = request.lower()
    colour = next((c for c in COLOURS if re.search(rf"\b{c}\b", text)), None)
    kind = next((k for k in sorted(PRIORS, key=len, reverse=True) if re.search(rf"\b{k}\b", text)), None)
    return colour, kind


class NeverAskPolicy:
    """Search without ever asking the person. Call `reset(env)` at each episode start, then `act(env, info)`."""

    def reset(self, env: EmbodiedSearchEnv) -> None:
        self.colour, self.kind = requested(env.task["request"])
        self.recalled = False
        self.leads: list[str] = []
        self.visited: set[str] = set()

    def _matches(self, name: str) -> bool:
        colour, _, kind = name.partition(" ")
        return kind == self.kind and (self.colour is None or colour == self.colour)

    def act(self, env: EmbodiedSearchEnv, info: dict[str, Any]) -> str:
        if "memory" in info:
            self.leads = [r for o, r in info["memory"].items() if self._matches(o)]
        if not self.recalled and self.kind is not None:
            self.recalled = True
            return f"get_memory({self.kind})"
        holding = info.get("holding") or ""
        if holding and self._matches(holding):
            return f"done({holding})"
        found = [o for o in info.get("visible_objects", []) if self._matches(o)]
        if found:
            return f"pick({found[0]})" if env.fetch and not holding else f"done({found[0]})"
        here = env.house.places.get(env.at)
        if here is not None and here.receptacle is not None:
            if here.receptacle.openable and env.at not in env.opened:
                return f"open({env.at})"
            self.visited.add(env.at)
        todo = [r for r in self.leads if r not in self.visited]
        if not todo:
            todo = [p.name for p in env.house.receptacles if p.name not in self.visited]
        if not todo:
            return "look()"
        nearest = min(todo, key=lambda r: (env.house.distance(env.pos, _pos(env, r)), r))
        return f"navigate({nearest})"


def _pos(env: EmbodiedSearchEnv, name: str) -> tuple[int, tuple[int, int]]:
    p = env.house.places[name]
    return p.room, p.cell


@dataclass
class WastefulPolicy:
    """The cost-aware expert plus skippable waste; reaches the expert's success at about twice its cost or more.

    Each episode draws three independent coins from its own seeded generator (`reset(env, seed)`; the env passes
    the episode's seed, so the same env seed gives the same waste):

    * `p_ask` — a redundant opening question, `ask(Which <type> do you mean? What colour is it?)`, even when the
      request names the colour (on an ambiguous request the expert asks it anyway; then the coin does nothing).
      The answer repeats what the request said. Cost c_ask (0.1 at the defaults).
    * `p_detour` — before walking to the object, a detour to a decoy: the first receptacle listed in the start room
      that holds no object of the requested type (so the visit tells nothing), not opened. Costs c_nav x the extra
      metres (start -> decoy -> target instead of start -> target).
    * `p_confirm` — at the object, before `pick`/`done`, a confirmation `ask(Is it the <colour> <type>?)`, answered
      "Yes, the <colour> one." Cost c_ask x (1 + alpha x earlier asks): 0.1 or 0.15.

    Every other action is `expert_action`'s, so the episode ends as the expert's does; the waste adds at most three
    turns (seven on an easy task: ask, memory, detour, navigate, open, confirm, done). The probabilities are above
    1/2 by default so that a model imitating these episodes, decoded greedily, takes the waste (greedy decoding
    picks the more likely branch); RL that prices cost has to push each below 1/2 to remove it.
    """

    p_ask: float = 0.7
    p_detour: float = 0.7
    p_confirm: float = 0.7

    def reset(self, env: EmbodiedSearchEnv, seed: int | str = 0) -> None:
        rng = random.Random(f"wasteful|{seed}|{env.task['task_id']}")
        self.ask = rng.random() < self.p_ask
        self.detour = rng.random() < self.p_detour
        self.confirm = rng.random() < self.p_confirm
        self.asked = self.detoured = self.confirmed = False

    def decoy(self, env: EmbodiedSearchEnv) -> str | None:
        """The detour's receptacle: the first listed one in the start room without an object of the target type."""
        kind = env.target.type
        holds = {r for o, r in env.where.items() if o.split(" ", 1)[1] == kind}
        holds |= {r for o, r in env.memory.items() if o.split(" ", 1)[1] == kind}
        for p in env.house.receptacles:
            if p.room == env.pos[0] and p.name not in holds:
                return p.name
        return next((p.name for p in env.house.receptacles if p.name not in holds), None)

    def act(self, env: EmbodiedSearchEnv) -> str:
        if self.ask and not self.asked:
            self.asked = True
            if not env.ambiguous:
                return f"ask(Which {env.target.type} do you mean? What colour is it?)"
        action = expert_action(env)
        if action.startswith("navigate(") and self.detour and not self.detoured:
            self.detoured = True
            decoy = self.decoy(env)
            if decoy is not None and decoy != env.at:
                return f"navigate({decoy})"
        if action.startswith(("pick(", "done(")) and self.confirm and not self.confirmed:
            self.confirmed = True
            return f"ask(Is it the {env.target.name}?)"
        return action
