"""Rollout throughput of `RayRolloutEngine`: 1 vs 2 Ray workers on EmbodiedSearch with slow (sleeping) env steps.

    .venv/bin/python benchmarks/ray_rollout.py                           # tiny model, 0.2 s per env step
    .venv/bin/python benchmarks/ray_rollout.py --step-delay 0.5 --repeats 5 --out benchmarks/results/x.json

Sides (each a fresh local Ray cluster, workers warmed up by one collect before timing):
    w1-e8   1 worker  x 8 env slots
    w2-e4   2 workers x 4 env slots (the same 8 concurrent episodes, generation split over two processes)
    w2-e8   2 workers x 8 env slots (scaling out: twice the concurrent episodes)
Every side plays the same plan (tasks and seeds) per repeat, so the episodes are equal across sides; the script
checks that the token ids agree. Reports episodes/s and generated tokens/s per repeat, their median, and the
machine (CPU model, core count), as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import gymnasium as gym

from turngym.envs.embodied.env import EmbodiedSearchEnv
from turngym.numerics import cpu_model

ROOT = Path(__file__).resolve().parents[1]
SLOW_ID = "turngymbench/SlowEmbodiedSearch-v0"


class SlowEmbodiedSearchEnv(EmbodiedSearchEnv):
    """EmbodiedSearch whose every step first sleeps `step_delay` seconds (I/O-like latency: a browser, a sandbox)."""

    def __init__(self, step_delay: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.step_delay = float(step_delay)

    def step(self, action):
        time.sleep(self.step_delay)
        return super().step(action)


def run_side(workers: int, slots: int, args: argparse.Namespace) -> dict:
    import ray

    from turngym.agents.ray_engine import PolicySpec, RayRolloutEngine

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        spec = PolicySpec("tiny", {"max_new_tokens": args.max_new_tokens})
        with RayRolloutEngine(
            spec, SLOW_ID, env_kwargs={"step_delay": args.step_delay}, num_workers=workers, num_envs=slots
        ) as eng:
            eng.collect(
                2, group_size=1, seed=10_000, options={"max_turns": 1}
            )  # warm-up: imports, first forward
            runs, ids = [], []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                eps = eng.collect(
                    args.tasks, group_size=args.group_size, seed=r, options={"max_turns": args.max_turns}
                )
                wall = time.perf_counter() - t0
                tokens = sum(sum(e.policy_mask) for e in eps)
                runs.append(
                    {
                        "wall_s": round(wall, 3),
                        "episodes": len(eps),
                        "episodes_per_s": round(len(eps) / wall, 3),
                        "tokens_per_s": round(tokens / wall, 1),
                        "env_steps": int(eng.stats["env_steps"]),
                    }
                )
                ids.append([e.input_ids for e in eps])
    finally:
        ray.shutdown()
    return {
        "workers": workers,
        "env_slots_per_worker": slots,
        "runs": runs,
        "median_episodes_per_s": statistics.median(r["episodes_per_s"] for r in runs),
        "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "episodes_per_s_mean_ci": repeat_ci(runs),
        "_ids": ids,
    }


def repeat_ci(runs: list[dict]) -> dict:
    """Episodes/s over the repeats: mean and 95% Student-t interval (the learning benchmark's `mean_ci`)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from learning import mean_ci

    return mean_ci([r["episodes_per_s"] for r in runs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step-delay", type=float, default=0.2, help="seconds each env step sleeps")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=2)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (1 per worker)")
    ap.add_argument("--sides", default="1x8,2x4,2x8", help="comma list of WORKERSxSLOTS")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_rollout.json"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    gym.register(SLOW_ID, entry_point=SlowEmbodiedSearchEnv, disable_env_checker=True)
    load_before = [round(x, 2) for x in os.getloadavg()]  # a shared machine: others' load is in the numbers
    sides = []
    for side in args.sides.split(","):
        w, s = (int(x) for x in side.split("x"))
        res = run_side(w, s, args)
        print(json.dumps({k: v for k, v in res.items() if k != "_ids"}), flush=True)
        sides.append(res)
    same = all(s["_ids"] == sides[0]["_ids"] for s in sides)
    base = sides[0]["median_episodes_per_s"]
    result = {
        "benchmark": "ray_rollout",
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        },
        "setting": {
            "env": "EmbodiedSearch-v0 with a sleeping step",
            "step_delay_s": args.step_delay,
            "episodes": args.tasks * args.group_size,
            "max_turns": args.max_turns,
            "max_new_tokens": args.max_new_tokens,
            "model": "tiny (2-layer Llama, 64 hidden, char tokenizer)",
            "ray_cpus": args.cpus,
            "repeats": args.repeats,
        },
        "same_episodes_on_every_side": same,
        "sides": [{k: v for k, v in s.items() if k != "_ids"} for s in sides],
        "speedup_episodes_per_s_vs_first": {
            f"{s['workers']}x{s['env_slots_per_worker']}": round(s["median_episodes_per_s"] / base, 2)
            for s in sides
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["speedup_episodes_per_s_vs_first"]), "same episodes:", same)


if __name__ == "__main__":
    main()
