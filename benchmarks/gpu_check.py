"""A prepared GPU check: the trainer's CUDA paths, checked and timed on Qwen2.5-shaped models with random weights.

    .venv/bin/python benchmarks/gpu_check.py [--quick] [--out benchmarks/results/gpu_check.json] [--parts a,b]

Nothing is downloaded: models are built from a `Qwen2Config` (Qwen2.5-0.5B / 1.5B sizes, vocab 151936) in bfloat16 on
the GPU, and the agents' character tokenizer stands in where a chat format is needed (ids it does not know decode to
nothing). Four parts, each recorded as pass / fail / skip with its numbers and, on failure, the error text (a failing
part does not stop the others):

  forward_backward  the trainer's forward (`forward_logits`, bf16 autocast) + GRPO loss (`GRPOTrainer.micro_loss`)
                    and backward on a collated batch, per model shape: seconds, tokens/s, peak GPU memory
  fast_decode       `HFPolicy.generate` with the lean decoder vs `model.generate`, greedy: tokens/s both ways in
                    bf16; equal tokens in float32 (a first difference at a near-tie of two logits is reported, not failed)
  fsdp              one process group of one (NCCL): the trainer's model sharded with FSDP2 as `GRPOConfig(fsdp=True)`
                    shards it with several processes, then GRPO steps through `GRPOTrainer.train_step`
  trl_step          a GRPO step timed against TRL's `GRPOTrainer` on the same model and batch (the two sides of
                    benchmarks/trl_grpo_step.py)

Without CUDA every part is skipped, the JSON says why, and the exit status is 0. `--cpu-smoke` runs every part on the
CPU with a tiny shape instead (checks the script, not a GPU). Exit status 1 when a part failed. `--quick`: the 0.5B
shape only, shorter sequences, fewer repeats. The meaning of every number: docs/scale-out.md, "GPU check".
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import platform
import socket
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "gpu_check.json"
QWEN_VOCAB = 151936
# Qwen2.5 sizes (the released configs): hidden, layers, attention heads, key/value heads, MLP width; tied embeddings
SHAPES: dict[str, dict[str, int]] = {
    "qwen2.5-0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864),
    "qwen2.5-1.5b": dict(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960),
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128),  # --cpu-smoke
}
PARTS = ("forward_backward", "fast_decode", "fsdp", "trl_step")
NEAR_TIE = 1e-3  # float32 logit gap under which greedy decoders may legitimately pick different tokens


@dataclass
class Plan:
    """Sizes of one run mode."""

    device: str
    vocab: int
    fb_shapes: tuple[str, ...]  # forward_backward
    fb_batch: int  # episodes per micro-batch
    fb_prompt: int  # prompt tokens per episode
    fb_response: int  # most policy tokens per episode (rows get 1/2 .. all of it)
    reps: int  # timed repeats after one warm-up
    dec_shapes: tuple[str, ...]  # fast_decode
    dec_batch: int
    dec_new: int  # new tokens per row, bf16 timing
    eq_new: int  # new tokens per row, float32 equality
    step_shape: str  # fsdp and trl_step
    fsdp_steps: int
    trl_steps: int  # per side; the first trl_grpo_step.WARMUP are not timed


PLANS = {
    "full": Plan("cuda", QWEN_VOCAB, ("qwen2.5-0.5b", "qwen2.5-1.5b"), 8, 256, 768, 3,
                 ("qwen2.5-0.5b", "qwen2.5-1.5b"), 16, 128, 64, "qwen2.5-0.5b", 2, 8),
    "quick": Plan("cuda", QWEN_VOCAB, ("qwen2.5-0.5b",), 4, 128, 384, 2,
                  ("qwen2.5-0.5b",), 8, 64, 32, "qwen2.5-0.5b", 2, 4),
    "cpu-smoke": Plan("cpu", 512, ("tiny",), 2, 8, 8, 1, ("tiny",), 3, 8, 8, "tiny", 2, 3),
}  # fmt: skip


# ---- pure helpers ----------------------------------------------------------------------------------------------
def param_count(shape: dict[str, int], vocab: int = QWEN_VOCAB) -> int:
    """Parameters of a Qwen2 causal LM with tied embeddings: embedding, per layer q/k/v (with biases), o, the gated
    MLP and two RMSNorms, and the final norm."""
    h, kv = shape["hidden"], shape["kv_heads"] * (shape["hidden"] // shape["heads"])
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * shape["intermediate"] + 2 * h
    return vocab * h + shape["layers"] * layer + h


def qwen2_config(name: str, vocab: int = QWEN_VOCAB) -> Any:
    """A transformers `Qwen2Config` of the shape `name` (a key of SHAPES)."""
    import transformers

    s = SHAPES[name]
    return transformers.Qwen2Config(
        vocab_size=vocab,
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        intermediate_size=s["intermediate"],
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        use_sliding_window=False,
    )


def until_end(ids: list[int], end_ids: set[int] | list[int]) -> list[int]:
    """`ids` up to and including the first end id (what HFPolicy returns; model.generate pads after it)."""
    for k, t in enumerate(ids):
        if t in end_ids:
            return ids[: k + 1]
    return ids


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first position where `a` and `b` differ (a length difference counts); None when equal."""
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k
    return None if len(a) == len(b) else min(len(a), len(b))


