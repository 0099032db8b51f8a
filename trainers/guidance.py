"""Hint guidance for tasks the policy cannot solve yet: Scaf-GRPO's tiered hints and GHPO's partial solutions.

A task whose groups keep failing gives GRPO no gradient (every advantage is 0). Both methods then put part of a
solution into the task's prompt, so that some episodes of its group succeed:

- **Scaf-GRPO** ("Scaf-GRPO: Scaffolded Group Relative Policy Optimization"): tiered hints, abstract → concrete.
  turngym's tiers, from the expert's actions a_1..a_L on the task (`scaf_hint`):
    1 abstract   the shape of a solution: "a solution takes L actions: verb_1 → verb_2 → ... → verb_L"
    2 partial    the first ⌈L/2⌉ actions in full
    3 concrete   all L actions (the expert's next actions from the start)
- **GHPO** ("Adaptive Guidance for Stable and Efficient LLM RL"): the hint is a prefix of the ground-truth solution
  whose length follows the measured difficulty: tier k shows the first ⌈ω_k·L⌉ expert actions, ω = `ratios`
  (turngym choice 0.25, 0.5, 0.75, 1.0) (`ghpo_hint`).

Switching (the same for both, `next_tier`, turngym choice for the numbers): after each group of a task, a group
with no success (every episode failed) adds one to the task's failure streak; `window` failed groups in a row raise
the tier by one (up to the last). A group whose success rate reaches `lower_at` (default 0.5) lowers the tier by
one, so the hint fades as the task gets solved; a group in between resets the streak and keeps the tier.
"Failed" reads `info["success"]` (shaped and cost rewards are rarely exactly 0).

In a run, `GuidanceCallback` (config `callbacks: [{name: scaf_grpo}]` or `[{name: ghpo}]`) keeps this state per
task, plays the env's scripted expert once per hinted task on a fresh env (`expert_plan`: same task, seed `seed`)
and wraps the rollout engine's `prompt_hook`, so a hinted task's episodes get the hint in their system prompt.
The hint is prompt text: its tokens have `policy_mask` 0 and are never trained on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from turngym.errors import ConfigError
from turngym.trainers.callbacks import Callback, register_callback

log = logging.getLogger(__name__)

SCAF_TIERS = ("none", "abstract", "partial", "concrete")
GHPO_RATIOS = (0.25, 0.5, 0.75, 1.0)


# ---- switching --------------------------------------------------------------------------------------------------
def next_tier(
    tier: int, streak: int, success_rate: float, window: int, max_tier: int, lower_at: float = 0.5
) -> tuple[int, int]:
    """(tier, failure streak) after one more group of the task with `success_rate` (share of episodes that succeeded).

    0 successes: streak + 1, and at `window` the tier goes up one (streak back to 0); success rate >= `lower_at`:
    the tier goes down one; otherwise the streak resets and the tier stays."""
    if success_rate <= 0.0:
        streak += 1
        if streak >= window and tier < max_tier:
            return tier + 1, 0
        return tier, min(streak, window)
    if success_rate >= lower_at:
        return max(tier - 1, 0), 0
    return tier, 0


# ---- hint texts -------------------------------------------------------------------------------------------------
def _numbered(actions: Sequence[str]) -> str:
    return "\n".join(f"{i + 1}. {a}" for i, a in enumerate(actions))


def _verb(action: str) -> str:
    words = action.split("(", 1)[0].split()
    return words[0] if words else action


def scaf_hint(plan: Sequence[str], tier: int) -> str | None:
    """Scaf-GRPO's hint of `tier` (1 abstract, 2 partial, 3 concrete; 0 none) from the expert's actions `plan`."""
    if tier <= 0 or not plan:
        return None
    if tier == 1:
        return f"Hint: a solution takes {len(plan)} actions: " + " -> ".join(_verb(a) for a in plan) + "."
    if tier == 2:
        return "Hint: a solution starts with these actions:\n" + _numbered(plan[: math.ceil(len(plan) / 2)])
    return "Hint: these actions solve the task:\n" + _numbered(plan)


def ghpo_hint(plan: Sequence[str], tier: int, ratios: Sequence[float] = GHPO_RATIOS) -> str | None:
    """GHPO's hint of `tier` k >= 1: the first ⌈ω_k·L⌉ of the L expert actions (ω_k = ratios[k-1]); 0: none."""
    if tier <= 0 or not plan:
        return None
    n = math.ceil(ratios[min(tier, len(ratios)) - 1] * len(plan) - 1e-9)
    return "Hint: a solution starts with these actions:\n" + _numbered(plan[: max(n, 1)])


