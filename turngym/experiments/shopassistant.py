"""Learning on a second env family: SFT of a tiny Llama on ShopAssistant's expert dialogues, then GRPO, held out.

    python -m turngym.experiments.shopassistant --out runs/shop [options]
    python benchmarks/learning.py --family shopassistant --seeds 5        # over seeds, with 95% intervals

Env: `turngym/ShopAssistant-v0` (docs/shopping.md): a simulated customer with a hidden profile (product type,
must-have attributes, option preferences, budget, sometimes a change of mind, patience of 3 rejections); actions
`ask[...]`, `search[...]`, `view[...]`, `recommend[ASIN, NAME: VALUE, ...]`, `end`; success when the customer
accepts a recommendation. Pack `shopassistant-synth`: SFT and RL on the `train` split (500 profiles), greedy
held-out evaluation on the `test` split (100 other profiles over the same catalog; never trained on).

Why RL has something to learn here: the scripted expert is privileged. It reads the customer's hidden state and
the catalog: it recommends the first search result that meets every constraint, checking attributes and options
that the result list does not show, so the result it recommends is the first one in some episodes and a later one
in others for reasons the learner cannot see; and the customer never rejects its product (its only rejections are
changes of mind), so the expert data holds no recovery from "That's too expensive" or "It needs to be ...". SFT
imitates that mixture; what works for a learner that cannot see the hidden fields is found only by trying: GRPO on
the env's reward (+1 on acceptance, minus 0.05 per question and 0.01 per turn).

What it measured (docs/trainers.md, "A second env family: ShopAssistant-v0"): at the size that fits 5 seeds on 2
shared cores, the SFT model never copies a listed product into `recommend[...]`, so it never succeeds on held-out
tasks, GRPO's rollouts never succeed either, and RL has no success signal to follow. `diagnose` (below) replays the
recorded held-out episodes and says where they fail.

Model: the demo's tiny Llama (`turngym.experiments.demo`, same options) over a word-level tokenizer built from the
expert episodes' text plus every catalog ASIN (`catalog_words`), so a product is one id in the result list and in
`recommend[...]` (recommending is copying one id; unseen ASINs would otherwise be spelled character by character).
The pipeline (SFT, RL arms from the same SFT weights, evaluations, OUT/results.json) is `demo.run`'s, so
`benchmarks/learning.py` aggregates it like the embodied runs. The options are `ShopConfig`'s fields.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError
from turngym.experiments import demo
from turngym.experiments.demo import DemoConfig, _opt
from turngym.experiments.pipeline import episode_texts, successful_episodes

log = logging.getLogger("turngym.experiments.shopassistant")

ENV_ID = "turngym/ShopAssistant-v0"
PACK = "shopassistant-synth"


@dataclass
class ShopConfig(DemoConfig):
    """The demo's options with this family's defaults; the embodied-only ones are not options here."""

    out: str = _opt("runs/shop")
    difficulty: str = _opt("", cli=False)
    staleness: float | None = _opt(None, cli=False)
    eval_episodes: int = _opt(40, "held-out test tasks evaluated, the first N (0 = all 100)")
    train_tasks: int = _opt(0, cli=False)
    test_tasks: int = _opt(0, cli=False)
    tokenizer: str = _opt(
        "words", "words: word-level with implicit spaces (the only one with one id per ASIN)"
    )
    vocab_size: int = _opt(16384, "at most this many ids (the corpus has fewer: every word is kept)")
    expert_episodes: int = _opt(600, "expert episodes on the train split (SFT data; all succeed)")
    sft_epochs: int = _opt(1)
    sft_lr: float = _opt(3e-3)
    sft_warmup: int = _opt(20)
    sft_schedule: str = _opt("cosine")
    rl_steps: int = _opt(4)
    rl_lr: float = _opt(5e-4)
    rl_lam: float | None = _opt(None, cli=False)  # ShopAssistant's reward has its costs built in
    invalid_penalty: float = _opt(0.0, "RL reward shaping: -coef per invalid action (0: off)")
    eval_every: int = _opt(4)
    group_size: int = _opt(8)
    tasks_per_step: int = _opt(4)
    rl_mini_batch: int = _opt(32, "episodes per RL optimizer step")
    max_turns: int = _opt(10, "turn limit per episode")
    max_new_tokens: int = _opt(24)
    constrain: str = _opt(
        "",
        "decode under this constraint (turngym.agents.constraints): '' (free text) or e.g. 'arguments:view,recommend'"
        " (the product id in view[...]/recommend[...] is one on screen or the one viewed; the rest stays free)",
    )


def catalog_words(pack: str | Path = PACK) -> str:
    """Every ASIN of the pack's catalog, space-separated: added to the tokenizer's corpus so that each product is
    one id."""
    from turngym.envs.shopping.catalog import load_catalog
    from turngym.tasks.pack import BUILTIN_DIR

    root = Path(pack) if Path(pack).is_dir() else BUILTIN_DIR / str(pack)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(f"task pack {pack!r}: no manifest.json at {manifest}")
    spec = json.loads(manifest.read_text()).get("catalog")
    return " ".join(p.asin for p in load_catalog(spec, root).products)


def build(a: DemoConfig) -> tuple[Path, dict[str, Any], list[Any], Any]:
    """(pack folder, env kwargs, the expert's successful train episodes, the untrained policy), all from `a`."""
    return catalog_build(a, ENV_ID, PACK)


def catalog_build(
    a: DemoConfig, env_id: str, pack_name: str, *, lowercase: bool = False
) -> tuple[Path, dict[str, Any], list[Any], Any]:
    """A shopping family's `build`: `a.sft_expert`'s successful episodes on the train split of the built-in pack
    `pack_name`, and the tiny Llama over a word-level tokenizer of their text plus every catalog ASIN (one id per
    product; `lowercase`: one id whatever the case), decoding under `a.constrain` where the config has it."""
    from turngym.agents.backends.bpe import bpe_policy
    from turngym.agents.base import make_agent
    from turngym.tasks.pack import BUILTIN_DIR

    if a.tokenizer != "words":
        raise ConfigError(f"--tokenizer {a.tokenizer!r}: this experiment uses 'words' (one id per ASIN)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    pack = BUILTIN_DIR / pack_name
    env_kwargs = {"task_pack": str(pack)}
    experts = successful_episodes(
        env_id,
        make_agent(a.sft_expert),
        a.expert_episodes,
        seed=a.seed,
        max_turns=a.max_turns,
        env_kwargs=env_kwargs,
    )
    log.info("%d successful %s episodes", len(experts), a.sft_expert)
    policy = bpe_policy(
        [*episode_texts(experts), catalog_words(pack)],
        vocab_size=a.vocab_size,
        implicit_spaces=True,
        lowercase=lowercase,
        seed=a.seed,
        hidden=a.hidden,
        layers=a.layers,
        heads=a.heads,
        tie_embeddings=not a.freeze_embeddings,
        freeze_embeddings=a.freeze_embeddings,
        max_new_tokens=a.max_new_tokens,
    )
    policy.constrain(getattr(a, "constrain", ""))
    return pack, env_kwargs, experts, policy


def print_results(res: dict[str, Any], env_id: str, out: str) -> None:
    """A finished run's held-out numbers, as a shopping experiment's `main` prints them."""
    print(f"held-out success ({res['eval_tasks']} test tasks of {env_id}, seed {res['seed']}):")
    print(f"  after SFT: {res['sft_success']:.3f} (valid actions {res['sft_valid_action_rate']:.3f})")
    for algo, r in res["runs"].items():
        print(
            f"  after {algo}: {r['final_success']:.3f} ({r['gain_points']:+.1f} points; best {r['best_success']:.3f};"
            f" valid actions {r['final_valid_action_rate']:.3f}; cost {r['final_cost']:.3f};"
            f" turns {r['final_turns']:.2f})"
        )
    print(f"  wall time {res['total_seconds']:.0f} s; metrics under {out}")


VERDICTS = ("accepted", "changed", "type", "budget", "attribute", "option", "invalid")


def replay_stats(episodes: list[tuple[str, list[str]]], max_turns: int = 10) -> dict[str, Any]:
    """Replays (test task id, actions) episodes on ShopAssistant-v0 (the customer is deterministic, so a replay is
    the episode) and says where they fail: per episode the success rate and searches; per recommendation the share
    whose ASIN was in the result list on screen, the share that was its first result, and the customer's verdicts
    (`accepted`, a rejection's reason: `changed` (change of mind), `type`, `budget`, `attribute`, `option`; or
    `invalid`: no such product / option)."""
    import gymnasium as gym

    import turngym  # noqa: F401  (registers the ids)
    from turngym.tasks.pack import BUILTIN_DIR

    if not episodes:
        raise ConfigError("replay_stats: no episodes to replay")
    env = gym.make(ENV_ID, task_pack=str(BUILTIN_DIR / PACK))
    n_rec = in_results = first = searches = wins = 0
    verdicts = dict.fromkeys(VERDICTS, 0)
    for task_id, actions in episodes:
        env.reset(seed=0, options={"split": "test", "task_id": task_id, "max_turns": max_turns})
        u = env.unwrapped
        for act in actions:
            shown = list(u.results)
            _, _, term, trunc, info = env.step(act)
            searches += act.startswith("search[")
            if act.startswith("recommend["):
                asin = act[len("recommend[") :].split(",")[0].strip(" ]").upper()
                n_rec += 1
                in_results += asin in shown
                first += bool(shown) and asin == shown[0]
                v = (
                    "accepted"
                    if info.get("success")
                    else ("invalid" if info.get("invalid_action") else u.last_verdict)
                )
                verdicts[v] += 1
            if term or trunc:
                break
        wins += bool(u.accepted)
    env.close()
    n = len(episodes)
    return {
        "episodes": n,
        "success": wins / n,
        "searches_per_episode": searches / n,
        "recommendations_per_episode": n_rec / n,
        "recommended_asin_on_screen": in_results / n_rec if n_rec else None,
        "recommended_first_result": first / n_rec if n_rec else None,
        "verdicts": verdicts,
    }


def expert_episodes_on_test(n: int, max_turns: int = 10, split: str = "test") -> list[tuple[str, list[str]]]:
    """The scripted expert's episodes on the first `n` tasks of `split` (0: all), as (task id, actions)."""
    from turngym.agents.base import make_agent
    from turngym.agents.rollout import run_episodes
    from turngym.tasks.pack import BUILTIN_DIR

    pack = BUILTIN_DIR / PACK
    ids = demo.split_ids(pack, split, n or None)
    eps = run_episodes(
        ENV_ID,
        make_agent("expert"),
        episodes=len(ids),
        split=split,
        task_ids=ids,
        env_kwargs={"task_pack": str(pack)},
        options={"max_turns": max_turns},
    )
    return [(e.task_id, [s.action for s in e.steps]) for e in eps]


def diagnose(argv: list[str]) -> int:
    """`python -m turngym.experiments.shopassistant diagnose RUN... [--json PATH]`: `replay_stats` of the scripted
    expert on the runs' held-out tasks and of each run's recorded greedy held-out episodes (OUT/eval_sft.jsonl,
    OUT/eval_rl.jsonl: the last evaluation of the RL arm), per run and pooled over the runs."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="turngym.experiments.shopassistant diagnose", description=diagnose.__doc__
    )
    ap.add_argument("runs", nargs="+", help="finished runs' OUT folders")
    ap.add_argument("--json", default="", help="also write the numbers there")
    a = ap.parse_args(argv)
    logs: dict[str, dict[str, list[tuple[str, list[str]]]]] = {}
    for run in a.runs:
        res = Path(run) / "results.json"
        if not res.is_file():
            raise ConfigError(f"diagnose: {run} has no results.json (not a finished run)")
        n = json.loads(res.read_text())["eval_tasks"]
        for tag in ("sft", "rl"):
            path = Path(run) / f"eval_{tag}.jsonl"
            if not path.is_file():
                continue
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            logs.setdefault(tag, {})[run] = [(r["task_id"], r["actions"]) for r in rows[-n:]]
    n_tasks = max(len(eps) for by_run in logs.values() for eps in by_run.values())
    out: dict[str, Any] = {
        "command": "python -m turngym.experiments.shopassistant diagnose " + " ".join(argv),
        "expert": replay_stats(expert_episodes_on_test(n_tasks)),
    }

    def accepted(eps: list[tuple[str, list[str]]]) -> list[str]:  # the product each expert episode sold
        return [acts[-1][len("recommend[") :].split(",")[0].strip(" ]").upper() for _, acts in eps]

    sold_train = set(accepted(expert_episodes_on_test(0, split="train")))
    sold_test = accepted(expert_episodes_on_test(n_tasks))
    # with an untied output layer, a product the SFT data never recommends has an untrained output row
    out["expert_test_products_sold_in_train"] = sum(a in sold_train for a in sold_test) / len(sold_test)
    for tag, by_run in logs.items():
        out[tag] = {
            "pooled": replay_stats([e for eps in by_run.values() for e in eps]),
            "per_run": {run: replay_stats(eps) for run, eps in by_run.items()},
        }
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0


def parse(argv: list[str] | None = None) -> ShopConfig:
    ap = demo.parser(ShopConfig, prog="turngym.experiments.shopassistant", description=__doc__)
    return ShopConfig(**vars(ap.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv  # recorded in results.json
    if argv[:1] == ["diagnose"]:
        return diagnose(argv[1:])
    a = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    res = demo.run(a, argv, env_id=ENV_ID, build_fn=build)
    print_results(res, ENV_ID, a.out)
    return 0


if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()  # ATEN_CPU_CAPABILITY=avx2 before torch loads (TURNGYM_ISA=native to opt out)
    raise SystemExit(main())
