"""Async rollouts vs synchronous training: steps per second and the learning curve over the same samples.

    python benchmarks/async_training.py --seeds 3 --steps 10     # -> benchmarks/results/async_training.json

GRPOTrainer on EmbodiedSearch-v0 with the tiny policy (built locally), each env step made slow by a fixed sleep
(`--env-delay`, default 0.1 s: a browser or sandbox step), in two arms from the same start and seed: `max_staleness=0`
(collect, then train) and `max_staleness=1` (the next step's rollouts run while this step trains, sampler synced
after every update) with `tis_cap=2`. Per seed and arm: seconds per step after the first (the stream's warm-up),
env steps per second, the mean staleness, and the mean training reward per step (the learning curve over the same
number of samples). Summary: mean and 95% t-interval over seeds of each, and the paired speed-up.

    python benchmarks/async_training.py --backend ray --seeds 3 --steps 6   # -> benchmarks/results/async_training_ray.json

`--backend ray`: the same two arms with `rollout_backend=ray`, the rollouts in `--workers` Ray actors (default 2) with
`8 / workers` env slots each (the same 8 concurrent episodes), each arm on a fresh local Ray cluster; the trainer's
update runs in this process and the weights go to the workers after every step. Both backends also report tokens/s
(generated policy tokens), and the trainer's idle fraction: the time a step waits for its rollouts (`rollout_s`:
the whole collect when synchronous, the wait for the stream's next batch when async) over the step's wall time. The
file then also records the machine (CPU, cores) and the load average before and after the run.
"""

from __future__ import annotations

import json
import os
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


def run_arm(
    seed: int, steps: int, staleness: int, work: Path, backend: str = "hf", workers: int = 2
) -> dict[str, Any]:
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    ray_fields: dict[str, Any] = {}
    if backend == "ray":  # the same 8 concurrent episodes, spread over the workers
        ray_fields = dict(rollout_backend="ray", rollout_workers=workers)
    cfg = GRPOConfig(
        env_id=SLOW_ID,
        seed=seed,
        steps=steps,
        tasks_per_step=4,
        group_size=4,
        max_new_tokens=12,
        max_turns=4,
        num_envs=max(1, 8 // workers) if backend == "ray" else 8,
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
        **ray_fields,
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
    tokens = sum(r["policy_tokens"] * 16 for r in recs[1:])
    timed = max(1e-9, stamps[-1] - stamps[0])  # the steps after the first
    return {
        "s_per_step": per_step,
        "steps_per_s": 1.0 / per_step if per_step else 0.0,
        "env_steps_per_s": env_steps / timed,
        "tokens_per_s": tokens / timed,
        "idle_fraction": sum(r["rollout_s"] for r in recs[1:]) / timed,
        "rollout_s": sum(r["rollout_s"] for r in recs[1:]) / max(1, len(recs) - 1),
        "update_s": sum(r["update_s"] for r in recs[1:]) / max(1, len(recs) - 1),
        "weight_sync_s": sum(r.get("weight_sync_s", 0.0) for r in recs[1:]) / max(1, len(recs) - 1),
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
    p.add_argument(
        "--backend", choices=("hf", "ray"), default="hf", help="rollouts in process (hf) or Ray actors"
    )
    p.add_argument("--workers", type=int, default=2, help="Ray rollout workers (--backend ray)")
    args = p.parse_args()
    if args.backend == "ray":
        if args.out == str(ROOT / "results" / "async_training.json"):
            args.out = str(ROOT / "results" / "async_training_ray.json")
        args.work = args.work + "_ray"
    load_before = os.getloadavg()
    import torch

    torch.set_num_threads(2)  # generation and the update share the two cores, as a user's run would
    register_slow_env(args.env_delay)
    t0 = time.time()

    def one_seed(s: int) -> dict[str, Any]:
        return {
            "sync": run_arm(s, args.steps, 0, Path(args.work), args.backend, args.workers),
            "async": run_arm(s, args.steps, 1, Path(args.work), args.backend, args.workers),
        }

    per_seed = arms.run_seeds(one_seed, args.seeds)
    summary: dict[str, Any] = {}
    keys = ["s_per_step", "steps_per_s", "tokens_per_s", "env_steps_per_s", "idle_fraction", "staleness"]
    keys += ["rollout_s", "update_s", "weight_sync_s", "mean_reward"]
    for key in keys:
        summary[key] = {arm: arms.mean_ci([r[arm][key] for r in per_seed]) for arm in ("sync", "async")}
    summary["speedup_steps_per_s"] = arms.mean_ci(
        [r["sync"]["s_per_step"] / r["async"]["s_per_step"] for r in per_seed]
    )
    summary["async_minus_sync_mean_reward"] = arms.versus(per_seed, "async", "sync", "mean_reward")[1]
    setting = (
        "EmbodiedSearch-v0 train split, tiny policy, 4 tasks x 4 episodes per step, max_turns 4, 8 env slots; "
        "async = max_staleness 1 + tis_cap 2"
    )
    if args.backend == "ray":
        setting += f"; rollout_backend=ray, {args.workers} workers x {max(1, 8 // args.workers)} env slots"
    result = {
        "backend": args.backend,
        "seeds": args.seeds,
        "steps": args.steps,
        "env_delay_s": args.env_delay,
        "setting": setting,
        "machine": {"cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "summary": summary,
        "per_seed": per_seed,
    }
    arms.write(Path(args.out), result, "async_training.py", t0)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
