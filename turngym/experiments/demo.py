"""The CPU learning demo: SFT on expert trajectories, then GRPO (and GiGPO), held-out results before and after.

    python -m turngym.experiments.demo --out runs/train-demo         # short run (`make demo`), a few minutes
    python examples/learn_cpu.py --out runs/learn                    # the longer run recorded in docs/trainers.md

Env: EmbodiedSearch-v0, text only, `easy` tasks (two rooms, the target named in the request). Train split:
`--train-tasks` tasks generated with the env's own pack generator (`turngym.envs.embodied.packgen`); held-out split:
the built-in easy test tasks plus generated ones up to `--test-tasks`, in houses no train task uses. SFT on the
expert's successful train episodes (`--sft-expert` picks another scripted agent, e.g. `scripted:wasteful`: the expert
plus seeded waste, the start policy of the HC-GRPO comparison in docs/algorithms.md), then RL on the train split; greedy held-out evaluation (the first
`--eval-episodes` test tasks, the same at every evaluation) of the untrained, the SFT and each RL model: success
rate and valid-action rate (turns the env accepted as an action).

Model: a tiny Llama built from a config (no download) over a word-level BPE trained on the expert episodes' text
(`turngym.agents.backends.bpe`, `--tokenizer words`; `char` is the agents' character-level tokenizer). SFT adds a
language-modelling loss on the context tokens (`--sft-context-loss`). Everything is seeded (`--seed`): tasks, model
init, expert episodes, rollouts (per step), eval; `--threads 1` keeps the numbers independent of the core count.

Writes OUT/results.json (untrained / SFT / RL results, seeds, timings, the exact argv), OUT/eval_*.jsonl (every
evaluated episode's actions), OUT/learning_curve.png (held-out success per RL step for each algorithm), each phase's
metrics.jsonl and the SFT weights (OUT/sft/model.pt). The options are `DemoConfig`'s fields (`run(DemoConfig(...))`
from Python).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError
from turngym.experiments.pipeline import episode_texts, run_arms, successful_episodes

log = logging.getLogger("turngym.experiments.demo")

ENV_ID = "turngym/EmbodiedSearch-v0"


def derived_pack(
    out: Path,
    difficulties: list[str],
    train_tasks: int = 0,
    test_tasks: int = 0,
    staleness: float | None = None,
) -> Path:
    """Writes OUT/pack: the built-in embodied-search pack keeping only tasks of the given difficulties.

    `train_tasks` / `test_tasks` > 0 replace the train split by that many tasks per difficulty freshly generated with
    the env's own pack generator (`turngym.envs.embodied.packgen.records`, ids `gen-...`), and extend the built-in
    test split with generated `gentest-...` tasks up to that many per difficulty. Generated houses whose seed occurs
    in the other split are skipped, so no held-out house is ever trained on. `staleness` (a probability) replaces
    every task's memory staleness in both splits: the chance that each object moved since the remembered visit.
    """
    if staleness is not None and not 0.0 <= staleness <= 1.0:
        raise ConfigError(f"staleness must be a probability in [0, 1], got {staleness!r}")
    from turngym.envs.embodied.packgen import records
    from turngym.tasks.pack import BUILTIN_DIR, write_pack

    src = BUILTIN_DIR / "embodied-search"
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["name"] = "embodied-search-" + "-".join(difficulties)
    rows = {
        split: [
            r
            for r in (
                json.loads(line) for line in (src / f"{split}.jsonl").read_text().splitlines() if line.strip()
            )
            if r.get("difficulty") in difficulties
        ]
        for split in ("train", "test")
    }

    def generated(prefix: str, n: int, seed: int, avoid: set[int]) -> list[dict]:
        want = {d: n for d in difficulties}
        got: list[dict] = []
        per_level = n
        while any(want.values()):
            got, want = [], {d: n for d in difficulties}
            for r in records(prefix, per_level, seed):
                if r["difficulty"] in want and want[r["difficulty"]] > 0 and r["house_seed"] not in avoid:
                    want[r["difficulty"]] -= 1
                    got.append(r)
            per_level *= 2
        return got

    if test_tasks:
        avoid = {r["house_seed"] for r in rows["train"] + rows["test"]} if not train_tasks else set()
        avoid |= {r["house_seed"] for r in rows["test"]}
        for d in difficulties:
            missing = test_tasks - sum(r["difficulty"] == d for r in rows["test"])
            if missing > 0:
                rows["test"] += [
                    r for r in generated("gentest", test_tasks, 7_001, avoid) if r["difficulty"] == d
                ][:missing]
    if train_tasks:
        rows["train"] = generated("gen", train_tasks, 7_000, {r["house_seed"] for r in rows["test"]})
    if staleness is not None:
        rows = {split: [{**r, "staleness": staleness} for r in rs] for split, rs in rows.items()}
    return write_pack(out / "pack", manifest, rows)


def split_ids(pack: Path, split: str, limit: int | None = None) -> list[str]:
    ids = [json.loads(line)["task_id"] for line in (pack / f"{split}.jsonl").read_text().splitlines() if line]
    return ids[:limit] if limit else ids


def held_out_metrics(episodes: list[Any]) -> dict[str, float]:
    """What the demo reports of a greedy evaluation (`turngym.agents.evaluate.greedy_episodes`): `success` rate,
    `valid_action_rate` (share of turns the env accepted as a valid action: the action grammar and names of
    places/objects that exist, whether or not they help), `cost` (mean summed named cost per episode) and `turns`
    (mean turns per episode)."""
    from turngym.trainers.rewards import group_metrics

    m = group_metrics(episodes)  # means per episode: success, invalid_actions, turns, cost
    turns = m.get("turns", 0.0)
    return {
        "success": m.get("success", 0.0),
        "valid_action_rate": 1.0 - m["invalid_actions"] / turns if turns else 1.0,
        "cost": m.get("cost", 0.0),
        "turns": turns,
    }


def sft_data_metrics(episodes: list[Any]) -> dict[str, float]:
    """Mean summed named cost and mean turns of the SFT episodes (the scripted policy's successful train episodes):
    what the SFT model imitates, to set its held-out cost against."""
    if not episodes:
        return {"cost": 0.0, "turns": 0.0}
    costs = [sum(sum(s.info.get("cost", {}).values()) for s in e.steps) for e in episodes]
    return {"cost": sum(costs) / len(costs), "turns": sum(len(e.steps) for e in episodes) / len(episodes)}


ALGOS = {
    "grpo": "GRPO (env reward = success, invalid-action penalty)",
    "drgrpo": "Dr. GRPO advantages",
    "rloo": "RLOO advantages",
    "gigpo": "GiGPO (episode + step-level advantages over obs_key anchor states)",
    "hc_grpo": "HC-GRPO: R = success - hc_lam * sum of named costs (ESearch-R1)",
    "spa": "SPA-RL progress rewards (frozen-policy estimator) with GiGPO step credit",
    "slim": "GRPO with SLIM's skill lifecycle (skills in the prompt, valued/retired/expanded every --slim-every steps)",
    "sirl": "GRPO with ScalingInter-RL's max_turns schedule (--sirl-stages)",
    "opd": "on-policy distillation from --teacher (no env reward)",
    "tcod": "OPD with TCOD's depth curriculum (--tcod-every)",
    "exopd": "ExOPD: on-policy distillation with the teacher's reward extrapolated by --exopd-lam > 1",
}


def algo_pieces(algo: str, a: DemoConfig, teacher: Any = None, ref: Any = None) -> dict[str, Any]:
    """The GRPOConfig fields that select one `--algos` entry: advantage estimator, reward shapers, extra advantages.

    Every RL entry keeps the outcome reward (`--rl-reward`) first and the invalid-action penalty
    (`--invalid-penalty`), so the arms differ only in the method."""
    if algo not in ALGOS:
        raise ConfigError(f"--algos: unknown {algo!r}; known: {', '.join(ALGOS)}")
    outcomes = {
        "env": [],
        "success": [{"name": "success"}],
        "success+env": [{"name": "success", "env_weight": 1.0}],
    }
    if a.rl_reward not in outcomes:
        raise ConfigError(f"--rl-reward {a.rl_reward!r}: expected 'env', 'success' or 'success+env'")
    outcome = outcomes[a.rl_reward]  # replaces the env's reward before any other shaper
    penalty = [{"name": "invalid_penalty", "coef": a.invalid_penalty}] if a.invalid_penalty else []
    shaping = [*outcome, *penalty]
    if algo in ("grpo", "drgrpo", "rloo", "gigpo"):
        return {"advantage": algo, "reward_shaping": shaping}
    if algo == "sirl":
        schedule = {"name": "scaling_inter_rl", "stages": a.sirl_stages}
        return {"advantage": "grpo", "reward_shaping": shaping, "max_turns_schedule": schedule}
    if algo == "hc_grpo":
        hc = {"name": "hc_grpo", "lam": a.hc_lam}
        return {"advantage": "grpo", "reward_shaping": [*outcome, hc, *penalty]}
    if algo == "spa":
        return {
            "advantage": "gigpo",
            "reward_shaping": [*shaping, {"name": "spa", "alpha": 1.0, "beta": 0.5}],
        }
    if algo == "slim":
        slim = {
            "name": "slim",
            "val_tasks": 8,
            "every": a.slim_every,
            "min_exposure": a.slim_every,
            "window": 16,
        }
        return {"advantage": "grpo", "reward_shaping": [*shaping, slim]}
    if teacher is None:
        raise ConfigError(f"--algos {algo} needs --teacher (a previous run's OUT whose sft/model.pt teaches)")
    spec: dict[str, Any] = {"name": "opd", "teacher": teacher}
    if algo == "exopd":
        spec = {"name": "exopd", "teacher": teacher, "lam": a.exopd_lam}
        if ref is not None:
            spec["ref"] = ref
    if algo == "tcod":
        spec["tcod"] = {"d0": 1, "every": a.tcod_every, "d_max": a.max_turns}
    return {"advantage": "grpo", "reward_shaping": [{"name": "zero"}], "extra_advantages": [spec]}


def load_weights(model: Any, src: str, option: str) -> None:
    """Loads a demo run's weights into `model`: `src` is a run's OUT (its sft/model.pt) or a model.pt file. Every
    tensor must match this run's model (same seed, task options, tokenizer and model size build the same one), else
    a ConfigError names the option and the first mismatching tensors."""
    import torch

    path = Path(src)
    if path.is_dir():
        path = path / "sft" / "model.pt"
    if not path.is_file():
        raise ConfigError(f"{option} {src}: no weights at {path}")
    state = torch.load(path, map_location="cpu")
    want = model.state_dict()
    bad = [k for k in want if k not in state or state[k].shape != want[k].shape]
    if bad:
        raise ConfigError(
            f"{option} {src}: its model does not match this run's model/tokenizer ({bad[:3]}); "
            "use the same --seed, --train-tasks, --expert-episodes, --tokenizer and model options"
        )
    model.load_state_dict(state)


def load_teacher(policy: Any, src: str, option: str = "--teacher") -> Any:
    """The teacher for `opd`/`tcod`/`exopd` (or, with option="--exopd-ref", ExOPD's π_ref): the student's architecture
    and tokenizer with the weights of `src` (a run's OUT or a model.pt file; `option` names it in errors), scored by
    `CausalLMScorer`."""
    from turngym.trainers.distill import CausalLMScorer

    model = copy.deepcopy(policy.model)
    load_weights(model, src, option)
    model.eval()
    return CausalLMScorer(model, batch_size=16, pad_id=policy.tokenizer.pad_token_id or 0)


def _opt(default: Any, help: str = "", **argparse_kw: Any) -> Any:
    """A `DemoConfig` field with its command-line help (and argparse extras such as `type`, `choices`)."""
    return field(default=default, metadata={"help": help, **argparse_kw})


@dataclass
class DemoConfig:
    """The demo's options: one field per command-line option (`--sft-lr` is `sft_lr`), same defaults."""

    out: str = _opt("runs/train-demo")
    difficulty: str = _opt("easy", "comma-separated: easy,medium,hard")
    staleness: float | None = _opt(
        None,
        "memory staleness of every train and test task (chance each object moved since the remembered "
        "visit; default: the pack's, 0 for easy)",
        type=float,
    )
    eval_episodes: int = _opt(12, "0 = every task of the test split")
    train_tasks: int = _opt(100, "generated train tasks per difficulty (0: the built-in train split)")
    test_tasks: int = _opt(50, "held-out tasks per difficulty (built-in test split + generated)")
    tokenizer: str = _opt(
        "words",
        "words: word-level BPE with implicit spaces (agents/backends/bpe.py); bpe: the same with space ids; "
        "char: one id per character",
        choices=["words", "bpe", "char"],
    )
    vocab_size: int = _opt(1024)
    expert_episodes: int = _opt(100)
    sft_expert: str = _opt(
        "expert",
        "the scripted agent whose successful train episodes SFT imitates (an agent spec): expert (the cost-aware "
        "expert), scripted:wasteful (the expert plus seeded redundant questions and a detour, "
        "envs/embodied/experts.py::WastefulPolicy), scripted:baseline (never asks)",
    )
    sft_epochs: int = _opt(3)
    sft_lr: float = _opt(1e-2)
    sft_batch: int = _opt(4, "expert episodes per SFT step")
    sft_warmup: int = _opt(5)
    sft_context_loss: float = _opt(1.0, "weight of the LM loss on context tokens in SFT")
    sft_schedule: str = _opt("constant")
    heads: int = _opt(4)
    sft_from: str = _opt(
        "",
        "a previous run's OUT (or a model.pt): load its SFT weights instead of training SFT (same seed and "
        "task options, so the tokenizer is the same; every tensor's shape is checked)",
    )
    rl_steps: int = _opt(12)
    rl_lr: float = _opt(1e-3)
    rl_lam: float = _opt(0.0, "the env's cost weight during RL (0: reward = success)")
    invalid_penalty: float = _opt(0.1, "RL reward shaping: -coef per invalid action (0: off)")
    rl_temperature: float = _opt(1.0, "sampling temperature of the RL rollouts")
    rl_reward: str = _opt(
        "env",
        "what the RL arms are rewarded with: env (the env's own per-turn reward), success (1 on a successful "
        "episode's last turn, else 0: trainers.rewards.success_reward) or success+env (that plus the env's "
        "episode reward)",
    )
    ppo_epochs: int = _opt(1)
    rl_mini_batch: int = _opt(16, "episodes per RL optimizer step")
    dynamic_sampling: bool = _opt(
        False, "DAPO dynamic sampling: drop groups whose rewards are all equal and refill them"
    )
    eval_every: int = _opt(4)
    group_size: int = _opt(8)
    tasks_per_step: int = _opt(4)
    max_turns: int = _opt(5)
    max_new_tokens: int = _opt(16)
    hidden: int = _opt(128)
    layers: int = _opt(2)
    freeze_embeddings: bool = _opt(
        False,
        "keep the input embeddings at their random init (with an untied output layer): the colours stay "
        "distinguishable, so the model learns to copy them (docs/trainers.md)",
    )
    algos: str = _opt(
        "grpo",
        "comma-separated, each from the same SFT weights: "
        + "; ".join(f"{k}: {v}" for k, v in ALGOS.items()),
    )
    hc_lam: float = _opt(1.0, "hc_grpo: the cost weight lambda")
    teacher: str = _opt("", "opd/tcod: a previous run's OUT (its sft/model.pt) or a model.pt file")
    tcod_every: int = _opt(5, "tcod: RL steps per extra turn of depth")
    sirl_stages: str = _opt(
        "0:3,10:4,20:5",
        "sirl: ScalingInter-RL stages 'step:max_turns,...' (the env's turn limit grows with the RL step)",
    )
    exopd_lam: float = _opt(1.25, "exopd: reward extrapolation lambda (> 1)")
    exopd_ref: str = _opt(
        "",
        "exopd: pi_ref, a run's OUT or model.pt (e.g. the teacher's earlier checkpoint); without it pi_ref is "
        "the student itself and ExOPD is OPD scaled by lambda, which Adam cancels",
    )
    slim_every: int = _opt(5, "slim: RL steps between lifecycle updates (K)")
    seed: int = _opt(0)
    threads: int = _opt(1, "torch threads (1: the results do not depend on the core count)")


def parser(
    config: type = DemoConfig, prog: str = "turngym.experiments.demo", description: str | None = __doc__
) -> argparse.ArgumentParser:
    """The command line: `--name-with-dashes` per field of `config` (`DemoConfig` or a subclass; a bool is a
    switch; a field whose metadata says `cli=False` is not an option)."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for f in dataclasses.fields(config):
        if f.metadata.get("cli") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        kw = {k: v for k, v in f.metadata.items() if v != "" and k != "cli"}
        if isinstance(f.default, bool):
            ap.add_argument(flag, action="store_true", **kw)
        else:
            ap.add_argument(flag, default=f.default, **{"type": type(f.default), **kw})
    return ap


def parse(argv: list[str] | None = None) -> DemoConfig:
    """`DemoConfig` from command-line options."""
    return DemoConfig(**vars(parser().parse_args(argv)))


Build = Callable[[Any], tuple[Path, dict[str, Any], list[Any], Any]]


def run_options(run: str | Path) -> DemoConfig:
    """The options a finished run used (its OUT/results.json `args` over the defaults; names this version does not
    know are left out), so that `build()` rebuilds the same pack, tokenizer and model (e.g. to probe its weights)."""
    path = Path(run) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{run}: no results.json (pass a turngym.experiments.demo run's --out folder)")
    known = {f.name for f in dataclasses.fields(DemoConfig)}
    return DemoConfig(**{k: v for k, v in json.loads(path.read_text())["args"].items() if k in known})


def build(a: DemoConfig) -> tuple[Path, dict[str, Any], list[Any], Any]:
    """The run's data and model before training: (pack, env kwargs, successful expert episodes, policy), all from
    `a` (same options and seed: same pack, episodes, tokenizer and initial weights)."""
    from turngym.agents.backends.bpe import bpe_policy
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.base import make_agent

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pack = derived_pack(
        out,
        [d.strip() for d in a.difficulty.split(",") if d.strip()],
        a.train_tasks,
        a.test_tasks,
        a.staleness,
    )
    env_kwargs = {"image": False, "task_pack": str(pack.resolve())}
    experts = successful_episodes(
        ENV_ID,
        make_agent(a.sft_expert),
        a.expert_episodes,
        seed=a.seed,
        max_turns=a.max_turns,
        env_kwargs=env_kwargs,
    )
    log.info("%d successful %s episodes", len(experts), a.sft_expert)
    if a.tokenizer in ("bpe", "words"):
        policy = bpe_policy(
            episode_texts(experts),
            vocab_size=a.vocab_size,
            implicit_spaces=a.tokenizer == "words",
            seed=a.seed,
            hidden=a.hidden,
            layers=a.layers,
            heads=a.heads,
            tie_embeddings=not a.freeze_embeddings,
            freeze_embeddings=a.freeze_embeddings,
            max_new_tokens=a.max_new_tokens,
        )
    else:
        policy = tiny_policy(seed=a.seed, hidden=a.hidden, layers=a.layers, max_new_tokens=a.max_new_tokens)
    return pack, env_kwargs, experts, policy


def run(
    a: DemoConfig, argv: list[str] | None = None, *, env_id: str = ENV_ID, build_fn: Build | None = None
) -> dict[str, Any]:
    """The whole demo with the options `a`; writes and returns OUT/results.json (`argv` is recorded in it).

    Another env family reuses the pipeline with its own `env_id` and `build_fn(a)` -> (pack, env kwargs, successful
    expert episodes, policy) (e.g. `turngym.experiments.shopassistant`); held-out tasks are the pack's `test`
    split."""
    import torch

    from turngym.agents.evaluate import greedy_episodes
    from turngym.numerics import numerics_info
    from turngym.trainers.config import SFTConfig
    from turngym.trainers.logging import plot_curves
    from turngym.trainers.sft import SFTTrainer, expert_token_episode

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    t0 = time.time()
    pack, env_kwargs, experts, policy = (build_fn or build)(a)
    eval_ids = split_ids(pack, "test", a.eval_episodes or None)

    def evaluate(tag: str = "", prompt_hook: Any = None) -> dict[str, float]:
        """Greedy on the held-out tasks (the same tasks and seed at every evaluation), logged to OUT/eval_<tag>.jsonl."""
        eps = greedy_episodes(
            policy,
            env_id,
            eval_ids,
            split="test",
            seed=10_000 + a.seed,
            max_turns=a.max_turns,
            env_kwargs=env_kwargs,
            prompt_hook=prompt_hook,
            log_to=out / f"eval_{tag or 'rl'}.jsonl",
        )
        return held_out_metrics(eps)

    untrained = evaluate("untrained")
    log.info("untrained: held-out %s", untrained)
    sft_cfg = SFTConfig(
        epochs=a.sft_epochs,
        lr=a.sft_lr,
        mini_batch_size=a.sft_batch,
        micro_batch_size=a.sft_batch,
        warmup_steps=a.sft_warmup,
        context_loss_coef=a.sft_context_loss,
        lr_schedule=a.sft_schedule,
        seed=a.seed,
        output_dir=str(out / "sft"),
        tensorboard=False,
    )
    if a.sft_from:
        load_weights(policy.model, a.sft_from, "--sft-from")
    else:
        SFTTrainer(policy, [expert_token_episode(policy, e) for e in experts], sft_cfg).train()
    t_sft = time.time() - t0

    sft_eval = evaluate("sft")
    sft_success = sft_eval["success"]
    log.info("after SFT: held-out %s (%.0f s)", sft_eval, time.time() - t0)
    sft_state = copy.deepcopy(policy.model.state_dict())
    (out / "sft").mkdir(parents=True, exist_ok=True)
    torch.save(sft_state, out / "sft" / "model.pt")
    results: dict[str, Any] = {
        "env": env_id,
        "difficulty": a.difficulty,
        "staleness": a.staleness,
        "eval_tasks": len(eval_ids),
        "seed": a.seed,
        "expert_episodes": len(experts),
        "sft_expert": a.sft_expert,
        "sft_data": sft_data_metrics(experts),
        "sft_seconds": t_sft,
        "untrained": untrained,
        "sft_success": sft_success,
        "sft_valid_action_rate": sft_eval["valid_action_rate"],
        "sft_cost": sft_eval["cost"],
        "sft_turns": sft_eval["turns"],
        "numerics": numerics_info(),
        "argv": argv,
        "args": dataclasses.asdict(a),
        "runs": {},
    }
    teacher = load_teacher(policy, a.teacher) if a.teacher else None
    ref = load_teacher(policy, a.exopd_ref, "--exopd-ref") if a.exopd_ref else None
    arms = {
        algo: algo_pieces(algo, a, teacher, ref)
        for algo in [s.strip() for s in a.algos.split(",") if s.strip()]
    }
    base = {
        "env_id": env_id,
        "env_kwargs": {**env_kwargs, **({"lam": a.rl_lam} if a.rl_lam is not None else {})},
        "split": "train",
        "steps": a.rl_steps,
        "tasks_per_step": a.tasks_per_step,
        "group_size": a.group_size,
        "max_turns": a.max_turns,
        "max_new_tokens": a.max_new_tokens,
        "lr": a.rl_lr,
        "temperature": a.rl_temperature,
        "ppo_epochs": a.ppo_epochs,
        "dynamic_sampling": a.dynamic_sampling,
        "mini_batch_size": a.rl_mini_batch,
        "micro_batch_size": 8,
        "eval_every": a.eval_every,
        "seed": a.seed,
        "tensorboard": False,
        "plot": True,
        "num_envs": 16,
    }

    def start(algo: str) -> Any:
        policy.model.load_state_dict(sft_state)  # every arm from the same SFT weights
        return policy

    def report(algo: str, trainer: Any, recs: list[dict[str, Any]]) -> dict[str, Any]:
        curve = [(int(r["step"]), float(r["eval_success"])) for r in recs if "eval_success" in r]
        if not curve or curve[0][0] != 0:
            curve.insert(0, (0, sft_success))
        evals = [r for r in recs if "eval_success" in r]
        if evals and int(evals[-1]["step"]) == a.rl_steps:  # the trainer evaluated the final weights already
            last = {k[len("eval_") :]: v for k, v in evals[-1].items() if k.startswith("eval_")}
        else:
            last = evaluate(prompt_hook=trainer.engine.prompt_hook)
        if curve[-1][0] != a.rl_steps:
            curve.append((a.rl_steps, last["success"]))
        final = curve[-1][1]
        log.info("%s: held-out success %.3f -> %.3f", algo, sft_success, final)
        return {
            "final_success": final,
            "gain_points": 100 * (final - sft_success),
            "best_success": max(v for _, v in curve),
            "final_valid_action_rate": last["valid_action_rate"],
            "final_cost": last["cost"],
            "final_turns": last["turns"],
            "curve": curve,
            "train_success": [r.get("success") for r in recs if "success" in r],
        }

    # the agent under evaluation is the policy plus whatever the run put in its prompt (SLIM's skill bank)
    results["runs"] = run_arms(
        start,
        arms,
        base,
        out,
        evaluator=lambda tr: evaluate(prompt_hook=tr.engine.prompt_hook),
        report=report,
    )
    results["total_seconds"] = time.time() - t0
    (out / "results.json").write_text(json.dumps(results, indent=1))
    curves = {algo: r["curve"] for algo, r in results["runs"].items()}
    recs = [{"step": s, f"{algo}_eval_success": v} for algo, pts in curves.items() for s, v in pts]
    plot_curves(recs, out / "learning_curve.png", keys=tuple(f"{k}_eval_success" for k in curves))
    return results


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv  # recorded in results.json as the options the run was given
    a = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    res = run(a, argv)
    print(
        f"held-out success ({res['eval_tasks']} {res['difficulty']} test tasks of {ENV_ID}, seed {res['seed']}):"
    )
    u = res["untrained"]
    print(f"  untrained: {u['success']:.3f} (valid actions {u['valid_action_rate']:.3f})")
    print(f"  after SFT: {res['sft_success']:.3f} (valid actions {res['sft_valid_action_rate']:.3f})")
    for algo, r in res["runs"].items():
        print(
            f"  after {algo}: {r['final_success']:.3f} ({r['gain_points']:+.1f} points; best {r['best_success']:.3f};"
            f" valid actions {r['final_valid_action_rate']:.3f}; cost {r['final_cost']:.3f})"
        )
    n = res["numerics"]
    print(
        f"  wall time {res['total_seconds']:.0f} s (torch {n['torch']}, {n['torch_cpu_capability']} kernels, "
        f"{n['torch_threads']} thread(s), {n['cpu_model']}); metrics and learning_curve.png under {a.out}"
    )
    return 0


if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()  # before torch is imported: ATEN_CPU_CAPABILITY=avx2 unless TURNGYM_ISA / ATEN_CPU_CAPABILITY say else
    raise SystemExit(main())
