"""Run an agent in an environment for many episodes, batching the agent's calls across all live episodes.

`run_episodes` keeps `num_envs` envs; each turn the agent acts once for every live episode (so a model backend
generates for the whole batch), every env steps, and a finished slot starts the next pending episode. Each episode
has its own seed (`seed + index`) and, for evaluation, its own task drawn without replacement from the split.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import turngym  # noqa: F401  (registers the ids)
from turngym.agents.base import Agent, EpisodeContext, Turn
from turngym.agents.slots import InlineExecutor, run_slots
from turngym.agents.trajectory import Episode, Step, clean_info, save_image
from turngym.errors import ConfigError


@dataclass
class EpisodeSpec:
    index: int
    seed: int
    options: dict[str, Any]


def env_task_ids(env: Any, split: str | None = None, options: dict[str, Any] | None = None) -> list[str]:
    """The tasks `env` plays (`TurnEnv.task_ids`), through wrappers and remote proxies alike."""
    opts = dict(options or {})
    target = env.unwrapped if isinstance(env, gym.Env) else env  # a RayEnv answers for the env in its actor
    ids = target.task_ids(split, opts)
    if not ids:
        raise ConfigError(f"{env_name(env)} has no tasks to play (split {split!r}, options {opts})")
    return list(ids)


def env_name(env: Any) -> str:
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None) or getattr(env, "env_id", None) or type(env).__name__


def plan_episodes(
    env: gym.Env,
    episodes: int,
    seed: int = 0,
    split: str | None = None,
    task_ids: list[str] | None = None,
    options: dict[str, Any] | None = None,
) -> list[EpisodeSpec]:
    """Episode i gets seed `seed + i` and the i-th task of a seeded permutation of the env's tasks (`task_ids()` of
    the env under `split` and `options`; cycled if short)."""
    base = dict(options or {})
    if split:
        base["split"] = split
    if task_ids is None and "task_id" not in base:
        ids = env_task_ids(env, split, base)
        order = np.random.default_rng(seed).permutation(len(ids))
        task_ids = [ids[int(order[i % len(ids)])] for i in range(episodes)]
    specs = []
    for i in range(episodes):
        opts = dict(base)
        if task_ids is not None:
            opts["task_id"] = task_ids[i % len(task_ids)]
        specs.append(EpisodeSpec(index=i, seed=seed + i, options=opts))
    return specs


def run_episodes(
    env_id: str,
    agent: Agent,
    episodes: int = 10,
    seed: int = 0,
    split: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    task_ids: list[str] | None = None,
    num_envs: int = 8,
    out_dir: Path | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    skip: Collection[tuple[str, int]] | None = None,
) -> list[Episode]:
    """Play `episodes` episodes of `env_id` with `agent`; returns them in index order. Planned episodes whose
    (task_id, seed) is in `skip` are not played (resuming an interrupted evaluation)."""
    num_envs = max(1, min(num_envs, episodes))
    envs = [gym.make(env_id, **(env_kwargs or {})) for _ in range(num_envs)]
    agent_name = getattr(agent, "spec", None) or agent.name
    try:
        specs = plan_episodes(envs[0], episodes, seed, split, task_ids, options)
        if skip:
            specs = [s for s in specs if (s.options.get("task_id"), s.seed) not in skip]
        done: dict[int, Episode] = {}

        def start(slot: int, spec: EpisodeSpec, _batch: int) -> _Playing:
            env = envs[slot]
            obs, info = env.reset(seed=spec.seed, options=spec.options)
            ctx = EpisodeContext.from_reset(env, obs, info, spec.index, spec.seed)
            ep = Episode(
                env_id=env_id,
                task_id=info["task_id"],
                agent=str(agent_name),
                seed=spec.seed,
                instructions=info["instructions"],
                observation=obs["text"],
                meta={"options": spec.options},
            )
            if out_dir is not None and "image" in obs:
                ep.image = save_image(out_dir, f"e{spec.index}_t0", obs["image"])
            agent.begin_episode(ctx)
            return _Playing(ctx, ep)

        def act(live: list[_Playing]) -> int:
            actions = agent.act([p.ctx for p in live])
            if len(actions) != len(live):
                raise RuntimeError(
                    f"agent {agent_name!r} returned {len(actions)} actions for {len(live)} episodes"
                )
            for p, action in zip(live, actions):
                p.action = action
            return 0

        def step(p: _Playing) -> bool:
            ctx, ep, action = p.ctx, p.episode, p.action
            obs, reward, term, trunc, info = ctx.env.step(action)
            image = None
            if out_dir is not None and "image" in obs:
                image = save_image(out_dir, f"e{ctx.episode_index}_t{info['turn']}", obs["image"])
            ep.steps.append(
                Step(
                    action=action if isinstance(action, str) else repr(action),
                    observation=obs["text"],
                    reward=float(reward),
                    terminated=bool(term),
                    truncated=bool(trunc),
                    info=clean_info(info),
                    image=image,
                )
            )
            ctx.history.append(Turn(ctx.observation["text"], action, float(reward), ctx.info))
            ctx.observation, ctx.info = obs, info
            return bool(term or trunc)

        def finished(p: _Playing) -> None:
            done[p.ctx.episode_index] = p.episode
            if on_episode:
                on_episode(p.episode)

        pending = deque((0, spec) for spec in specs)
        run_slots(pending, num_envs, start, act, step, finished, InlineExecutor())
        return [done[i] for i in sorted(done)]
    finally:
        for env in envs:
            env.close()


@dataclass
class _Playing:
    """A live evaluation episode: what the agent reads, the trajectory so far, the action it chose this turn."""

    ctx: EpisodeContext
    episode: Episode
    action: Any = None
