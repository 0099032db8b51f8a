"""Learning on WebShop-v0 with a policy that chooses among the page's admissible actions: SFT on the oracle's
episodes, then GRPO, held out.

    python -m turngym.experiments.webshop --out runs/webshop [options]
    python benchmarks/learning.py --family webshop --seeds 5        # over seeds, with 95% intervals

Env: `turngym/WebShop-v0` (docs/shopping.md), WebShop's text mode (Yao et al., 2022): a search page, result pages of
10 products, item pages with option values, `Buy Now`; success is WebShop reward 1 (right product type, attributes,
options and price). Pack `webshop-synth`: SFT and RL on the `train` split, greedy held-out evaluation on the first
`--eval-episodes` tasks of the `test` split (other instructions over the same catalog; never trained on).

The policy is the WebShop paper's *choice* model (its IL/RL agent scores the page's available actions and picks
one) built from a causal LM: `--constrain admissible` (turngym.agents.constraints) makes each reply exactly one of
`info["admissible_actions"]` (the one search with the instruction text on the search page; every clickable
element elsewhere), sampled from the LM's distribution renormalised over them, and GRPO trains that renormalised
distribution token by token. So the model never spends an episode on an action the page does not offer; what it
must learn is which product and which options the instruction asks for.

SFT data: the oracle restricted to the admissible actions (`expert:admissible`: it searches with the instruction
text, as the choice policy must, then clicks what the oracle clicks), so the pages in the data are the ones the
policy will see. Why RL has something to learn: the oracle is privileged. It reads the goal's hidden attributes and
the reward, and clicks the first result whose reward is 1, which is the first one on the page in some episodes and
a later one (or one on the next page) in others for reasons the titles do not always show; SFT imitates that
mixture, and which product and options pay for a learner that sees only the page is found by trying.

Model: the demo's tiny Llama over a lowercased word-level tokenizer built from the oracle episodes' text plus every
catalog ASIN (`catalog_words`), so a product is one id on the page and in `click[...]`. The pipeline (SFT, RL arms
from the same SFT weights, evaluations, OUT/results.json) is `demo.run`'s, so `benchmarks/learning.py` aggregates it
like the other families. The options are `WebShopConfig`'s fields.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError
from turngym.experiments import demo
from turngym.experiments.demo import DemoConfig, _opt
from turngym.experiments.pipeline import episode_texts, successful_episodes
from turngym.experiments.shopassistant import catalog_words

log = logging.getLogger("turngym.experiments.webshop")

ENV_ID = "turngym/WebShop-v0"
PACK = "webshop-synth"


@dataclass
class WebShopConfig(DemoConfig):
    """The demo's options with this family's defaults; the embodied-only ones are not options here."""

    out: str = _opt("runs/webshop")
    difficulty: str = _opt("", cli=False)
    staleness: float | None = _opt(None, cli=False)
    eval_episodes: int = _opt(40, "held-out test tasks evaluated, the first N (0 = all)")
    train_tasks: int = _opt(0, cli=False)
    test_tasks: int = _opt(0, cli=False)
    tokenizer: str = _opt("words", "words: lowercased word-level with implicit spaces (one id per ASIN)")
    vocab_size: int = _opt(32768, "at most this many ids (the corpus has fewer: every word is kept)")
    expert_episodes: int = _opt(400, "oracle episodes on the train split (SFT data; all succeed)")
    sft_expert: str = _opt(
        "expert:admissible",
        "whose successful train episodes SFT imitates: expert:admissible (the oracle restricted to the page's "
        "admissible actions: it searches with the instruction text, as the choice policy must) or expert",
    )
    sft_epochs: int = _opt(1)
    sft_lr: float = _opt(3e-3)
    sft_warmup: int = _opt(20)
    sft_schedule: str = _opt("cosine")
    rl_steps: int = _opt(12)
    rl_lr: float = _opt(5e-4)
    rl_lam: float | None = _opt(None, cli=False)  # WebShop's reward has no costs
    invalid_penalty: float = _opt(0.0, cli=False)  # nothing invalid under the constraint
    eval_every: int = _opt(4)
    group_size: int = _opt(8)
    tasks_per_step: int = _opt(4)
    rl_mini_batch: int = _opt(32, "episodes per RL optimizer step")
    max_turns: int = _opt(8, "turn limit per episode")
    max_new_tokens: int = _opt(64, "tokens per reply (the search with the instruction text takes up to ~45)")
    constrain: str = _opt(
        "admissible",
        "decode under this constraint (turngym.agents.constraints): 'admissible' (choose among the page's "
        "actions) or '' (free text)",
    )


def build(a: DemoConfig) -> tuple[Path, dict[str, Any], list[Any], Any]:
    """(pack folder, env kwargs, the oracle's successful train episodes, the untrained policy), all from `a`."""
    from turngym.agents.backends.bpe import bpe_policy
    from turngym.agents.base import make_agent
    from turngym.tasks.pack import BUILTIN_DIR

    if a.tokenizer != "words":
        raise ConfigError(f"--tokenizer {a.tokenizer!r}: this experiment uses 'words' (one id per ASIN)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    pack = BUILTIN_DIR / PACK
    env_kwargs = {"task_pack": str(pack)}
    experts = successful_episodes(
        ENV_ID,
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
        lowercase=True,
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


def parse(argv: list[str] | None = None) -> WebShopConfig:
    ap = demo.parser(WebShopConfig, prog="turngym.experiments.webshop", description=__doc__)
    return WebShopConfig(**vars(ap.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv  # recorded in results.json
    a = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    res = demo.run(a, argv, env_id=ENV_ID, build_fn=build)
    print(f"held-out success ({res['eval_tasks']} test tasks of {ENV_ID}, seed {res['seed']}):")
    print(f"  after SFT: {res['sft_success']:.3f} (valid actions {res['sft_valid_action_rate']:.3f})")
    for algo, r in res["runs"].items():
        print(
            f"  after {algo}: {r['final_success']:.3f} ({r['gain_points']:+.1f} points; best {r['best_success']:.3f};"
            f" valid actions {r['final_valid_action_rate']:.3f}; turns {r['final_turns']:.2f})"
        )
    print(f"  wall time {res['total_seconds']:.0f} s; metrics under {a.out}")
    return 0


if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()  # ATEN_CPU_CAPABILITY=avx2 before torch loads (TURNGYM_ISA=native to opt out)
    raise SystemExit(main())
