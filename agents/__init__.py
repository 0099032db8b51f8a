"""Agents: the policy interface, scripted agents, model backends, and the rollout engine that runs agents in envs."""

from turngym.agents.base import (
    AGENTS,
    Agent,
    EpisodeContext,
    ExpertAgent,
    RandomAgent,
    Turn,
    make_agent,
    register_agent,
)

__all__ = [
    "AGENTS",
    "Agent",
    "EpisodeContext",
    "ExpertAgent",
    "RandomAgent",
    "Turn",
    "make_agent",
    "register_agent",
]
