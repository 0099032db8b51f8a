"""Env workers as Ray actors: envs run in other processes (or nodes) while generation stays with the policy.

`RolloutEngine(..., env_backend="ray")` makes one `RayEnv` per slot. A `RayEnv` has the `reset`/`step`/`close`
surface the engine uses; its calls block on `ray.get`, which releases the GIL, so the engine's thread pool steps all
actors in parallel. The env id is re-registered in the worker from the driver's Gymnasium spec, so ids registered
at run time (not only `turngym/...`) work as long as the entry point is importable there.

Needs `turngym[distributed]` (`ray`). Without a running Ray, the first `RayEnv` starts a local one
(`ray.init()`); call `ray.init(address=...)` yourself to use a cluster.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from turngym.optional import require


def env_spec(env_id: str) -> tuple[str, Any, dict[str, Any]]:
    """What a worker process needs to register `env_id` as this process has it: (id, entry point, spec kwargs)."""
    spec = gym.spec(env_id)
    return env_id, spec.entry_point, dict(spec.kwargs)


def ensure_registered(env_id: str, entry_point: Any, spec_kwargs: dict[str, Any]) -> None:
    """In a worker: register `env_id` (from the driver's `env_spec`) unless importing turngym already did."""
    import turngym  # noqa: F401  (registers the turngym ids)

    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point, kwargs=spec_kwargs, disable_env_checker=True)


class _EnvWorker:
    """The actor: one env in a Ray worker process."""

    def __init__(
        self, env_id: str, entry_point: Any, spec_kwargs: dict[str, Any], env_kwargs: dict[str, Any]
    ):
        ensure_registered(env_id, entry_point, spec_kwargs)
        self.env = gym.make(env_id, **env_kwargs)

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[dict, dict]:
        return self.env.reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        return self.env.step(action)

    def task_ids(self, split: str | None, options: dict[str, Any] | None) -> list[str]:
        return self.env.unwrapped.task_ids(split, options)

    def pid(self) -> int:
        import os

        return os.getpid()

    def close(self) -> None:
        self.env.close()


class RayEnv:
    """A proxy for an env living in a Ray actor (`reset`, `step`, `task_ids`, `close`)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, num_cpus: float = 0.25):
        self._ray = require("ray", extra="distributed", purpose="env workers as Ray actors")
        if not self._ray.is_initialized():
            self._ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        actor = self._ray.remote(num_cpus=num_cpus)(_EnvWorker)
        self._actor = actor.remote(*env_spec(env_id), dict(env_kwargs or {}))
        self.env_id = env_id

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        return self._ray.get(self._actor.reset.remote(seed, options))

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        return self._ray.get(self._actor.step.remote(action))

    def task_ids(self, split: str | None = None, options: dict[str, Any] | None = None) -> list[str]:
        """The env's `TurnEnv.task_ids(split, options)`, answered in the actor."""
        return self._ray.get(self._actor.task_ids.remote(split, dict(options or {})))

    def pid(self) -> int:
        """The process id of the worker holding the env."""
        return self._ray.get(self._actor.pid.remote())

    def close(self) -> None:
        if self._actor is not None:
            try:
                self._ray.get(self._actor.close.remote())
            finally:
                self._ray.kill(self._actor)
                self._actor = None
