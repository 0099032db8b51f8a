"""Ablation: HC-GRPO vs plain GRPO on embodied search (SmolLM2-135M-Instruct, CPU).

Both arms start from the same weights, tasks and seeds; the env pays success only (`lam=0`), the arms differ only in
the reward-shaping stage: GRPO = `hc_grpo` with λ = 0 (R = success, used so that costs are logged the same way),
HC-GRPO = `hc_grpo` with λ = 1 (R = success − Σ costs). Reports success and total cost per episode (training
rollouts) per arm, from each run's metrics.jsonl and rewards.jsonl.

    .venv/bin/python examples/ablation_hc_grpo.py --steps 6 --out runs/ablation_hc_grpo
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path


def summarize(name: str, lam: float, steps: int, out: Path) -> dict[str, float]:
    """Success and total cost per training episode of one arm (all steps, and the steps after the first half)."""
    rows = [json.loads(x) for x in (out / name / "rewards.jsonl").read_text().splitlines()]
    half = [r for r in rows if r["step"] > steps // 2] or rows
    return {
        "arm": name,
        "lam": lam,
        "success_all": sum(r["success"] for r in rows) / len(rows),
        "cost_all": sum(r["cost"] for r in rows) / len(rows),
        "success_late": sum(r["success"] for r in half) / len(half),
        "cost_late": sum(r["cost"] for r in half) / len(half),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--max-turns", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", default="grpo,hc_grpo")
    p.add_argument("--out", default="runs/ablation_hc_grpo")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from turngym.agents.backends.hf import HFPolicy
    from turngym.experiments import run_arms

    lams = {"grpo": 0.0, "hc_grpo": 1.0}
    out = Path(args.out)
    base = {
        "env_id": "turngym/EmbodiedSearch-v0",
        "env_kwargs": {"lam": 0.0},
        "steps": args.steps,
        "tasks_per_step": args.tasks,
        "group_size": args.group,
        "max_turns": args.max_turns,
        "max_new_tokens": args.max_new_tokens,
        "lr": args.lr,
        "mini_batch_size": args.tasks * args.group,
        "micro_batch_size": 2,
        "seed": args.seed,
        "progress": False,
        "tensorboard": False,
        "plot": False,
    }

    def start(arm: str) -> HFPolicy:
        torch.manual_seed(args.seed)
        return HFPolicy.from_pretrained("smollm2")

    arms = {a: {"reward_shaping": [{"name": "hc_grpo", "lam": lams[a]}]} for a in args.arms.split(",")}
    runs = run_arms(start, arms, base, out, report=lambda a, *_: summarize(a, lams[a], args.steps, out))
    results = list(runs.values())
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    for r in results:
        logging.info("%s", json.dumps(r))


if __name__ == "__main__":
    main()
