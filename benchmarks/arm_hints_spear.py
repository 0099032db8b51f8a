"""Measured arms for hint guidance (Scaf-GRPO, GHPO) and SPEAR: each method vs plain GRPO, same start, same rest.

    python benchmarks/arm_hints_spear.py --seeds 3 --steps 30
      -> benchmarks/results/arm_scaf_grpo.json (arms scaf_grpo and ghpo) and benchmarks/results/arm_spear.json
         (arms spear and spear_no_aux: the replay without the auxiliary valid-action reward)

The env is a real turngym env defined here ("Letters", a task pack written to --work): task k asks for one
lowercase letter, its hidden target; the episode is one turn; success (reward 1) when the answer is the target, an
answer that is not one lowercase letter is an invalid action. The scripted expert answers the target, so the
guidance callbacks' concrete hint names it. The policy is the tiny character-level Llama (`tiny_policy`, 2 layers,
hidden 64, random weights from the seed) played by the real RolloutEngine inside the real GRPOTrainer, one token
per answer: at the start a task's success is about 1/100 (one character of the vocabulary), so most groups of 8 fail
together: the regime both methods are for.

Measured exactly (no sampling noise): after the last step, each task's probability that the policy's first
generated token is the target, on the task's prompt *without* a hint (what a hinted method must transfer to),
averaged over the tasks; also the mass on valid answers (the 26 letters). Per seed, every arm starts from the same
weights and runs the same tasks, rollout seeds and steps; the seeds vary the weights and the targets. The result
holds each seed's numbers, the paired difference (arm − grpo) per seed and its mean with a 95% Student-t interval,
the CPU model and the pinned instruction set (`ATEN_CPU_CAPABILITY=avx2`, `turngym.numerics.pin_isa`).
"""

from __future__ import annotations

import json
import string
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
ENV_ID = "turngymbench/Letters-v0"
N_TASKS = 8
ARMS = {
    "grpo": [],
    "scaf_grpo": [{"name": "scaf_grpo", "window": 1}],
    "ghpo": [{"name": "ghpo", "window": 1}],
    "spear": [{"name": "spear", "buffer_size": 32, "max_age": 10, "replay_per_step": 4,
               "imitation_steps": 30, "aux_steps": 30}],
    "spear_no_aux": [{"name": "spear", "buffer_size": 32, "max_age": 10, "replay_per_step": 4,
                      "imitation_steps": 30, "aux": False}],  # replay alone: what the auxiliary reward adds
}  # fmt: skip
RESULT = {"scaf_grpo": ("scaf_grpo", "ghpo"), "spear": ("spear", "spear_no_aux")}  # result file -> its arms


def letters_env() -> type:
    from turngym.envs.core import Outcome, TurnEnv
    from turngym.tasks.pack import Field

    class LettersEnv(TurnEnv):
        """Answer the task's hidden letter in one turn."""

        family = "letters"
        task_fields = {"target": Field(str, doc="the letter that solves the task")}
        action_format = "Answer with one lowercase letter."
        default_max_turns = 1

        def _start(self, task: dict[str, Any]) -> Any:
            self.target = task["target"]
            return Outcome(text=f"Task {task['task_id']}.", state=(0,))

        def _act(self, action: str) -> Any:
            a = action.strip()
            if len(a) != 1 or a not in string.ascii_lowercase:
                return Outcome(
                    text="Not a letter.", invalid_action=True, error="one lowercase letter", state=(1,)
                )
            ok = a == self.target
            return Outcome(text="Yes." if ok else "No.", reward=float(ok), terminated=True, success=ok,
                           score=float(ok), state=(1,))  # fmt: skip

        def expert_action(self) -> str:
            return self.target

    return LettersEnv


def register(work: Path, seed: int) -> list[str]:
    """Writes the seed's pack (targets drawn from the seed) and registers the env on it; returns the task ids."""
    import gymnasium as gym
    import numpy as np

    from turngym.tasks import pack as tasks_pack

    rng = np.random.default_rng([seed, 17])
    targets = rng.choice(list(string.ascii_lowercase), size=N_TASKS, replace=False)
    recs = [{"task_id": f"t{k}", "target": str(t)} for k, t in enumerate(targets)]
    manifest = {"name": f"letters-{seed}", "version": "1.0.0", "family": "letters", "license": "CC0",
                "source": "benchmarks/arm_hints_spear.py"}  # fmt: skip
    path = tasks_pack.write_pack(work / f"letters-{seed}", manifest, {"train": recs})
    if ENV_ID in gym.registry:
        del gym.registry[ENV_ID]
    gym.register(ENV_ID, entry_point=letters_env(), kwargs={"task_pack": str(path)}, disable_env_checker=True)
    return [r["task_id"] for r in recs]


