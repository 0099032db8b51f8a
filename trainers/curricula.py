"""Curricula over training steps: the turn horizon (ScalingInter-RL), the distilled depth (TCOD), and the rollout
budget per task (Knapsack-RL).

    TurnSchedule.parse("0:10,100:20,200:30").max_turns(step)   -> the env's `max_turns` for episodes of that step
    tcod_depth(k, d0, every, d_max)                             -> turns that receive distillation signal at step k
    tcod_token_mask(turn_index, depth)                          -> 1 for policy tokens of turns < depth
    knapsack_allocate(success_rates, budget, ...)               -> rollouts per task

Pure functions of the step (no hidden state), so a resumed run gets the same schedule.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from turngym.errors import ConfigError


# ---- ScalingInter-RL --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TurnSchedule:
    """ScalingInter-RL (AgentGym-RL): the turn limit grows in stages with training, `max_turns` 10 → 20 → 30.

    `stages` is a list of (first_step, max_turns), sorted by step, the first at step 0, turn limits non-decreasing
    (short horizons first to exploit, longer later to explore). The trainer passes `max_turns(step)` to
    `env.reset(options={"max_turns": ...})` for every episode it samples at `step`.
    """

    stages: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        st = tuple((int(s), int(t)) for s, t in self.stages)
        object.__setattr__(self, "stages", st)
        if not st:
            raise ConfigError("TurnSchedule needs at least one stage (first_step, max_turns)")
        if st[0][0] != 0:
            raise ConfigError(f"TurnSchedule: the first stage must start at step 0, got {st[0][0]}")
        for (s0, t0), (s1, t1) in zip(st, st[1:]):
            if s1 <= s0:
                raise ConfigError(f"TurnSchedule: stage steps must increase, got {s0} then {s1}")
            if t1 < t0:
                raise ConfigError(f"TurnSchedule: max_turns must not shrink, got {t0} then {t1} at step {s1}")
        for _, t in st:
            if t < 1:
                raise ConfigError(f"TurnSchedule: max_turns must be >= 1, got {t}")

    @classmethod
    def parse(cls, spec: str | Sequence[Sequence[int]] | TurnSchedule) -> TurnSchedule:
        """From "STEP:TURNS,STEP:TURNS,..." (e.g. "0:10,100:20,200:30") or a list of pairs."""
        if isinstance(spec, TurnSchedule):
            return spec
        if isinstance(spec, str):
            pairs = []
            for part in spec.replace(" ", "").split(","):
                if not part:
                    continue
                step, sep, turns = part.partition(":")
                if not sep or not step.isdigit() or not turns.isdigit():
                    raise ConfigError(
                        f"turn schedule {spec!r}: each stage is STEP:MAX_TURNS, e.g. '0:10,100:20', got {part!r}"
                    )
                pairs.append((int(step), int(turns)))
            return cls(tuple(pairs))
        return cls(tuple((int(s), int(t)) for s, t in spec))

    def max_turns(self, step: int) -> int:
        """The turn limit of the last stage that has started by `step`."""
        turns = self.stages[0][1]
        for first, t in self.stages:
            if step >= first:
                turns = t
        return turns

    __call__ = max_turns

    def __str__(self) -> str:
        return ",".join(f"{s}:{t}" for s, t in self.stages)


# ---- TCOD -------------------------------------------------------------------------------------------------------
def tcod_depth(step: int, d0: int = 1, every: int = 10, d_max: int = 50) -> int:
    """TCOD (temporal curriculum on-policy distillation): depth(k) = min(D_max, d_0 + ⌊k/K⌋) turns at step k.

    `every` is K, the number of training steps per added turn of depth.
    """
    if d0 < 1 or every < 1 or d_max < 1:
        raise ConfigError(f"tcod_depth: d0, every (K) and d_max must be >= 1, got {d0}, {every}, {d_max}")
    if step < 0:
        raise ConfigError(f"tcod_depth: step must be >= 0, got {step}")
    return min(d_max, d0 + step // every)


def tcod_token_mask(turn_index: Sequence[int], depth: int) -> list[int]:
    """1 for tokens of turns 0..depth-1 (the trajectory prefix that receives distillation signal), else 0;
    non-policy tokens (turn_index -1) are 0."""
    return [1 if 0 <= t < depth else 0 for t in turn_index]


# ---- Knapsack-RL --------------------------------------------------------------------------------------------------
def nonzero_gradient_prob(p: float, n: int) -> float:
    """Knapsack-RL: the chance that n rollouts of a task with success rate p give a non-zero GRPO gradient,
    1 − p^n − (1−p)^n (not all equal)."""
    if n <= 0:
        return 0.0
    return 1.0 - p**n - (1.0 - p) ** n


def knapsack_allocate(
    success_rates: Sequence[float],
    budget: int,
    min_n: int = 2,
    max_n: int = 32,
    values: Sequence[float] | None = None,
) -> list[int]:
    """Knapsack-RL: split `budget` rollouts over tasks to maximise Σ_x v_x · (1 − p_x^n_x − (1−p_x)^n_x).

    Every task gets `min_n` first (so its success rate keeps being measured), then rollouts go one at a time to the
    task with the largest marginal gain. Each task's value is concave in n (the all-equal probability p^n + (1−p)^n
    shrinks by a smaller amount each time), so this greedy allocation is optimal for unit costs. Ties go to the lower
    task index (deterministic). Tasks with p = 0 or 1 (no gain from any n) keep `min_n`; budget that no task can use
    (all gains 0, or every task at `max_n`) is left unspent.
    """
    k = len(success_rates)
    if k == 0:
        return []
    if min_n < 1 or max_n < min_n:
        raise ConfigError(f"knapsack_allocate: need 1 <= min_n <= max_n, got {min_n}, {max_n}")
    if budget < k * min_n:
        raise ConfigError(f"knapsack_allocate: budget {budget} < {k} tasks × min_n {min_n}")
    for p in success_rates:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"knapsack_allocate: success rates must be in [0, 1], got {p}")
    v = [1.0] * k if values is None else [float(x) for x in values]
    if len(v) != k:
        raise ConfigError(f"knapsack_allocate: {len(v)} values for {k} tasks")
    n = [min_n] * k
    left = budget - k * min_n

    def gain(i: int) -> float:
        p = success_rates[i]
        return v[i] * (nonzero_gradient_prob(p, n[i] + 1) - nonzero_gradient_prob(p, n[i]))

    heap = [(-gain(i), i) for i in range(k) if n[i] < max_n]
    heapq.heapify(heap)
    while left > 0 and heap:
        g, i = heapq.heappop(heap)
        if -g <= 1e-12:
            break
        n[i] += 1
        left -= 1
        if n[i] < max_n:
            heapq.heappush(heap, (-gain(i), i))
    return n


def make_scaling_inter_rl(stages: str | Sequence[Sequence[int]]) -> TurnSchedule:
    """Hook factory (config `{"name": "scaling_inter_rl", "stages": "0:10,100:20,200:30"}`): step -> max_turns."""
    return TurnSchedule.parse(stages)


def _register() -> None:
    from turngym.trainers import hooks

    hooks.register_max_turns_schedule("scaling_inter_rl", make_scaling_inter_rl)


_register()
