"""The wasteful expert (`experts.WastefulPolicy`, `scripted:wasteful`): the expert's success at over twice its cost,
its waste seeded per episode and skippable (the expert's own episode is the all-coins-down case)."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import pytest

from turngym.agents.base import ExpertAgent, make_agent
from turngym.agents.rollout import run_episodes
from turngym.envs.embodied.env import EmbodiedSearchEnv
from turngym.envs.embodied.experts import WastefulPolicy, expert_action
from turngym.experiments.demo import ENV_ID, derived_pack


@pytest.fixture(scope="module")
def easy_pack(tmp_path_factory) -> str:
    """40 generated easy train tasks (fresh memories), as the HC-GRPO comparison uses them."""
    return str(derived_pack(Path(tmp_path_factory.mktemp("pack")), ["easy"], 40, 0, 0.0).resolve())


def episodes(spec: str, pack: str, n: int = 30, seed: int = 0, max_turns: int = 7):
    kw = {"image": False, "task_pack": pack}
    return run_episodes(
        ENV_ID,
        make_agent(spec) if spec != "expert" else ExpertAgent(),
        episodes=n,
        seed=seed,
        split="train",
        env_kwargs=kw,
        options={"max_turns": max_turns},
    )


def cost(ep) -> float:
    return sum(sum(s.info.get("cost", {}).values()) for s in ep.steps)


def test_wasteful_succeeds_like_the_expert_at_over_twice_its_cost(easy_pack):
    expert, wasteful = episodes("expert", easy_pack), episodes("scripted:wasteful", easy_pack)
    assert [e.task_id for e in expert] == [e.task_id for e in wasteful]  # the same 30 tasks
    assert all(e.success for e in expert) and all(e.success for e in wasteful)
    assert mean(map(cost, wasteful)) >= 2 * mean(map(cost, expert))
    # the pipeline's --max-turns 7 leaves room for all the waste
    assert max(len(e.steps) for e in wasteful) <= 7
    # each piece of waste occurs, and so does the expert's cheap path at each decision
    first = [e.steps[0].action for e in wasteful]
    assert 0 < sum(a.startswith("ask(Which") for a in first) < 30
    last_but_one = [e.steps[-2].action for e in wasteful]
    assert 0 < sum(a.startswith("ask(Is it the") for a in last_but_one) < 30
    detours = [sum(s.action.startswith("navigate(") for s in e.steps) for e in wasteful]
    assert set(detours) == {1, 2}


def test_wasteful_is_deterministic_per_seed_and_varies_with_it(easy_pack):
    a = [[s.action for s in e.steps] for e in episodes("scripted:wasteful", easy_pack, n=12, seed=3)]
    b = [[s.action for s in e.steps] for e in episodes("scripted:wasteful", easy_pack, n=12, seed=3)]
    c = [[s.action for s in e.steps] for e in episodes("scripted:wasteful", easy_pack, n=12, seed=4)]
    assert a == b and a != c


def play(env: EmbodiedSearchEnv, policy: WastefulPolicy, seed: int) -> tuple[list[str], dict, bool]:
    env.reset(seed=seed)
    policy.reset(env, env.episode_seed)
    actions, done, info = [], False, {}
    while not done:
        actions.append(policy.act(env))
        _, _, term, trunc, info = env.step(actions[-1])
        done = term or trunc
    return actions, env._total_cost, bool(info.get("success"))


def test_all_coins_down_is_the_expert_and_all_up_adds_every_waste(easy_pack):
    env = EmbodiedSearchEnv(task_pack=easy_pack, split="train", image=False, max_turns=7)
    for seed in range(5):
        none, c0, ok0 = play(env, WastefulPolicy(0.0, 0.0, 0.0), seed)
        env.reset(seed=seed)
        exp = []
        while True:
            exp.append(expert_action(env))
            _, _, term, trunc, _ = env.step(exp[-1])
            if term or trunc:
                break
        assert none == exp and ok0
        full, c1, ok1 = play(env, WastefulPolicy(1.0, 1.0, 1.0), seed)
        t = env.target
        assert ok1 and full[0] == f"ask(Which {t.type} do you mean? What colour is it?)"
        assert full[-2] == f"ask(Is it the {t.name}?)" and full[-1] == f"done({t.name})"
        # the detour: the first listed start-room receptacle holding nothing of the requested type, not opened
        decoy = full[2][len("navigate(") : -1]
        assert full[1].startswith("get_memory(") and decoy != env.where[t.name]
        assert all(not o.endswith(f" {t.type}") for o, r in env.where.items() if r == decoy)
        assert env.house.places[decoy].room == 0
        # waste is priced by the env: two asks (0.1 + 0.15) and the detour's extra metres (none when the decoy
        # lies on a shortest path to the object)
        assert c1["ask"] == pytest.approx(0.25) and c1["navigate"] >= c0["navigate"]
        assert sum(c1.values()) >= sum(c0.values()) + 0.25 - 1e-9


def test_scripted_wasteful_agent_calls_the_envs_method(easy_pack):
    env = EmbodiedSearchEnv(task_pack=easy_pack, split="train", image=False)
    env.reset(seed=1)
    assert env.wasteful_action() == env.wasteful_action()  # one policy per episode, not a fresh coin per call
    policy = WastefulPolicy()
    policy.reset(env, env.episode_seed)
    assert policy.act(env) == env.wasteful_action()
