"""What the experiment scripts share: the corpus a tokenizer learns from, and RL arms run from one start.

policy = bpe_policy(episode_texts(expert_episodes), vocab_size=1024, ...)
results = run_arms(start, {"grpo": {}, "otc": {"reward_shaping": [{"name": "otc"}]}}, base, out, report=report)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# report(name, trainer, records) -> the arm's results; records: what `GRPOTrainer.train()` returned
Report = Callable[[str, Any, list[dict[str, Any]]], dict[str, Any]]


def episode_texts(episodes: list[Any]) -> list[str]:
    """The texts a tokenizer is trained on: each episode's first user message, actions and observations."""
    from turngym.agents.prompting import first_user_message

    texts = []
    for e in episodes:
        texts.append(first_user_message(e.instructions, e.observation))
        for s in e.steps:
            texts += [s.action, s.observation]
    return texts


def successful_episodes(
    env_id: str,
    agent: Any,
    episodes: int,
    *,
    seed: int,
    max_turns: int,
    env_kwargs: dict[str, Any] | None = None,
    split: str = "train",
) -> list[Any]:
    """The successful ones of `episodes` seeded episodes of a scripted `agent` on `split` (SFT data); a ConfigError
    when none succeeded within `max_turns`."""
    from turngym.agents.rollout import run_episodes
    from turngym.errors import ConfigError

    eps = run_episodes(
        env_id,
        agent,
        episodes=episodes,
        seed=seed,
        split=split,
        env_kwargs=env_kwargs,
        options={"max_turns": max_turns},
    )
    wins = [e for e in eps if e.success]
    if not wins:
        raise ConfigError(
            f"no {getattr(agent, 'name', 'agent')} episode succeeded within max_turns={max_turns}; raise --max-turns"
        )
    return wins


def run_arms(
    start: Callable[[str], Any],
    arms: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Any],
    out: str | Path,
    *,
    evaluator: Callable[[Any], dict[str, float]] | None = None,
    report: Report | None = None,
    on_arm: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """One GRPO run per arm, in order, each from the same start; returns {arm: its results}.

    `start(name)` gives the policy the arm trains (e.g. the shared policy with the SFT weights loaded again, or a
    freshly loaded model). The arm's `GRPOConfig` is `base` (the fields every arm shares) updated with `arms[name]`
    (what the arm changes: reward shaping, advantage estimator, ...), its `output_dir` OUT/<name>. `evaluator` goes to
    `GRPOTrainer` (held-out evaluation during training). `report(name, trainer, records)` turns the finished run into
    the arm's results, to which `seconds` (training and report) is added; `on_arm(name, results)` runs after each arm
    (e.g. to save what finished so far).
    """
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    results: dict[str, dict[str, Any]] = {}
    for name, fields in arms.items():
        policy = start(name)
        cfg = GRPOConfig(**{**base, **fields, "output_dir": str(Path(out) / name)})
        t0 = time.time()
        trainer = GRPOTrainer(policy, config=cfg, evaluator=evaluator)
        records = trainer.train()
        res = dict(report(name, trainer, records)) if report is not None else {}
        res["seconds"] = time.time() - t0
        results[name] = res
        if on_arm is not None:
            on_arm(name, res)
    return results
