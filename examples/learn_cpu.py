"""The longer CPU learning run: SFT on expert trajectories, then GRPO, held-out success before and after.

    .venv/bin/python examples/learn_cpu.py --out runs/learn [any turngym.trainers.demo option]

Same code as the short `python -m turngym.trainers.demo` (see its docstring for the env, the task subset and the
model), with longer defaults: a 3-layer tiny Llama whose input embeddings stay at their random init
(`--freeze-embeddings`: without it the colour words' embeddings collapse and the model cannot copy a colour), 4,800
generated train tasks seen three times (3,600 SFT steps of 4 episodes, cosine lr from 3e-3, with the context LM
loss), then 30 GRPO steps of 8 tasks x 8 episodes at lr 3e-5 from the SFT weights, all 50 held-out tasks evaluated
every 5 steps. Writes OUT/results.json and OUT/learning_curve.png. Status (docs/trainers.md, "The colour copy",
runs s4 + r6; reproduced in one command from a clean clone, 24 min beside the CI suite): held-out success 0/50 untrained, 25/50 after SFT, 24/50 after GRPO: no RL gain.
`--sft-from OUT` reuses a finished run's SFT weights to try other RL options (`--algos grpo,gigpo,hc_grpo,spa,slim`,
`--rl-lr`, ...; pass the same model options).
"""

from __future__ import annotations

import sys

from turngym.trainers.demo import main

FULL = [
    "--train-tasks", "4800", "--expert-episodes", "4800", "--sft-epochs", "3", "--sft-batch", "4",
    "--sft-lr", "3e-3", "--sft-warmup", "20", "--sft-schedule", "cosine", "--sft-context-loss", "1",
    "--rl-steps", "30", "--eval-every", "5", "--eval-episodes", "0", "--group-size", "8", "--tasks-per-step", "8",
    "--rl-mini-batch", "32", "--rl-lr", "3e-5", "--algos", "grpo", "--layers", "3", "--freeze-embeddings",
]  # fmt: skip

if __name__ == "__main__":
    raise SystemExit(main(FULL + sys.argv[1:]))
