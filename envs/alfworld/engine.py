"""The TextWorld engine behind ALFWorld, driven in-process, and alfworld's handcoded expert.

`make_engine()` builds what `alfworld-generate` and ALFWorld's own loaders build: TextWorld's `PddlEnv` wrapped with
alfworld's `AlfredDemangler` (readable names like "cabinet 1") and `AlfredInfos`. It runs in this process (no
subprocess, no thread), so one engine object is reused across episodes; `load()` only swaps the game.

`Expert` wraps `alfworld.agents.expert.HandCodedTWAgent` exactly as alfworld's `AlfredExpert` wrapper does (first
action "look", then `act(state, prev_command)` on every state, a non-admissible suggestion replaced by "look"), but
lazily: the states it has not seen are replayed when an action is asked for, so an env whose policy never asks for
the expert pays nothing per step. Its random choices use a private seeded generator, so it is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from turngym.envs.alfworld.games import TRAJ_FILE
from turngym.optional import require

# TextWorld is not thread-safe: its PDDL, grammar and logic parsers are module-level tatsu parsers shared by every
# game (two parses at once corrupt the parser's rule stack), the PDDL translator rewrites `sys.argv`, and the
# expert swaps the global `random` state. Every call into TextWorld/alfworld (loading a game, reset, step, the
# expert) holds this process-wide lock; the work is pure Python, so the GIL serialised it anyway.
TEXTWORLD_LOCK = threading.RLock()


class _CachedTranslator:
    """`fast_downward` with `pddl2sas` memoised: TextWorld translates a game's PDDL twice on every `load()` and
    twice on every `reset()`, and the translation is a pure function of (domain, problem). Everything else is the
    real module."""

    def __init__(self, module: Any, size: int = 8):
        self._module = module
        self._cached = lru_cache(maxsize=size)(self._translate)

    def _translate(self, *args: Any, **kwargs: Any) -> Any:
        argv = sys.argv  # the translator overwrites sys.argv; give the host program its own back
        try:
            return self._module.pddl2sas(*args, **kwargs)
        finally:
            sys.argv = argv

    def pddl2sas(self, *args: Any, **kwargs: Any) -> Any:
        return self._cached(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _install_translation_cache() -> None:
    """Memoise TextWorld's pure, repeated parses: the PDDL translation, the grammar's template parser and the logic
    parser of the text grammar's conditions.

    TextWorld re-parses every command template with tatsu for every admissible action at every step, and every
    condition of the feedback grammar (`Rule.parse_conjunctive_query`) each time it derives a feedback text; both
    parses are pure functions of the text, so the cache returns a deep copy of the first parse (TextWorld mutates
    the symbols it gets). Outputs are unchanged; only time is saved.
    """
    logic = require("textworld.envs.pddl.logic", extra="alfworld", purpose="TextWorld's PDDL engine")
    if not isinstance(logic.fast_downward, _CachedTranslator):
        logic.fast_downward = _CachedTranslator(logic.fast_downward)
    textgen = require("textworld.envs.pddl.textgen", extra="alfworld")
    if not getattr(textgen._parse_and_convert, "_turngym_cached", False):
        textgen._parse_and_convert = _cached_parse(textgen._parse_and_convert)
    if textgen.copy_context is not _copy_context:
        textgen.copy_context = _copy_context
    tw_logic = require("textworld.logic", extra="alfworld")
    if not getattr(tw_logic._parse_and_convert, "_turngym_cached", False):
        # `Rule.parse_conjunctive_query` wraps the parsed predicates (immutable) in a new Rule at once: a shallow
        # copy of the cached list is enough, and saves the deep copies that otherwise dominate a step.
        tw_logic._parse_and_convert = _cached_parse(
            tw_logic._parse_and_convert, shallow=("conjunctiveQuery",)
        )


def _copy_context(context: dict[str, Any]) -> dict[str, Any]:
    """TextWorld's `textgen.copy_context` without its deep copies. The feedback grammar's derivation copies its
    context for every symbol and only ever adds keys to the copied `variables` / `mapping` dicts (`query`); the
    values (entity infos, placeholders, variables) are never mutated, so copying the two dicts is enough. It was
    the largest single cost of a step (a third of the generator's CPU); outputs are byte-identical (checked on
    recorded expert trajectories)."""
    return {
        "state": context["state"],
        "facts": context["facts"],
        "variables": dict(context["variables"]),
        "mapping": dict(context["mapping"]),
        "entity_infos": context["entity_infos"],
    }


def _cached_parse(parse: Any, shallow: tuple[str, ...] = ()) -> Any:
    """`parse` memoised on (text, rule_name); each call gets a deep copy of the cached result (a shallow copy for
    the rule names in `shallow`)."""
    from copy import copy, deepcopy

    @lru_cache(maxsize=4096)
    def cached(text: str, rule_name: str) -> Any:
        return parse(text, rule_name=rule_name)

    def parse_and_convert(text: str, rule_name: str = "symbols", trace: bool = False, **kwargs: Any) -> Any:
        if trace or kwargs:
            return parse(text, rule_name=rule_name, trace=trace, **kwargs)
        return (copy if rule_name in shallow else deepcopy)(cached(text, rule_name))

    parse_and_convert._turngym_cached = True  # type: ignore[attr-defined]
    return parse_and_convert


# The expert's random choices (between equal objects) use this seed in every episode, in the env and in the
# generator's solvability check alike: the expert is a fixed policy per game, and every pack game is one it wins.
EXPERT_SEED = 0


def make_engine(cache_translations: bool = True) -> Any:
    """A reusable TextWorld `PddlEnv` with alfworld's demangler and infos wrappers."""
    textworld = require("textworld", extra="alfworld", purpose="the ALFWorld environment")
    require("fast_downward", extra="alfworld", purpose="TextWorld's PDDL engine")
    from textworld.envs import PddlEnv

    tw_env = require("alfworld.agents.environment.alfred_tw_env", extra="alfworld")
    with TEXTWORLD_LOCK:
        if cache_translations:
            _install_translation_cache()
        infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        env = PddlEnv(infos)
        env = tw_env.AlfredDemangler(env, shuffle=False)
        return tw_env.AlfredInfos(env)


