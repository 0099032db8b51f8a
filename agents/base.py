"""The policy interface used by evaluation and training, plus the scripted agents every env has.

An agent sees a batch of live episodes (`EpisodeContext`: instructions, the latest observation and info, the history)
and returns one action string per episode. Batching is the point: model-backed agents generate for every live
episode at once. Scripted agents (`expert`, `random`) are the same interface.

Agents are made from a spec string: `make_agent("expert")`, `make_agent("random")`, and what the model backends
register (`hf:PATH`, `vllm:PATH`, `openai:URL`). `AGENTS` is the registry: name -> factory(arg, **kwargs).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from turngym.errors import ConfigError, UnknownNameError
from turngym.registry import Registry, decorator


@dataclass
class Turn:
    """One past turn of an episode: the observation the agent saw, the action it took, what followed."""

    observation: str
    action: str
    reward: float
    info: dict[str, Any]


@dataclass
class EpisodeContext:
    """What an agent may read about one live episode."""

    env: gym.Env
    instructions: str
    observation: dict[str, Any]
    info: dict[str, Any]
    history: list[Turn] = field(default_factory=list)
    episode_index: int = 0
    seed: int | None = None
    state: dict[str, Any] = field(default_factory=dict)  # free per-episode scratch space for the agent

    @classmethod
    def from_reset(
        cls, env: gym.Env, obs: dict[str, Any], info: dict[str, Any], index: int, seed: int | None
    ) -> EpisodeContext:
        """The context of an episode just reset: `env.reset(seed=seed, ...)` returned `obs, info`."""
        return cls(
            env=env,
            instructions=info["instructions"],
            observation=obs,
            info=info,
            episode_index=index,
            seed=seed,
        )

    @property
    def admissible_actions(self) -> list[str]:
        return list(self.info.get("admissible_actions") or [])


class Agent(ABC):
    """Return one action per live episode. Override `begin_episode` to reset per-episode memory."""

    name: str = "agent"

    def begin_episode(self, ctx: EpisodeContext) -> None:  # noqa: B027 - optional hook
        """Called once when an episode starts, before the first `act`."""

    @abstractmethod
    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        """Actions for a batch of live episodes, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, servers)."""


class ExpertAgent(Agent):
    """The env family's scripted expert: asks the env (`env.unwrapped.expert_action()`), which knows the hidden state.

    `admissible=True` (spec `expert:admissible`): the expert restricted to the env's admissible actions, for data
    that a policy choosing among them (`policy.constrain("admissible")`) can imitate: where the env lists admissible
    actions and the expert's action is not one of them (case aside), it takes the first admissible action with the
    same verb (the text before `[` or `(`: WebShop's oracle searches with its own keywords, the page offers one
    search with the instruction text), else the expert's own action."""

    name = "expert"

    def __init__(self, admissible: bool = False):
        self.admissible = admissible

    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        acts = [ctx.env.unwrapped.expert_action() for ctx in contexts]
        if self.admissible:
            acts = [_project(a, ctx.admissible_actions) for a, ctx in zip(acts, contexts)]
        return acts


def _verb(action: str) -> str:
    return re.split(r"[\[(]", action.strip(), maxsplit=1)[0].strip().lower()


def _project(action: str, admissible: list[str]) -> str:
    """`action` if it is admissible (or nothing is listed), else the first admissible action with its verb."""
    if not admissible or action.strip().lower() in {a.strip().lower() for a in admissible}:
        return action
    return next((a for a in admissible if _verb(a) == _verb(action)), action)


def _expert(arg: str | None = None, **kw: Any) -> ExpertAgent:
    if arg not in (None, "admissible"):
        raise ConfigError(f"agent 'expert:{arg}': the expert takes no argument or 'admissible'")
    return ExpertAgent(admissible=arg == "admissible")


class RandomAgent(Agent):
    """Samples an admissible action when the env lists them, else a random short string from the action space."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        out = []
        for ctx in contexts:
            acts = ctx.admissible_actions
            out.append(acts[int(self.rng.integers(len(acts)))] if acts else ctx.env.action_space.sample())
        return out


class ScriptedAgent(Agent):
    """A named scripted policy an env family offers besides its expert: `scripted:baseline` calls
    `env.unwrapped.baseline_action()` (e.g. the embodied family's never-ask baseline, the oracle's `oracle_action`)."""

    def __init__(self, method: str):
        if not method or not method.isidentifier():
            raise UnknownNameError(
                f"scripted agent needs a policy name, e.g. 'scripted:baseline'; got {method!r}"
            )
        self.method = f"{method}_action"
        self.name = f"scripted:{method}"

    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        out = []
        for ctx in contexts:
            fn = getattr(ctx.env.unwrapped, self.method, None)
            if fn is None:
                raise UnknownNameError(
                    f"{type(ctx.env.unwrapped).__name__} has no scripted policy {self.method}()"
                )
            out.append(fn())
        return out


AgentFactory = Callable[..., Agent]
# name -> factory(arg, **kwargs) -> Agent. The model backends (`hf`, `hf-vlm`, `vllm`, `openai`) register from
# `turngym.agents.backends` on the first lookup of a name not registered yet; a user's backend registers with
# `@register_agent("name")` in its own module (docs/extending.md, "A model backend").
AGENTS: Registry = Registry("agent", plugins=("backends",), package="turngym.agents")
register_agent = decorator(AGENTS)
AGENTS.register("scripted", lambda arg=None, **kw: ScriptedAgent(arg or ""))
AGENTS.register("expert", _expert)
AGENTS.register("random", lambda arg=None, seed=0, **kw: RandomAgent(seed=int(arg) if arg else seed))


def make_agent(spec: str | Agent, **kwargs: Any) -> Agent:
    """An agent from a spec `NAME` or `NAME:ARG` (e.g. `expert`, `random:3`, `hf:/path/to/model`): the factory
    registered under NAME is called with ARG (None when absent) and `kwargs`."""
    if isinstance(spec, Agent):
        return spec
    name, _, arg = str(spec).partition(":")
    try:
        factory = AGENTS.get_entry(name)  # loads the built-in backends on the first unknown name
    except UnknownNameError:
        raise UnknownNameError(
            f"unknown agent {spec!r}; known agents: {sorted(AGENTS)} (written NAME or NAME:ARG; a backend of "
            "your own registers with @register_agent in a module you import, or `turngym eval --plugin FILE`)"
        ) from None
    agent = factory(arg or None, **kwargs)
    if not isinstance(agent, Agent):
        raise ConfigError(
            f"agent {name!r}: its factory returned {type(agent).__name__}, not a turngym.agents.Agent"
        )
    return agent
