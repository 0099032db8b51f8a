"""turngym's GRPO step vs TRL's GRPOTrainer step: same tiny model, prompts, group size and generation length.

    .venv/bin/python benchmarks/trl_grpo_step.py compare --trl-python runs/venv-trl/bin/python

TRL lives in its own venv (not a turngym dependency):
    python3 -m venv runs/venv-trl && runs/venv-trl/bin/pip install "torch==2.13.0" trl transformers

`compare` saves a tiny Llama (agents' char tokenizer, hidden 128 x 4 layers) to runs/bench-trl/model, then runs each
side in a fresh process (`side turngym` / `side trl`): STEPS training steps of 2 prompts x 8 completions x 32 new
tokens, reward = share of the letter "a" in the completion, plain GRPO loss, no KL, 1 update per batch, lr 1e-5.
Reported: median seconds per step after WARMUP steps, and peak RSS growth during training (MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEPS, WARMUP, G, PROMPTS_PER_STEP, MAX_NEW = 12, 2, 8, 2, 32
PROMPTS = [f"Write a word with many a letters, number {i}:" for i in range(64)]


def reward_text(text: str) -> float:
    return text.count("a") / max(1, len(text))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(folder: Path) -> None:
    from turngym.agents.backends.tiny import char_tokenizer, tiny_llama

    tok = char_tokenizer()
    model = tiny_llama(len(tok), hidden=128, layers=4, seed=0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


class PromptEngine:
    """Single-turn prompts for a GRPOTrainer: `policy`'s batched generate, reward from the text."""

    def __init__(self, policy):
        self.policy = policy

    def collect(self, task_ids, group_size, seed, split=None, options=None):
        from turngym.agents.trajectory import TokenEpisode

        policy = self.policy
        prompts = [
            policy.tokenizer(PROMPTS[int(t)])["input_ids"] for t in task_ids for _ in range(group_size)
        ]
        gens = policy.generate(prompts, seed=seed)
        out = []
        for k, (p, g) in enumerate(zip(prompts, gens)):
            n = len(g.token_ids)
            out.append(
                TokenEpisode(
                    input_ids=list(p) + list(g.token_ids),
                    policy_mask=[0] * len(p) + [1] * n,
                    logprobs=[0.0] * len(p) + list(g.logprobs),
                    turn_index=[-1] * len(p) + [0] * n,
                    rewards=[reward_text(g.text)],
                    obs_keys=[""],
                    infos=[{"success": False}],
                    task_id=str(task_ids[k // group_size]),
                    group=k // group_size,
                )
            )
        return out


def turngym_config(steps: int, **overrides):
    """The turngym side's GRPOConfig: PROMPTS_PER_STEP prompts x G completions x MAX_NEW tokens, one update."""
    from turngym.trainers.config import GRPOConfig

    settings = dict(
        env_id="prompts",
        task_ids=[str(i) for i in range(len(PROMPTS))],
        steps=steps,
        tasks_per_step=PROMPTS_PER_STEP,
        group_size=G,
        max_new_tokens=MAX_NEW,
        lr=1e-5,
        mini_batch_size=PROMPTS_PER_STEP * G,
        micro_batch_size=PROMPTS_PER_STEP * G,
        output_dir="runs/bench-trl/turngym",
        progress=False,
        tensorboard=False,
        plot=False,
    )
    return GRPOConfig(**{**settings, **overrides})


def side_turngym(
    folder: Path, fast_decode: bool = True, device: str = "cpu", bf16: bool = False, steps: int | None = None
) -> dict:
    """`steps` training steps (default STEPS) of turngym's GRPOTrainer; `device`/`bf16`: where and in which dtype
    the model lives (bf16: bfloat16 weights and autocast)."""
    import torch

    from turngym.agents.backends.hf import HFPolicy
    from turngym.trainers.grpo import GRPOTrainer

    steps = steps or STEPS
    torch.manual_seed(0)
    policy = HFPolicy.from_pretrained(
        str(folder),
        dtype="bfloat16" if bf16 else "float32",
        max_new_tokens=MAX_NEW,
        temperature=1.0,
        fast_decode=fast_decode,
    )
    policy.model.to(device)
    trainer = GRPOTrainer(policy, config=turngym_config(steps, bf16=bf16), engine=PromptEngine(policy))
    base = rss_mib()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - t0)
    return {
        "side": "turngym",
        "step_s": statistics.median(times[WARMUP:]),
        "peak_rss_growth_mib": rss_mib() - base,
        "peak_rss_mib": rss_mib(),
    }


def side_trl(
    folder: Path,
    device: str = "cpu",
    bf16: bool = False,
    steps: int | None = None,
    gradient_checkpointing: bool | None = None,
) -> dict:
    """`steps` training steps (default STEPS) of TRL's GRPOTrainer on the same prompts, group and lengths.
    `gradient_checkpointing` None keeps TRL's default (on in TRL 1.16; turngym's default is off)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    steps = steps or STEPS
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if bf16 else torch.float32)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    def reward(completions, **kw):
        return [reward_text(c) for c in completions]

    args = GRPOConfig(
        output_dir="runs/bench-trl/trl",
        use_cpu=device == "cpu",
        bf16=bf16,
        per_device_train_batch_size=PROMPTS_PER_STEP * G,
        num_generations=G,
        max_completion_length=MAX_NEW,
        max_steps=steps,
        learning_rate=1e-5,
        beta=0.0,
        loss_type="grpo",
        temperature=1.0,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        seed=0,
        **({} if gradient_checkpointing is None else {"gradient_checkpointing": gradient_checkpointing}),
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        callbacks=[Timer()],
    )
    base = rss_mib()
    trainer.train()
    return {
        "side": "trl",
        "step_s": statistics.median(times[WARMUP:]),
        "peak_rss_growth_mib": rss_mib() - base,
        "peak_rss_mib": rss_mib(),
    }


def main() -> None:
    global STEPS
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["compare", "side"])
    ap.add_argument("which", nargs="?", choices=["turngym", "trl"])
    ap.add_argument("--model", default="runs/bench-trl/model")
    ap.add_argument("--trl-python", default="runs/venv-trl/bin/python")
    ap.add_argument(
        "--steps", type=int, default=STEPS, help="training steps per side (the first WARMUP not timed)"
    )
    ap.add_argument(
        "--no-fast-decode",
        action="store_true",
        help="turngym side: generate through the model's own forward (HFPolicy(fast_decode=False))",
    )
    a = ap.parse_args()
    STEPS = max(a.steps, WARMUP + 1)
    folder = Path(a.model)
    if a.cmd == "side":
        res = side_turngym(folder, not a.no_fast_decode) if a.which == "turngym" else side_trl(folder)
        print("RESULT " + json.dumps(res))
        return
    folder.mkdir(parents=True, exist_ok=True)
    make_model(folder)
    results = {}
    for which, py in (("turngym", sys.executable), ("trl", a.trl_python)):
        out = subprocess.run(
            [py, __file__, "side", which, "--model", str(folder), "--steps", str(STEPS)]
            + (["--no-fast-decode"] if a.no_fast_decode and which == "turngym" else []),
            capture_output=True,
            text=True,
        )
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            raise SystemExit(f"{which} side failed:\n{out.stderr[-3000:]}")
        results[which] = json.loads(line[0][7:])
    t, r = results["turngym"], results["trl"]
    results["ratio_time"] = t["step_s"] / r["step_s"]
    results["ratio_peak_rss_growth"] = t["peak_rss_growth_mib"] / max(r["peak_rss_growth_mib"], 1e-9)
    results["ratio_peak_rss"] = t["peak_rss_mib"] / r["peak_rss_mib"]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
