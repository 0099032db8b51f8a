"""Measured arms for AlignDistil and CRAFT-GUI: each method on vs off, same model, tasks, seeds and steps.

    python benchmarks/method_arms.py --method craft --seeds 5        # -> benchmarks/results/method_arms_craft.json
    python benchmarks/method_arms.py --method aligndistil --seeds 5  # -> benchmarks/results/method_arms_aligndistil.json

The env is a one-token bandit over many tasks (task k: prompt [1, 2, 3 + k]; the sampled token earns reward 1 when it
is in the task's target set), played by a tiny Llama built from a config (`tiny_llama`: 1 layer, hidden 32; no download) inside the real GRPOTrainer.
Success is measured exactly: the policy's probability mass on each task's targets, averaged over the tasks (no
sampling noise in the measure; the seeds vary the initial weights, the targets and the rollouts).

- craft: 24 tasks, 8 too easy (36 of 40 tokens are targets), 8 learnable (8 targets), 8 too hard (1 target).
  off = GRPO with the trainer's uniform task stream; on = the same + `callbacks: [{name: craft_gui}]`.
  Also: CRAFT + Knapsack-RL together (`knapsack_rl`), as a third arm.
- aligndistil: 16 tasks with 4 targets each. A "DPO model" = the reference (the student's initial weights) after a
  few steps of cross-entropy towards the targets (a moderate improvement, like a DPO step); a "reverse DPO" model =
  the reference trained the same way towards the non-targets. The student learns by distillation only (rewards
  zeroed): off = OPD with the DPO model as teacher; on = AlignDistil with the token-adaptive teacher (δ = 0.1,
  λ_max = 3); a third arm the contrastive teacher.

The result file holds each seed's final mean success per arm, the paired difference (arm − off) per seed, and its
mean with a 95% Student-t interval; the CPU model and the pinned instruction set (`ATEN_CPU_CAPABILITY=avx2`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VOCAB = 40


def tiny_model(seed: int) -> Any:
    from turngym.agents.backends.tiny import tiny_llama

    return tiny_llama(VOCAB, hidden=32, layers=1, heads=2, seed=seed)


def prompts(n_tasks: int) -> Any:
    import torch

    return torch.tensor([[1, 2, 3 + k] for k in range(n_tasks)])


def sample_first_tokens(
    model: Any, n_tasks: int, task_ids: list[str], group_size: int, seed: int
) -> list[Any]:
    """(group, task id, token, its sampling log-prob) per episode: `group_size` tokens per task sampled after the
    task's prompt from the model's current weights with a seeded generator."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        logits = model(prompts(n_tasks)[[int(t) for t in task_ids]]).logits[:, -1].float()
    lp = torch.log_softmax(logits, -1)
    out = []
    for g, tid in enumerate(task_ids):
        for tok in torch.multinomial(lp[g].exp(), group_size, replacement=True, generator=gen).tolist():
            out.append((g, tid, tok, float(lp[g, tok])))
    return out


def one_token_episode(g: int, tid: str, tok: int, lp: float, **fields: Any) -> Any:
    """A `TokenEpisode` whose one policy token `tok` follows task `tid`'s prompt (`fields`: rewards, obs_keys, infos,
    meta: one entry per turn the token's episode took)."""
    from turngym.agents.trajectory import TokenEpisode

    return TokenEpisode(
        input_ids=[1, 2, 3 + int(tid), tok],
        policy_mask=[0, 0, 0, 1],
        logprobs=[0.0, 0.0, 0.0, lp],
        turn_index=[-1, -1, -1, 0],
        task_id=str(tid),
        group=g,
        **fields,
    )


