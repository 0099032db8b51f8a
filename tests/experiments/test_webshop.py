"""The WebShop learning experiment (a choice policy over the page's admissible actions): options, splits, the oracle's
data, one id per ASIN whatever its case, and a constrained greedy evaluation that only ever takes admissible
actions."""

from __future__ import annotations

import pytest

from turngym.errors import ConfigError
from turngym.experiments import demo, webshop


def test_options_default_to_the_admissible_choice_policy():
    a = webshop.parse(["--rl-steps", "3"])
    assert isinstance(a, demo.DemoConfig) and a.rl_steps == 3 and a.constrain == "admissible"
    assert webshop.parse(["--constrain", ""]).constrain == ""
    for embodied_only in ("--difficulty", "--staleness", "--train-tasks", "--rl-lam", "--invalid-penalty"):
        with pytest.raises(SystemExit):
            webshop.parse([embodied_only, "1"])


def test_build_greedy_choices_are_admissible_and_asins_are_one_id(tmp_path):
    from turngym.agents.evaluate import greedy_episodes

    a = webshop.WebShopConfig(out=str(tmp_path), expert_episodes=6, hidden=16, layers=1, max_new_tokens=128)
    pack, env_kwargs, experts, policy = webshop.build(a)
    assert len(experts) == 6 and all(e.success for e in experts)
    train = set(demo.split_ids(pack, "train"))
    held_out = demo.split_ids(pack, "test", 3)
    assert not train & set(held_out) and {e.task_id for e in experts} <= train
    tok = policy.tokenizer
    click = next(s.action for e in experts for s in e.steps if s.action.startswith("click[b0"))
    asin = click[len("click[") : -1]
    assert len(tok.encode(asin.upper(), add_special_tokens=False)) == 1
    assert tok.encode(asin.upper(), add_special_tokens=False) == tok.encode(asin, add_special_tokens=False)
    # the untrained choice policy: every action it takes is one the page offered (no invalid action, ever)
    eps = greedy_episodes(
        policy, webshop.ENV_ID, held_out, split="test", seed=1, max_turns=4, env_kwargs=env_kwargs, num_envs=3
    )
    assert len(eps) == 3 and all(e.allowed for e in eps)
    assert all(not i.get("invalid_action") for e in eps for i in e.infos)
    with pytest.raises(ConfigError, match="tokenizer"):
        webshop.build(webshop.WebShopConfig(out=str(tmp_path), tokenizer="char"))
    with pytest.raises(ConfigError, match="unknown constraint"):
        webshop.build(webshop.WebShopConfig(out=str(tmp_path), expert_episodes=1, constrain="all"))


def test_the_admissible_expert_takes_the_pages_own_search_and_still_succeeds():
    from turngym.agents.base import make_agent
    from turngym.agents.rollout import run_episodes

    eps = run_episodes(webshop.ENV_ID, make_agent("expert:admissible"), episodes=4, split="train", seed=0)
    oracle = run_episodes(webshop.ENV_ID, make_agent("expert"), episodes=4, split="train", seed=0)
    for e, o in zip(eps, oracle):
        instruction = e.instructions.split("Instruction: ", 1)[1].split("\n", 1)[0]
        assert e.success and e.steps[0].action == f"search[{instruction}]"  # the page's one search
        assert o.success and o.steps[0].action != e.steps[0].action  # the oracle's own keywords are not on it
    with pytest.raises(ConfigError, match="takes no argument or 'admissible'"):
        make_agent("expert:oracle")


def test_rl_reward_success_puts_the_binary_outcome_first():
    a = webshop.parse(["--rl-reward", "success"])
    assert demo.algo_pieces("grpo", a)["reward_shaping"] == [{"name": "success"}]
    assert demo.algo_pieces("grpo", webshop.parse([]))["reward_shaping"] == []
    both = webshop.parse(["--rl-reward", "success+env"])
    assert demo.algo_pieces("grpo", both)["reward_shaping"] == [{"name": "success", "env_weight": 1.0}]
    # the outcome comes before every other shaper, HC-GRPO's included
    hc = demo.algo_pieces("hc_grpo", both)["reward_shaping"]
    assert hc[0] == {"name": "success", "env_weight": 1.0} and hc[1]["name"] == "hc_grpo"
    with pytest.raises(ConfigError, match="--rl-reward 'score'"):
        demo.algo_pieces("grpo", webshop.parse(["--rl-reward", "score"]))
