"""Measured arm for UI-S1 semi-online RL: `rollout_strategy: uis1` vs plain GRPO, same start, same everything else.

    python benchmarks/arm_uis1.py --seeds 3 --steps 60    # -> benchmarks/results/arm_uis1.json

The env (defined here, a real `TurnEnv` through the real `RolloutEngine` and `GRPOTrainer`): a code lock. Task
"Lock X" has a 2-digit code; each turn the agent replies one character: a digit tries it at the current position
(right: the lock clicks and moves on; wrong: nothing), `o` opens (reward 1 and success when both digits are set).
6 turns at most. The scripted expert types the code, then `o`. The policy is a tiny char-level Llama
(`tiny_llama`, hidden 64, 2 layers, from a config; no download), max_new_tokens 1 (one character per turn).

Per seed: a fresh model (seed), fresh codes for 4 training locks and 8 warm-up locks; SFT on expert episodes of the
warm-up locks (it learns the format: a digit, then `o`; not the training codes); then from that same start, two
arms of `--steps` GRPO steps on the training locks (4 tasks x G = 4 per step, lr 1e-3, one optimizer step per
training step, temperature 1): grpo (the env's outcome reward, GRPO advantages), uis1 (defaults: K = 1 patch,
stop, action matching, gamma 0.5, w 1, rewards 0.1 format + 0.9 match) and, as an ablation, uis1_step_only
(gamma 0, w 0: each step's own match reward, normalised in its step group, and nothing else).

Measures after the last step, on the 4 training locks (the RL objective):
  online_success   success rate of 32 sampled episodes per lock (temperature 1, the policy alone, no patches);
  greedy_success   success rate of one greedy episode per lock;
  expert_path_prob the exact probability that a sampled episode follows the expert's path (product over its steps
                   of the policy's probability of the expert's character): SOP success in expectation, no noise.
The result file holds each seed's values per arm, the paired difference (arm - grpo) per seed, and mean with a
95% Student-t interval of each; the CPU model and the pinned instruction set (`ATEN_CPU_CAPABILITY=avx2`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
ENV_ID = "turngymbench/CodeLock-v0"
MAX_TURNS = 6
ARMS = ("grpo", "uis1", "uis1_step_only")
TRAIN = [f"T{i}" for i in range(1, 5)]
WARM = [f"W{i}" for i in range(1, 33)]


def lock_env_class() -> type:
    from turngym.envs.core import Outcome, TurnEnv
    from turngym.tasks.pack import Field

    class CodeLock(TurnEnv):
        """Type the lock's code one digit per turn, then `o`."""

        family = "codelock"
        task_fields = {"name": Field(str, doc="the lock's name"), "code": Field(str, doc="its digits")}
        action_format = "Reply one digit, or o to open."
        default_max_turns = MAX_TURNS

        def _start(self, task: dict[str, Any]) -> Outcome:
            self.code, self.pos = task["code"], 0
            return Outcome(text=f"Lock {task['name']}.", state=(0,))

        def _act(self, action: str) -> Outcome:
            a = action.strip()
            if a == "o":
                ok = self.pos == len(self.code)
                return Outcome(
                    "Open." if ok else "Shut.", float(ok), ok, ok, float(ok), state=(self.pos, "o")
                )
            if len(a) == 1 and a.isdigit():
                if self.pos < len(self.code) and a == self.code[self.pos]:
                    self.pos += 1
                    return Outcome(f"Click {self.pos}.", state=(self.pos,))
                return Outcome("No.", state=(self.pos,))
            return Outcome("Bad.", invalid_action=True, error="one digit or o", state=(self.pos,))

        def expert_action(self) -> str:
            return "o" if self.pos == len(self.code) else self.code[self.pos]

    return CodeLock


def write_locks(root: Path, seed: int) -> Path:
    import numpy as np

    from turngym.tasks.pack import write_pack

    rng = np.random.default_rng([seed, 2509])
    codes = ["".join(str(d) for d in rng.integers(0, 10, 2)) for _ in TRAIN + WARM]
    manifest = {"name": f"codelock-{seed}", "version": "1.0.0", "family": "codelock", "license": "CC0"}
    splits = {
        "train": [{"task_id": n, "name": n, "code": c} for n, c in zip(TRAIN, codes)],
        "warm": [{"task_id": n, "name": n, "code": c} for n, c in zip(WARM, codes[len(TRAIN) :])],
    }
    return write_pack(root, {**manifest, "source": "benchmarks/arm_uis1.py"}, splits)


def register(pack: Path) -> None:
    import gymnasium as gym

    if ENV_ID in gym.registry:
        del gym.registry[ENV_ID]
    gym.register(
        ENV_ID, entry_point=lock_env_class(), kwargs={"task_pack": str(pack)}, disable_env_checker=True
    )


