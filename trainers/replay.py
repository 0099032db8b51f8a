"""Selective Sample Buffer (SSB) from "Skywork R1V2: Multimodal Hybrid Reinforcement Learning for Reasoning"
(Skywork AI, arXiv 2504.16656): a replay buffer of high-|advantage| samples against GRPO's vanishing advantages.

As training goes on, more groups have all-equal rewards, their GRPO advantages are zero and they give no gradient.
SSB keeps the samples whose advantage is far from zero and mixes them back into later batches:

    priority(sample)  p = Σ_t n_t |A_t| / Σ_t n_t           (n_t policy tokens of turn t: |A_i| for GRPO's
                                                             episode-level advantage; turngym choice for per-turn ones)
    kept              samples with p > zero_tol, at most `capacity` (lowest p evicted first, then the oldest),
                      each for at most `max_age` steps after the step that sampled it
    replayed          the round(replay_fraction × B) entries of highest p (ties: the newest) that are 1..max_age
                      steps old, added to the step's B fresh samples (or, with `replace_zero`, put in the places
                      of that many zero-advantage fresh samples, so the batch keeps its size)

A replayed sample keeps its advantage from the step that sampled it and its sampling log-probs
(`TokenEpisode.logprobs`), so the policy loss trains it with the importance ratio r_t = π_θ(o_t)/π_sample(o_t) to the
current policy, clipped to [1 − ε_low, 1 + ε_high] like any sample (`ppo_clip`: tokens whose ratio has left the
trust region in the advantage's direction give no gradient). Defaults (turngym choice): capacity = one batch
(`tasks_per_step × group_size`), replay_fraction 0.25, max_age 4 steps.

Logged per step: `ssb_zero_adv_fresh` (share of zero-advantage samples in the fresh batch, i.e. without the buffer),
`ssb_zero_adv_batch` (the same share in the batch the update trains on, with the buffer), `ssb_replayed`,
`ssb_buffer_size` (after the step's samples went in) and `ssb_replay_age` (mean age of the replayed samples, steps).
The buffer is saved in the checkpoints (`state_dict`) and restored on resume; each data-parallel rank keeps its own.

Config: `callbacks: [{name: ssb, replay_fraction: 0.25, max_age: 4, capacity: null, replace_zero: false}]`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from turngym.errors import ConfigError
from turngym.trainers.callbacks import Callback, register_callback


def sample_priority(ep: Any, adv: torch.Tensor) -> float:
    """|A| of a sample: the policy-token-weighted mean of its per-turn |advantages| (`adv` [T]); 0 without tokens."""
    a = adv.detach().float().abs().flatten().tolist()
    counts = [0] * len(a)
    for k, m in zip(ep.turn_index, ep.policy_mask):
        if m and 0 <= k < len(a):
            counts[k] += 1
    total = sum(counts)
    return sum(c * x for c, x in zip(counts, a)) / total if total else 0.0


def zero_advantage_share(items: list[tuple[Any, torch.Tensor]], tol: float = 1e-6) -> float:
    """The share of (episode, advantages) samples whose priority is ≤ tol (they give no policy gradient); 0 if none."""
    if not items:
        return 0.0
    return sum(sample_priority(ep, a) <= tol for ep, a in items) / len(items)


def _slim(ep: Any) -> Any:
    """A TokenEpisode without its text trajectory and free-form meta (the update reads neither)."""
    return dataclasses.replace(ep, episode=None, meta={}) if dataclasses.is_dataclass(ep) else ep


@dataclass
class Entry:
    """A buffered sample: the episode, its per-turn advantages [T], the trainer step that sampled it, its |A|."""

    episode: Any
    advantages: torch.Tensor
    step: int
    priority: float


@register_callback("ssb")
class SelectiveSampleBuffer(Callback):
    """Skywork R1V2's Selective Sample Buffer (arXiv 2504.16656) as a trainer callback (see the module docstring).

    `capacity`: most samples kept (None: one batch, `tasks_per_step × group_size`); `replay_fraction`: replayed
    samples per step as a share of the fresh batch; `max_age`: steps a sample stays replayable; `zero_tol`: a
    priority at or below it counts as a zero advantage; `replace_zero`: replayed samples take the places of
    zero-advantage fresh samples (at most as many as there are) instead of being added."""

    def __init__(
        self,
        capacity: int | None = None,
        replay_fraction: float = 0.25,
        max_age: int = 4,
        zero_tol: float = 1e-6,
        replace_zero: bool = False,
    ):
        if capacity is not None and (isinstance(capacity, bool) or int(capacity) < 1):
            raise ConfigError(f"ssb: capacity must be >= 1 or null (one batch), got {capacity!r}")
        if not 0.0 <= float(replay_fraction) <= 1.0:
            raise ConfigError(f"ssb: replay_fraction must be in [0, 1], got {replay_fraction!r}")
        if int(max_age) < 1:
            raise ConfigError(f"ssb: max_age must be >= 1 step, got {max_age!r}")
        if not float(zero_tol) >= 0:
            raise ConfigError(f"ssb: zero_tol must be >= 0, got {zero_tol!r}")
        self.capacity = None if capacity is None else int(capacity)
        self.replay_fraction = float(replay_fraction)
        self.max_age = int(max_age)
        self.zero_tol = float(zero_tol)
        self.replace_zero = bool(replace_zero)
        self.entries: list[Entry] = []
        self.last: dict[str, float] = {}

    def on_train_begin(self, trainer: Any) -> None:
        if self.capacity is None:
            cfg = trainer.config
            self.capacity = int(cfg.tasks_per_step * cfg.group_size)

    # ---- the buffer ---------------------------------------------------------------------------------------------
    def expire(self, step: int) -> None:
        """Drop entries older than `max_age` steps at trainer step `step`."""
        self.entries = [e for e in self.entries if step - e.step <= self.max_age]

    def select(self, step: int, n: int) -> list[Entry]:
        """The `n` replayable entries (1..max_age steps old) of highest priority, newest first among equals."""
        ok = [e for e in self.entries if 1 <= step - e.step <= self.max_age]
        ok.sort(key=lambda e: (-e.priority, -e.step))
        return ok[: max(0, n)]

    def add(self, items: list[tuple[Any, torch.Tensor]], step: int) -> None:
        """Buffer the samples of `items` whose priority is above `zero_tol`; then evict down to `capacity`, lowest
        priority first, the oldest first among equals."""
        for ep, adv in items:
            p = sample_priority(ep, adv)
            if p > self.zero_tol:
                self.entries.append(Entry(ep, adv.detach().clone(), int(step), p))
        cap = self.capacity if self.capacity is not None else len(self.entries)
        if len(self.entries) > cap:
            self.entries.sort(key=lambda e: (-e.priority, -e.step))
            self.entries = self.entries[:cap]

    def mix(self, items: list[tuple[Any, torch.Tensor]], step: int) -> list[tuple[Any, torch.Tensor]]:
        """The batch the update trains on at trainer step `step` (the steps done so far), given its fresh samples;
        then the fresh samples go into the buffer. Sets `self.last` (the step's numbers)."""
        fresh = list(items)
        self.expire(step)
        n = round(self.replay_fraction * len(fresh))
        if self.replace_zero:
            zero = [i for i, (ep, a) in enumerate(fresh) if sample_priority(ep, a) <= self.zero_tol]
            n = min(n, len(zero))
        chosen = self.select(step, n)
        replays = [(e.episode, e.advantages) for e in chosen]
        if self.replace_zero:
            drop = set(zero[: len(replays)])
            batch = [x for i, x in enumerate(fresh) if i not in drop] + replays
        else:
            batch = fresh + replays
        self.add(fresh, step)
        self.last = {
            "ssb_zero_adv_fresh": zero_advantage_share(fresh, self.zero_tol),
            "ssb_zero_adv_batch": zero_advantage_share(batch, self.zero_tol),
            "ssb_replayed": float(len(replays)),
            "ssb_buffer_size": float(len(self.entries)),
            "ssb_replay_age": (sum(step - e.step for e in chosen) / len(chosen) if chosen else 0.0),
        }
        return batch

    # ---- callback events ----------------------------------------------------------------------------------------
    def on_batch(self, trainer: Any, items: list[tuple[Any, torch.Tensor]]) -> list[tuple[Any, torch.Tensor]]:
        return self.mix(items, int(trainer.step))

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        metrics.update(self.last)

    def state_dict(self) -> dict[str, Any]:
        """The buffer (episodes without their text trajectory and free-form meta: what the update reads)."""
        return {
            "capacity": self.capacity,
            "entries": [
                {
                    "episode": _slim(e.episode),
                    "advantages": e.advantages,
                    "step": e.step,
                    "priority": e.priority,
                }
                for e in self.entries
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("capacity") is not None:
            self.capacity = int(state["capacity"])
        self.entries = [
            Entry(d["episode"], d["advantages"], int(d["step"]), float(d["priority"]))
            for d in state["entries"]
        ]
