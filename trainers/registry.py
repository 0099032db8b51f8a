"""Registries: one per extension axis of the trainer, each the only list of names the config accepts.

    ADVANTAGES          (trainers.advantages)   register_advantage("name", min_group_size=1)
    POLICY_LOSSES       (trainers.losses)       register_loss("name", default_agg=..., clip_eps=..., needs_entropy=...)
    REWARD_SHAPERS      (trainers.hooks)        register_shaper("name")
    CALLBACKS           (trainers.callbacks)    register_callback("name")
    ROLLOUT_STRATEGIES  (trainers.strategies)   register_strategy("name")
    MAX_TURNS_SCHEDULES, EXTRA_ADVANTAGES (trainers.hooks)

A registry is a plain dict (`ADVANTAGES["mine"] = fn` still works) that also keeps per-entry metadata (what a loss
needs, a strategy's smallest group) and knows which modules of the library register more entries when imported, so
that a name defined there is found without the caller importing it first. `GRPOConfig` checks every name against
its registry when it is constructed; an unknown name raises `ConfigError` listing the registered ones.
"""

from turngym.registry import Registry, decorator, import_plugins

__all__ = ["Registry", "decorator", "import_plugins"]
