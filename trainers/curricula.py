"""Curricula over training steps and tasks: the turn horizon (ScalingInter-RL), the distilled depth (TCOD), the
rollout budget per task (Knapsack-RL) and the task mix by measured difficulty (CRAFT-GUI).

    TurnSchedule.parse("0:10,100:20,200:30").max_turns(step)   -> the env's `max_turns` for episodes of that step
    tcod_depth(k, d0, every, d_max)                             -> turns that receive distillation signal at step k
    tcod_token_mask(turn_index, depth)                          -> 1 for policy tokens of turns < depth
    knapsack_allocate(success_rates, budget, ...)               -> rollouts per task
    craft_bucket(p, hard_below, easy_above)                     -> "easy" | "learnable" | "hard" | "unmeasured"
    craft_weights(rates, ...) / craft_shares(rates, ...)        -> sampling weights / bucket shares of a task pool

The schedules are pure functions of the step (no hidden state), so a resumed run gets the same schedule. In a run,
two trainer callbacks measure each task's group success and act on it (their state is saved in the checkpoints):
`craft_gui` (`CraftCurriculum`) samples the step's tasks by bucket, `knapsack_rl` (`KnapsackRollouts`) sizes each
task's group; both on together compose (CRAFT picks the tasks, Knapsack splits the rollouts among them).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from turngym.errors import ConfigError
from turngym.trainers.callbacks import Callback, register_callback
from turngym.trainers.strategies import RolloutStrategy


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


# ---- measured success per task (CRAFT-GUI and Knapsack-RL in a run) --------------------------------------------
class TaskSuccess:
    """The last measured group success rate of every task: the share of a group's episodes with `info["success"]`.

    Each new group of a task replaces its rate (turngym choice: the current policy's difficulty, not a long average)."""

    def __init__(self) -> None:
        self.rates: dict[str, float] = {}

    def observe(self, episodes: Sequence[Any]) -> None:
        groups: dict[Any, list[float]] = {}
        for ep in episodes:
            groups.setdefault((ep.group, str(ep.task_id)), []).append(1.0 if ep.success else 0.0)
        for (_, task), xs in groups.items():
            self.rates[task] = sum(xs) / len(xs)

    def get(self, task_ids: Sequence[str]) -> list[float | None]:
        """The rates of `task_ids` (None: never measured)."""
        return [self.rates.get(str(t)) for t in task_ids]

    def state_dict(self) -> dict[str, Any]:
        return {"rates": dict(self.rates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rates = dict(state.get("rates", {}))


# ---- CRAFT-GUI ----------------------------------------------------------------------------------------------------
CRAFT_BUCKETS = ("easy", "learnable", "hard", "unmeasured")


def craft_bucket(p: float | None, hard_below: float = 0.2, easy_above: float = 0.8) -> str:
    """CRAFT-GUI ("CRAFT-GUI: Curriculum-Reinforced Agent For GUI Tasks", arXiv 2508.11360): a task's difficulty
    bucket from its measured group success rate p: "hard" if p < hard_below, "easy" if p > easy_above, else
    "learnable"; "unmeasured" before its first group. Thresholds 0.2 / 0.8 are a turngym choice (config fields
    `craft_hard_below`, `craft_easy_above`)."""
    if p is None:
        return "unmeasured"
    if p < hard_below:
        return "hard"
    if p > easy_above:
        return "easy"
    return "learnable"


def craft_weights(
    rates: Sequence[float | None],
    hard_below: float = 0.2,
    easy_above: float = 0.8,
    easy_weight: float = 0.1,
    hard_weight: float = 0.1,
) -> list[float]:
    """CRAFT-GUI sampling weight of each task: 1 for learnable and unmeasured tasks (so every task gets measured),
    `easy_weight` / `hard_weight` for the too-easy / too-hard ones (turngym choice: 0.1 each, never 0, so a bucket is
    re-measured as the policy changes)."""
    w = {"easy": easy_weight, "hard": hard_weight, "learnable": 1.0, "unmeasured": 1.0}
    return [float(w[craft_bucket(p, hard_below, easy_above)]) for p in rates]


def craft_shares(
    rates: Sequence[float | None], hard_below: float = 0.2, easy_above: float = 0.8
) -> dict[str, float]:
    """The share of a task pool in each bucket (`CRAFT_BUCKETS`; the shares sum to 1)."""
    buckets = [craft_bucket(p, hard_below, easy_above) for p in rates]
    n = max(len(buckets), 1)
    return {b: buckets.count(b) / n for b in CRAFT_BUCKETS}


class WeightedTaskStream:
    """A drop-in for the trainer's `TaskStream` (`take(n)`, `position`, `ids`) that draws each step's tasks with
    probability proportional to `weight_fn(ids)`, without replacement while enough tasks have weight > 0. Draw k
    depends only on (seed, position, weights), so a resumed run whose weights are restored continues exactly."""

    def __init__(self, task_ids: Sequence[str], seed: int, weight_fn: Any):
        if not task_ids:
            raise ConfigError("no training tasks to sample from")
        self.ids = [str(t) for t in task_ids]
        self.seed = seed
        self.position = 0
        self.weight_fn = weight_fn

    def take(self, n: int) -> list[str]:
        import numpy as np

        w = np.asarray(self.weight_fn(self.ids), dtype=float)
        if w.sum() <= 0:
            w = np.ones(len(self.ids))
        rng = np.random.default_rng([self.seed, self.position, 11])
        picks = rng.choice(len(self.ids), size=n, replace=n > int((w > 0).sum()), p=w / w.sum())
        self.position += n
        return [self.ids[int(i)] for i in picks]


@register_callback("craft_gui")
class CraftCurriculum(Callback):
    """CRAFT-GUI's difficulty curriculum in a GRPO run (arXiv 2508.11360): the trainer's tasks are bucketed by their
    last measured group success (too easy / learnable / too hard: `craft_bucket`) and each step's tasks are drawn with
    `craft_weights`, so the batch leans towards tasks whose groups still give a GRPO gradient. Buckets are recomputed
    from the latest groups at every draw. Config: `callbacks: [{name: craft_gui}]` with the `craft_*` fields.

    Logged every step: `craft_easy`, `craft_learnable`, `craft_hard`, `craft_unmeasured` (shares of the task pool when
    the step's tasks were drawn) and `craft_drawn_learnable` (share of the step's drawn tasks that were learnable or
    unmeasured). Multi-process runs: each rank buckets by its own groups."""

    def __init__(self) -> None:
        self.success = TaskSuccess()
        self.shares: dict[str, float] = {}
        self.drawn: list[str] = []

    def on_train_begin(self, trainer: Any) -> None:
        cfg = trainer.config
        self.thresholds = (cfg.craft_hard_below, cfg.craft_easy_above)
        self.bucket_weights = (cfg.craft_easy_weight, cfg.craft_hard_weight)
        trainer.tasks = WeightedTaskStream(trainer.tasks.ids, cfg.seed, self.weights)

    def weights(self, ids: Sequence[str]) -> list[float]:
        return craft_weights(self.success.get(ids), *self.thresholds, *self.bucket_weights)

    def on_step_begin(self, trainer: Any) -> None:
        self.shares = craft_shares(self.success.get(trainer.tasks.ids), *self.thresholds)
        self.drawn = []

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float] | None:
        tasks = {(ep.group, str(ep.task_id)): str(ep.task_id) for ep in episodes}
        self.drawn += [craft_bucket(p, *self.thresholds) for p in self.success.get(list(tasks.values()))]
        self.success.observe(episodes)
        return None

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        metrics.update({f"craft_{b}": v for b, v in self.shares.items()})
        if self.drawn:
            good = sum(b in ("learnable", "unmeasured") for b in self.drawn)
            metrics["craft_drawn_learnable"] = good / len(self.drawn)

    def state_dict(self) -> dict[str, Any]:
        return self.success.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.success.load_state_dict(state)


# ---- Knapsack-RL in a run -----------------------------------------------------------------------------------------
@register_callback("knapsack_rl")
class KnapsackRollouts(Callback):
    """Knapsack-RL's allocation in a GRPO run: each step's budget of `tasks_per_step × group_size` rollouts is split
    over the step's tasks by `knapsack_allocate` on their last measured group success (`prior` for a task never
    measured, turngym choice 0.5), so a task's group has between `min_n` and `max_n` episodes. Config:
    `callbacks: [{name: knapsack_rl, min_n: 2, max_n: 32}]`. It wraps the trainer's rollout strategy (one collect call
    per distinct group size). Logged every step: `knapsack_rollouts` (episodes collected), `knapsack_max_n`."""

    def __init__(self, min_n: int = 2, max_n: int = 32, prior: float = 0.5):
        if min_n < 1 or max_n < min_n or not 0.0 <= prior <= 1.0:
            raise ConfigError(
                f"knapsack_rl: need 1 <= min_n <= max_n and prior in [0, 1], got {min_n}, {max_n}, {prior}"
            )
        self.min_n, self.max_n, self.prior = int(min_n), int(max_n), float(prior)
        self.success = TaskSuccess()
        self.sizes: list[int] = []

    def on_train_begin(self, trainer: Any) -> None:
        trainer.strategy = _KnapsackStrategy(trainer.strategy, self)

    def allocate(self, task_ids: Sequence[str], budget: int) -> list[int]:
        rates = [self.prior if p is None else p for p in self.success.get(task_ids)]
        min_n = min(self.min_n, budget // max(len(task_ids), 1))
        return knapsack_allocate(rates, budget, max(min_n, 1), self.max_n)

    def on_step_begin(self, trainer: Any) -> None:
        self.sizes = []

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float] | None:
        self.success.observe(episodes)
        return None

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self.sizes:
            metrics["knapsack_rollouts"] = float(sum(self.sizes))
            metrics["knapsack_max_n"] = float(max(self.sizes))

    def state_dict(self) -> dict[str, Any]:
        return self.success.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.success.load_state_dict(state)


class _KnapsackStrategy(RolloutStrategy):
    """The trainer's rollout strategy with Knapsack-RL group sizes: the tasks that get n episodes are collected in one
    call of the wrapped strategy; `group` stays the task's index in the step's list, as the engine numbers it. Every
    other hook is the wrapped strategy's."""

    def __init__(self, inner: RolloutStrategy, knapsack: KnapsackRollouts):
        super().__init__(inner.engine, inner.model, inner.cfg)
        self.inner, self.knapsack = inner, knapsack

    def collect(
        self, task_ids: list[str], group_size: int, seed: int, split: str | None, options: dict[str, Any]
    ) -> list[Any]:
        sizes = self.knapsack.allocate(task_ids, len(task_ids) * group_size)
        self.knapsack.sizes += sizes
        out: list[Any] = []
        for k, n in enumerate(sorted(set(sizes))):
            idx = [i for i, m in enumerate(sizes) if m == n]
            eps = self.inner.collect([task_ids[i] for i in idx], n, seed + 7919 * k, split, options)
            for ep in eps:
                ep.group = idx[ep.group]
            out += eps
        return out

    def postprocess_advantages(self, group: list[Any], advantages: list[Any]) -> list[Any]:
        return self.inner.postprocess_advantages(group, advantages)

    def training_samples(self, group: list[Any], advantages: list[Any]) -> list[tuple[Any, Any]]:
        return self.inner.training_samples(group, advantages)

    def metrics(self, episodes: list[Any]) -> dict[str, float]:
        return self.inner.metrics(episodes)


def make_scaling_inter_rl(stages: str | Sequence[Sequence[int]]) -> TurnSchedule:
    """Hook factory (config `{"name": "scaling_inter_rl", "stages": "0:10,100:20,200:30"}`): step -> max_turns."""
    return TurnSchedule.parse(stages)


def _register() -> None:
    from turngym.trainers import hooks

    hooks.register_max_turns_schedule("scaling_inter_rl", make_scaling_inter_rl)


_register()
