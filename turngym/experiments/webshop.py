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

from turngym.experiments import demo
from turngym.experiments.demo import DemoConfig, _opt
from turngym.experiments.shopassistant import ShopConfig, catalog_build, print_results

ENV_ID = "turngym/WebShop-v0"
PACK = "webshop-synth"


@dataclass
class WebShopConfig(ShopConfig):
    """ShopAssistant's options (the demo's without the embodied-only ones) with this family's defaults."""

    out: str = _opt("runs/webshop")
    eval_episodes: int = _opt(40, "held-out test tasks evaluated, the first N (0 = all)")
    tokenizer: str = _opt("words", "words: lowercased word-level with implicit spaces (one id per ASIN)")
    vocab_size: int = _opt(32768, "at most this many ids (the corpus has fewer: every word is kept)")
    expert_episodes: int = _opt(400, "oracle episodes on the train split (SFT data; all succeed)")
    sft_expert: str = _opt(
        "expert:admissible",
        "whose successful train episodes SFT imitates: expert:admissible (the oracle restricted to the page's "
        "admissible actions: it searches with the instruction text, as the choice policy must) or expert",
    )
    rl_steps: int = _opt(12)
    invalid_penalty: float = _opt(0.0, cli=False)  # nothing invalid under the constraint
    max_turns: int = _opt(8, "turn limit per episode")
    max_new_tokens: int = _opt(64, "tokens per reply (the search with the instruction text takes up to ~45)")
    constrain: str = _opt(
        "admissible",
        "decode under this constraint (turngym.agents.constraints): 'admissible' (choose among the page's "
        "actions) or '' (free text)",
    )


def build(a: DemoConfig) -> tuple[Path, dict[str, Any], list[Any], Any]:
    """(pack folder, env kwargs, the oracle's successful train episodes, the untrained policy), all from `a`."""
    return catalog_build(a, ENV_ID, PACK, lowercase=True)


def parse(argv: list[str] | None = None) -> WebShopConfig:
    ap = demo.parser(WebShopConfig, prog="turngym.experiments.webshop", description=__doc__)
    return WebShopConfig(**vars(ap.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv  # recorded in results.json
    a = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    res = demo.run(a, argv, env_id=ENV_ID, build_fn=build)
    print_results(res, ENV_ID, a.out)
    return 0


if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()  # ATEN_CPU_CAPABILITY=avx2 before torch loads (TURNGYM_ISA=native to opt out)
    raise SystemExit(main())
