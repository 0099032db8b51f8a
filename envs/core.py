"""The multi-turn environment contract every turngym env follows.

`TurnEnv` is a `gymnasium.Env` whose actions are strings and whose observations are dicts with `"text"` (and `"image"`,
uint8 HxWx3, for visual envs). A family implements two hooks, `_start(task)` and `_act(action)`, each returning an
`Outcome`; the base class owns the episode bookkeeping (turn counter, `max_turns` truncation, the `info` schema,
task selection from task packs, determinism under `seed`).

The `info` dict has the same typed keys in every env (see `INFO_SCHEMA`):

    task_id (str)  turn (int)  success (bool)  score (float in [0, 1])  invalid_action (bool)  error (str)
    cost (dict[str, float], this step)  total_cost (dict[str, float], episode so far)  obs_key (str, a digest of the
    environment state: equal states give equal keys, for step-level grouping as in GiGPO)
    admissible_actions (list[str], empty where the env cannot enumerate them)  tool_calls (int, episode so far)
    instructions (str: task statement + action format; repeated every step so a policy never loses it)

Bad actions never raise: they give `invalid_action=True`, an `error` saying what was wrong, an observation that says
so, and the episode goes on until `max_turns`. `step` refuses, before the family sees them, non-`str` actions (None,
bytes, numbers...), actions over `MAX_ACTION` characters and text holding a lone surrogate or a NUL (see
`refuse_action`); everything else goes to the family's `_act`, whose parser reports what it cannot parse. An exception
that still leaves `_act` is a fault of the env or its engine: it propagates, with a note naming the env, task, turn
and action.
"""

from __future__ import annotations

import hashlib
import json
import string
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from turngym.envs.actiontext import bad_char
from turngym.errors import ConfigError, TurngymError
from turngym.tasks.pack import Field, TaskPack, load_pack

MAX_TEXT = 1_000_000  # characters in one observation
MAX_ACTION = 100_000  # characters in one action

INFO_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "task_id": str,
    "turn": int,
    "success": bool,
    "score": float,
    "invalid_action": bool,
    "error": str,
    "cost": dict,
    "total_cost": dict,
    "obs_key": str,
    "admissible_actions": list,
    "tool_calls": int,
    "instructions": str,
}
RESET_OPTIONS = ("task_id", "split", "max_turns", "task_pack")


def refuse_action(action: Any) -> str | None:
    """Why `action` is refused before any family sees it, or None. Refused: a non-`str` (bytes too: decode first),
    more than `MAX_ACTION` characters, a lone surrogate (not encodable as UTF-8) or a NUL character."""
    if not isinstance(action, str):
        hint = " (decode bytes to str first)" if isinstance(action, (bytes, bytearray)) else ""
        return f"an action must be a str, got {type(action).__name__}{hint}"
    if len(action) > MAX_ACTION:
        return f"the action has {len(action)} characters, more than the limit of {MAX_ACTION}"
    why = bad_char(action)
    return f"the action contains {why}" if why else None


class TextSpace(spaces.Text):
    """A text space that contains every `str` up to `max_length` characters.

    Gymnasium's `Text` only contains strings over a fixed charset; an LLM's action or an env's feedback can hold any
    Unicode. Sampling still draws from printable ASCII (what `check_env` and random agents need).
    """

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"


@dataclass
class Outcome:
    """What a family's `_start`/`_act` hook returns: one observation and what happened."""

    text: str
    reward: float = 0.0
    terminated: bool = False
    success: bool = False
    score: float = 0.0
    invalid_action: bool = False
    error: str = ""
    cost: dict[str, float] = field(default_factory=dict)
    state: Any = None  # anything hashable/JSON-able that identifies the environment state -> obs_key
    admissible_actions: list[str] = field(default_factory=list)
    tool_calls: int = 0  # tool calls made by this action
    image: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific info keys


