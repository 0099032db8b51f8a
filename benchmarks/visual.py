"""Visual learning check: does the vision-language pipeline learn from pixels? SFT → GRPO, seeing vs blanked images.

    .venv/bin/python benchmarks/visual.py --seeds 6      (about 10 minutes on 2 shared CPU cores, one torch thread)

The task (`turngym-bench/ColourTile-v0`, a real `TurnEnv` over a task pack written to a temporary folder): the
image shows a coloured square (red, green, blue or yellow) at a random place on a noisy grey background; the text
only asks "What colour is the square?" and lists the four answers. The answer is in the pixels alone, so a policy
that does not read the image cannot beat 1/4 (it can only learn the answers' prior, uniform here).

Per seed S (which sets the tiny model's initial weights, the SFT order and the RL sampling) and per arm:
  seeing   `hf-vlm:tiny-vl` trained with SFT on expert answers, then GRPO (Shao et al., 2024, DeepSeekMath), on the
           env's images;
  blanked  the same model, data and steps, but every image replaced by a uniform grey one (`blank=True`: the same
           token layout, no information).
Greedy success on 64 held-out tasks after SFT and after GRPO. Writes `benchmarks/results/visual.json`: per seed and
arm the success rates, per arm the mean and 95% t-interval over seeds, the paired gain seeing − blanked, the
machine and the command.

What to expect with a real pretrained VLM on a GPU (Qwen2-VL-2B and up): the task is trivial for it (colour naming
is in pretraining); this check is about the plumbing on CPU: image tensors reach the model in sampling and in
training, and the gradient flows through the vision path (with `freeze_vision=1` only the language model learns
to use the vision tower's random features, which is enough here).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()

import gymnasium as gym
import numpy as np

from turngym.envs.core import Outcome, TurnEnv
from turngym.tasks import pack as tasks_pack
from turngym.tasks.pack import Field

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
ENV_ID = "turngym-bench/ColourTile-v0"
SIZE = 56  # 56x56 pixels: 4x4 patches of 14, 2x2 merged: 4 image tokens


class ColourTileEnv(TurnEnv):
    """One question about the image: the colour of the square. Answer with the colour's name."""

    family = "colourtile"
    default_max_turns = 1
    task_fields: ClassVar[dict[str, Field]] = {
        "colour": Field(str, doc="the square's colour"),
        "x": Field(int, doc="left edge"),
        "y": Field(int, doc="top edge"),
        "noise": Field(int, doc="seed of the background noise"),
    }
    action_format = "Answer with one word: red, green, blue or yellow."
    image_shape = (SIZE, SIZE, 3)

    def __init__(self, blank: bool = False, **kw: Any):
        self.blank = bool(blank)
        super().__init__(**kw)

    def _image(self) -> np.ndarray:
        if self.blank:
            return np.full(self.image_shape, 128, dtype=np.uint8)
        t = self.task
        rng = np.random.default_rng(t["noise"])
        img = rng.integers(100, 156, self.image_shape, dtype=np.uint8)
        img[t["y"] : t["y"] + 20, t["x"] : t["x"] + 20] = COLOURS[t["colour"]]
        return img

    def _start(self, task: dict[str, Any]) -> Outcome:
        return Outcome(
            text="What colour is the square?", state=0, image=self._image(), admissible_actions=list(COLOURS)
        )

    def _act(self, action: str) -> Outcome:
        a = action.strip().lower().rstrip(".")
        ok = a == self.task["colour"]
        return Outcome(
            text="Correct." if ok else "Wrong.",
            reward=1.0 if ok else 0.0,
            terminated=True,
            success=ok,
            score=1.0 if ok else 0.0,
            invalid_action=a not in COLOURS,
            state=1,
            image=self._image(),
        )

    def expert_action(self) -> str:
        return self.task["colour"]


def write_pack(root: Path, n_train: int, n_test: int) -> Path:
    rng = np.random.default_rng(12345)
    names = list(COLOURS)
    splits = {
        split: [
            {
                "task_id": f"{split}-{i}",
                "colour": names[i % len(names)],
                "x": int(rng.integers(0, SIZE - 20)),
                "y": int(rng.integers(0, SIZE - 20)),
                "noise": int(rng.integers(2**31)),
            }
            for i in range(n)
        ]
        for split, n in (("train", n_train), ("test", n_test))
    }
    manifest = {"name": "colourtile", "version": "1.0.0", "family": "colourtile", "schema_version": 1}
    return tasks_pack.write_pack(
        root, {**manifest, "license": "CC0", "source": "benchmarks/visual.py"}, splits
    )


