"""EmbodiedSearch: find (and optionally fetch) the object a person asks for, in a house of real iTHOR rooms.

Actions (one per turn, `verb(argument)`; quotes around the argument are optional):
    navigate(<place>)   go to a receptacle or a room; cost c_nav x shortest-path metres
    ask(<question>)     ask the person; cost c_ask x (1 + alpha x questions already asked)
    get_memory(<query>) recall what was seen here in earlier episodes (may be stale); cost c_mem
    open(<receptacle>)  open the closed receptacle you are at;  look()  describe where you are
    pick(<object>)      take an object you can see;            done(<object>)  hand over / point at your answer
Reward per step is -lambda x (this step's costs), plus 1 on success, so an episode's return is
R = success - lambda x sum(costs) (HC-GRPO, ESearch-R1). `info["cost"]` has this step's costs by name.
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from turngym.envs.core import Outcome, TurnEnv
from turngym.envs.embodied.costs import COST_NAMES, CostModel
from turngym.envs.embodied.house import House, Obj, parse_object, placements, sample_objects
from turngym.envs.embodied.person import Person
from turngym.envs.embodied.schema import EMBODIED_SCHEMA
from turngym.errors import ConfigError

ACTION_RE = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\)|\s(.*))?\s*$", re.DOTALL | re.IGNORECASE)
VERBS = ("navigate", "ask", "get_memory", "open", "look", "pick", "done")
START = "start"
MAX_CACHED_RENDERS = 64  # ~25 MB of cached house pictures; a miss redraws the house (~3 ms)


def parse_action(action: str) -> tuple[str, str] | None:
    """`navigate(fridge 1)` / `navigate fridge 1` -> ("navigate", "fridge 1"); None when it is not an action."""
    m = ACTION_RE.match(action)
    if not m or m.group(1).lower() not in VERBS:
        return None
    arg = (m.group(2) if m.group(2) is not None else m.group(3) or "").strip()
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "\"'":
        arg = arg[1:-1].strip()
    return m.group(1).lower(), arg


class EmbodiedSearchEnv(TurnEnv):
    """Procedural backend: houses from real iTHOR floor plans, objects from priors, a simulated person."""

    family = "embodied"
    default_pack = "embodied-search"
    default_max_turns = 30
    image_shape: ClassVar[tuple[int, int, int]] = (256, 512, 3)
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 2}
    task_fields = EMBODIED_SCHEMA  # record fields and checks, run when a pack loads (envs/embodied/schema.py)
    action_format = (
        "Act with exactly one of: navigate(<place>), ask(<question>), get_memory(<query>), open(<receptacle>), "
        "look(), pick(<object>), done(<object>). Moving costs c_nav per metre, asking costs more each time, "
        "memory is cheap but may be out of date."
    )

    def __init__(
        self,
        task_pack: str | None = None,
        split: str | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        image: bool | None = None,
        costs: CostModel | dict[str, Any] | None = None,
        lam: float | None = None,
        noise: float = 0.0,
    ):
        super().__init__(
            task_pack=task_pack, split=split, max_turns=max_turns, render_mode=render_mode, image=image
        )
        model = CostModel.from_config(costs)
        if lam is not None:
            model = CostModel.from_config({**model.__dict__, "lam": lam})
        self.costs = model
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
            raise ConfigError(f"noise must be a probability in [0, 1], got {noise!r}")
        self.noise = float(noise)
        self._houses: dict[tuple, House] = {}
        self._renderers: OrderedDict[tuple, Any] = OrderedDict()  # LRU: a cached picture is ~400 KB

    # ---- episode setup ---------------------------------------------------------------------------------------
    def _house(self, task: dict[str, Any]) -> House:
        key = (task["house_seed"], tuple(task["rooms"]))
        if key not in self._houses:
            self._houses[key] = House.build(task["house_seed"], list(task["rooms"]))
        return self._houses[key]

    def _start(self, task: dict[str, Any]) -> Outcome:
        self.target = parse_object(task["target"])
        self.house = self._house(task)
        n_cand = int(task.get("n_candidates", 1))
        n_obj = int(task.get("n_objects", 6))
        episode = int(task.get("episode", 1))
        staleness = float(task.get("staleness", 0.0))
        rng = random.Random(
            f"{task['house_seed']}|{task.get('seed', 0)}|{task['target']}|{n_cand}|{n_obj}|{staleness}"
        )
        self.objects: list[Obj] = sample_objects(rng, self.target, n_cand, n_obj)
        history = placements(self.house, self.objects, rng, episode, staleness)
        self.where: dict[str, str] = history[-1]  # object name -> receptacle now
        self.memory: dict[str, str] = history[-2] if episode >= 1 else {}
        self.fetch = bool(task.get("fetch", False))
        words = set(re.findall(r"[a-z]+", task["request"].lower()))
        self.ambiguous = n_cand > 1 and self.target.colour not in words
        # agent state
        first = self.house.rooms[0]
        self.pos = (0, first.center)
        self.at = START
        self.opened: set[str] = set()
        self.holding: str | None = None
        self.n_asks = 0
        self.told: set[str] = set()  # topics the person has answered (truthfully unless noise > 0)
        self.recalled = False
        self.seen: set[str] = set()
        self._baseline = None  # the never-ask policy's per-episode state, made on first use
        self._wasteful = None  # the wasteful expert's per-episode state (its coins), made on first use
        # drawn from the reset seed: seeds the person and the wasteful expert's coins
        seed = int(self.np_random.integers(2**31))
        self.episode_seed = seed
        others = [p.name for p in self.house.receptacles if p.name != self.where[self.target.name]]
        here = self.house.places[self.where[self.target.name]]
        self.person = Person(
            self.target,
            here.name,
            self.house.rooms[here.room].kind,
            others,
            random.Random(seed),
            self.noise,
            rooms=tuple(r.kind for r in self.house.rooms),
        )
        if self.use_image or self.render_mode == "rgb_array":
            from turngym.envs.embodied.render import Renderer

            rkey = (task["house_seed"], tuple(task["rooms"]))
            if rkey not in self._renderers:
                self._renderers[rkey] = Renderer(self.house, self.image_shape)
                while len(self._renderers) > MAX_CACHED_RENDERS:
                    self._renderers.popitem(last=False)
            self._renderers.move_to_end(rkey)
            self.renderer = self._renderers[rkey]
        rooms = "; ".join(
            f"{r.kind}: " + ", ".join(p.name for p in self.house.receptacles if p.room == i)
            for i, r in enumerate(self.house.rooms)
        )
        text = (
            f'The person says: "{task["request"]}"\n'
            f"The house has {len(self.house.rooms)} rooms, west to east. {rooms}.\n"
            f"You are in the {first.kind}."
            + (" Bring the object to the person: pick it up, then done." if self.fetch else "")
        )
        return self._outcome(text)

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        return f"{first.text}\n\n{self.action_format}"

    # ---- observations ----------------------------------------------------------------------------------------
    def visible(self) -> list[str]:
        """Objects the agent sees where it stands (inside a receptacle only once it is open)."""
        place = self.house.places.get(self.at)
        if place is None or place.receptacle is None:
            return []
        if place.receptacle.openable and self.at not in self.opened:
            return []
        return sorted(o for o, r in self.where.items() if r == self.at and o != self.holding)

    def admissible(self) -> list[str]:
        acts = [f"navigate({p})" for p in self.house.places if p != self.at]
        place = self.house.places.get(self.at)
        if (
            place is not None
            and place.receptacle is not None
            and place.receptacle.openable
            and self.at not in self.opened
        ):
            acts.append(f"open({self.at})")
        vis = self.visible()
        acts += [f"pick({o})" for o in vis if self.holding is None]
        acts += [f"done({o})" for o in vis + ([self.holding] if self.holding else [])]
        acts += [
            "look()",
            f"get_memory({self.target.type})",
            f"ask(Which {self.target.type} do you mean? What colour is it?)",
            f"ask(Where did you leave your {self.target.type}?)",
        ]
        return acts

    def state(self) -> dict[str, Any]:
        return {
            "task": self.task["task_id"] if self.task else "",
            "told": sorted(self.told),
            "at": self.at,
            "pos": self.pos,
            "opened": sorted(self.opened),
            "holding": self.holding,
            "asks": self.n_asks,
            "recalled": self.recalled,
        }

    def _outcome(self, text: str, **kw: Any) -> Outcome:
        cost = {name: 0.0 for name in COST_NAMES}
        cost.update(kw.pop("cost", {}))
        reward = kw.pop("reward", 0.0) - self.costs.penalty(cost)
        vis = self.visible()
        self.seen.update(vis)
        extra = {
            "location": self.at,
            "visible_objects": vis,
            "holding": self.holding or "",
            "ambiguous": self.ambiguous,
            **kw.pop("extra", {}),
        }
        out = Outcome(
            text=text,
            reward=reward,
            cost=cost,
            state=self.state(),
            admissible_actions=self.admissible(),
            extra=extra,
            **kw,
        )
        if self.use_image:
            status = f"at {self.at}" + (f", holding {self.holding}" if self.holding else "")
            out.image = self.renderer.draw(self.pos, self.at, vis, status)
        return out

    def _render_image(self) -> np.ndarray | None:
        if self._last is not None and self._last.image is not None:
            return self._last.image
        if getattr(self, "house", None) is None:
            return None
        if not hasattr(self, "renderer"):
            from turngym.envs.embodied.render import Renderer

            self.renderer = Renderer(self.house, self.image_shape)
        return self.renderer.draw(self.pos, self.at, self.visible(), f"at {self.at}")

    def describe(self) -> str:
        place = self.house.places.get(self.at)
        if place is None:
            return f"You are in the {self.house.rooms[self.pos[0]].kind}."
        if place.receptacle is None:
            here = [p.name for p in self.house.receptacles if p.room == place.room]
            return f"You are in the {place.name}. You see: {', '.join(here)}."
        room = self.house.rooms[place.room].kind
        if place.receptacle.openable and self.at not in self.opened:
            return f"You are at {self.at} in the {room}. It is closed."
        vis = self.visible()
        inside = ", ".join(vis) if vis else "nothing"
        state = " (open)" if place.receptacle.openable else ""
        return f"You are at {self.at}{state} in the {room}. On/in it: {inside}."

    def _invalid(self, msg: str) -> Outcome:
        return self._outcome(f"Invalid action: {msg} {self.describe()}", invalid_action=True, error=msg)

    # ---- actions -------------------------------------------------------------------------------------------
    def _act(self, action: str) -> Outcome:
        parsed = parse_action(action)
        if parsed is None:
            return self._invalid(
                f"{action[:60]!r} is not an action; expected one of {', '.join(VERBS)} as verb(argument)."
            )
        verb, arg = parsed
        return getattr(self, f"_do_{verb}")(arg)

    def _do_navigate(self, arg: str) -> Outcome:
        name = arg.lower()
        if name not in self.house.places:
            return self._invalid(
                f"unknown place {arg[:60]!r}; places are the rooms and receptacles listed at the start."
            )
        if name == self.at:
            return self._invalid(f"you are already at {name}.")
        dest = self.house.places[name]
        metres = self.house.distance(self.pos, (dest.room, dest.cell))
        self.pos, self.at = (dest.room, dest.cell), name
        return self._outcome(
            f"You walk {metres:.2f} m. {self.describe()}",
            cost={"navigate": self.costs.navigate(metres)},
            extra={"metres": metres},
        )

    def _do_ask(self, arg: str) -> Outcome:
        if not arg:
            return self._invalid("ask needs a question, e.g. ask(What colour is it?).")
        cost = self.costs.ask(self.n_asks)
        self.n_asks += 1
        answer, topic = self.person.answer(arg)
        if topic in ("colour", "confirm"):
            self.told.add("colour")
        elif topic == "location":
            self.told.add("location")
        return self._outcome(
            f'The person says: "{answer}"', cost={"ask": cost}, extra={"answer_topic": topic}
        )

    def _do_get_memory(self, arg: str) -> Outcome:
        self.recalled = True
        words = set(re.findall(r"[a-z]+", arg.lower()))
        facts = {o: r for o, r in self.memory.items() if not words or words & set(o.split())}
        if not self.memory:
            text = "You have no memories of this house yet."
        elif not facts:
            text = f"You remember nothing matching {arg[:60]!r}."
        else:
            text = "From your last visit you remember: " + "; ".join(
                f"{o} at {r}" for o, r in sorted(facts.items())
            )
            text += ". (Things may have moved since.)"
        return self._outcome(
            text, cost={"memory": self.costs.memory()}, extra={"memory": dict(sorted(facts.items()))}
        )

    def _do_open(self, arg: str) -> Outcome:
        name = arg.lower() or self.at
        if name != self.at:
            return self._invalid(
                f"you can only open the receptacle you are at ({self.at}); navigate there first."
            )
        place = self.house.places.get(name)
        if place is None or place.receptacle is None or not place.receptacle.openable:
            return self._invalid(f"{name!r} is not something you can open.")
        if name in self.opened:
            return self._invalid(f"{name} is already open.")
        self.opened.add(name)
        return self._outcome(f"You open {name}. {self.describe()}")

    def _do_look(self, arg: str) -> Outcome:
        return self._outcome(self.describe())

    def _do_pick(self, arg: str) -> Outcome:
        name = arg.lower()
        if self.holding is not None:
            return self._invalid(f"you are already holding {self.holding}.")
        if name not in self.visible():
            return self._invalid(f"you do not see {arg[:60]!r} here.")
        self.holding = name
        return self._outcome(f"You pick up the {name}.")

    def _do_done(self, arg: str) -> Outcome:
        name = arg.lower()
        if name not in self.visible() and name != self.holding:
            return self._invalid(f"done needs an object you see or hold; {arg[:60]!r} is not here.")
        ok = name == self.target.name and (not self.fetch or self.holding == name)
        why = (
            ""
            if ok
            else (
                " You had to bring it (pick it up first)."
                if name == self.target.name
                else f" That was not the {self.target.name}."
            )
        )
        return self._outcome(
            (
                "The person thanks you: that is the one!"
                if ok
                else "The person says that is not what they wanted."
            )
            + why,
            reward=1.0 if ok else 0.0,
            terminated=True,
            success=ok,
            score=1.0 if ok else 0.0,
        )

    # ---- experts ---------------------------------------------------------------------------------------------
    def expert_action(self) -> str:
        from turngym.envs.embodied.experts import expert_action

        return expert_action(self)

    def oracle_action(self) -> str:
        """The cost lower bound's next action: straight to the hidden object, no questions (not for imitation)."""
        from turngym.envs.embodied.experts import oracle_action

        return oracle_action(self)

    def baseline_action(self) -> str:
        """The never-ask baseline's next action (`experts.NeverAskPolicy`, fed only the last observation's info)."""
        from turngym.envs.embodied.experts import NeverAskPolicy

        if self._baseline is None:
            self._baseline = NeverAskPolicy()
            self._baseline.reset(self)
        return self._baseline.act(self, self._info(self._last))

    def wasteful_action(self) -> str:
        """The wasteful expert's next action (`experts.WastefulPolicy`: the expert plus a redundant question, a
        detour and a confirmation, each with probability 0.7, drawn from the episode's seed)."""
        from turngym.envs.embodied.experts import WastefulPolicy

        if self._wasteful is None:
            self._wasteful = WastefulPolicy()
            self._wasteful.reset(self, self.episode_seed)
        return self._wasteful.act(self)
