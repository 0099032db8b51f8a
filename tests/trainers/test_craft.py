"""CRAFT-GUI difficulty curriculum on 4 tasks with known successes; Knapsack-RL group sizes in a run; both together."""

from __future__ import annotations

import json

import pytest

from turngym.errors import ConfigError
from turngym.trainers.curricula import (
    CraftCurriculum,
    KnapsackRollouts,
    TaskSuccess,
    WeightedTaskStream,
    craft_bucket,
    craft_shares,
    craft_weights,
)
from turngym.trainers.strategies import RolloutStrategy

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py


def ep(task, group, ok):
    from turngym.agents.trajectory import TokenEpisode

    return TokenEpisode(
        input_ids=[1, 2],
        policy_mask=[0, 1],
        logprobs=[0.0, -1.0],
        turn_index=[-1, 0],
        rewards=[1.0 if ok else 0.0],
        obs_keys=[""],
        infos=[{"success": ok}],
        task_id=task,
        group=group,
    )


def four_tasks() -> TaskSuccess:
    # groups of 4: a 0/4, b 1/4, c 3/4, d 4/4 successes -> p = 0, 0.25, 0.75, 1.0
    s = TaskSuccess()
    wins = {"a": 0, "b": 1, "c": 3, "d": 4}
    s.observe([ep(t, g, k < wins[t]) for g, t in enumerate("abcd") for k in range(4)])
    return s


def test_buckets_weights_and_shares_of_four_tasks_by_hand():
    rates = four_tasks().get(["a", "b", "c", "d", "e"])
    assert rates == [0.0, 0.25, 0.75, 1.0, None]
    # thresholds 0.2 / 0.8: 0 < 0.2 hard; 0.25 and 0.75 learnable; 1.0 > 0.8 easy; e never measured
    assert [craft_bucket(p) for p in rates] == ["hard", "learnable", "learnable", "easy", "unmeasured"]
    assert craft_bucket(0.2) == "learnable" and craft_bucket(0.8) == "learnable"  # the edges are learnable
    # weights 0.1 / 1 / 1 / 0.1 -> sampling probabilities w / 2.2 = 0.04545, 0.4545, 0.4545, 0.04545
    w = craft_weights(rates[:4])
    assert w == [0.1, 1.0, 1.0, 0.1]
    assert [x / sum(w) for x in w] == pytest.approx([0.04545, 0.45455, 0.45455, 0.04545], abs=1e-5)
    assert craft_shares(rates[:4]) == {"easy": 0.25, "learnable": 0.5, "hard": 0.25, "unmeasured": 0.0}
    assert craft_shares(rates) == {"easy": 0.2, "learnable": 0.4, "hard": 0.2, "unmeasured": 0.2}
    # stricter thresholds 0.3 / 0.7: b (0.25) becomes hard, c (0.75) easy
    assert craft_weights(rates[:4], 0.3, 0.7, easy_weight=0.5, hard_weight=0.0) == [0.0, 0.0, 0.5, 0.5]


def test_task_success_keeps_the_latest_group_and_round_trips():
    s = four_tasks()
    s.observe([ep("a", 0, True), ep("a", 0, False)])  # a's new group: 1/2 replaces 0/4
    assert s.get(["a"]) == [0.5]
    t = TaskSuccess()
    t.load_state_dict(s.state_dict())
    assert t.rates == s.rates


def test_weighted_stream_draws_in_proportion_and_resumes():
    s = four_tasks()
    ids = ["a", "b", "c", "d"]
    stream = WeightedTaskStream(ids, seed=3, weight_fn=lambda i: craft_weights(s.get(i)))
    draws = [t for _ in range(3000) for t in stream.take(1)]
    freq = {t: draws.count(t) / len(draws) for t in ids}
    assert freq == pytest.approx({"a": 0.04545, "b": 0.45455, "c": 0.45455, "d": 0.04545}, abs=0.02)
    two = stream.take(2)
    assert len(set(two)) == 2  # no repeats within a draw while enough tasks have weight
    again = WeightedTaskStream(ids, seed=3, weight_fn=stream.weight_fn)
    again.position = 3000
    assert again.take(2) == two  # a resumed stream continues the same sequence
    assert len(WeightedTaskStream(["a"], 0, lambda i: [0.0]).take(3)) == 3  # all weights 0: uniform, repeats


class FakeStrategy(RolloutStrategy):
    def __init__(self):
        super().__init__(engine=None, model=None, cfg=None)
        self.calls = []

    def collect(self, task_ids, group_size, seed, split, options):
        self.calls.append((list(task_ids), group_size, seed))
        return [ep(t, g, False) for g, t in enumerate(task_ids) for _ in range(group_size)]


