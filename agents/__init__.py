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
from turngym.agents.policy import (
    Generation,
    TokenPolicy,
    TokenPolicyBase,
    VisionTokenPolicy,
    check_token_policy,
)

__all__ = [
    "AGENTS",
    "Agent",
    "EpisodeContext",
    "ExpertAgent",
    "RandomAgent",
    "Generation",
    "TokenPolicy",
    "TokenPolicyBase",
    "Turn",
    "VisionTokenPolicy",
    "check_token_policy",
    "make_agent",
    "register_agent",
]
