"""Measured arms for the Selective Sample Buffer and ChatShopBuddy's HRM reward (+ DCPO): each method vs plain GRPO
from the same start (same model seed, tasks, config; only the method differs), several seeds.

    python benchmarks/arm_ssb_csb.py --method ssb --seeds 10           # -> benchmarks/results/arm_ssb.json
    python benchmarks/arm_ssb_csb.py --method chatshopbuddy --seeds 10 # -> benchmarks/results/arm_chatshopbuddy.json

- ssb: the one-token bandit of `benchmarks/method_arms.py` (a tiny Llama inside the real GRPOTrainer; exact success =
  the policy's mass on each task's targets) with hard tasks, where most groups are all-zero (vanishing advantages):
  16 tasks, 8 with 1 target and 8 with 3 targets of 40 tokens (uniform policy: 0.025 and 0.075). Arms: off = GRPO;
  ssb = + `callbacks: [{name: ssb}]` (defaults: capacity one batch, replay 0.25, max age 4); ssb_replace = the
  same with `replace_zero: true` (replays take the places of zero-advantage samples; the batch keeps its size);
  drop_zero = a control: the zero-advantage samples dropped and nothing replayed (a batch of fewer zero-advantage
  samples takes a bigger step under the per-sample mean; this arm has that without the replay).
- chatshopbuddy: real `turngym/ShopAssistant-v0` episodes. The policy (a tiny Llama) picks, per episode, one of five
  scripted ways to serve the task's customer with one sampled token (token mod 5); each (task, way) episode is
  played once in the real env (rule customer, deterministic) and reused. The ways: `terse` = the env's expert, its
  final message the bare recommend[...] command; `pitch` = the expert with a short pitch naming the product before
  the command (correct, persuasive, efficient: the ideal); `over_ask` = every question first, then the pitch expert
  (correct, persuasive, wasteful); `hasty` = search, view the first result, recommend it with its first options and
  a pitch (usually wrong); `quit` = end at once. Arms: off = GRPO on the env's reward (success − 0.05·questions −
  0.01·turns), which cannot tell `terse` from `pitch`; hrm = `reward_shaping: [{name: chatshopbuddy}]`; hrm_dcpo =
  the same + `callbacks: [{name: dcpo}]` (one policy token per episode, so DCPO selects by reward alone here).
  Measures, exact from the final policy over 12 tasks: `correct` (probability of an accepted product),
  `ideal` (probability of `pitch`), `quality` (expected rubric score of an accepted product's final message) and
  `calls` (expected questions + tool calls).

What this arm can show is whether GRPO with the gated reward moves a policy towards what the reward prefers on real
env episodes, against the env's reward; it says nothing about a language model learning to write pitches.
Results: per seed and per arm, the paired difference (arm − off) with its mean and 95% Student-t interval, the CPU
model and the pinned instruction set (`ATEN_CPU_CAPABILITY=avx2`, `turngym.numerics.pin_isa`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SHOP = "turngym/ShopAssistant-v0"
WAYS = ("terse", "pitch", "over_ask", "hasty", "quit")


# ---- SSB on the bandit --------------------------------------------------------------------------------------------
def ssb_seed(seed: int, steps: int, work: Path) -> dict[str, Any]:
    from method_arms import draw_targets, success, tiny_model, train

    register_drop_zero()
    targets = draw_targets(seed, [1] * 8 + [3] * 8)
    common = dict(
        steps=steps, tasks_per_step=4, group_size=8, lr=5e-3, mini_batch_size=64, micro_batch_size=64
    )
    arms = {
        "off": [],
        "ssb": [{"name": "ssb"}],
        "ssb_replace": [{"name": "ssb", "replace_zero": True}],
        "drop_zero": [{"name": "drop_zero_adv"}],
    }
    res: dict[str, Any] = {"start": sum(success(tiny_model(seed), targets)) / len(targets)}
    for arm, callbacks in arms.items():
        model = tiny_model(seed)
        rows = train(model, targets, seed, work / f"ssb_{arm}_{seed}", callbacks=callbacks, **common)
        p = success(model, targets)
        res[arm] = {
            "mean": sum(p) / len(p),
            "degenerate_groups": sum(r["degenerate_groups"] for r in rows) / len(rows),
            "zero_adv_fresh": _mean(rows, "ssb_zero_adv_fresh"),
            "zero_adv_batch": _mean(rows, "ssb_zero_adv_batch"),
            "replayed": _mean(rows, "ssb_replayed"),
            "batch_samples": _mean(rows, "batch_samples"),
        }
    return res


def register_drop_zero() -> None:
    """A control arm: drop the zero-advantage samples and replay nothing (the update averages over the rest), to
    tell SSB's replay apart from the bigger step a batch with fewer zero-advantage samples gives."""
    from turngym.trainers.callbacks import CALLBACKS, Callback, register_callback
    from turngym.trainers.replay import sample_priority

    class DropZero(Callback):
        def on_batch(self, trainer, items):
            return [(e, a) for e, a in items if sample_priority(e, a) > 1e-6]

    if "drop_zero_adv" not in CALLBACKS:
        register_callback("drop_zero_adv", DropZero)


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    xs = [r[key] for r in rows if key in r]
    return sum(xs) / len(xs) if xs else None


