"""Train a tiny model with TRL's GRPOTrainer on a turngym env, on CPU, for a few steps.

    .venv/bin/pip install -e '.[trl]'
    .venv/bin/python examples/trl_grpo.py --out runs/trl-grpo [--env turngym/EmbodiedSearch-v0] [--steps 4]

The model is built locally (`HFPolicy.from_pretrained("tiny")`: a small Llama with a character tokenizer and
ChatML template, random weights), so nothing is downloaded; it shows the plumbing, not learning. turngym's
`TurngymRollout` is TRL's `rollout_func`: it plays each task `num_generations` times with the trainer's model
(multi-turn, the env's observations masked out of the loss) and TRL's `env_return` reward is the env's episode
return. Writes OUT/metrics.json: TRL's log history (loss, reward, turngym/success per step) and the number of
episodes played. See docs/integrations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/trl-grpo")
    ap.add_argument("--env", default="turngym/EmbodiedSearch-v0")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=8, help="tasks in the training dataset")
    ap.add_argument("--group-size", type=int, default=4, help="TRL num_generations (episodes per task)")
    ap.add_argument("--tasks-per-step", type=int, default=1)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if (
        min(args.steps, args.tasks, args.group_size, args.tasks_per_step, args.max_turns, args.max_new_tokens)
        < 1
    ):
        ap.error(
            "--steps, --tasks, --group-size, --tasks-per-step, --max-turns and --max-new-tokens must be >= 1"
        )
    if args.group_size < 2:
        ap.error("--group-size must be >= 2 (GRPO compares episodes of the same task)")

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from turngym.optional import require

    require("trl", extra="trl", purpose="this example")
    from trl import GRPOConfig, GRPOTrainer

    from turngym.agents.backends.hf import HFPolicy
    from turngym.integrations.trl import TurngymRollout

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiny = HFPolicy.from_pretrained("tiny", seed=args.seed)
    rollout = TurngymRollout(
        args.env, max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    batch = args.group_size * args.tasks_per_step
    config = GRPOConfig(
        output_dir=str(out / "trl"),
        max_steps=args.steps,
        per_device_train_batch_size=batch,
        num_generations=args.group_size,
        learning_rate=args.lr,
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=tiny.model,
        args=config,
        train_dataset=rollout.dataset(num_tasks=args.tasks, seed=args.seed),
        processing_class=tiny.tokenizer,
        reward_funcs=rollout.reward_funcs,
        rollout_func=rollout,
    )
    t0 = time.perf_counter()
    try:
        trainer.train()
    finally:
        rollout.close()
    history = [h for h in trainer.state.log_history if "loss" in h or "reward" in h]
    result = {
        "env": args.env,
        "steps": args.steps,
        "group_size": args.group_size,
        "tasks_per_step": args.tasks_per_step,
        "rollout_calls": rollout.calls,
        "episodes_last_call": len(rollout.last_episodes),
        "seconds": round(time.perf_counter() - t0, 2),
        "log_history": history,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    for h in history:
        print({k: h[k] for k in ("step", "loss", "reward", "turngym/success") if k in h})
    print(f"wrote {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
