"""`turngym/ALFWorld-v0`: ALFWorld's household text games on the real TextWorld engine.

Observations are the engine's feedback (the first one carries the room and the task); `info["admissible_actions"]`
are the engine's admissible commands; `success` is the engine's `won`. A command the engine does not admit leaves
the state unchanged, gives ALFWorld's own feedback "Nothing happens." and is flagged `invalid_action` with the
reason in `info["error"]`. `obs_key` digests the engine's dynamic facts (where the agent is, what is where, open,
held, hot, cool, clean, on), so identical world states in a group share a key.

Task packs: `alfworld-gen` (default; generated games, see `generator.py`) and `alfworld-official` (the official
games from `$ALFWORLD_DATA`). Reset options beyond the standard ones: `task_types` (a subset of the six) and `paraphrase` (state the task with
another phrasing: True draws one from the env's seeded generator, an int picks variant k; see `phrasing.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from turngym.envs.alfworld.engine import EXPERT_SEED, TEXTWORLD_LOCK, Expert, make_engine, world_key
from turngym.envs.alfworld.games import TASK_TYPES, materialize
from turngym.envs.alfworld.phrasing import paraphrase, replace_task
from turngym.envs.alfworld.schema import ALFWORLD_SCHEMA
from turngym.envs.core import Outcome, TurnEnv
from turngym.errors import ConfigError
from turngym.tasks.pack import TaskPack, load_pack

_PUT = re.compile(r"^put (.+?) (?:in|on|in/on|into|onto) (.+)$")


def _norm(action: str) -> str:
    return " ".join(action.strip().strip(".").lower().split())


_EXPERT_KEYS = ("feedback", "won", "admissible_commands", "_facts", "_entity_infos")


def _for_expert(state: Any) -> dict[str, Any]:
    """What the lazy expert reads of a past state. Keeping whole TextWorld states alive (their `_valid_actions` hold
    rule objects) measurably slows the engine's later steps (about 15% of a step here); this keeps the slice."""
    return {k: state[k] for k in _EXPERT_KEYS}