def human_facts(state: Any) -> list[Any]:
    """The state's facts with demangled names (what `EnvInfos(facts=True)` gives), computed on demand."""
    from textworld.logic import Proposition, Variable

    infos = state["_entity_infos"]
    return [
        Proposition(f.name, [Variable(infos[v.name].name or v.name, v.type) for v in f.arguments])
        for f in state["_facts"]
    ]


_MOVE = re.compile(r"^move (.+) to (.+)$")


def _track_moves(policy: Any) -> None:
    """Make the expert's state tracking see alfworld 0.4's `move X to Y` as the `put X in/on Y` it was written for.

    alfworld 0.4.0 renamed the put command to `move X to Y` (alfworld PR #94) and the expert's policies emit the
    new form, but `BasePolicy.update_state_tracking` still recognises a successful placement only by `"put" in
    last_action`. After a `move` the expert therefore keeps the placed object in its inventory, does not
    blacklist it, and goes back to where it took it from to put it back: a placement that ends the task
    (every type but one) wins anyway, but `pick_two_obj_and_place` needs a second object after the first
    placement, and the expert loops (`look`, random admissible commands) until its budget runs out. Renaming
    the command for the tracking only restores the expert's pre-0.4 behaviour; its choices use the real command.
    """
    update = policy.update_state_tracking

    def update_state_tracking(game_state: Any, last_action: str) -> Any:
        m = _MOVE.match(last_action or "")
        if m:
            last_action = f"put {m[1]} in/on {m[2]}"
        return update(game_state, last_action)

    policy.update_state_tracking = update_state_tracking


class Expert:
    """alfworld's handcoded expert following one episode.

    `track_moves` (default True) fixes the expert's tracking of `move` commands (see `_track_moves`); False plays
    alfworld 0.4.2's expert unchanged (for comparison)."""

    def __init__(
        self, task_params: dict[str, Any], seed: int, max_steps: int = 200, track_moves: bool = True
    ):
        expert = require("alfworld.agents.expert", extra="alfworld")
        constants = require("alfworld.gen.constants", extra="alfworld")
        self.agent = expert.HandCodedTWAgent(max_steps=max_steps)
        params = {k: (v.lower() if v in constants.OBJECTS else v) for k, v in task_params.items()}
        self.agent.task_params = params
        self.agent.policy = self.agent.get_task_policy(params)(params, max_steps=max_steps)
        if track_moves:
            _track_moves(self.agent.policy)
        self._rng = random.Random(seed)
        self._pending: list[
            tuple[Any, str]
        ] = []  # (state, command that led to it), not yet shown to the expert
        self._next = "look"
        self.failed = False

    @classmethod
    def for_game(cls, game_file: str | Path, seed: int, track_moves: bool = True) -> Expert:
        traj = json.loads((Path(game_file).parent / TRAJ_FILE).read_text(encoding="utf-8"))
        return cls({**traj["pddl_params"], "task_type": traj["task_type"]}, seed, track_moves=track_moves)

    def start(self, state: Any) -> None:
        self.agent.observe(state["feedback"])
        self._next = "look"

    def record(self, state: Any, command: str) -> None:
        self._pending.append((state, command))

    def action(self) -> str:
        """The expert's next command ("look" when it has none)."""
        if not self._pending:
            return self._next
        saved = random.getstate()
        random.setstate(self._rng.getstate())
        try:
            for state, command in self._pending:
                self._next = "look"
                if self.failed:
                    continue
                state = dict(state)
                state["facts"] = human_facts(state)
                try:
                    act = self.agent.act(state, 0, state["won"], command)
                except Exception:  # noqa: BLE001 - the expert gives up (timeout) or trips over a state
                    self.failed = True
                    continue
                if act in state["admissible_commands"]:
                    self._next = act
        finally:
            self._rng.setstate(random.getstate())
            random.setstate(saved)
            self._pending.clear()
        return self._next