def register(pack: Path) -> None:
    for blank in (False, True):
        env_id = ENV_ID if not blank else ENV_ID.replace("-v0", "Blank-v0")
        if env_id in gym.registry:
            del gym.registry[env_id]
        gym.register(
            env_id,
            entry_point=ColourTileEnv,
            kwargs={"task_pack": str(pack), "blank": blank},
            disable_env_checker=True,
        )


def expert_episodes(policy: Any, env_id: str, n: int) -> list[Any]:
    """SFT data: per train task, the engine's exact prompt (with the env's image) + the right answer as policy
    tokens, with the image inputs a VLM episode carries."""
    from turngym.agents.prompting import first_user_message

    env = gym.make(env_id)
    out = []
    for i in range(n):
        obs, info = env.reset(options={"task_id": f"train-{i}"})
        img = obs["image"]
        text = first_user_message(info["instructions"], obs["text"])
        msgs = [{"role": "user", "content": policy.user_content(text, img)}]
        answer = env.unwrapped.expert_action()
        out.append(policy.answer_episode(msgs, [img], answer, task_id=f"train-{i}", group=i))
    env.close()
    return out


def held_out_success(policy: Any, env_id: str, n: int, temperature: float = 0.0) -> float:
    """Success on the first `n` test tasks: greedy (temperature 0) or sampled (seeded)."""
    from turngym.agents.engine import RolloutEngine

    temp = policy.temperature
    policy.temperature = temperature
    try:
        with RolloutEngine(policy, env_id, num_envs=8, max_turns=1) as eng:
            eps = eng.collect([f"test-{i}" for i in range(n)], group_size=1, seed=0, split="test")
    finally:
        policy.temperature = temp
    return float(np.mean([e.episode.success for e in eps]))