# ---- ChatShopBuddy on real ShopAssistant episodes -----------------------------------------------------------------
def pitch(env: Any, command: str) -> str:
    """The scripted pitch: names the product the customer asked for, then the command (react style)."""
    return f"This {env.unwrapped.task['noun']} matches what you asked for and fits your budget. Action: {command}"


def play(task_id: str, way: str) -> dict[str, Any]:
    """One real episode of `way` on `task_id`: per-turn rewards and infos, the chat messages, success."""
    import gymnasium as gym

    import turngym  # noqa: F401
    from turngym.agents.trajectory import clean_info
    from turngym.envs.shopping.assistant_env import QUESTIONS

    env = gym.make(SHOP)
    u = env.unwrapped
    obs, info = env.reset(seed=0, options={"task_id": task_id})
    msgs = [{"role": "user", "content": obs["text"]}]
    rewards, infos = [], []
    plan = [f"ask[{q}]" for q in QUESTIONS.values()] if way == "over_ask" else []
    if way == "quit":
        plan = ["end"]
    if way == "hasty":
        plan = [f"search[{u.task['noun']}]"]
    done = False
    while not done and len(rewards) < 30:
        if plan:
            action = plan.pop(0)
        elif way == "hasty":
            adm = info["admissible_actions"]
            views = [a for a in adm if a.startswith("view[")]
            recs = [a for a in adm if a.startswith("recommend[")]
            action = recs[0] if recs else (views[0] if views else "end")
        else:
            action = u.expert_action()
        text = pitch(env, action) if action.startswith("recommend[") and way != "terse" else action
        obs, r, term, trunc, info = env.step(action)
        msgs += [{"role": "assistant", "content": text}, {"role": "user", "content": obs["text"]}]
        rewards.append(float(r))
        infos.append(clean_info(info))
        done = term or trunc
    env.close()
    return {
        "rewards": rewards,
        "infos": infos,
        "messages": msgs[:-1],
        "success": bool(infos[-1].get("success")),
    }


class WayEngine:
    """`group_size` episodes per task: a token sampled from the model's current weights picks the way (token mod 5);
    the episode is that way's real, cached env episode with the token as its only policy token."""

    def __init__(self, model: Any, tasks: list[str], episodes: dict[tuple[str, str], dict[str, Any]]):
        self.model, self.tasks, self.episodes = model, tasks, episodes

    def collect(self, task_ids, group_size, seed, split=None, options=None):
        from method_arms import one_token_episode, sample_first_tokens

        out = []
        for g, tid, tok, lp in sample_first_tokens(self.model, len(self.tasks), task_ids, group_size, seed):
            e = self.episodes[(self.tasks[int(tid)], WAYS[tok % len(WAYS)])]
            out.append(
                one_token_episode(
                    g,
                    tid,
                    tok,
                    lp,
                    rewards=list(e["rewards"]),
                    obs_keys=[f"task{tid}:{t}" for t in range(len(e["rewards"]))],
                    infos=[dict(i) for i in e["infos"]],
                    meta={"messages": e["messages"], "way": WAYS[tok % len(WAYS)]},
                )
            )
        return out


def way_probs(model: Any, n_tasks: int) -> list[list[float]]:
    """Per task, the policy's probability of each way (its mass on the tokens of that way)."""
    import torch
    from method_arms import prompts

    with torch.no_grad():
        p = torch.softmax(model(prompts(n_tasks)).logits[:, -1].float(), -1)
    return [[float(p[k, w :: len(WAYS)].sum()) for w in range(len(WAYS))] for k in range(n_tasks)]


def way_measures(episodes: dict[tuple[str, str], dict[str, Any]], tasks: list[str]) -> dict[str, list[float]]:
    """Per (way, task): correct (1/0), rubric quality of an accepted product's final message (0 if not accepted),
    questions + tool calls."""
    from turngym.agents.trajectory import TokenEpisode
    from turngym.trainers.chatshop import customer_text, episode_questions, final_message, rubric_score
    from turngym.trainers.rewards import episode_tool_calls

    out: dict[str, list[float]] = {"correct": [], "quality": [], "calls": []}
    for t in tasks:
        for w in WAYS:
            e = episodes[(t, w)]
            n = len(e["rewards"])
            te = TokenEpisode(
                [1], [0], [0.0], [-1], e["rewards"], [""] * n, e["infos"], t, meta={"messages": e["messages"]}
            )
            ok = float(e["success"])
            out["correct"].append(ok)
            out["quality"].append(ok * rubric_score(final_message(te), customer_text(te)))
            out["calls"].append(float(episode_questions(te) + episode_tool_calls(te)))
    return out


