import pytest

from turngym.agents.base import make_agent
from turngym.agents.evaluate import evaluate, wilson_interval
from turngym.agents.trajectory import read_episodes
from turngym.errors import UnknownNameError


def test_wilson_interval_hand_computed():
    # p = 0.5, n = 10: centre 0.5, half = 1.96*sqrt(0.025 + 0.009604)/1.38416 = 0.2659...
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 0.0)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)


def test_evaluate_random_vs_expert(lock_id, tmp_path):
    exp = evaluate(lock_id, "expert", episodes=6, seed=3)
    rnd = evaluate(lock_id, "random:1", episodes=6, seed=3, max_turns=5, out=tmp_path)
    assert exp.summary["success_rate"] == 1.0
    assert rnd.summary["success_rate"] < 1.0 and rnd.summary["mean_turns"] <= 5
    # tasks drawn without replacement: 6 episodes cover the 6 train tasks
    assert sorted(e.task_id for e in exp.episodes) == [f"train-{i}" for i in range(6)]
    back = read_episodes(tmp_path)
    assert [e.to_json() for e in back] == [e.to_json() for e in rnd.episodes]
    assert rnd.summary["mean_cost"]["tries"] > 0


def test_evaluation_is_reproducible(lock_id):
    a = evaluate(lock_id, "random:7", episodes=3, seed=11, max_turns=6)
    b = evaluate(lock_id, "random:7", episodes=3, seed=11, max_turns=6)
    assert [e.to_json() for e in a.episodes] == [e.to_json() for e in b.episodes]


def test_unknown_agent():
    with pytest.raises(UnknownNameError, match="unknown agent 'nope'; known agents"):
        make_agent("nope")


def test_scripted_agent_runs_env_policies():
    """`scripted:NAME` plays `env.unwrapped.NAME_action()`: the embodied family's never-ask baseline and oracle."""
    base = evaluate(
        "turngym/EmbodiedSearch-v0",
        "scripted:baseline",
        episodes=4,
        split="test",
        env_kwargs={"image": False},
    )
    oracle = evaluate(
        "turngym/EmbodiedSearch-v0", "scripted:oracle", episodes=4, split="test", env_kwargs={"image": False}
    )
    assert oracle.summary["success_rate"] == 1.0
    assert base.summary["mean_turns"] >= 1 and base.summary["invalid_action_rate"] == 0.0
    with pytest.raises(UnknownNameError, match="has no scripted policy nope_action"):
        evaluate("turngym/EmbodiedSearch-v0", "scripted:nope", episodes=1)


def test_greedy_episodes_are_the_same_every_time_and_logged(lock_id, tmp_path):
    import json

    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.evaluate import greedy_episodes

    policy = tiny_policy(seed=0, hidden=32, layers=1, max_new_tokens=4, temperature=1.0)
    ids = ["test-0", "test-1", "test-2"]
    log = tmp_path / "eval.jsonl"
    runs = [
        greedy_episodes(policy, lock_id, ids, split="test", seed=s, max_turns=2, num_envs=2, log_to=log)
        for s in (0, 5)
    ]
    assert policy.temperature == 1.0  # restored after the call
    acts = [[[st.action for st in e.episode.steps] for e in eps] for eps in runs]
    assert [e.task_id for e in runs[0]] == ids and acts[0] == acts[1]  # greedy: the seed does not matter
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ids * 2 and [r["actions"] for r in rows[:3]] == acts[0]
    assert all(r["success"] is False for r in rows) and all(len(a) == 2 for a in acts[0])