def run_part(name: str, fn: Callable[[], tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """Run one part: {"status": "pass", "numbers", "summary", "seconds"}; an exception -> "fail" with its text and
    traceback; a `Skip` -> "skip" with the reason; a part may fail itself with `PartFailed(numbers, why)`."""
    t0 = time.perf_counter()
    try:
        numbers, summary = fn()
        out: dict[str, Any] = {"status": "pass", "summary": summary, "numbers": numbers}
    except Skip as exc:
        out = {"status": "skip", "reason": str(exc)}
    except PartFailed as exc:
        out = {"status": "fail", "error": exc.why, "numbers": exc.numbers}
    except Exception as exc:  # noqa: BLE001  (recorded: one failing part must not hide the others)
        out = {"status": "fail", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


class Skip(Exception):
    """A part that cannot run here (the message says why)."""


class PartFailed(Exception):
    """A part that ran but whose check failed: its numbers and why."""

    def __init__(self, numbers: dict[str, Any], why: str):
        super().__init__(why)
        self.numbers, self.why = numbers, why


def format_table(report: dict[str, Any]) -> str:
    """The report's parts as a plain text table: part, status, seconds, summary or reason/error (first line)."""
    rows = [("part", "status", "s", "result")]
    for name, p in report["parts"].items():
        text = p.get("summary") or p.get("reason") or p.get("error") or ""
        rows.append((name, p["status"], f"{p.get('seconds', 0):.1f}", text.splitlines()[0] if text else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(x) for x in lines))
    return "\n".join(lines)


def skipped_report(reason: str, parts: tuple[str, ...] = PARTS) -> dict[str, dict[str, Any]]:
    return {p: {"status": "skip", "reason": reason, "seconds": 0.0} for p in parts}


# ---- GPU helpers -----------------------------------------------------------------------------------------------
def _bf16(plan: Any) -> bool:
    """bf16 on the GPU; float32 in the CPU smoke run (CPU bf16 training kernels need AVX-512, absent when ATen is
    pinned to AVX2)."""
    return plan.device != "cpu"


def _dtype(plan: Any, torch: Any) -> Any:
    return torch.bfloat16 if _bf16(plan) else torch.float32


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(device: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def reset_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def build_model(name: str, plan: Plan, dtype: Any, seed: int = 0) -> Any:
    """A randomly initialised Qwen2ForCausalLM of shape `name`, built directly on the plan's device."""
    import torch
    import transformers

    torch.manual_seed(seed)
    with torch.device(plan.device):
        model = transformers.AutoModelForCausalLM.from_config(qwen2_config(name, plan.vocab), dtype=dtype)
    return model


def tokenizer() -> Any:
    from turngym.agents.backends.tiny import char_tokenizer

    return char_tokenizer()


def trl_bench() -> Any:
    """benchmarks/trl_grpo_step.py as a module (its engine, config and the two timed sides)."""
    spec = importlib.util.spec_from_file_location("trl_grpo_step", HERE / "trl_grpo_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- part 1: forward + loss + backward -------------------------------------------------------------------------
class NoEngine:
    """The trainer needs an engine; part 1 only calls its loss."""

    def collect(self, *a: Any, **k: Any) -> list:
        raise RuntimeError("no rollouts in this part")


def episodes(plan: Plan, seed: int = 0) -> list[tuple[Any, Any]]:
    """`fb_batch` single-turn (episode, advantage) items: a `fb_prompt`-token prompt and 1/2 .. all of
    `fb_response` policy tokens (so the batch is padded), random ids, sampling log-probs near uniform's."""
    import numpy as np
    import torch

    from turngym.agents.trajectory import TokenEpisode

    rng = np.random.default_rng(seed)
    out = []
    for i in range(plan.fb_batch):
        n = plan.fb_response // 2 + (plan.fb_response // 2) * (i + 1) // plan.fb_batch
        ids = rng.integers(4, plan.vocab, plan.fb_prompt + n).tolist()
        lp = (-math.log(plan.vocab) + 0.1 * rng.standard_normal(n)).tolist()
        ep = TokenEpisode(
            input_ids=ids,
            policy_mask=[0] * plan.fb_prompt + [1] * n,
            logprobs=[0.0] * plan.fb_prompt + lp,
            turn_index=[-1] * plan.fb_prompt + [0] * n,
            rewards=[float(i % 2)],
            obs_keys=[""],
            infos=[{"success": bool(i % 2)}],
            task_id="0",
            group=0,
        )
        out.append((ep, torch.tensor([1.0 if i % 2 else -1.0])))
    return out


def forward_backward_shape(name: str, plan: Plan, items: list, tmp: Path) -> dict[str, Any]:
    """The trainer's loss (forward) and backward on `items` with a fresh model of shape `name`: median seconds of
    `reps` repeats after a warm-up, tokens/s, 6·params·tokens/s, peak memory, and the last loss and grad norm."""
    import torch

    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    reset_memory(plan.device)
    model = build_model(name, plan, torch.bfloat16)
    cfg = GRPOConfig(
        env_id="gpu-check",
        task_ids=["0"],
        bf16=True,
        group_size=plan.fb_batch,
        tasks_per_step=1,
        mini_batch_size=plan.fb_batch,
        micro_batch_size=plan.fb_batch,
        max_new_tokens=plan.fb_response,
        output_dir=str(tmp / "fb"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    trainer = GRPOTrainer(model, config=cfg, engine=NoEngine())
    model.train()
    fwd, bwd = [], []
    for _ in range(1 + plan.reps):
        model.zero_grad(set_to_none=True)
        (loss, metrics), tf = timed(plan.device, partial(trainer.micro_loss, items))
        _, tb = timed(plan.device, loss.backward)
        fwd.append(tf)
        bwd.append(tb)
    params = [p for p in model.parameters() if p.grad is not None]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
    f, b = statistics.median(fwd[1:]), statistics.median(bwd[1:])
    n_params = sum(p.numel() for p in model.parameters())
    tokens = sum(len(e.input_ids) for e, _ in items)
    return {
        "params": n_params,
        "forward_loss_s": round(f, 4),
        "backward_s": round(b, 4),
        "tokens_per_s": round(tokens / (f + b), 1),
        "model_tflops": round(6 * n_params * tokens / (f + b) / 1e12, 1),
        "peak_gib": peak_gib(plan.device),
        "loss": float(loss.detach()),
        "grad_norm": grad_norm,
        "entropy": metrics["entropy"],
    }


def part_forward_backward(plan: Plan, tmp: Path) -> tuple[dict[str, Any], str]:
    items = episodes(plan)
    numbers: dict[str, Any] = {
        "batch": plan.fb_batch,
        "tokens": sum(len(e.input_ids) for e, _ in items),
        "policy_tokens": sum(e.num_policy_tokens for e, _ in items),
        "shapes": {},
    }
    for name in plan.fb_shapes:
        row = numbers["shapes"][name] = forward_backward_shape(name, plan, items, tmp)
        if not (math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"]) and row["grad_norm"] > 0):
            raise PartFailed(
                numbers, f"{name}: loss {row['loss']} / grad norm {row['grad_norm']} not finite and > 0"
            )
    summary = ", ".join(
        f"{n}: {v['tokens_per_s']:.0f} tok/s fwd+bwd, {v['peak_gib']} GiB"
        for n, v in numbers["shapes"].items()
    )
    return numbers, summary


# ---- part 2: the lean decoder vs model.generate ----------------------------------------------------------------
def prompt_batch(n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """`n` prompts of 16 .. 48 random ids in [4, vocab) (the char tokenizer's printable range when vocab is its)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.integers(4, vocab, int(rng.integers(16, 49))).tolist() for _ in range(n)]


def hf_generate(
    model: Any, prompts: list[list[int]], new: int, pad_id: int, end_ids: list[int]
) -> list[list[int]]:
    """Greedy `model.generate` over the left-padded batch; each row cut after its first end id."""
    import torch

    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=new,
            do_sample=False,
            eos_token_id=list(end_ids),
            pad_token_id=pad_id,
        )
    return [until_end(row, end_ids) for row in out[:, width:].tolist()]


def logit_gap(model: Any, prefix: list[int], a: int, b: int) -> float:
    """|logit(a) - logit(b)| of the next token after `prefix` (the model's own forward, float32)."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prefix], device=device)).logits[0, -1].float()
    return abs(float(logits[a] - logits[b]))


def compare_rows(
    model: Any, prompts: list[list[int]], ours: list[list[int]], theirs: list[list[int]]
) -> list[dict]:
    """Rows whose tokens differ: row, first differing position, and the logit gap of the two tokens there."""
    out = []
    for i, (a, b) in enumerate(zip(ours, theirs)):
        k = first_difference(a, b)
        if k is None:
            continue
        gap = logit_gap(model, prompts[i] + a[:k], a[k], b[k]) if k < min(len(a), len(b)) else None
        out.append({"row": i, "position": k, "logit_gap": gap})
    return out


def decode_shape(name: str, plan: Plan, tok: Any, prompts: list[list[int]]) -> dict[str, Any]:
    """Greedy tokens/s of HFPolicy's lean decoder and of model.generate in bf16 (median of `reps` after a warm-up),
    rows equal in bf16, then rows equal in float32 with the logit gap at each first difference."""
    import torch

    from turngym.agents.backends import fastdecode
    from turngym.agents.backends.hf import HFPolicy

    reset_memory(plan.device)
    model = build_model(name, plan, torch.bfloat16).eval()
    if not fastdecode.supports(model):
        raise RuntimeError(f"{name}: fastdecode.supports() is False; the lean decoder would not run")
    policy = HFPolicy(model, tok, fast_decode=True, max_new_tokens=plan.dec_new, temperature=0.0)
    end_ids = list(policy.chat.end_ids)

    def ours(new: int) -> list[list[int]]:
        return [list(g.token_ids) for g in policy.generate(prompts, max_new_tokens=new, temperature=0.0)]

    def theirs(new: int) -> list[list[int]]:
        return hf_generate(model, prompts, new, policy.pad_id, end_ids)

    row: dict[str, Any] = {}
    bf16 = {}
    for label, fn in (("fast", ours), ("generate", theirs)):
        times = []
        for _ in range(1 + plan.reps):
            bf16[label], t = timed(plan.device, partial(fn, plan.dec_new))
            times.append(t)
        row[f"{label}_tokens_per_s"] = round(sum(map(len, bf16[label])) / statistics.median(times[1:]), 1)
    row["speedup"] = round(row["fast_tokens_per_s"] / row["generate_tokens_per_s"], 2)
    row["bf16_rows_equal"] = sum(
        first_difference(x, y) is None for x, y in zip(bf16["fast"], bf16["generate"])
    )
    model.float()  # equality where bf16 rounding cannot decide it: float32 weights and activations
    diffs = compare_rows(model, prompts, ours(plan.eq_new), theirs(plan.eq_new))
    row["fp32_rows_equal"] = len(prompts) - len(diffs)
    row["fp32_differences"] = diffs
    return row


def part_fast_decode(plan: Plan, tmp: Path) -> tuple[dict[str, Any], str]:
    tok = tokenizer()
    prompts = prompt_batch(plan.dec_batch, len(tok))
    numbers: dict[str, Any] = {"batch": plan.dec_batch, "new_tokens": plan.dec_new, "shapes": {}}
    bad = []
    for name in plan.dec_shapes:
        row = numbers["shapes"][name] = decode_shape(name, plan, tok, prompts)
        bad += [
            f"{name} row {d['row']} at {d['position']} (gap {d['logit_gap']})"
            for d in row["fp32_differences"]
            if d["logit_gap"] is None or d["logit_gap"] >= NEAR_TIE
        ]
    if bad:
        raise PartFailed(numbers, "greedy tokens differ from model.generate (float32): " + "; ".join(bad))
    summary = ", ".join(
        f"{n}: {v['fast_tokens_per_s']:.0f} vs {v['generate_tokens_per_s']:.0f} tok/s ({v['speedup']}x), "
        f"fp32 equal {v['fp32_rows_equal']}/{plan.dec_batch}"
        for n, v in numbers["shapes"].items()
    )
    return numbers, summary


# ---- part 3: FSDP2 in a process group of one -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def part_fsdp(plan: Plan, tmp: Path) -> tuple[dict[str, Any], str]:
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    from turngym.agents.backends.hf import HFPolicy
    from turngym.trainers.grpo import GRPOTrainer

    bench = trl_bench()
    backend = "nccl" if plan.device == "cuda" else "gloo"
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised")
    if plan.device == "cuda":
        torch.cuda.set_device(0)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        reset_memory(plan.device)
        cfg = bench.turngym_config(
            plan.fsdp_steps, fsdp=True, bf16=_bf16(plan), lr=1e-4, output_dir=str(tmp / "fsdp")
        )
        model = build_model(plan.step_shape, plan, _dtype(plan, torch))
        policy = HFPolicy(
            model,
            tokenizer(),
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            fast_decode=True,
        )
        rollout = policy.replica()  # unsharded, for generation (as the trainer makes it under FSDP)
        watched = "model.layers.0.self_attn.q_proj.weight"
        start = rollout.model.state_dict()[watched].clone()
        # With one process the trainer leaves fsdp off (it shards across N > 1 processes); shard its model the
        # same way (one unit per decoder layer, then the whole model) and switch its FSDP paths on.
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        trainer = GRPOTrainer(policy, config=cfg, engine=bench.PromptEngine(rollout))
        trainer.fsdp, trainer.rollout_policy = True, rollout
        trainer.sync_rollout_weights()
        steps = []
        for _ in range(plan.fsdp_steps):
            stats, t = timed(plan.device, trainer.train_step)
            steps.append(
                {
                    "step_s": round(t, 3),
                    **{k: stats.get(k) for k in ("rollout_s", "update_s", "weight_sync_s", "grad_norm")},
                }
            )
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
        replica = rollout.model.state_dict()
        gap = max(float((full[k].float() - replica[k].float()).abs().max()) for k in full)
        numbers = {
            "backend": backend,
            "world_size": dist.get_world_size(),
            "param_type": type(next(model.parameters())).__name__,
            "steps": steps,
            "replica_max_abs_diff": gap,
            "weights_changed": not torch.equal(start, replica[watched]),
            "peak_gib": peak_gib(plan.device),
        }
        if numbers["param_type"] != "DTensor" or gap != 0.0 or not numbers["weights_changed"]:
            raise PartFailed(numbers, "sharded params, an exact replica sync and changed weights expected")
        if not all(math.isfinite(s["grad_norm"]) for s in steps):
            raise PartFailed(numbers, "grad norm not finite")
        del trainer, policy, rollout, model, full, replica
    finally:
        dist.destroy_process_group()
    last = steps[-1]
    summary = (
        f"{backend} world 1, DTensor params: step {last['step_s']:.2f} s (rollout {last['rollout_s']:.2f}, "
        f"update {last['update_s']:.2f}, sync {last['weight_sync_s']:.3f}), {numbers['peak_gib']} GiB"
    )
    return numbers, summary


# ---- part 4: a GRPO step vs TRL --------------------------------------------------------------------------------
def part_trl_step(plan: Plan, tmp: Path) -> tuple[dict[str, Any], str]:
    import torch

    if importlib.util.find_spec("trl") is None:
        raise Skip("trl is not installed (pip install 'turngym[trl]')")
    bench = trl_bench()
    folder = tmp / "trl-model"
    model = build_model(plan.step_shape, plan, _dtype(plan, torch))
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    del model
    numbers: dict[str, Any] = {
        "shape": plan.step_shape,
        "prompts_per_step": bench.PROMPTS_PER_STEP,
        "group_size": bench.G,
        "max_new_tokens": bench.MAX_NEW,
        "steps": plan.trl_steps,
        "timed_steps": plan.trl_steps - bench.WARMUP,
    }
    # both sides without activation checkpointing (turngym's default; TRL 1.16 turns it on by default)
    numbers["gradient_checkpointing"] = bench.turngym_config(1).gradient_checkpointing
    sides = {
        "turngym": bench.side_turngym,
        "trl": lambda *a, **k: bench.side_trl(
            *a, gradient_checkpointing=numbers["gradient_checkpointing"], **k
        ),
    }
    for side, fn in sides.items():
        reset_memory(plan.device)
        res = fn(folder, device=plan.device, bf16=_bf16(plan), steps=plan.trl_steps)
        numbers[side] = {"step_s": round(res["step_s"], 4), "peak_gib": peak_gib(plan.device)}
    numbers["ratio_time"] = round(numbers["turngym"]["step_s"] / numbers["trl"]["step_s"], 3)
    summary = (
        f"turngym {numbers['turngym']['step_s']:.3f} s vs TRL {numbers['trl']['step_s']:.3f} s per step "
        f"({numbers['ratio_time']}x)"
    )
    return numbers, summary


PART_FNS = {
    "forward_backward": part_forward_backward,
    "fast_decode": part_fast_decode,
    "fsdp": part_fsdp,
    "trl_step": part_trl_step,
}


# ---- main ------------------------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    import torch
    import transformers

    trl = importlib.util.find_spec("trl")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": __import__("trl").__version__ if trl is not None else None,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_version": torch.version.cuda,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON")
    ap.add_argument("--quick", action="store_true", help="0.5B only, shorter sequences, fewer repeats")
    ap.add_argument("--cpu-smoke", action="store_true", help="run every part on the CPU with a tiny shape")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument(
        "--budget-s", type=float, default=480.0, help="parts not started by then are skipped (default 8 min)"
    )
    a = ap.parse_args(argv)
    parts = tuple(p.strip() for p in a.parts.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    import torch

    mode = "cpu-smoke" if a.cpu_smoke else "quick" if a.quick else "full"
    plan = PLANS[mode]
    report: dict[str, Any] = {
        "mode": mode,
        "plan": asdict(plan),
        "environment": environment(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    t0 = time.perf_counter()
    if plan.device == "cuda" and not torch.cuda.is_available():
        why = f"CUDA absent: torch.cuda.is_available() is False (torch {torch.__version__}); nothing was run"
        report["parts"] = skipped_report(why, parts)
    else:
        report["parts"] = {}
        with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
            for name in parts:
                if time.perf_counter() - t0 > a.budget_s:
                    report["parts"][name] = {
                        "status": "skip",
                        "reason": f"time budget ({a.budget_s:.0f} s) spent",
                    }
                    continue
                print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
                report["parts"][name] = run_part(name, partial(PART_FNS[name], plan, Path(tmp)))
                reset_memory(plan.device)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(format_table(report))
    print(f"total {report['total_s']:.1f} s; results in {out}")
    return 1 if any(p["status"] == "fail" for p in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