def warm_start(seed: int, out: Path) -> Any:
    """A fresh tiny policy after SFT on expert episodes of the warm-up locks (the format, not the training codes)."""
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.base import ExpertAgent
    from turngym.experiments.pipeline import successful_episodes
    from turngym.trainers.config import SFTConfig
    from turngym.trainers.sft import SFTTrainer, expert_token_episode

    policy = tiny_policy(seed=seed, hidden=64, layers=2, max_new_tokens=1)
    eps = successful_episodes(ENV_ID, ExpertAgent(), len(WARM), seed=seed, max_turns=MAX_TURNS, split="warm")
    data = [expert_token_episode(policy, e, group=i) for i, e in enumerate(eps)]
    cfg = SFTConfig(
        epochs=15,
        lr=3e-3,
        mini_batch_size=8,
        output_dir=str(out),
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
    )
    SFTTrainer(policy, data, cfg).train()
    return policy


def expert_path_prob(policy: Any, task: str, seed: int) -> float:
    """Π_t π(expert character_t | the expert's history): the chance a sampled episode follows the expert's path."""
    import torch

    from turngym.agents.base import ExpertAgent
    from turngym.agents.rollout import run_episodes
    from turngym.trainers.sft import expert_token_episode

    ep = run_episodes(
        ENV_ID, ExpertAgent(), 1, seed=seed, split="train", task_ids=[task], options={"max_turns": MAX_TURNS}
    )[0]
    tok = expert_token_episode(policy, ep)
    with torch.no_grad():
        logits = policy.model(torch.tensor([tok.input_ids])).logits[0].float()
    lp = torch.log_softmax(logits / policy.temperature, -1)
    firsts = [k for k in range(1, len(tok.input_ids)) if tok.policy_mask[k] and not tok.policy_mask[k - 1]]
    return float(torch.exp(sum(lp[k - 1, tok.input_ids[k]] for k in firsts)))


def measure(policy: Any, seed: int) -> dict[str, float]:
    from turngym.agents.engine import RolloutEngine
    from turngym.agents.evaluate import greedy_episodes

    tasks = list(TRAIN)
    with RolloutEngine(policy, ENV_ID, num_envs=32, max_turns=MAX_TURNS) as eng:
        sampled = eng.collect(tasks, 32, seed=10_000 + seed, split="train")
    greedy = greedy_episodes(policy, ENV_ID, tasks, split="train", seed=seed, max_turns=MAX_TURNS)
    return {
        "online_success": sum(e.success for e in sampled) / len(sampled),
        "greedy_success": sum(e.success for e in greedy) / len(greedy),
        "expert_path_prob": sum(expert_path_prob(policy, t, seed) for t in tasks) / len(tasks),
    }


def run_seed(seed: int, steps: int, work: Path) -> dict[str, Any]:
    import torch

    from turngym.experiments.pipeline import run_arms

    out = work / f"seed{seed}"
    register(write_locks(out / "pack", seed))
    start_policy = warm_start(seed, out / "sft")
    start_state = {k: v.clone() for k, v in start_policy.model.state_dict().items()}
    res: dict[str, Any] = {"start": measure(start_policy, seed)}

    def start(_: str) -> Any:
        start_policy.model.load_state_dict(start_state)
        return start_policy

    base = dict(
        env_id=ENV_ID,
        split="train",
        seed=seed,
        steps=steps,
        tasks_per_step=4,
        group_size=4,
        max_turns=MAX_TURNS,
        max_new_tokens=1,
        lr=1e-3,
        mini_batch_size=64,
        micro_batch_size=32,
        num_envs=16,
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
    )
    arms = {
        "grpo": {},
        "uis1": {"rollout_strategy": "uis1"},
        "uis1_step_only": {"rollout_strategy": "uis1", "uis1_gamma": 0.0, "uis1_omega": 0.0},
    }

    def report(name: str, trainer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
        last = records[-1]
        keep = ("success", "reward", "uis1_sop", "uis1_online_success", "batch_samples")
        return {**measure(trainer.policy, seed), "last_step": {k: last[k] for k in keep if k in last}}

    torch.manual_seed(seed)
    res.update(run_arms(start, arms, base, out, report=report))
    return res


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import arms

    p = arms.begin(__doc__, 3, 60, "runs/arm_uis1", str(ROOT / "results" / "arm_uis1.json"), "result JSON")
    args = p.parse_args()
    t0 = time.time()
    per_seed = arms.run_seeds(lambda s: run_seed(s, args.steps, Path(args.work)), args.seeds)
    summary: dict[str, Any] = {}
    for m in ("online_success", "greedy_success", "expert_path_prob"):
        summary[m] = {arm: arms.mean_ci([r[arm][m] for r in per_seed]) for arm in ("start", *ARMS)}
        for arm in ARMS[1:]:
            summary[m][f"{arm}_minus_grpo"] = arms.versus(per_seed, arm, "grpo", m)[1]
    result = {
        "seeds": args.seeds,
        "steps": args.steps,
        "measure": "after the last step, on the 4 training locks: online (sampled, unpatched) success, greedy "
        "success, exact probability of the expert's path",
        "summary": summary,
        "per_seed": per_seed,
    }
    arms.write(Path(args.out), result, "arm_uis1.py", t0)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