# ---- the expert's plan ------------------------------------------------------------------------------------------
def expert_plan(
    env_id: str,
    task_id: str,
    seed: int = 0,
    split: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    max_actions: int = 16,
) -> tuple[list[str], str]:
    """(the scripted expert's actions, the task's instructions) on a fresh env of `task_id` reset with `seed`; the
    actions are [] when the expert did not solve the task."""
    from turngym.agents.base import ExpertAgent
    from turngym.agents.rollout import run_episodes

    (ep,) = run_episodes(
        env_id,
        ExpertAgent(),
        episodes=1,
        seed=seed,
        split=split,
        env_kwargs=env_kwargs,
        task_ids=[task_id],
        num_envs=1,
    )
    if not ep.success:
        log.warning("guidance: the expert did not solve task %s (seed %d); it gets no hint", task_id, seed)
        return [], ep.instructions
    return [s.action for s in ep.steps][:max_actions], ep.instructions


# ---- the callback -----------------------------------------------------------------------------------------------
@dataclass
class _Task:
    tier: int = 0
    streak: int = 0


class GuidanceCallback(Callback):
    """Scaf-GRPO / GHPO hint guidance in a GRPO run (see the module docstring); `mode` picks the hint texts.

    Args: `window` failed groups in a row raise a task's tier; a group with success rate >= `lower_at` lowers it;
    `ratios` are GHPO's guidance ratios (one tier each); `seed` is the expert's episode seed; `max_actions` caps a
    plan. `plan_fn(trainer, task_id) -> (actions, instructions)` replaces the expert (tests, custom sources).

    The engine's `prompt_hook(instructions)` is wrapped: a hinted task's hint is appended to what the previous hook
    returned. Tasks are recognised by their instructions (from the episodes seen and the expert's reset; turngym
    choice: two tasks with the same instructions share the higher tier). Logged every step: `hint_share` (share
    of the step's groups collected with a hint), `hinted_tasks` (tasks at tier >= 1), `hint_raised` /
    `hint_lowered` (tier changes this step). Episodes collected with a hint carry `meta["hint_tier"]`."""

    def __init__(
        self,
        mode: str = "scaf_grpo",
        window: int = 2,
        lower_at: float = 0.5,
        ratios: Sequence[float] = GHPO_RATIOS,
        seed: int = 0,
        max_actions: int = 16,
        plan_fn: Callable[[Any, str], tuple[list[str], str]] | None = None,
    ):
        if mode not in ("scaf_grpo", "ghpo"):
            raise ConfigError(f"guidance mode must be 'scaf_grpo' or 'ghpo', got {mode!r}")
        if window < 1 or not 0.0 < lower_at <= 1.0:
            raise ConfigError(f"{mode}: need window >= 1 and lower_at in (0, 1], got {window}, {lower_at}")
        ratios = tuple(float(r) for r in ratios)
        if not ratios or any(not 0.0 < r <= 1.0 for r in ratios) or list(ratios) != sorted(ratios):
            raise ConfigError(f"{mode}: ratios must be increasing values in (0, 1], got {ratios}")
        self.mode, self.window, self.lower_at, self.ratios = mode, int(window), float(lower_at), ratios
        self.seed, self.max_actions, self.plan_fn = int(seed), int(max_actions), plan_fn
        self.max_tier = len(SCAF_TIERS) - 1 if mode == "scaf_grpo" else len(ratios)
        self.tasks: dict[str, _Task] = {}
        self.plans: dict[str, list[str]] = {}
        self.by_instructions: dict[str, set[str]] = {}
        self._inner: Callable[[str], str | None] | None = None
        self._step: dict[str, float] = {}

    # -- pieces ----------------------------------------------------------------------------------------------
    def hint(self, task_id: str) -> str | None:
        """The hint text of `task_id` at its current tier (None: tier 0 or no plan)."""
        tier = self.tasks.get(task_id, _Task()).tier
        plan = self.plans.get(task_id, [])
        return scaf_hint(plan, tier) if self.mode == "scaf_grpo" else ghpo_hint(plan, tier, self.ratios)

    def prompt_hook(self, instructions: str) -> str | None:
        base = self._inner(instructions) if self._inner is not None else None
        tasks = self.by_instructions.get(instructions, set())
        best = max(tasks, key=lambda t: (self.tasks.get(t, _Task()).tier, t), default=None)
        hint = self.hint(best) if best is not None else None
        if hint is None:
            return base
        return f"{base}\n\n{hint}" if base else hint

    def observe(self, task_id: str, success_rate: float) -> None:
        """One more group of `task_id`: update its tier and streak (`next_tier`)."""
        st = self.tasks.setdefault(task_id, _Task())
        tier, st.streak = next_tier(
            st.tier, st.streak, success_rate, self.window, self.max_tier, self.lower_at
        )
        key = "hint_raised" if tier > st.tier else "hint_lowered" if tier < st.tier else None
        if key:
            self._step[key] = self._step.get(key, 0.0) + 1
        st.tier = tier

    def _plan(self, trainer: Any, task_id: str) -> None:
        if task_id in self.plans:
            return
        if self.plan_fn is not None:
            plan, instructions = self.plan_fn(trainer, task_id)
        else:
            cfg = trainer.config
            plan, instructions = expert_plan(
                cfg.env_id, task_id, self.seed, cfg.split, cfg.env_kwargs, self.max_actions
            )
        self.plans[task_id] = list(plan)
        if instructions:
            self.by_instructions.setdefault(instructions, set()).add(task_id)

    # -- events ----------------------------------------------------------------------------------------------
    def on_train_begin(self, trainer: Any) -> None:
        engine = trainer.engine
        self._inner = getattr(engine, "prompt_hook", None)
        engine.prompt_hook = self.prompt_hook

    def on_step_begin(self, trainer: Any) -> None:
        self._step = {"groups": 0.0, "hinted": 0.0}
        for task_id, st in self.tasks.items():  # plans for tasks that need one, before the rollouts
            if st.tier > 0:
                self._plan(trainer, task_id)

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float] | None:
        groups: dict[Any, list[Any]] = {}
        for ep in episodes:
            groups.setdefault((ep.group, str(ep.task_id)), []).append(ep)
            text = getattr(ep.episode, "instructions", None)
            if text:
                self.by_instructions.setdefault(text, set()).add(str(ep.task_id))
        for (_, task_id), eps in groups.items():
            self._step["groups"] = self._step.get("groups", 0.0) + 1
            if self.hint(task_id) is not None:  # the tier it was collected with
                self._step["hinted"] = self._step.get("hinted", 0.0) + 1
                for ep in eps:
                    ep.meta["hint_tier"] = self.tasks[task_id].tier
            self.observe(task_id, sum(bool(e.success) for e in eps) / len(eps))
        return None

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        groups = self._step.get("groups", 0.0)
        metrics["hint_share"] = self._step.get("hinted", 0.0) / groups if groups else 0.0
        metrics["hinted_tasks"] = float(sum(st.tier > 0 for st in self.tasks.values()))
        metrics["hint_raised"] = self._step.get("hint_raised", 0.0)
        metrics["hint_lowered"] = self._step.get("hint_lowered", 0.0)

    def on_train_end(self, trainer: Any) -> None:
        if getattr(trainer.engine, "prompt_hook", None) == self.prompt_hook:
            trainer.engine.prompt_hook = self._inner

    def state_dict(self) -> dict[str, Any]:
        return {
            "tasks": {t: [st.tier, st.streak] for t, st in self.tasks.items()},
            "plans": {t: list(p) for t, p in self.plans.items()},
            "instructions": {text: sorted(ts) for text, ts in self.by_instructions.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks = {t: _Task(int(v[0]), int(v[1])) for t, v in state.get("tasks", {}).items()}
        self.plans = {t: list(p) for t, p in state.get("plans", {}).items()}
        self.by_instructions = {text: set(ts) for text, ts in state.get("instructions", {}).items()}


@register_callback("scaf_grpo")
def make_scaf_grpo(**kwargs: Any) -> GuidanceCallback:
    """Scaf-GRPO: `callbacks: [{name: scaf_grpo, window: 2, lower_at: 0.5}]`."""
    return GuidanceCallback(mode="scaf_grpo", **kwargs)


@register_callback("ghpo")
def make_ghpo(**kwargs: Any) -> GuidanceCallback:
    """GHPO: `callbacks: [{name: ghpo, window: 2, ratios: [0.25, 0.5, 0.75, 1.0]}]`."""
    return GuidanceCallback(mode="ghpo", **kwargs)
