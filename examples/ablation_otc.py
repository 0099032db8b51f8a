"""Ablation: OTC-GRPO vs plain GRPO on `turngym/Coding-v0` — tool calls per solved task (Optimal Tool Calls).

    .venv/bin/python examples/ablation_otc.py --out runs/otc            # both arms, about 20 min on 2 CPU cores

What runs (every piece real: the coding env, its bubblewrap/process sandbox, the humaneval grader):
1. Tasks: the `--tasks` HumanEval problems with the shortest canonical bodies that have a single top-level function;
   each task's reference becomes a minimal solution.py (the prompt's imports + the `def` line + the canonical body),
   kept only if the real hidden tests pass. They are written to OUT/pack as split `train` (training and
   evaluation use the same tasks: the small model memorises solutions, so this ablation measures how the reward
   changes tool use, not coding ability).
2. Start policy: a tiny Llama over a byte-pair tokenizer (both built here, no download), SFT on episodes of a
   *wasteful* scripted coder (`WastefulCoder`): it sometimes runs the visible tests before writing and runs them 0-2
   times after, before `submit()` (2-5 tool calls, the minimum is 2: write_file + submit). The SFT policy inherits that
   habit, so there are tool calls to save — the situation OTC was built for (models that over-call tools).
3. RL from the same SFT weights, same tasks and seeds, one arm per reward: `grpo` (R = the env's test score) and
   `otc` (R = OTC's tool reward × correctness, `reward_shaping: [{name: otc}]`, turngym.trainers.rewards.otc).
   Greedy evaluation on all tasks before and after: success and tool calls per solved task; training rollouts'
   tool calls per solved task per step are in OUT/<arm>/metrics.jsonl (`tool_calls_per_success`).

Writes OUT/summary.json (args, SFT and per-arm results) and each arm's run folder.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from turngym.agents.base import Agent, EpisodeContext
from turngym.envs.coding.calls import format_call

log = logging.getLogger("ablation_otc")
ENV_ID = "turngym/Coding-v0"


def minimal_solution(task: dict[str, Any]) -> str | None:
    """The prompt's import lines + its single `def` header + the canonical body; None if the prompt has more than
    one top-level function (helpers would be needed)."""
    prompt, full = task["files"]["solution.py"], task["solution"]["solution.py"]
    if not full.startswith(prompt):
        return None
    lines = prompt.splitlines()
    defs = [i for i, ln in enumerate(lines) if ln.startswith("def ")]
    if len(defs) != 1:
        return None
    head = [ln for ln in lines[: defs[0]] if ln.startswith(("import ", "from "))]
    i = defs[0]
    header = [lines[i]]
    while not header[-1].rstrip().endswith(":") and i + 1 < len(lines):
        i += 1
        header.append(lines[i])
    body = full[len(prompt) :].strip("\n")
    return "\n".join([*head, *header, body]) + "\n"


def build_pack(out: Path, n: int) -> Path:
    """OUT/pack: the `n` shortest single-function HumanEval tasks with minimal solutions that pass the hidden tests."""
    import gymnasium as gym

    from turngym.tasks.pack import BUILTIN_DIR, write_pack

    src = BUILTIN_DIR / "humaneval"
    rows = [json.loads(x) for x in gzip.open(src / "test.jsonl.gz", "rt")]
    cands = []
    for r in rows:
        sol = minimal_solution(r)
        if sol is not None:
            cands.append((len(sol), r["task_id"], {**r, "solution": {"solution.py": sol}}))
    cands.sort(key=lambda c: (c[0], c[1]))
    manifest = {**json.loads((src / "manifest.json").read_text()), "name": "humaneval-short"}
    pool = [rec for _, _, rec in cands[: 3 * n]]
    dst = write_pack(out / "pack", manifest, {"train": pool})
    kept: list[dict[str, Any]] = []
    env = gym.make(ENV_ID, task_pack=str(dst.resolve()), split="train")
    try:
        for rec in pool:
            if len(kept) == n:
                break
            env.reset(seed=0, options={"task_id": rec["task_id"]})
            env.step(format_call("write_file", path="solution.py", content=rec["solution"]["solution.py"]))
            _, _, _, _, info = env.step(format_call("submit"))
            if info.get("success"):
                kept.append(rec)
    finally:
        env.close()
    if len(kept) < n:
        raise SystemExit(
            f"only {len(kept)} HumanEval tasks have a passing minimal solution; use --tasks <= {len(kept)}"
        )
    return write_pack(dst, manifest, {"train": kept})


def short_call(name: str, *args: str) -> str:
    """A tool call in the env's short form, e.g. `write_file("solution.py", "def f():\\n ...")` or `submit()`."""
    return f"{name}({', '.join(json.dumps(x) for x in args)})"


class WastefulCoder(Agent):
    """A scripted coder that over-calls tools: with probability `p_early` it runs the visible tests before writing
    (they fail), writes the reference solution, runs the tests k more times (k = 0, 1, 2 with probabilities
    `p_tests`), then submits: 2-5 tool calls where 2 suffice. Calls use the env's short form (`run_tests()`,
    `write_file("solution.py", "...")`, `submit()`). Seeded per episode (the episode's seed and index)."""

    name = "wasteful-coder"

    def __init__(self, p_early: float = 0.5, p_tests: tuple[float, float, float] = (0.3, 0.4, 0.3)):
        self.p_early, self.p_tests = p_early, p_tests

    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        out = []
        for ctx in contexts:
            plan = ctx.state.get("plan")
            if plan is None:
                rng = random.Random(f"{ctx.seed}-{ctx.episode_index}")
                task = ctx.env.unwrapped.task
                plan = [short_call("run_tests")] if rng.random() < self.p_early else []
                plan.append(short_call("write_file", "solution.py", task["solution"]["solution.py"]))
                plan += [short_call("run_tests")] * rng.choices((0, 1, 2), weights=self.p_tests)[0]
                plan.append(short_call("submit"))
                ctx.state["plan"], ctx.state["i"] = plan, 0
            out.append(plan[min(ctx.state["i"], len(plan) - 1)])
            ctx.state["i"] += 1
        return out


