"""The ShopAssistant learning experiment's non-training parts: options, splits, expert data, one id per ASIN."""

from __future__ import annotations

import pytest

from turngym.errors import ConfigError
from turngym.experiments import demo, shopassistant


def test_options_are_the_demos_without_the_embodied_ones():
    a = shopassistant.parse(["--rl-steps", "3", "--freeze-embeddings"])
    assert isinstance(a, demo.DemoConfig) and a.rl_steps == 3 and a.freeze_embeddings
    assert a.rl_lam is None  # the env's reward carries its costs: no `lam` goes to ShopAssistant-v0
    for embodied_only in ("--difficulty", "--staleness", "--train-tasks", "--rl-lam"):
        with pytest.raises(SystemExit):
            shopassistant.parse([embodied_only, "1"])
    assert demo.parse(["--staleness", "0.3"]).staleness == 0.3  # the demo keeps them


def test_catalog_words_and_a_bad_pack(tmp_path):
    words = shopassistant.catalog_words().split()
    assert len(words) == len(set(words)) == 10_000 and all(len(w) == 10 for w in words)
    with pytest.raises(ConfigError, match="no manifest.json"):
        shopassistant.catalog_words(tmp_path)


def test_build_expert_data_splits_and_asin_ids(tmp_path):
    a = shopassistant.ShopConfig(out=str(tmp_path), expert_episodes=4, hidden=16, layers=1)
    pack, env_kwargs, experts, policy = shopassistant.build(a)
    assert len(experts) == 4 and all(e.success for e in experts)
    train = set(demo.split_ids(pack, "train"))
    held_out = demo.split_ids(pack, "test")
    assert len(held_out) == 100 and not train & set(held_out)
    assert {e.task_id for e in experts} <= train
    tok = policy.tokenizer
    rec = next(s.action for e in experts for s in e.steps if s.action.startswith("recommend["))
    asin = rec[len("recommend[") :].split(",")[0].rstrip("]")
    ids = tok.encode(asin, add_special_tokens=False)
    assert len(ids) == 1  # one id for the product: recommending is copying one id from the results
    shown = next(s.observation for e in experts for s in e.steps if f"[{asin}]" in s.observation)
    assert ids[0] in tok.encode(shown, add_special_tokens=False)
    with pytest.raises(ConfigError, match="tokenizer"):
        shopassistant.build(shopassistant.ShopConfig(out=str(tmp_path), tokenizer="char"))


def test_replay_stats_says_where_recommendations_fail():
    expert = shopassistant.expert_episodes_on_test(3)
    st = shopassistant.replay_stats(expert)
    assert st["episodes"] == 3 and st["success"] == 1.0 and st["recommended_asin_on_screen"] == 1.0
    assert st["verdicts"]["accepted"] == 3
    task = expert[0][0]
    bad = [(task, ["recommend[B000000000, color: red]", "search[zzz]", "end"])]
    st = shopassistant.replay_stats(bad)
    assert st["success"] == 0.0 and st["verdicts"]["invalid"] == 1 and st["searches_per_episode"] == 1.0
    assert st["recommended_asin_on_screen"] == 0.0 and st["recommended_first_result"] == 0.0
    with pytest.raises(ConfigError, match="no episodes"):
        shopassistant.replay_stats([])
