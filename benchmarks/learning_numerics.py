"""Which numeric settings change a training run's weights bit for bit: ISA pin, thread count, MKL_CBWR, oneDNN ISA.

    .venv/bin/python benchmarks/learning_numerics.py [--steps 30] [--repeats 2]

Each setting runs the same short SFT (the learning benchmark's pipeline: `turngym.experiments.demo.build` with the
options of `examples/learn_cpu.py`, first `--steps` SFT steps of 4 expert episodes, seed 0) in a fresh process
(the variables must be set before torch is imported) and hashes the final weights. Equal hashes: the setting does
not change the numbers on this machine; different hashes: it does. Writes
`benchmarks/results/learning_numerics.json` (per setting: hash, final loss, torch's kernel ISA, seconds; the machine).

What it can and cannot say: it compares settings on one machine. Whether a pinned run equals the same run on
another CPU is checked by comparing hashes between machines (run this script there and compare the `avx2` row).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# name -> (environment variables, torch threads); "avx2" is what the learning scripts use by default
SETTINGS: dict[str, tuple[dict[str, str], int]] = {
    "avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "avx2 (again)": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "avx2, 2 threads": ({"ATEN_CPU_CAPABILITY": "avx2"}, 2),
    "avx2, MKL_CBWR=AVX2": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}, 1),
    "avx2, MKL_ENABLE_INSTRUCTIONS=AVX2": (
        {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
        1,
    ),
    "avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, 2 threads": (
        {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
        2,
    ),
    # MKL told to use other instruction sets than the pin's AVX2 (pin_isa keeps an explicit setting): whether its
    # matmuls follow the setting on this CPU
    "avx2, MKL_ENABLE_INSTRUCTIONS=AVX512": (
        {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
        1,
    ),
    "avx2, MKL_ENABLE_INSTRUCTIONS=SSE4_2": (
        {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
        1,
    ),
    # MKL's documented cross-vendor mode (Intel and compatible processors give the same results; slower kernels)
    "avx2, MKL_CBWR=COMPATIBLE": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}, 1),
    "avx2, ONEDNN_MAX_CPU_ISA=AVX2": ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    "default (portable kernels)": ({"ATEN_CPU_CAPABILITY": "default"}, 1),
    "native": ({"TURNGYM_ISA": "native"}, 1),
}
# variables a setting may set: removed from the inherited environment so that only the setting's own apply
_VARS = (
    "ATEN_CPU_CAPABILITY",
    "TURNGYM_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def child(steps: int, threads: int, out: str) -> dict:
    """One short SFT in this process (its environment already set); the weights' SHA-256 and the last loss."""
    from turngym.numerics import numerics_info, pin_isa

    pin_isa()
    import torch

    from turngym.experiments.demo import build, parse
    from turngym.trainers.config import SFTConfig
    from turngym.trainers.sft import SFTTrainer, expert_token_episode

    torch.set_num_threads(threads)
    opts = [
        "--train-tasks",
        "200",
        "--expert-episodes",
        str(4 * steps),
        "--layers",
        "3",
        "--freeze-embeddings",
    ]
    opts += ["--staleness", "0.3", "--out", out, "--threads", str(threads)]
    a = parse(opts)
    t0 = time.time()
    _, _, experts, policy = build(a)
    cfg = SFTConfig(
        epochs=1, lr=3e-3, mini_batch_size=4, micro_batch_size=4, warmup_steps=20, context_loss_coef=1.0,
        lr_schedule="cosine", seed=0, output_dir=str(Path(out) / "sft"), tensorboard=False, save_every=0,
    )  # fmt: skip
    recs = SFTTrainer(policy, [expert_token_episode(policy, e) for e in experts], cfg).train()
    h = hashlib.sha256()
    for k, v in sorted(policy.model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    losses = [r["loss"] for r in recs if "loss" in r]
    return {
        "weights_sha256": h.hexdigest(),
        "sft_steps": len(losses),
        "last_loss": losses[-1] if losses else None,
        "seconds": time.time() - t0,
        "numerics": numerics_info(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="SFT steps (of 4 expert episodes) per setting")
    ap.add_argument("--out", default="runs/learning_numerics")
    ap.add_argument("--results", default=str(RESULTS / "learning_numerics.json"))
    ap.add_argument(
        "--settings",
        default="",
        help="semicolon-separated setting names to (re)run, merged into an existing results file",
    )
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.steps < 1:
        ap.error("--steps must be >= 1")
    if a.child:
        print(json.dumps(child(a.steps, a.threads, a.child)))
        return 0
    names = [n.strip() for n in a.settings.split(";") if n.strip()] or list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        ap.error(f"--settings: unknown {unknown}; known: {list(SETTINGS)}")
    rows: dict = {}
    if a.settings and Path(a.results).is_file():
        rows = json.loads(Path(a.results).read_text())["settings"]
    for i, (name, (env_vars, threads)) in enumerate(SETTINGS.items()):
        if name not in names:
            continue
        # passive OpenMP waits: spinning threads on a busy machine make the 2-thread run crawl (no effect on results)
        env = (
            {k: v for k, v in os.environ.items() if k not in _VARS}
            | {"OMP_WAIT_POLICY": "PASSIVE"}
            | env_vars
        )
        cmd = [sys.executable, __file__, "--steps", str(a.steps), "--threads", str(threads)]
        cmd += ["--child", str(Path(a.out) / f"s{i}")]
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"setting {name!r} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        rows[name] = {"env": env_vars, "threads": threads, **json.loads(p.stdout.strip().splitlines()[-1])}
        r = rows[name]
        print(f"{name:32s} {r['weights_sha256'][:16]} loss {r['last_loss']:.6f} "
              f"{r['numerics']['torch_cpu_capability']} {r['seconds']:.0f} s", flush=True)  # fmt: skip
    rows = {k: rows[k] for k in SETTINGS if k in rows}
    ref = rows["avx2"]["weights_sha256"]
    out = {
        "command": "python benchmarks/learning_numerics.py --steps " + str(a.steps),
        "sft_steps": a.steps,
        "same_weights_as_avx2": {k: r["weights_sha256"] == ref for k, r in rows.items()},
        "settings": rows,
    }
    Path(a.results).parent.mkdir(parents=True, exist_ok=True)
    Path(a.results).write_text(json.dumps(out, indent=1) + "\n")
    for k, same in out["same_weights_as_avx2"].items():
        print(f"{k:32s} {'same weights as avx2' if same else 'DIFFERENT weights'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