def exact_success(policy: Any, task_ids: list[str]) -> dict[str, float]:
    """Mean over tasks of P(first token = target) and of P(first token is a letter), on the unhinted prompt."""
    import gymnasium as gym
    import torch

    from turngym.agents.prompting import first_user_message

    env = gym.make(ENV_ID)
    tok = policy.tokenizer
    letter_ids = [tok.convert_tokens_to_ids(c) for c in string.ascii_lowercase]
    succ, valid = [], []
    try:
        for tid in task_ids:
            obs, info = env.reset(seed=0, options={"task_id": tid})
            msgs = [{"role": "user", "content": first_user_message(info["instructions"], obs["text"])}]
            ids = torch.tensor([policy.chat.prompt_ids(msgs)])
            with torch.no_grad():
                p = torch.softmax(policy.model(input_ids=ids).logits[0, -1].float(), -1)
            succ.append(float(p[tok.convert_tokens_to_ids(env.unwrapped.target)]))
            valid.append(float(p[letter_ids].sum()))
    finally:
        env.close()
    return {"success": sum(succ) / len(succ), "valid": sum(valid) / len(valid)}


def run_seed(seed: int, steps: int, work: Path, arms: list[str]) -> dict[str, Any]:
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    task_ids = register(work, seed)
    res: dict[str, Any] = {"start": exact_success(tiny_policy(seed=seed), task_ids)}
    for arm in arms:
        policy = tiny_policy(seed=seed, max_new_tokens=1)
        cfg = GRPOConfig(
            env_id=ENV_ID, task_ids=task_ids, seed=seed, steps=steps, tasks_per_step=4, group_size=8,
            max_turns=1, max_new_tokens=1, lr=3e-3, mini_batch_size=40, micro_batch_size=40, num_envs=32,
            output_dir=str(work / f"{arm}_{seed}"), progress=False, tensorboard=False, plot=False, save_every=0,
            callbacks=ARMS[arm],
        )  # fmt: skip
        t0 = time.time()
        tr = GRPOTrainer(policy, config=cfg)
        rows = tr.train()
        tr.engine.close()
        res[arm] = {
            **exact_success(policy, task_ids),
            "train_success": sum(r["success"] for r in rows) / len(rows),  # sampled, with hints where given
            "degenerate_groups": sum(r["degenerate_groups"] for r in rows) / len(rows),
            **{k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in ("hint_share", "spear_replayed")},
            "wall_s": round(time.time() - t0, 1),
        }
    return res


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import arms

    p = arms.begin(
        __doc__, 3, 30, "runs/arm_hints_spear", str(ROOT / "results"), "folder of the result JSON files"
    )
    args = p.parse_args()
    t0 = time.time()
    per_seed = arms.run_seeds(lambda s: run_seed(s, args.steps, Path(args.work), list(ARMS)), args.seeds)
    for name, names in RESULT.items():
        summary: dict[str, Any] = {"grpo": arms.mean_ci([r["grpo"]["success"] for r in per_seed])}
        for arm in names:
            summary[arm], summary[f"{arm}_minus_grpo"] = arms.versus(per_seed, arm, "grpo", "success")
            summary[f"{arm}_minus_grpo_valid"] = arms.versus(per_seed, arm, "grpo", "valid")[1]
        result = {
            "method": name,
            "seeds": args.seeds,
            "steps": args.steps,
            "arms": {a: ARMS[a] for a in ("grpo", *names)},
            "measure": "mean over tasks of the exact probability that the first generated token is the target, "
            "on the prompt without a hint, after the last step (valid: the same for any lowercase letter)",
            "summary": summary,
            "per_seed": [{k: r[k] for k in ("start", "grpo", *names)} for r in per_seed],
        }
        arms.write(Path(args.out) / f"arm_{name}.json", result, "arm_hints_spear.py", t0, "wall_s_all_arms")
        print(json.dumps({name: summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
