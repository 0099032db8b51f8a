"""The longer CPU learning run: SFT on expert trajectories, then GRPO and GiGPO, held-out success before and after.

    .venv/bin/python examples/learn_cpu.py --out runs/learn [any turngym.experiments.demo option]

Same code as the short `python -m turngym.experiments.demo` (see its docstring for the env, the task subset and the
model), with longer defaults: easy EmbodiedSearch tasks whose remembered object positions are stale with
probability 0.3 (`--staleness 0.3`, train and held-out alike); a 3-layer tiny Llama whose input embeddings stay at
their random init (`--freeze-embeddings`: without it the colour words' embeddings collapse and the model cannot copy
a colour); 4,800 generated train tasks seen three times (3,600 SFT steps of 4 expert episodes, cosine lr from
3e-3, with the context LM loss); then, from the same SFT weights, 20 GRPO steps and 20 GiGPO steps of 8 tasks x 8
episodes at lr 3e-4; all 50 held-out tasks evaluated greedily every 5 steps. Writes OUT/results.json and
OUT/learning_curve.png. ~21 min on 2 cores (reproduced from a clean clone, docs/trainers.md).

Why RL helps here (docs/trainers.md, "The imitation gap"): the scripted expert knows whether its memory is stale;
it recalls memory when it is right (70% of tasks) and asks the person where the object is otherwise. The learner
cannot see that, so SFT imitates a 70/30 mix and, greedy, always recalls; reading the right place out of the
recalled list is what this small model does badly (16/50 held out), while copying the place from the person's
answer it does well (44/50 with the first action forced to ask: `examples/probe_paths.py`). GRPO and GiGPO find
that asking pays for this policy and switch to it (held-out success 0.32 -> 0.86-0.88). With fresh memories
(`--staleness 0`) RL did not raise success: docs/trainers.md, "The colour copy".
`--sft-from OUT` reuses a finished run's SFT weights to try other RL options (`--algos grpo,gigpo,hc_grpo,spa,slim`,
`--rl-lr`, ...; pass the same model and task options).
"""

from __future__ import annotations

import sys

from turngym.numerics import pin_isa

pin_isa()  # ATEN_CPU_CAPABILITY=avx2 before torch loads (TURNGYM_ISA=native to opt out): docs/trainers.md
from turngym.experiments.demo import main  # noqa: E402

FULL = [
    "--train-tasks", "4800", "--expert-episodes", "4800", "--sft-epochs", "3", "--sft-batch", "4",
    "--sft-lr", "3e-3", "--sft-warmup", "20", "--sft-schedule", "cosine", "--sft-context-loss", "1",
    "--eval-every", "5", "--eval-episodes", "0", "--group-size", "8", "--tasks-per-step", "8",
    "--rl-mini-batch", "32", "--layers", "3", "--freeze-embeddings",
    "--staleness", "0.3", "--rl-steps", "20", "--rl-lr", "3e-4", "--algos", "grpo,gigpo",
]  # fmt: skip

if __name__ == "__main__":
    raise SystemExit(main(FULL + sys.argv[1:]))