# Facts that never change during a game (the scene and object properties); the rest is the world state.
STATIC_FACTS = frozenset(
    {
        "receptacleType",
        "receptacleAtLocation",
        "objectType",
        "canContain",
        "openable",
        "pickupable",
        "isReceptacleObject",
        "cleanable",
        "heatable",
        "coolable",
        "toggleable",
        "sliceable",
        "moveable",
    }
)


def world_key(state: Any) -> str:
    """A digest of the engine's dynamic facts: where the agent is, what is where / held / open / hot / cool / clean /
    on. Static facts and the engine's accumulated negations (`not_*`) are left out, so the same world state reached
    by different paths has the same key."""
    dynamic = sorted(
        f"{f.name}({','.join(v.name for v in f.arguments)})"
        for f in state["_facts"]
        if f.name not in STATIC_FACTS and not f.name.startswith("not_")
    )
    return hashlib.blake2b("\n".join(dynamic).encode(), digest_size=12).hexdigest()


# The generator's early rejection: a run that plays the same command in the same world state this many times is
# cycling and is stopped (see `play_expert`).
STUCK_REPEATS = 3


@dataclass
class ExpertRun:
    """One play of the handcoded expert: whether it won, its commands, and why the run ended: `won`, `budget`
    (max_steps used up), `gave_up` (the expert raised: it has no plan left) or `stuck` (it played the same command in the
    same world state `repeats` times)."""

    won: bool
    commands: list[str]
    stop: str


def play_expert(
    engine: Any,
    game_file: str | Path,
    seed: int = 0,
    max_steps: int = 60,
    repeats: int | None = None,
    track_moves: bool = True,
    stop_when_given_up: bool = True,
) -> ExpertRun:
    """Play a game with the handcoded expert for at most `max_steps` commands.

    Stops early, without a win, when the expert gives up (it then only says "look", which changes nothing: exact)
    or, with `repeats`, when it is about to play the same command in the same world state (`world_key`) for the
    `repeats`-th time: it is cycling. That one is a heuristic: the expert answers a repeated command with a random
    admissible one, so a cycle can in principle still be left, and a game it would win later is rejected (what this
    costs is measured by `benchmarks/alfworld_generation.py`). `stop_when_given_up=False` and `repeats=None` play
    the whole budget, as the generator did before."""
    with TEXTWORLD_LOCK:
        return _play_expert(engine, game_file, seed, max_steps, repeats, track_moves, stop_when_given_up)


def _play_expert(
    engine: Any,
    game_file: str | Path,
    seed: int,
    max_steps: int,
    repeats: int | None,
    track_moves: bool,
    stop_when_given_up: bool,
) -> ExpertRun:
    engine.load(str(game_file))
    state = engine.reset()
    if state["won"]:  # won before any action: not a game
        return ExpertRun(False, [], "won_at_start")
    expert = Expert.for_game(game_file, seed, track_moves=track_moves)
    expert.start(state)
    key = world_key(state)
    played: dict[tuple[str, str], int] = {}
    commands: list[str] = []
    for _ in range(max_steps):
        cmd = expert.action()
        if expert.failed and stop_when_given_up:
            return ExpertRun(False, commands, "gave_up")
        played[key, cmd] = played.get((key, cmd), 0) + 1
        if repeats is not None and played[key, cmd] >= repeats:
            return ExpertRun(False, commands, "stuck")
        state, _, done = engine.step(cmd)
        commands.append(cmd)
        expert.record(state, cmd)
        if state["won"]:
            return ExpertRun(True, commands, "won")
        key = world_key(state)
    return ExpertRun(False, commands, "budget")


_CHECK_ENGINE: Any = None


def expert_run(record: dict[str, Any], max_steps: int = 50, repeats: int | None = STUCK_REPEATS) -> ExpertRun:
    """The handcoded expert (seed `EXPERT_SEED`) played on a generated record, on a reused engine."""
    import tempfile

    from turngym.envs.alfworld.games import write_game

    global _CHECK_ENGINE
    with TEXTWORLD_LOCK:
        if _CHECK_ENGINE is None:
            _CHECK_ENGINE = make_engine()
    with TEXTWORLD_LOCK, tempfile.TemporaryDirectory() as tmp:
        game = write_game(record, Path(tmp))
        return play_expert(_CHECK_ENGINE, game, seed=EXPERT_SEED, max_steps=max_steps, repeats=repeats)


def expert_solves(record: dict[str, Any], max_steps: int = 50, repeats: int | None = STUCK_REPEATS) -> bool:
    """True when a generated record is not won at the start and the handcoded expert wins it within `max_steps`
    (runs that cycle are rejected early, see `play_expert`; `repeats=None` plays the whole budget)."""
    return expert_run(record, max_steps=max_steps, repeats=repeats).won
