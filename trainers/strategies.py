"""Rollout strategies: how a training step's groups are collected, behind one interface.

    strategy = ROLLOUT_STRATEGIES[name](engine, model, cfg)
    strategy.collect(task_ids, group_size, seed, split, options) -> list[TokenEpisode]   episodes with `group` set
    strategy.postprocess_advantages(group, turn_advantages) -> turn_advantages            optional, per group
    strategy.training_samples(group, turn_advantages) -> [(sample, per-turn advantages)]  optional, per group
    strategy.metrics(episodes) -> {name: number}                                          optional, per step

`standard` is the plain GRPO group: `group_size` independent episodes per task from the rollout engine. ARPO's
entropy-triggered branching (`trainers.arpo`) and UI-S1's semi-online patching (`trainers.uis1`) are the others.
A strategy is registered with `@register_strategy("name", min_group_size=..., supports_fsdp=...)`;
`rollout_strategy: name` selects it.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from turngym.agents.trajectory import TokenEpisode
from turngym.trainers.registry import Registry, decorator

ROLLOUT_STRATEGIES = Registry(
    "rollout strategy",
    defaults={"min_group_size": 2, "supports_fsdp": True, "own_advantages": False},
    plugins=("arpo", "uis1"),
)
"""name -> strategy class. Metadata: `min_group_size` (the smallest `group_size` the config accepts with it),
`supports_fsdp` (False: the strategy runs forward passes of the trained model, which a sharded model cannot do
outside the collectives), `own_advantages` (True: `postprocess_advantages` computes the advantages itself, so the
config's `advantage` must stay at its default)."""
register_strategy = decorator(ROLLOUT_STRATEGIES)


class RolloutStrategy:
    """Base class: keeps the engine, the trained model and the config; advantages pass through unchanged."""

    def __init__(self, engine: Any, model: Any, cfg: Any):
        self.engine, self.model, self.cfg = engine, model, cfg

    def collect(
        self, task_ids: list[str], group_size: int, seed: int, split: str | None, options: dict[str, Any]
    ) -> list[TokenEpisode]:
        raise NotImplementedError

    def postprocess_advantages(self, group: list[TokenEpisode], advantages: list[Tensor]) -> list[Tensor]:
        """Per-turn advantages of one group after the estimator (e.g. ARPO's shared-prefix attribution)."""
        return advantages

    def training_samples(
        self, group: list[TokenEpisode], advantages: list[Tensor]
    ) -> list[tuple[TokenEpisode, Tensor]]:
        """The (sample, per-turn advantages) pairs the update trains on for one group: by default each episode with
        its own advantages; a strategy may add samples that are not episodes (UI-S1's divergent turns)."""
        return list(zip(group, advantages))

    def metrics(self, episodes: list[TokenEpisode]) -> dict[str, float]:
        """Numbers logged with the step's rollout metrics (all the step's episodes); none by default."""
        return {}


@register_strategy("standard")
class StandardStrategy(RolloutStrategy):
    """`group_size` independent episodes per task from the rollout engine (GRPO's group)."""

    def collect(
        self, task_ids: list[str], group_size: int, seed: int, split: str | None, options: dict[str, Any]
    ) -> list[TokenEpisode]:
        return self.engine.collect(task_ids, group_size, seed, split=split, options=options or None)