def run_arm(seed: int, blank: bool, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import torch

    from turngym.agents.backends.vlm import tiny_vl_policy
    from turngym.trainers.config import GRPOConfig, SFTConfig
    from turngym.trainers.grpo import GRPOTrainer
    from turngym.trainers.sft import SFTTrainer

    env_id = ENV_ID.replace("-v0", "Blank-v0") if blank else ENV_ID
    torch.manual_seed(seed)
    policy = tiny_vl_policy(seed=seed, max_new_tokens=8, freeze_vision=args.freeze_vision)
    t0 = time.perf_counter()
    data = expert_episodes(policy, env_id, args.train_tasks)
    sft = SFTTrainer(
        policy,
        data,
        SFTConfig(
            epochs=args.sft_epochs,
            lr=args.sft_lr,
            mini_batch_size=16,
            micro_batch_size=16,
            seed=seed,
            output_dir=str(out / "sft"),
            progress=False,
            tensorboard=False,
            plot=False,
        ),
    )
    sft.train()
    after_sft = held_out_success(policy, env_id, args.test_tasks)
    after_sft_sampled = held_out_success(policy, env_id, args.test_tasks, 1.0)
    t1 = time.perf_counter()
    cfg = GRPOConfig(
        env_id=env_id,
        steps=args.rl_steps,
        tasks_per_step=8,
        group_size=4,
        max_turns=1,
        max_new_tokens=8,
        lr=args.rl_lr,
        mini_batch_size=32,
        micro_batch_size=32,
        num_envs=8,
        seed=seed,
        output_dir=str(out / "grpo"),
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
    )
    trainer = GRPOTrainer(policy, config=cfg)
    try:
        recs = trainer.train()
    finally:
        trainer.engine.close()
    after_rl = held_out_success(policy, env_id, args.test_tasks)
    after_rl_sampled = held_out_success(policy, env_id, args.test_tasks, 1.0)
    return {
        "after_sft": after_sft,
        "after_grpo": after_rl,
        "after_sft_sampled": after_sft_sampled,
        "after_grpo_sampled": after_rl_sampled,
        "train_success_per_step": [r.get("success") for r in recs],
        "sft_s": t1 - t0,
        "grpo_s": time.perf_counter() - t1,
    }


STAGES = ("after_sft", "after_grpo", "after_sft_sampled", "after_grpo_sampled")
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def mean_ci(xs: list[float]) -> dict[str, Any]:
    """Mean and 95% Student-t interval over seeds."""
    n = len(xs)
    m = float(np.mean(xs))
    if n < 2:
        return {"n": n, "mean": m, "low": None, "high": None}
    sd = float(np.std(xs, ddof=1))
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    h = t * sd / math.sqrt(n)
    return {"n": n, "mean": m, "sd": sd, "low": m - h, "high": m + h}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train-tasks", type=int, default=64)
    p.add_argument("--test-tasks", type=int, default=64)
    p.add_argument("--sft-epochs", type=int, default=12)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--rl-steps", type=int, default=20)
    p.add_argument("--rl-lr", type=float, default=2e-4)
    p.add_argument("--freeze-vision", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "visual.json"))
    p.add_argument(
        "--aggregate-only", action="store_true", help="rebuild the summary of --out from its per-seed results"
    )
    args = p.parse_args()
    if args.aggregate_only:
        old = json.loads(Path(args.out).read_text())
        write_results(
            argparse.Namespace(**{**old["options"], "out": args.out}),
            old["per_seed"],
            old["machine"],
            old["command"],
        )
        return 0
    import torch

    torch.set_num_threads(int(os.environ.get("TURNGYM_THREADS", "1")))
    tmp = Path(tempfile.mkdtemp(prefix="turngym-visual-"))
    register(write_pack(tmp / "pack", args.train_tasks, args.test_tasks))
    per_seed: dict[str, dict[str, Any]] = {}
    for seed in range(args.seeds):
        for arm, blank in (("seeing", False), ("blanked", True)):
            t = time.perf_counter()
            res = run_arm(seed, blank, args, tmp / f"seed{seed}-{arm}")
            per_seed.setdefault(str(seed), {})[arm] = res
            print(
                f"seed {seed} {arm:8s}: held-out success greedy/sampled after SFT {res['after_sft']:.3f}/"
                f"{res['after_sft_sampled']:.3f}, after GRPO {res['after_grpo']:.3f}/{res['after_grpo_sampled']:.3f} "
                f"({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    write_results(args, per_seed)
    return 0


def summarise(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per arm and stage: mean and 95% t-interval over seeds; paired gains seeing − blanked and GRPO − SFT."""
    summary: dict[str, Any] = {}
    for arm in ("seeing", "blanked"):
        for stage in STAGES:
            summary[f"{arm}_{stage}"] = mean_ci([per_seed[s][arm][stage] for s in per_seed])
    for stage in STAGES:
        summary[f"gain_{stage}"] = mean_ci(
            [per_seed[s]["seeing"][stage] - per_seed[s]["blanked"][stage] for s in per_seed]
        )
    for arm in ("seeing", "blanked"):
        for kind in ("", "_sampled"):
            summary[f"{arm}_grpo_minus_sft{kind}"] = mean_ci(
                [
                    per_seed[s][arm][f"after_grpo{kind}"] - per_seed[s][arm][f"after_sft{kind}"]
                    for s in per_seed
                ]
            )
    return summary


def write_results(
    args: argparse.Namespace,
    per_seed: dict[str, dict[str, Any]],
    machine: Any = None,
    command: str | None = None,
) -> None:
    import torch

    summary = summarise(per_seed)
    try:
        from turngym.numerics import numerics_info

        here = numerics_info()
    except ImportError:
        here = {}
    machine = machine or here | {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    result = {
        "task": "ColourTile: name the colour of a square drawn only in the image (4 colours, chance 0.25)",
        "command": command or "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "options": vars(args) | {"out": None, "aggregate_only": False},
        "model": "hf-vlm:tiny-vl (random init, 2 text + 2 vision layers, hidden 64)",
        "per_seed": per_seed,
        "summary": summary,
        "machine": machine,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for k, v in summary.items():
        lo = "" if v["low"] is None else f" (95% CI {v['low']:.3f} to {v['high']:.3f})"
        print(f"{k}: {v['mean']:.3f}{lo}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
