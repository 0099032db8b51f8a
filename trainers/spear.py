"""SPEAR ("Learn the Ropes, Then Trust the Wins"): self-imitation of the policy's own wins, with a curriculum.

Three pieces, in a GRPO run one callback (`callbacks: [{name: spear}]`):

- **Replay buffer** (`SuccessBuffer`): the policy's successful episodes (`info["success"]`), at most `buffer_size`,
  none older than `max_age` training steps (the oldest go first). Each step, after the advantages, up to
  `replay_per_step` of them are added to the update's batch (`on_batch`) and trained with the PPO ratio against
  their own sampling log-probs.
- **Advantage recalibration** (`recalibrated_advantage`): a replayed episode of task x with return R gets
  Â = max(0, R − μ_x), μ_x the mean return of the *current* step's group of x, on every turn: a win only counts by
  how much it beats what the policy now does on the same task, and never pushes down (clipped at 0). Replays of
  tasks not in the current step are not replayed that step (no current baseline). Returns are the env's
  (`ep.env_rewards`, before shaping), so the auxiliary reward below does not enter the recalibration (turngym
  choice). No division by the group's std (turngym choice: an all-failed current group has std 0).
- **Curriculum**: an auxiliary per-turn reward for valid actions / tool calls (`make_tool_reward`, shaper
  `spear_tool_reward`) whose weight decays over training ("learn the ropes"), while the self-imitation weight
  grows ("then trust the wins"): both follow `schedule_weight(step, start, end, steps, kind)`.

Defaults (turngym choice): buffer 64 episodes, age 10 steps, 4 replays per step; auxiliary weight 0.1 → 0 and
imitation weight 0.5 → 1 over 50 steps, linear.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from turngym.errors import ConfigError
from turngym.trainers.callbacks import Callback, register_callback
from turngym.trainers.hooks import HookContext, RewardShaper, register_shaper

SCHEDULES = ("constant", "linear", "cosine")
SIGNALS = ("valid", "tool_call")


def schedule_weight(step: int, start: float, end: float, steps: int, kind: str = "linear") -> float:
    """A weight that moves from `start` (step 0) to `end` (step `steps` and after): constant (always `start`),
    linear, or cosine (start + (end − start)·(1 − cos(π·k/K))/2)."""
    if kind not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if kind == "constant":
        return float(start)
    if steps <= 0:
        return float(end)
    frac = min(1.0, max(step, 0) / steps)
    if kind == "cosine":
        frac = 0.5 * (1.0 - math.cos(math.pi * frac))
    return float(start + (end - start) * frac)


def recalibrated_advantage(replay_return: float, current_mean: float) -> float:
    """SPEAR's recalibrated advantage of a replayed episode: max(0, R − μ) against the current group mean μ."""
    return max(0.0, float(replay_return) - float(current_mean))


def env_return(ep: Any) -> float:
    """The env's return of an episode (before reward shaping)."""
    return float(sum(ep.env_rewards if ep.env_rewards is not None else ep.rewards))


# ---- the auxiliary reward -----------------------------------------------------------------------------------------
def turn_signal(infos: Sequence[dict[str, Any]], signal: str = "valid") -> list[float]:
    """Per turn 1 or 0: `valid` — the action was valid (no `invalid_action`, no `parse_error`); `tool_call` — the
    env counted a tool call at that turn (its cumulative `info["tool_calls"]` went up)."""
    if signal == "valid":
        return [0.0 if (i.get("invalid_action") or i.get("parse_error")) else 1.0 for i in infos]
    out, prev = [], 0
    for i in infos:
        n = int(i.get("tool_calls", prev) or 0)
        out.append(1.0 if n > prev else 0.0)
        prev = max(prev, n)
    return out


def make_tool_reward(
    start: float = 0.1, end: float = 0.0, steps: int = 50, schedule: str = "linear", signal: str = "valid"
) -> RewardShaper:
    """SPEAR's auxiliary reward as a pure shaper: r_t += w(k)·s_t / T, with s_t the turn's `turn_signal`, T the
    episode's turns and w(k) = `schedule_weight(k, start, end, steps, schedule)` at training step k = `ctx.step`
    (dividing by T bounds an episode's bonus by w(k): no reward for longer episodes, turngym choice)."""
    if signal not in SIGNALS:
        raise ConfigError(f"spear_tool_reward: signal must be one of {', '.join(SIGNALS)}, got {signal!r}")
    schedule_weight(0, start, end, steps, schedule)  # validates the schedule name

    def shaper(group: list, ctx: HookContext) -> list[list[float]]:
        w = schedule_weight(ctx.step, start, end, steps, schedule)
        out = []
        for ep in group:
            s = turn_signal(ep.infos, signal)
            out.append([r + w * x / max(len(s), 1) for r, x in zip(ep.rewards, s)])
        return out

    return shaper


register_shaper("spear_tool_reward", make_tool_reward)


# ---- the replay buffer --------------------------------------------------------------------------------------------
@dataclass
class Replay:
    episode: Any  # a TokenEpisode
    task_id: str
    ret: float  # env return
    step: int  # the training step that collected it


