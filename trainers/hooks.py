"""Hook points of the RL trainer, for pieces built outside the trainer loop (rewards, curricula, distillation).

Three registries, each `name -> factory(**kwargs) -> callable`; a config names them as `{"name": ..., **kwargs}`:

REWARD_SHAPERS      shaper(group: list[TokenEpisode], ctx: HookContext) -> list[list[float]]
                    Called once per group (episodes of one task), after rollouts and before advantages. Returns the
                    new per-turn rewards of every episode (same lengths as `ep.rewards`). Shapers run in config order;
                    the env's own rewards stay in `ep.env_rewards`. A shaper is a pure function of the group
                    (no I/O, no engine, no training); what needs state or side effects is a trainer `Callback`
                    (`trainers.callbacks`). A factory may return a `Callback` that is also callable (a shaper with
                    state, e.g. SPA-RL's: the callback fits, the call shapes) or one that is not (SLIM, kept under
                    `reward_shaping` for configs that name it there): the trainer runs it as a callback too.
MAX_TURNS_SCHEDULES schedule(step: int) -> int | None
                    The `max_turns` env option for the episodes of training step `step` (None: the env default or
                    `config.max_turns`).
EXTRA_ADVANTAGES    extra(episodes: list[TokenEpisode], batch: Batch, ctx: HookContext) -> Tensor [B, L]
                    Per-token advantages added (times the spec's `coef`, default 1) to the estimator's, on policy
                    tokens only. `batch` is the collated mini-batch of exactly `episodes`.

A module registers with `@register_shaper("otc")` (or `register_max_turns_schedule`, `register_extra_advantage`);
assignment (`REWARD_SHAPERS["otc"] = make_otc`) still works. Built in here: `dapo_overlong` (DAPO's overlong shaping)
and `stages` (a step -> max_turns table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turngym.errors import UnknownNameError
from turngym.trainers.registry import Registry, decorator


@dataclass
class HookContext:
    """What a hook may read: the training step, the config, the policy being trained (nn.Module), its tokenizer and
    the trainer's rollout engine. One context per training step: numbers a hook puts in `extra` are logged with the
    step's metrics."""

    step: int
    config: Any
    model: Any = None
    tokenizer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    engine: Any = None


RewardShaper = Callable[[list, HookContext], list[list[float]]]
_PLUGINS = ("rewards", "curricula", "distill", "skills", "progress", "chatshop", "spear")
REWARD_SHAPERS = Registry("reward shaper", plugins=_PLUGINS)
MAX_TURNS_SCHEDULES = Registry("max_turns schedule", plugins=_PLUGINS)
EXTRA_ADVANTAGES = Registry("extra advantage", plugins=_PLUGINS)
register_shaper = decorator(REWARD_SHAPERS)
register_max_turns_schedule = decorator(MAX_TURNS_SCHEDULES)
register_extra_advantage = decorator(EXTRA_ADVANTAGES)


def overlong_penalty(length: int, max_len: int, cache: int) -> float:
    """DAPO overlong shaping (Yu et al. 2025): 0 if |o| ≤ L_max − L_cache; (L_max − L_cache − |o|)/L_cache if
    |o| ≤ L_max; −1 beyond."""
    if length <= max_len - cache:
        return 0.0
    if length <= max_len:
        return (max_len - cache - length) / cache
    return -1.0


def make_dapo_overlong(max_len: int, cache: int) -> RewardShaper:
    """Adds the overlong penalty of an episode's policy-token count to its last turn's reward."""

    def shaper(group: list, ctx: HookContext) -> list[list[float]]:
        out = []
        for ep in group:
            r = list(ep.rewards)
            if r:
                r[-1] += overlong_penalty(ep.num_policy_tokens, max_len, cache)
            out.append(r)
        return out

    return shaper


def make_stages(stages: list[list[int]] | dict[str, int]) -> Callable[[int], int | None]:
    """max_turns by training step: stages [[0, 10], [50, 20], [100, 30]] (from step, max_turns), e.g. ScalingInter-RL."""
    table = sorted((int(k), int(v)) for k, v in (stages.items() if isinstance(stages, dict) else stages))

    def schedule(step: int) -> int | None:
        cur = None
        for start, turns in table:
            if step >= start:
                cur = turns
        return cur

    return schedule


register_shaper("dapo_overlong", make_dapo_overlong)
register_max_turns_schedule("stages", make_stages)


def resolve(registry: dict[str, Callable[..., Any]], spec: dict[str, Any], what: str) -> Any:
    """Build a hook from its `{"name": ..., **kwargs}` spec; unknown names list the registered ones."""
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "coef")}
    name = spec["name"]
    if isinstance(registry, Registry):
        return registry.get_entry(name)(**kwargs)
    if name not in registry:
        raise UnknownNameError(
            f"unknown {what} {name!r}; registered: {', '.join(sorted(registry)) or '(none)'}"
        )
    return registry[name](**kwargs)
