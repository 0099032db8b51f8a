"""Trainer callbacks: what has state or side effects (SLIM's skill lifecycle, SPA-RL's estimator, teachers, file
writers), in the style of TRL's `TrainerCallback` and Lightning's callbacks.

A callback overrides the events it needs; each receives the running `GRPOTrainer`:

    on_train_begin(trainer)                 once, before the first step (and before a checkpoint is restored)
    on_step_begin(trainer)                  before the step's rollouts (`trainer.step` = steps done so far)
    on_rollouts(trainer, episodes) -> dict  after each rollout round, before reward shaping: the round's episodes;
                                            the returned numbers are logged with the step's metrics
    on_batch(trainer, items) -> items       after the advantages, before the update: the (episode, per-turn
                                            advantage) pairs the update trains on; return a list to replace them
                                            (replay buffers add past samples, filters drop some), None to keep
    on_step_end(trainer, metrics)           after the update; `metrics` is the step's dict (may be added to)
    on_train_end(trainer)                   after the last step (also when training stops on an error)
    state_dict() / load_state_dict(state)   saved in every checkpoint, restored on resume

Callbacks come from `GRPOTrainer(callbacks=[...])` or the config (`callbacks: [{name: ..., **kwargs}]`, names from
the CALLBACKS registry: `@register_callback("name")` on a class or factory). Reward shapers stay pure functions of a
group; a shaper that needs fitted state reads it from its callback (SPA-RL: `trainers.progress.SpaCallback`).
"""

from __future__ import annotations

from typing import Any

from turngym.trainers.registry import Registry, decorator


class Callback:
    """Base class of trainer callbacks: every event is a no-op, the state is empty."""

    def on_train_begin(self, trainer: Any) -> None:
        """Once, before the first step (before a checkpoint's state is restored into the callback)."""

    def on_step_begin(self, trainer: Any) -> None:
        """Before the rollouts of step `trainer.step + 1`."""

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float] | None:
        """A rollout round's episodes, before reward shaping; returns numbers to log with the step (or None)."""
        return None

    def on_batch(self, trainer: Any, items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]] | None:
        """The update's `(TokenEpisode, per-turn advantages [T] tensor)` pairs after the advantages are computed; return a new
        list to change what the update trains on (None keeps it). A sample added here is trained with the PPO ratio
        against its own sampling log-probs (`TokenEpisode.logprobs`), clipped as configured."""
        return None

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        """After the update of the step; `metrics` is what will be logged for it."""

    def on_train_end(self, trainer: Any) -> None:
        """After the last step, or when training stops on an error."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (saved in the trainer's checkpoints with torch.save)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


CALLBACKS = Registry(
    "callback", plugins=("skills", "progress", "curricula", "replay", "chatshop", "guidance", "spear")
)
"""name -> a Callback class or a factory `(**kwargs) -> Callback` (config `callbacks: [{name: ..., **kwargs}]`)."""
register_callback = decorator(CALLBACKS)


def build_callback(spec: dict[str, Any]) -> Callback:
    """A callback from its `{"name": ..., **kwargs}` spec (unknown names list the registered ones)."""
    from turngym.errors import ConfigError

    kwargs = {k: v for k, v in spec.items() if k != "name"}
    cb = CALLBACKS.get_entry(spec["name"])(**kwargs)
    if not isinstance(cb, Callback):
        raise ConfigError(f"callback {spec['name']!r} built a {type(cb).__name__}, not a trainer Callback")
    return cb


def callback_key(index: int, cb: Callback) -> str:
    """The key of a callback's state in a checkpoint: its position and class name."""
    return f"{index}:{type(cb).__name__}"