class OneTokenEngine:
    """`group_size` one-token episodes per task, sampled from the model's current weights with a seeded generator."""

    def __init__(self, model: Any, targets: list[set[int]]):
        self.model, self.targets = model, targets

    def collect(self, task_ids, group_size, seed, split=None, options=None):
        out = []
        for g, tid, tok, lp in sample_first_tokens(self.model, len(self.targets), task_ids, group_size, seed):
            ok = tok in self.targets[int(tid)]
            out.append(
                one_token_episode(
                    g,
                    tid,
                    tok,
                    lp,
                    rewards=[1.0 if ok else 0.0],
                    obs_keys=[f"task{tid}"],
                    infos=[{"success": ok}],
                )
            )
        return out


def success(model: Any, targets: list[set[int]]) -> list[float]:
    """Each task's exact success probability: the policy's next-token mass on its targets."""
    import torch

    with torch.no_grad():
        p = torch.softmax(model(prompts(len(targets))).logits[:, -1].float(), -1)
    return [float(p[k, sorted(t)].sum()) for k, t in enumerate(targets)]


def draw_targets(seed: int, sizes: list[int]) -> list[set[int]]:
    import numpy as np

    rng = np.random.default_rng([seed, 5])
    return [set(rng.choice(VOCAB, size=n, replace=False).tolist()) for n in sizes]


def train(
    model: Any, targets: list[set[int]], seed: int, out: Path, **cfg_kwargs: Any
) -> list[dict[str, Any]]:
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    cfg = GRPOConfig(
        env_id="one_token_bandit",
        task_ids=[str(k) for k in range(len(targets))],
        seed=seed,
        max_new_tokens=1,
        output_dir=str(out),
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
        **cfg_kwargs,
    )
    return GRPOTrainer(model, config=cfg, engine=OneTokenEngine(model, targets)).train()


# ---- CRAFT-GUI ----------------------------------------------------------------------------------------------------
CRAFT_SIZES = [36] * 8 + [8] * 8 + [1] * 8  # too easy, learnable, too hard (uniform policy: 0.9, 0.2, 0.025)


def craft_seed(seed: int, steps: int, work: Path) -> dict[str, Any]:
    targets = draw_targets(seed, CRAFT_SIZES)
    common = dict(
        steps=steps, tasks_per_step=4, group_size=8, lr=5e-3, mini_batch_size=32, micro_batch_size=32
    )
    arms = {
        "off": [],
        "craft": [{"name": "craft_gui"}],
        "craft_knapsack": [{"name": "craft_gui"}, {"name": "knapsack_rl", "max_n": 16}],
    }
    res: dict[str, Any] = {}
    for arm, callbacks in arms.items():
        model = tiny_model(seed)
        rows = train(model, targets, seed, work / f"craft_{arm}_{seed}", callbacks=callbacks, **common)
        p = success(model, targets)
        res[arm] = {
            "mean": sum(p) / len(p),
            "easy": sum(p[:8]) / 8,
            "learnable": sum(p[8:16]) / 8,
            "hard": sum(p[16:]) / 8,
            # groups whose rewards were all equal (no GRPO gradient), per step
            "degenerate_groups": sum(r["degenerate_groups"] for r in rows) / len(rows),
            "episodes": sum(r.get("knapsack_rollouts", 32) for r in rows) / len(rows),
        }
    res["start"] = sum(success(tiny_model(seed), targets)) / len(targets)
    return res


# ---- AlignDistil --------------------------------------------------------------------------------------------------
def nudged(
    seed: int, targets: list[set[int]], towards_targets: bool, steps: int = 6, lr: float = 3e-3
) -> Any:
    """The reference model after `steps` Adam steps of cross-entropy towards each task's targets (or non-targets)."""
    import torch

    model = tiny_model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    want = torch.zeros(len(targets), VOCAB)
    for k, t in enumerate(targets):
        want[k, sorted(t)] = 1.0
    if not towards_targets:
        want = 1.0 - want
    want = want / want.sum(-1, keepdim=True)
    for _ in range(steps):
        opt.zero_grad()
        lp = torch.log_softmax(model(prompts(len(targets))).logits[:, -1], -1)
        (-(want * lp).sum(-1).mean()).backward()
        opt.step()
    return model.eval()


