"""Async rollouts vs synchronous training: steps per second and the learning curve over the same samples.

    python benchmarks/async_training.py --seeds 3 --steps 10     # -> benchmarks/results/async_training.json

GRPOTrainer on EmbodiedSearch-v0 with the tiny policy (built locally), each env step made slow by a fixed sleep
(`--env-delay`, default 0.1 s: a browser or sandbox step), in two arms from the same start and seed: `max_staleness=0`
(collect, then train) and `max_staleness=1` (the next step's rollouts run while this step trains, sampler synced
after every update) with `tis_cap=2`. Per seed and arm: seconds per step after the first (the stream's warm-up),
env steps per second, the mean staleness, and the mean training reward per step (the learning curve over the same
number of samples). Summary: mean and 95% t-interval over seeds of each, and the paired speed-up.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SLOW_ID = "turngym-bench/SlowEmbodiedSearch-v0"


def register_slow_env(delay: float) -> None:
    import gymnasium as gym

    from turngym.envs.embodied.env import EmbodiedSearchEnv

    class SlowEmbodiedSearch(EmbodiedSearchEnv):
        """EmbodiedSearch whose every step also waits `delay` seconds (a slow env, e.g. a browser)."""

        def step(self, action: Any) -> Any:
            time.sleep(delay)
            return super().step(action)

    if SLOW_ID in gym.registry:
        del gym.registry[SLOW_ID]
    gym.register(SLOW_ID, entry_point=SlowEmbodiedSearch)


def run_arm(seed: int, steps: int, staleness: int, work: Path) -> dict[str, Any]:
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    cfg = GRPOConfig(
        env_id=SLOW_ID,
        seed=seed,
        steps=steps,
        tasks_per_step=4,
        group_size=4,
        max_new_tokens=12,
        max_turns=4,
        num_envs=8,
        lr=1e-2,
        entropy_coef=0.05,
        mini_batch_size=16,
        micro_batch_size=8,
        max_staleness=staleness,
        tis_cap=2.0 if staleness else 0.0,
        split="train",
        save_every=0,
        output_dir=str(work / f"s{staleness}_{seed}"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    trainer = GRPOTrainer(tiny_policy(seed=seed, max_new_tokens=12), config=cfg)
    stamps: list[float] = []
    t0 = time.perf_counter()
    recs = []
    try:
        while trainer.step < steps:
            recs.append(trainer.train_step())
            stamps.append(time.perf_counter())
    finally:
        trainer.close_stream()
        trainer.engine.close()
    per_step = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    env_steps = sum(r["turns"] * 16 for r in recs[1:])  # 4 tasks x 4 episodes per step
    return {
        "s_per_step": per_step,
        "env_steps_per_s": env_steps / max(1e-9, stamps[-1] - stamps[0]),
        "staleness": sum(r.get("staleness", 0.0) for r in recs) / len(recs),
        "reward_curve": [r["reward"] for r in recs],
        "invalid_actions_curve": [r.get("invalid_actions") for r in recs],
        "mean_reward": sum(r["reward"] for r in recs) / len(recs),
        "wall_s": time.perf_counter() - t0,
    }


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import arms

    p = arms.begin(
        __doc__, 3, 10, "runs/async_training", str(ROOT / "results" / "async_training.json"), "result JSON"
    )
    p.add_argument("--env-delay", type=float, default=0.1, help="seconds added to every env step")
    args = p.parse_args()
    import torch

    torch.set_num_threads(2)  # generation and the update share the two cores, as a user's run would
    register_slow_env(args.env_delay)
    t0 = time.time()

    def one_seed(s: int) -> dict[str, Any]:
        return {
            "sync": run_arm(s, args.steps, 0, Path(args.work)),
            "async": run_arm(s, args.steps, 1, Path(args.work)),
        }

    per_seed = arms.run_seeds(one_seed, args.seeds)
    summary: dict[str, Any] = {}
    for key in ("s_per_step", "env_steps_per_s", "staleness", "mean_reward"):
        summary[key] = {arm: arms.mean_ci([r[arm][key] for r in per_seed]) for arm in ("sync", "async")}
    summary["speedup_steps_per_s"] = arms.mean_ci(
        [r["sync"]["s_per_step"] / r["async"]["s_per_step"] for r in per_seed]
    )
    summary["async_minus_sync_mean_reward"] = arms.versus(per_seed, "async", "sync", "mean_reward")[1]
    result = {
        "seeds": args.seeds,
        "steps": args.steps,
        "env_delay_s": args.env_delay,
        "setting": "EmbodiedSearch-v0 train split, tiny policy, 4 tasks x 4 episodes per step, max_turns 4, 8 env "
        "slots; async = max_staleness 1 + tis_cap 2",
        "summary": summary,
        "per_seed": per_seed,
    }
    arms.write(Path(args.out), result, "async_training.py", t0)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