def chatshop_seed(seed: int, steps: int, work: Path, episodes: dict, tasks: list[str]) -> dict[str, Any]:
    from method_arms import tiny_model

    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    meas = way_measures(episodes, tasks)
    common = dict(
        env_id=SHOP,
        task_ids=[str(k) for k in range(len(tasks))],
        seed=seed,
        steps=steps,
        tasks_per_step=4,
        group_size=8,
        lr=5e-3,
        mini_batch_size=32,
        micro_batch_size=32,
        max_new_tokens=1,
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
    )
    arms = {
        "off": {},
        "hrm": {"reward_shaping": [{"name": "chatshopbuddy"}]},
        "hrm_dcpo": {
            "reward_shaping": [{"name": "chatshopbuddy"}],
            "callbacks": [{"name": "dcpo"}],
        },
    }
    res: dict[str, Any] = {}

    def measure(model: Any) -> dict[str, float]:
        probs = way_probs(model, len(tasks))
        k = len(WAYS)
        row: dict[str, float] = {"ideal": sum(p[1] for p in probs) / len(probs)}
        for name, vals in meas.items():
            row[name] = sum(p[w] * vals[i * k + w] for i, p in enumerate(probs) for w in range(k)) / len(
                probs
            )
        row["mean"] = row["ideal"]
        return row

    res["start"] = measure(tiny_model(seed))
    for arm, extra in arms.items():
        model = tiny_model(seed)
        cfg = GRPOConfig(output_dir=str(work / f"csb_{arm}_{seed}"), **common, **extra)
        rows = GRPOTrainer(model, config=cfg, engine=WayEngine(model, tasks, episodes)).train()
        res[arm] = measure(model)
        res[arm]["degenerate_groups"] = sum(r["degenerate_groups"] for r in rows) / len(rows)
    return res


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import arms

    p = arms.begin(
        __doc__,
        10,
        60,
        "runs/arm_ssb_csb",
        None,
        "result JSON (default benchmarks/results/arm_<method>.json)",
    )
    p.add_argument("--method", choices=("ssb", "chatshopbuddy"), required=True)
    p.add_argument("--tasks", type=int, default=12, help="chatshopbuddy: ShopAssistant train tasks")
    args = p.parse_args()
    t0 = time.time()
    extra: dict[str, Any] = {}
    if args.method == "ssb":
        run_seed = ssb_seed
        measures = ["mean"]
        what = "mean over tasks of the policy's exact success probability after the last step"
    else:
        import gymnasium as gym

        import turngym  # noqa: F401

        env = gym.make(SHOP)
        tasks = list(env.unwrapped.task_ids("train"))[: args.tasks]
        env.close()
        episodes = {(t, w): play(t, w) for t in tasks for w in WAYS}
        extra["way_success"] = {w: sum(episodes[(t, w)]["success"] for t in tasks) / len(tasks) for w in WAYS}
        extra["tasks"] = tasks

        def run_seed(s: int, steps: int, work: Path) -> dict[str, Any]:
            return chatshop_seed(s, steps, work, episodes, tasks)

        measures = ["ideal", "correct", "quality", "calls"]
        what = (
            "exact expectations under the final policy over the tasks: ideal = P(pitch way), correct = P(accepted "
            "product), quality = E[rubric score of an accepted product's final message], calls = E[questions + "
            "tool calls]; 'mean' = ideal"
        )
    per_seed = arms.run_seeds(lambda s: run_seed(s, args.steps, Path(args.work)), args.seeds)
    names = [k for k, v in per_seed[0].items() if isinstance(v, dict) and k not in ("off", "start")]
    summary: dict[str, Any] = {}
    for m in measures:
        summary[f"off/{m}"] = arms.mean_ci([r["off"][m] for r in per_seed])
        for arm in names:
            summary[f"{arm}/{m}"], summary[f"{arm}_minus_off/{m}"] = arms.versus(per_seed, arm, "off", m)
    result = {
        "method": args.method,
        "seeds": args.seeds,
        "steps": args.steps,
        "measure": what,
        "summary": summary,
        **extra,
        "per_seed": per_seed,
    }
    name = "arm_ssb" if args.method == "ssb" else "arm_chatshopbuddy"
    arms.write(Path(args.out or ROOT / "results" / f"{name}.json"), result, "arm_ssb_csb.py", t0)
    print(json.dumps({k: (round(v["mean"], 4), v["half_width"]) for k, v in summary.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
