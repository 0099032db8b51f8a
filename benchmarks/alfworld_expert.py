"""Success of alfworld's handcoded expert on every game of the built-in pack, per split and per task type.

Plays each game through `turngym/ALFWorld-v0` with `env.expert_action()` (what `--agent expert` does), with the
env's default turn budget (50). Prints a markdown table and writes JSON with --out.

    python benchmarks/alfworld_expert.py --splits valid_seen valid_unseen train
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict


def main() -> None:
    import gymnasium as gym

    import turngym  # noqa: F401
    from turngym.envs.alfworld.games import TASK_TYPES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="turngym/ALFWorld-v0")
    p.add_argument("--task-pack", default=None)
    p.add_argument("--splits", nargs="+", default=["valid_seen", "valid_unseen", "train"])
    p.add_argument("--limit", type=int, default=None, help="games per split (default: all)")
    p.add_argument("--start", type=int, default=0, help="skip the first N games of each split")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    kwargs = {"task_pack": a.task_pack} if a.task_pack else {}
    env = gym.make(a.env, **kwargs)
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    t0 = time.time()
    try:
        for split in a.splits:
            for tid in env.unwrapped.load_task_pack().task_ids(split)[a.start :][: a.limit]:
                _, info = env.reset(seed=0, options={"split": split, "task_id": tid})
                task_type = env.unwrapped.task["task_type"]
                done = False
                while not done:
                    *_, term, trunc, info = env.step(env.unwrapped.expert_action())
                    done = term or trunc
                cell = table[split][task_type]
                cell[0] += int(info["success"])
                cell[1] += 1
    finally:
        env.close()
    print(f"| split | {' | '.join(TASK_TYPES)} | all |")
    print("|---" * (len(TASK_TYPES) + 2) + "|")
    for split, row in table.items():
        cells = [f"{row[t][0]}/{row[t][1]}" if row[t][1] else "-" for t in TASK_TYPES]
        wins, n = sum(v[0] for v in row.values()), sum(v[1] for v in row.values())
        print(f"| {split} | {' | '.join(cells)} | {wins}/{n} ({100 * wins / n:.1f}%) |")
    for split, row in table.items():  # Wilson 95% interval of the success rate
        wins, n = sum(v[0] for v in row.values()), sum(v[1] for v in row.values())
        z, phat = 1.96, wins / n
        mid, half = (phat + z * z / (2 * n)), z * (phat * (1 - phat) / n + z * z / (4 * n * n)) ** 0.5
        lo, hi = (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)
        print(f"{split}: success {100 * phat:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%, n={n})")
    print(f"({time.time() - t0:.0f} s)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({s: dict(r) for s, r in table.items()}, f, indent=2)


if __name__ == "__main__":
    main()
