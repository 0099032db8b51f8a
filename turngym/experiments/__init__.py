"""Experiments built on the library: the CPU learning demo and the pieces the ablation scripts share.

    python -m turngym.experiments.demo --out runs/train-demo      # the short learning demo (`make demo` runs it)

`turngym.experiments.demo` is the pipeline (a derived task pack, expert episodes, SFT, then RL arms, greedy held-out
evaluation); `turngym.experiments.pipeline` holds what every experiment script reuses: `run_arms` (one GRPO run per
arm from the same start), `successful_episodes` (a scripted agent's SFT data) and `episode_texts` (a tokenizer's
training corpus). The library's core (envs, agents,
trainers, sandboxes, tasks) never imports this package; it imports the core.
"""

from turngym.experiments.pipeline import episode_texts, run_arms, successful_episodes

__all__ = ["episode_texts", "run_arms", "successful_episodes"]