def teacher_success(dpo: Any, ref: Any, rev: Any, targets: list[set[int]]) -> dict[str, float]:
    """The mean success of the AlignDistil teachers themselves (token-adaptive, contrastive), with the defaults."""
    import torch

    from turngym.trainers.distill import aligndistil_logits

    seqs = prompts(len(targets)).tolist()
    z = [m.batch_logits(seqs)[:, -1] for m in (dpo, ref, rev)]
    out = {}
    for name, zt in (
        ("teacher_aligndistil", aligndistil_logits(z[0], z[1])[0]),
        ("teacher_contrastive", aligndistil_logits(z[0], z[1], z[2])[0]),
    ):
        p = torch.softmax(zt, -1)
        out[name] = sum(float(p[k, sorted(t)].sum()) for k, t in enumerate(targets)) / len(targets)
    return out


def aligndistil_seed(seed: int, steps: int, work: Path) -> dict[str, Any]:
    from turngym.trainers.distill import CausalLMScorer

    targets = draw_targets(seed, [4] * 16)
    dpo = CausalLMScorer(nudged(seed, targets, True), batch_size=32)
    rev = CausalLMScorer(nudged(seed, targets, False), batch_size=32)
    ref = CausalLMScorer(tiny_model(seed).eval(), batch_size=32)
    common = dict(
        steps=steps,
        tasks_per_step=4,
        group_size=8,
        lr=5e-3,
        mini_batch_size=32,
        micro_batch_size=32,
        reward_shaping=[{"name": "zero"}],
    )
    arms = {
        "off": {"name": "opd", "teacher": dpo, "log_file": None},
        "aligndistil": {"name": "aligndistil", "teacher": dpo, "ref": ref, "log_file": None},
        "aligndistil_contrastive": {
            "name": "aligndistil",
            "teacher": dpo,
            "ref": ref,
            "reverse_teacher": rev,
            "log_file": None,
        },
    }
    res: dict[str, Any] = {
        "start": sum(success(tiny_model(seed), targets)) / 16,
        "teacher": sum(success(dpo.model, targets)) / 16,
        **teacher_success(dpo, ref, rev, targets),
    }
    for arm, spec in arms.items():
        model = tiny_model(seed)
        rows = train(
            model, targets, seed, work / f"aligndistil_{arm}_{seed}", extra_advantages=[spec], **common
        )
        p = success(model, targets)
        lams = [r["aligndistil_lam"] for r in rows if "aligndistil_lam" in r]
        res[arm] = {"mean": sum(p) / len(p), "lam_mean": sum(lams) / len(lams) if lams else None}
    return res


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import arms

    p = arms.begin(
        __doc__,
        5,
        40,
        "runs/method_arms",
        None,
        "result JSON (default benchmarks/results/method_arms_<method>.json)",
    )
    p.add_argument("--method", choices=("craft", "aligndistil"), required=True)
    args = p.parse_args()
    run_seed = craft_seed if args.method == "craft" else aligndistil_seed
    t0 = time.time()
    per_seed = arms.run_seeds(lambda s: run_seed(s, args.steps, Path(args.work)), args.seeds)
    names = [k for k, v in per_seed[0].items() if isinstance(v, dict) and k != "off"]
    summary: dict[str, Any] = {"off": arms.mean_ci([r["off"]["mean"] for r in per_seed])}
    for arm in names:
        summary[arm], summary[f"{arm}_minus_off"] = arms.versus(per_seed, arm, "off", "mean")
    result = {
        "method": args.method,
        "seeds": args.seeds,
        "steps": args.steps,
        "measure": "mean over tasks of the policy's exact success probability after the last step",
        "summary": summary,
        "per_seed": per_seed,
    }
    out = Path(args.out or ROOT / "results" / f"method_arms_{args.method}.json")
    arms.write(out, result, "method_arms.py", t0)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