def check_paraphrase(value: Any) -> bool | int | None:
    """`paraphrase`: None/False (the game's own sentence), True (a variant drawn from the env's seeded generator)
    or a variant index >= 0 (see `phrasing.variants`)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value >= 0:
        return value
    raise ConfigError(f"paraphrase must be True, False, None or a variant index >= 0, got {value!r}")


def check_task_types(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise ConfigError(f"task_types must be a non-empty list of task type names, got {value!r}")
    bad = [v for v in value if v not in TASK_TYPES]
    if bad:
        raise ConfigError(f"unknown task_types {bad}; choose from {list(TASK_TYPES)}")
    return tuple(sorted(set(value)))


class ALFWorldEnv(TurnEnv):
    """ALFWorld (Shridhar et al., 2021) text games; one TextWorld engine object reused across episodes."""

    family = "alfworld"
    default_pack = "alfworld-gen"
    default_split = "train"
    default_max_turns = 50
    task_fields = ALFWORLD_SCHEMA  # record fields and checks, run when a pack loads (envs/alfworld/schema.py)
    action_format = (
        "Reply with exactly one of the admissible commands, for example: go to countertop 1 | open fridge 1 | "
        "take apple 1 from countertop 1 | move apple 1 to fridge 1 | heat apple 1 with microwave 1 | "
        "cool apple 1 with fridge 1 | clean apple 1 with sinkbasin 1 | use desklamp 1 | examine cabinet 2 | "
        "inventory | look"
    )

    def __init__(
        self,
        task_pack: str | None = None,
        split: str | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        task_types: Sequence[str] | None = None,
        paraphrase: bool | int | None = None,
    ):
        super().__init__(task_pack=task_pack, split=split, max_turns=max_turns, render_mode=render_mode)
        self._task_types = check_task_types(task_types)
        self._paraphrase = check_paraphrase(paraphrase)
        self._engine: Any = None
        self._loaded: str | None = None
        self._state: Any = None
        self._game_file: Path | None = None
        self._history: list[tuple[Any, str]] = []
        self._expert: Expert | None = None
        self._expert_seed = 0

    # ---- tasks ---------------------------------------------------------------------------------------------------
    def extra_reset_options(self) -> tuple[str, ...]:
        return ("task_types", "paraphrase")

    def load_task_pack(self, pack: str | None = None) -> TaskPack:
        name = pack or self._pack_name
        if name == "alfworld-official":
            from turngym.envs.alfworld.official import official_pack_dir

            return load_pack(official_pack_dir(), family=self.family, fields=self.task_fields)
        return super().load_task_pack(pack)

    def task_filter(self, options: Mapping[str, Any]) -> tuple[Callable[[dict[str, Any]], bool], str] | None:
        types = check_task_types(options["task_types"]) if options.get("task_types") else self._task_types
        if types is None:
            return None
        return (lambda t: t["task_type"] in types), f"games of task_types {list(types)}"

    def game_file(self, task: dict[str, Any]) -> Path:
        """The `game.tw-pddl` of a task: the official file, or the generated one written to the cache."""
        assert self.pack is not None
        if "game" in task:
            root = Path(self.pack.manifest.get("data_root") or self.pack.root)
            return root / task["game"]
        if "layout" not in task or "task_desc" not in task:
            raise ConfigError(f"task {task['task_id']!r} has neither 'game' nor 'layout' + 'task_desc'")
        return materialize(task, self.pack.name)

    # ---- hooks ---------------------------------------------------------------------------------------------------
    def _start(self, task: dict[str, Any]) -> Outcome:
        with TEXTWORLD_LOCK:
            if self._engine is None:
                self._engine = make_engine()
            game = self.game_file(task)
            if str(game) != self._loaded:
                self._loaded = None
                self._engine.load(str(game))
                self._loaded = str(game)
            self._game_file = game
            state = self._engine.reset()
        self._history = [(_for_expert(state), "")]
        self._expert = None
        self._expert_seed = EXPERT_SEED
        first = self._outcome(state, valid=True, action="")
        opts = getattr(self, "reset_options", {}) or {}
        mode = check_paraphrase(opts["paraphrase"]) if "paraphrase" in opts else self._paraphrase
        if mode is not None and mode is not False:
            k = int(self.np_random.integers(1 << 30)) if mode is True else mode
            first.text = replace_task(first.text, paraphrase(task["task_type"], task["pddl_params"], k))
        return first

    def _act(self, action: str) -> Outcome:
        cmd = _norm(action)
        admissible = self._state["admissible_commands"]
        if cmd not in admissible:
            m = _PUT.match(cmd)
            if m and f"move {m[1]} to {m[2]}" in admissible:
                cmd = f"move {m[1]} to {m[2]}"
        with TEXTWORLD_LOCK:
            state, _, _ = self._engine.step(cmd)
        self._history.append((_for_expert(state), cmd))
        if self._expert is not None:
            self._expert.record(state, cmd)
        return self._outcome(state, valid=cmd in admissible, action=action)

    def _outcome(self, state: Any, valid: bool, action: str) -> Outcome:
        self._state = state
        won = bool(state["won"])
        key = world_key(state)
        out = Outcome(
            text=state["feedback"],
            reward=1.0 if won else 0.0,
            terminated=won,
            success=won,
            score=1.0 if won else 0.0,
            state=(str(self._game_file), key),
            admissible_actions=state["admissible_commands"],
        )
        if not valid:
            out.invalid_action = True
            out.error = (
                f"{action[:80]!r} is not an admissible command in this state; choose one of "
                "info['admissible_actions']"
            )
        return out

    def expert_action(self) -> str:
        """alfworld's handcoded expert's next command (via the `AlfredExpert` protocol; "look" when it has none)."""
        if self.task is None or self._game_file is None:
            raise ConfigError("call reset() before expert_action()")
        with TEXTWORLD_LOCK:
            if self._expert is None:
                self._expert = Expert.for_game(self._game_file, self._expert_seed)
                first, _ = self._history[0]
                self._expert.start(first)
                for state, cmd in self._history[1:]:
                    self._expert.record(state, cmd)
            return self._expert.action()

    def _close(self) -> None:
        if self._engine is not None:
            try:
                with TEXTWORLD_LOCK:
                    self._engine.close()
            except Exception:  # the engine has nothing to release beyond memory
                pass
        self._engine = None
        self._state = None
        self._history = []
        self._expert = None