def state_key(state: Any) -> str:
    """A short stable digest of a JSON-able state (sets and tuples are sorted/listed first)."""

    def norm(x: Any) -> Any:
        if isinstance(x, Mapping):
            return {str(k): norm(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
        if isinstance(x, (set, frozenset)):
            return sorted((norm(v) for v in x), key=repr)
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, np.ndarray):
            return x.tolist()
        return x

    blob = json.dumps(norm(state), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


class TurnEnv(gym.Env[dict, str]):
    """Base class of every turngym environment. Subclasses set the class attributes and implement the hooks.

    Constructor arguments (all also settable per episode through `reset(options=...)` where marked):
      task_pack: pack name or folder (option `task_pack`); split (option `split`); max_turns (option `max_turns`);
      render_mode: None, "ansi" (returns text) or "rgb_array" (visual envs); image: include `"image"` in observations.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}
    family: ClassVar[str] = ""
    default_pack: ClassVar[str | None] = None
    default_split: ClassVar[str] = "train"
    default_max_turns: ClassVar[int] = 50
    task_fields: ClassVar[dict[str, Field]] = {}
    pack_family: ClassVar[str | None] = None  # the family whose task packs this env plays (default: `family`)
    action_format: ClassVar[str] = ""  # how actions are written, shown in `instructions`
    image_shape: ClassVar[tuple[int, int, int] | None] = None  # (H, W, 3) for visual envs
    # split -> the pack played for that split when no task_pack is given (a split the default pack lacks)
    split_packs: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        task_pack: str | None = None,
        split: str | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        image: bool | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode {render_mode!r} is not supported; choose from {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        self.use_image = bool(self.image_shape) if image is None else bool(image)
        if self.use_image and not self.image_shape:
            raise ConfigError(f"{type(self).__name__} has no image observations (image=True was asked for)")
        obs = {"text": TextSpace(MAX_TEXT)}
        if self.use_image:
            obs["image"] = spaces.Box(0, 255, shape=self.image_shape, dtype=np.uint8)
        self.observation_space = spaces.Dict(obs)
        self.action_space = TextSpace(MAX_ACTION)
        self._pack_name = task_pack or self.default_pack
        self._pack_given = task_pack is not None
        self._split = split or self.default_split
        self._max_turns = self._check_max_turns(
            max_turns if max_turns is not None else self.default_max_turns
        )
        self._order: dict[tuple[str, str], list[int]] = {}
        self.task: dict[str, Any] | None = None
        self.pack: TaskPack | None = None
        self.turn = 0
        self.max_turns = self._max_turns
        self._last: Outcome | None = None
        self._last_obs: dict[str, Any] | None = None
        self._total_cost: dict[str, float] = {}
        self._tool_calls = 0
        self._done = False
        self._closed = False

    # ---- hooks for families -------------------------------------------------------------------------------------
    @abstractmethod
    def _start(self, task: dict[str, Any]) -> Outcome:
        """Set up `task` (a validated record of the pack) and return the first observation."""

    @abstractmethod
    def _act(self, action: str) -> Outcome:
        """Apply one action. Never raise on a bad action: return `Outcome(invalid_action=True, error=...)`."""

    def _instructions(self, task: dict[str, Any], first: Outcome) -> str:
        """Task statement + action format. Default: the first observation and `action_format`."""
        return f"{first.text}\n\n{self.action_format}".strip()

    def _close(self) -> None:
        """Release family resources (processes, browsers, files). Called once."""

    def expert_action(self) -> str:
        """The action a scripted expert takes in the current state (families with an expert override this)."""
        raise NotImplementedError(f"{type(self).__name__} has no scripted expert")

    def _render_image(self) -> np.ndarray | None:
        return None if self._last is None else self._last.image

    # ---- task selection ------------------------------------------------------------------------------------------
    def load_task_pack(self, pack: str | None = None) -> TaskPack:
        """The pack `pack` (default: the env's), loaded and validated once per env (a reset costs no file I/O)."""
        name = pack or self._pack_name
        if name is None:
            raise ConfigError(f"{type(self).__name__} needs a task pack: pass task_pack=NAME_OR_PATH")
        cache = self.__dict__.setdefault("_pack_cache", {})
        if name not in cache:
            cache[name] = load_pack(name, family=self.pack_family or self.family, fields=self.task_fields)
        return cache[name]

    def task_filter(self, options: Mapping[str, Any]) -> tuple[Callable[[dict[str, Any]], bool], str] | None:
        """Which records of the pack this env plays under reset `options`: a predicate and a phrase naming it for
        error messages ("task 'click-button'"), or None for every record. Families that pin a subset override it."""
        return None

    def _pack_and_split(self, options: Mapping[str, Any], check: bool = True) -> tuple[TaskPack, str]:
        split = options.get("split") or self._split
        name = options.get("task_pack")
        if not name and not self._pack_given:
            name = self.split_packs.get(split)
        pack = self.load_task_pack(name)
        if check and split not in pack.splits:
            raise ConfigError(self._missing_split_message(pack, split))
        return pack, split

    def _missing_split_message(self, pack: TaskPack, split: str) -> str:
        from turngym.tasks.pack import find_packs, read_manifest

        family = self.pack_family or self.family
        having = []
        for name, root in sorted(find_packs().items()):
            try:
                manifest = read_manifest(root)
            except TurngymError:
                continue
            if manifest.get("family") == family and split in manifest["splits"]:
                having.append(name)
        hint = (
            f"packs of the {family!r} family with a {split!r} split: {having}; pass task_pack=NAME"
            if having
            else f"no installed pack of the {family!r} family has a {split!r} split"
        )
        return f"task pack {pack.name!r} has no split {split!r} (its splits: {pack.splits}); {hint}"

    def _env_name(self) -> str:
        spec = getattr(self, "spec", None)
        return getattr(spec, "id", None) or type(self).__name__

    def _task_pool(self, pack: TaskPack, split: str, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The records of `split` this env plays under `options` (never empty: a ConfigError says why)."""
        tasks = pack.tasks(split)
        narrow = self.task_filter(options)
        if narrow is not None:
            keep, what = narrow
            tasks = [t for t in tasks if keep(t)]
            if not tasks:
                raise ConfigError(
                    f"{self._env_name()} plays only {what}, and split {split!r} of pack {pack.name!r} has none"
                )
        elif not tasks:
            raise ConfigError(f"split {split!r} of pack {pack.name!r} has no tasks")
        return tasks

    def _check_task(self, task: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        narrow = self.task_filter(options)
        if narrow is not None and not narrow[0](task):
            raise ConfigError(
                f"task_id {task['task_id']!r} is not a task of {self._env_name()}, which plays only {narrow[1]}"
            )
        return task

    def task_ids(self, split: str | None = None, options: Mapping[str, Any] | None = None) -> list[str]:
        """The ids of exactly the tasks this env plays in `split` (default: the env's split), in pack order.

        `options` are reset options (`task_pack`, `task_id`, family options such as ALFWorld's `task_types`); an id
        that pins a task (e.g. `turngym/MiniWoB-click-button-v0`) gives that one task. Every caller that plans
        episodes (evaluation, the rollout engine, trainers) draws from this list."""
        opts = dict(options or {})
        if split:
            opts["split"] = split
        self._check_options(opts)
        if opts.get("task_id") is not None:
            return [str(self._select_task(opts)[2]["task_id"])]
        pack, split = self._pack_and_split(opts)
        return [str(t["task_id"]) for t in self._task_pool(pack, split, opts)]

    def _select_task(self, options: Mapping[str, Any]) -> tuple[TaskPack, str, dict[str, Any]]:
        if options.get("task_id") is not None and not options.get("split"):
            # a task id alone is looked up in the env's split first, then in every split of the pack
            pack = self._pack_and_split(options, check=False)[0]
            tid = str(options["task_id"])
            for split in dict.fromkeys([self._split, *pack.splits]):
                if split in pack.splits:
                    for task in pack.tasks(split):
                        if task["task_id"] == tid:
                            return pack, split, self._check_task(task, options)
            pack.get(tid)  # raises, naming the pack and its splits
        pack, split = self._pack_and_split(options)
        if options.get("task_id") is not None:
            return pack, split, self._check_task(pack.get(str(options["task_id"]), split), options)
        tasks = self._task_pool(pack, split, options)
        # Sample without replacement: a seeded permutation of the pool, consumed in order, refreshed when exhausted.
        key = (pack.name, split, hash(tuple(t["task_id"] for t in tasks)))
        if not self._order.get(key):
            self._order[key] = list(self.np_random.permutation(len(tasks)))
        return pack, split, tasks[int(self._order[key].pop())]

    def _check_options(self, options: Mapping[str, Any]) -> None:
        unknown = set(options) - set(RESET_OPTIONS) - set(self.extra_reset_options())
        if unknown:
            raise ConfigError(
                f"unknown reset option(s) {sorted(unknown)}; accepted: {list(RESET_OPTIONS) + list(self.extra_reset_options())}"
            )

    @staticmethod
    def _check_max_turns(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"max_turns must be a positive integer, got {value!r}")
        return int(value)

    # ---- gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        if self._closed:
            raise ConfigError(f"{type(self).__name__} was closed; make a new env")
        if seed is not None:
            self._order.clear()
        super().reset(seed=seed)
        options = dict(options or {})
        self._check_options(options)
        self.max_turns = (
            self._check_max_turns(options["max_turns"])
            if options.get("max_turns") is not None
            else self._max_turns
        )
        self.reset_options = options
        self.pack, self.split, self.task = self._select_task(options)
        self.turn = 0
        self._total_cost = {}
        self._tool_calls = 0
        self._done = False
        first = self._start(self.task)
        self.instructions = self._instructions(self.task, first)
        return self._emit(first), self._info(first)

    def extra_reset_options(self) -> tuple[str, ...]:
        """Reset options a family accepts beyond `RESET_OPTIONS`."""
        return ()

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self.task is None:
            raise ConfigError("call reset() before step()")
        if self._done:
            raise ConfigError("the episode has ended (terminated or truncated); call reset()")
        refused = refuse_action(action)
        if refused:
            out = Outcome(text=f"Invalid action: {refused}.", invalid_action=True, error=refused)
            out.state = self._last.state if self._last else None
            out.admissible_actions = list(self._last.admissible_actions) if self._last else []
        else:
            try:
                out = self._act(action)
            # bad actions are reported, not raised: this is a fault of the env or its engine, named here
            except Exception as exc:
                if hasattr(exc, "add_note"):
                    exc.add_note(
                        f"raised by {type(self).__name__}._act({action!r:.80}) on task "
                        f"{self.task.get('task_id')!r}, turn {self.turn + 1}"
                    )
                raise
        self.turn += 1
        self._tool_calls += int(out.tool_calls)
        for k, v in out.cost.items():
            self._total_cost[k] = self._total_cost.get(k, 0.0) + float(v)
        terminated = bool(out.terminated)
        truncated = not terminated and self.turn >= self.max_turns
        self._done = terminated or truncated
        obs = self._emit(out)
        return obs, float(out.reward), terminated, truncated, self._info(out)

    def _emit(self, out: Outcome) -> dict[str, Any]:
        self._last = out
        obs: dict[str, Any] = {"text": out.text}
        if self.use_image:
            img = out.image if out.image is not None else self._render_image()
            if img is None:
                img = np.zeros(self.image_shape, dtype=np.uint8)
            obs["image"] = np.ascontiguousarray(img, dtype=np.uint8)
        self._last_obs = obs
        return obs

    def _info(self, out: Outcome) -> dict[str, Any]:
        info = {
            "task_id": str(self.task["task_id"]),
            "turn": self.turn,
            "success": bool(out.success),
            "score": float(min(1.0, max(0.0, out.score))),
            "invalid_action": bool(out.invalid_action),
            "error": str(out.error),
            "cost": {k: float(v) for k, v in out.cost.items()},
            "total_cost": dict(self._total_cost),
            "obs_key": state_key(out.state if out.state is not None else out.text),
            "admissible_actions": list(out.admissible_actions),
            "tool_calls": self._tool_calls,
            "instructions": self.instructions,
        }
        info.update(out.extra)
        return info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return "" if self._last is None else self._last.text
        if self.render_mode == "rgb_array":
            img = self._render_image()
            return None if img is None else np.asarray(img, dtype=np.uint8)
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()
        super().close()