class SuccessBuffer:
    """Successful episodes, at most `size`, none older than `max_age` steps (`evict`); the newest are kept."""

    def __init__(self, size: int = 64, max_age: int = 10):
        if size < 1 or max_age < 1:
            raise ConfigError(f"spear: buffer_size and max_age must be >= 1, got {size}, {max_age}")
        self.size, self.max_age = int(size), int(max_age)
        self.entries: list[Replay] = []

    def add(self, episodes: Sequence[Any], step: int) -> int:
        """Keep the successful ones (without their text trajectory); returns how many were added."""
        new = [
            Replay(replace(ep, episode=None, meta={}), str(ep.task_id), env_return(ep), int(step))
            for ep in episodes
            if ep.success
        ]
        self.entries += new
        self.entries = self.entries[-self.size :]
        return len(new)

    def evict(self, step: int) -> None:
        """Drop the entries collected more than `max_age` steps before `step`."""
        self.entries = [e for e in self.entries if step - e.step <= self.max_age]

    def pick(self, current_means: dict[str, float], n: int) -> list[tuple[Replay, float]]:
        """Up to `n` (entry, Â) with Â = `recalibrated_advantage` > 0 against the current mean of the entry's task;
        the largest Â first, ties to the newest."""
        scored = [
            (e, recalibrated_advantage(e.ret, current_means[e.task_id]))
            for e in self.entries
            if e.task_id in current_means
        ]
        scored = [(e, a) for e, a in scored if a > 0]
        order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], -scored[i][0].step, -i))
        return [scored[i] for i in order[: max(n, 0)]]


@register_callback("spear")
class SpearCallback(Callback):
    """SPEAR in a GRPO run (see the module docstring): `callbacks: [{name: spear, buffer_size: 64, max_age: 10,
    replay_per_step: 4}]`. With `aux` (default on) it adds the auxiliary reward shaper (`aux_start` → `aux_end`
    over `aux_steps`, `aux_schedule`, `aux_signal`) to the trainer's shapers; the imitation weight goes
    `imitation_start` → `imitation_end` over `imitation_steps` (`imitation_schedule`) and multiplies Â.

    Logged every step: `spear_buffer` (episodes in the buffer), `spear_replayed` (replays added to the update),
    `spear_aux_weight`, `spear_imitation_weight`. The buffer is saved in the checkpoints."""

    def __init__(
        self,
        buffer_size: int = 64,
        max_age: int = 10,
        replay_per_step: int = 4,
        imitation_start: float = 0.5,
        imitation_end: float = 1.0,
        imitation_steps: int = 50,
        imitation_schedule: str = "linear",
        aux: bool = True,
        aux_start: float = 0.1,
        aux_end: float = 0.0,
        aux_steps: int = 50,
        aux_schedule: str = "linear",
        aux_signal: str = "valid",
    ):
        if replay_per_step < 0:
            raise ConfigError(f"spear: replay_per_step must be >= 0, got {replay_per_step}")
        self.buffer = SuccessBuffer(buffer_size, max_age)
        self.replay_per_step = int(replay_per_step)
        self.imitation = (
            float(imitation_start),
            float(imitation_end),
            int(imitation_steps),
            imitation_schedule,
        )
        self.aux = (float(aux_start), float(aux_end), int(aux_steps), aux_schedule)
        self.shaper = make_tool_reward(*self.aux, signal=aux_signal) if aux else None
        schedule_weight(0, *self.imitation)  # validates the schedule name
        self._episodes: list[Any] = []
        self._replayed = 0

    def on_train_begin(self, trainer: Any) -> None:
        if self.shaper is not None:
            trainer.shapers.append(self.shaper)

    def on_step_begin(self, trainer: Any) -> None:
        self._episodes, self._replayed = [], 0

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float] | None:
        self._episodes += episodes
        return None

    def on_batch(self, trainer: Any, items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]] | None:
        import torch

        step = int(trainer.step)
        sums: dict[str, list[float]] = {}
        for ep in self._episodes:  # every group of the step (also those dynamic sampling dropped)
            sums.setdefault(str(ep.task_id), []).append(env_return(ep))
        means = {t: sum(v) / len(v) for t, v in sums.items()}
        self.buffer.evict(step)
        w = schedule_weight(step, *self.imitation)
        extra = [
            (e.episode, torch.full((len(e.episode.rewards),), w * a, dtype=torch.float32))
            for e, a in self.buffer.pick(means, self.replay_per_step)
        ]
        self.buffer.add(self._episodes, step)  # this step's wins are replayed from the next step on
        self._replayed = len(extra)
        return [*items, *extra] if extra else None

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        step = int(trainer.step) - 1  # the step that just ran (the trainer counts it before on_step_end)
        metrics["spear_buffer"] = float(len(self.buffer.entries))
        metrics["spear_replayed"] = float(self._replayed)
        metrics["spear_aux_weight"] = schedule_weight(step, *self.aux) if self.shaper is not None else 0.0
        metrics["spear_imitation_weight"] = schedule_weight(step, *self.imitation)

    def state_dict(self) -> dict[str, Any]:
        return {"entries": [(e.episode, e.task_id, e.ret, e.step) for e in self.buffer.entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.entries = [Replay(*e) for e in state.get("entries", [])]