def test_knapsack_sizes_groups_by_hand():
    # p(a) = 0.5 (measured 2/4), p(b) = 0 (0/4); budget 2 tasks x 4 = 8, min_n 2: b gains nothing from more rollouts
    # (1 - 0^n - 1^n = 0), a gains 0.25, 0.125, 0.0625, ... per extra rollout -> a gets the 6 rollouts left after b's 2
    ks = KnapsackRollouts(min_n=2, max_n=32)
    ks.success.observe([ep("a", 0, k < 2) for k in range(4)] + [ep("b", 1, False) for _ in range(4)])
    inner = FakeStrategy()
    trainer = type("T", (), {"strategy": inner})()
    ks.on_train_begin(trainer)
    eps = trainer.strategy.collect(["a", "b", "c"], 4, 100, None, {})
    # c never measured: prior 0.5 like a. Budget 12: a and c 2 each + b 2; 6 extra: a 2->3 (0.25), c 2->3 (0.25),
    # a 3->4 (0.125), c 3->4, a 4->5 (0.0625), c 4->5 -> a 5, b 2, c 5
    assert ks.sizes == [5, 2, 5]
    assert inner.calls == [(["b"], 2, 100), (["a", "c"], 5, 100 + 7919)]
    assert sorted({(e.task_id, e.group) for e in eps}) == [("a", 0), ("b", 1), ("c", 2)]
    metrics: dict = {}
    ks.on_step_end(trainer, metrics)
    assert metrics == {"knapsack_rollouts": 12.0, "knapsack_max_n": 5.0}
    with pytest.raises(ConfigError, match="min_n"):
        KnapsackRollouts(min_n=3, max_n=2)


def test_craft_config_fields_are_validated():
    from turngym.trainers.config import GRPOConfig

    with pytest.raises(ConfigError, match="'craft_hard_below'"):
        GRPOConfig(craft_hard_below=-0.1)
    with pytest.raises(ConfigError, match="'craft_easy_above'"):
        GRPOConfig(craft_easy_above=1.5)
    with pytest.raises(ConfigError, match="must be below"):
        GRPOConfig(craft_hard_below=0.6, craft_easy_above=0.5)
    with pytest.raises(ConfigError, match="'craft_easy_weight'"):
        GRPOConfig(craft_easy_weight=-1)


def run(tmp_path, callbacks, steps=6):
    pytest.importorskip("transformers")
    from tests.trainers.bandit import VOCAB, BanditEngine, tiny_model
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    class Recording(BanditEngine):
        def collect(self, task_ids, group_size, seed, split=None, options=None):
            self.sizes = [*getattr(self, "sizes", []), *([group_size] * len(task_ids))]
            return super().collect(task_ids, group_size, seed, split, options)

    model = tiny_model()
    # task 0 always succeeds (too easy), task 1 never (too hard), tasks 2 and 3 about half the time (learnable)
    half = set(range(VOCAB // 2))
    eng = Recording(model, {"0": set(range(VOCAB)), "1": set(), "2": half, "3": half}, n_tokens=1)
    cfg = GRPOConfig(
        env_id="bandit",
        task_ids=["0", "1", "2", "3"],
        steps=steps,
        tasks_per_step=2,
        group_size=4,
        mini_batch_size=8,
        micro_batch_size=8,
        max_new_tokens=1,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
        callbacks=callbacks,
    )
    trainer = GRPOTrainer(model, config=cfg, engine=eng)
    trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return trainer, eng, rows


def test_craft_in_a_real_grpo_run_leans_to_learnable_tasks(tmp_path):
    trainer, eng, rows = run(tmp_path, [{"name": "craft_gui"}], steps=8)
    assert isinstance(trainer.callbacks[0], CraftCurriculum)
    for r in rows:  # bucket shares logged every step, summing to 1
        assert sum(r[f"craft_{b}"] for b in ("easy", "learnable", "hard", "unmeasured")) == pytest.approx(1.0)
    assert rows[0]["craft_unmeasured"] == 1.0  # nothing measured before the first step
    cb = trainer.callbacks[0]
    assert cb.success.get(["0", "1"]) == [1.0, 0.0]  # easy and hard measured as such
    # after every task was measured, the draws lean to tasks 2 and 3 (weight 1 vs 0.1)
    later = [t for call in eng.calls[4:] for t in call]
    assert sum(t in ("2", "3") for t in later) > 2 * sum(t in ("0", "1") for t in later), eng.calls
    assert all(r["craft_drawn_learnable"] >= 0.5 for r in rows[4:])


def test_craft_and_knapsack_together_in_a_real_grpo_run(tmp_path):
    trainer, eng, rows = run(tmp_path, [{"name": "craft_gui"}, {"name": "knapsack_rl", "max_n": 6}], steps=8)
    ks = trainer.callbacks[1]
    assert isinstance(ks, KnapsackRollouts) and isinstance(trainer.callbacks[0], CraftCurriculum)
    assert all(r["knapsack_rollouts"] <= 8 for r in rows)  # the budget: 2 tasks x 4
    assert set(eng.sizes) - {4} and all(2 <= n <= 6 for n in eng.sizes)  # Knapsack resized groups
    # both trackers saw the same groups; task 0 (always solved) and task 1 (never) get min_n = 2 whenever drawn
    # after their first measurement (a p of 0 or 1 gains nothing from more rollouts)
    assert trainer.callbacks[0].success.rates == ks.success.rates
    sized = list(zip((t for c in eng.calls for t in c), eng.sizes))
    seen: set[str] = set()
    for t, n in sized:
        if t in seen and t in ("0", "1"):
            assert n == 2, sized
        seen.add(t)
    assert any(t in ("0", "1") for t, _ in sized[4:]), sized  # the check above was exercised
    assert all("craft_learnable" in r for r in rows)