def evaluate(
    policy: Any, env_kwargs: dict, task_ids: list[str], max_turns: int, seed: int
) -> dict[str, float]:
    """Greedy, one episode per task: success rate, mean tool calls, tool calls per solved task."""
    from turngym.agents.evaluate import greedy_episodes
    from turngym.trainers.rewards import group_metrics

    eps = greedy_episodes(
        policy,
        ENV_ID,
        task_ids,
        split="train",
        seed=seed,
        max_turns=max_turns,
        env_kwargs=env_kwargs,
        num_envs=8,
    )
    m = group_metrics(eps)
    return {k: m[k] for k in ("success", "tool_calls", "tool_calls_per_success", "invalid_actions")}


def parser() -> argparse.ArgumentParser:
    """The script's options (benchmarks/otc.py parses with it to compare a finished seed's options)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/otc")
    p.add_argument(
        "--tasks", type=int, default=16, help="HumanEval tasks (the shortest single-function ones)"
    )
    p.add_argument("--sft-episodes", type=int, default=640, help="wasteful-coder episodes for SFT")
    p.add_argument("--sft-epochs", type=int, default=6)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--tasks-per-step", type=int, default=4)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--temperature",
        type=float,
        default=0.7,
        help="rollout sampling temperature (at 1.0 most sampled solutions break, leaving groups with one success)",
    )
    p.add_argument("--max-turns", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--arms", default="grpo,otc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from turngym.numerics import numerics_info, pin_isa

    pin_isa()  # before torch is imported: ATen (and MKL) kernels pinned to AVX2 unless TURNGYM_ISA says else

    import torch

    from turngym.agents.backends.bpe import bpe_policy
    from turngym.experiments import episode_texts, run_arms, successful_episodes
    from turngym.trainers.config import SFTConfig
    from turngym.trainers.sft import SFTTrainer, expert_token_episode

    arms = {"grpo": {"reward_shaping": []}, "otc": {"reward_shaping": [{"name": "otc"}]}}
    bad = [x for x in a.arms.split(",") if x not in arms]
    if bad:
        raise SystemExit(f"--arms: unknown {bad}; known: {', '.join(arms)}")
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pack = build_pack(out, a.tasks)
    env_kwargs = {"task_pack": str(pack.resolve()), "split": "train"}
    task_ids = [json.loads(x)["task_id"] for x in (pack / "train.jsonl").read_text().splitlines()]
    experts = successful_episodes(
        ENV_ID, WastefulCoder(), a.sft_episodes, seed=a.seed, max_turns=a.max_turns, env_kwargs=env_kwargs
    )
    calls = sum(len(e.steps) for e in experts) / len(experts)
    log.info("%d successful wasteful-coder episodes, %.2f tool calls each", len(experts), calls)
    policy = bpe_policy(
        episode_texts(experts),
        vocab_size=1024,
        implicit_spaces=False,
        seed=a.seed,
        hidden=a.hidden,
        layers=a.layers,
        max_new_tokens=a.max_new_tokens,
    )
    SFTTrainer(
        policy,
        [expert_token_episode(policy, e) for e in experts],
        SFTConfig(
            epochs=a.sft_epochs,
            lr=a.sft_lr,
            mini_batch_size=4,
            micro_batch_size=4,
            warmup_steps=20,
            lr_schedule="cosine",
            seed=a.seed,
            output_dir=str(out / "sft"),
            tensorboard=False,
            progress=False,
        ),
    ).train()
    sft_eval = evaluate(policy, env_kwargs, task_ids, a.max_turns, a.seed)
    log.info("after SFT (%.0f s): %s", time.time() - t0, sft_eval)
    sft_state = copy.deepcopy(policy.model.state_dict())
    summary: dict[str, Any] = {
        "args": vars(a),
        "numerics": numerics_info(),
        "tasks": task_ids,
        "expert_tool_calls": calls,
        "sft_seconds": time.time() - t0,
        "sft": sft_eval,
        "arms": {},
    }
    base = {
        "env_id": ENV_ID,
        "env_kwargs": env_kwargs,
        "split": "train",
        "task_ids": task_ids,
        "steps": a.steps,
        "tasks_per_step": a.tasks_per_step,
        "group_size": a.group,
        "max_turns": a.max_turns,
        "max_new_tokens": a.max_new_tokens,
        "lr": a.lr,
        "temperature": a.temperature,
        "mini_batch_size": a.tasks_per_step * a.group,
        "micro_batch_size": 8,
        "seed": a.seed,
        "progress": False,
        "tensorboard": False,
    }

    def start(arm: str) -> Any:
        policy.model.load_state_dict(sft_state)
        return policy

    def report(arm: str, trainer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [json.loads(x) for x in (out / arm / "metrics.jsonl").read_text().splitlines() if x.strip()]
        rows = [r for r in rows if "tool_calls_per_success" in r]
        res = evaluate(policy, env_kwargs, task_ids, a.max_turns, a.seed)
        log.info("%s: %s", arm, res)
        return {
            "final": res,
            "train_tool_calls_per_success": [r.get("tool_calls_per_success") for r in rows],
            "train_success": [r.get("success") for r in rows],
        }

    def save(arm: str, res: dict[str, Any]) -> None:
        summary["arms"][arm] = res
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    run_arms(start, {arm: arms[arm] for arm in a.arms.split(",")}, base, out, report=report, on_arm=save)
    summary["seconds"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
