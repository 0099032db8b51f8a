"""Cost-aware reward shapers (HC-GRPO, OTC) on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.rewards import (
    episode_costs,
    episode_metrics,
    group_metrics,
    hc_grpo,
    hc_reward,
    invalid_action_penalty,
    make_hc_grpo,
    make_invalid_penalty,
    make_otc,
    otc,
    otc_f,
    otc_tool_reward,
)


def ep(
    costs: list[dict[str, float]], success: bool, tool_calls: int = 0, group: int = 0, task="t"
) -> TokenEpisode:
    """An episode with one turn per cost dict; tool_calls is the episode total (as the env reports it)."""
    n = len(costs)
    infos = [
        {
            "cost": c,
            "success": success and i == n - 1,
            "tool_calls": tool_calls if i == n - 1 else 0,
            "score": 0.5,
        }
        for i, c in enumerate(costs)
    ]
    return TokenEpisode(
        input_ids=[1, 2, 3],
        policy_mask=[0, 1, 1],
        logprobs=[0.0, -1.0, -1.0],
        turn_index=[-1, 0, 0],
        rewards=[0.0] * (n - 1) + [1.0 if success else 0.0],
        obs_keys=["k"] * n,
        infos=infos,
        task_id=task,
        group=group,
    )


def test_hc_reward_hand_computed():
    # R = 1 - 1.0 * (2*0.1 + 1*0.3) = 0.5
    assert hc_reward(1.0, {"nav": 0.1, "ask": 0.3}, lam=1.0, weights={"nav": 2.0}) == pytest.approx(0.5)
    # lam = 0.5, default weight 1: R = 0 - 0.5 * 0.4 = -0.2
    assert hc_reward(0.0, {"nav": 0.1, "ask": 0.3}, lam=0.5) == pytest.approx(-0.2)


def test_hc_grpo_sums_step_costs_and_puts_reward_on_last_turn():
    g = [
        ep([{"nav": 0.2}, {"nav": 0.3, "ask": 0.1}], success=True),  # costs nav 0.5, ask 0.1
        ep([{"ask": 0.4}], success=False),
    ]
    assert episode_costs(g[0]) == pytest.approx({"nav": 0.5, "ask": 0.1})
    out = hc_grpo(g, lam=2.0, weights={"ask": 3.0})
    # ep0: 1 - 2*(0.5 + 3*0.1) = -0.6 ; ep1: 0 - 2*(3*0.4) = -2.4
    assert out[0] == pytest.approx([0.0, -0.6])
    assert out[1] == pytest.approx([-2.4])
    with pytest.raises(ConfigError, match="lam"):
        hc_grpo(g, lam=-1)
    with pytest.raises(ConfigError, match="base"):
        hc_grpo(g, base="nope")


def test_otc_f_and_tool_reward_hand_computed():
    assert otc_f(4, 0) == 4
    assert otc_f(4, 2) == pytest.approx(16 / 6)
    assert otc_tool_reward(0, 0) == 1.0
    assert otc_tool_reward(1, 0, c=1.0) == pytest.approx(math.cos(math.pi / 3))  # 0.5
    assert otc_tool_reward(1, 0, c=1.0) == pytest.approx(0.5)
    assert otc_tool_reward(4, 2) == pytest.approx(math.sqrt(3) / 2)  # sin(120 deg)
    assert otc_tool_reward(2, 2) == pytest.approx(1.0)  # at the optimum
    assert otc_tool_reward(1, 2) == pytest.approx(math.sin(4 / 3 * math.pi / 4))  # too few calls: < 1
    assert otc_tool_reward(1, 2) < 1.0
    with pytest.raises(ConfigError):
        otc_tool_reward(-1, 0)


def test_otc_group_uses_fewest_calls_among_correct():
    g = [
        ep([{}], success=True, tool_calls=2),
        ep([{}], success=True, tool_calls=4),
        ep([{}], success=False, tool_calls=1),  # fewer calls but wrong: not the optimum, earns 0
    ]
    out = otc(g, alpha=2.0)
    assert out[0] == pytest.approx([2.0])  # m = n = 2
    assert out[1] == pytest.approx([2.0 * math.sqrt(3) / 2])
    assert out[2] == [0.0]
    # no correct episode: nothing to earn
    assert otc([ep([{}], False, 3), ep([{}], False, 0)]) == [[0.0], [0.0]]


def test_factories_validate_config_and_shape():
    g = [ep([{"nav": 0.2}, {"ask": 0.1}], success=True, tool_calls=3)]
    assert make_hc_grpo(lam=1.0, weights={"ask": 2.0})(g, None) == [pytest.approx([0.0, 0.6])]
    assert make_otc(alpha=0.5)(g, None) == [[0.0, 0.5]]  # the only correct episode is the optimum
    with pytest.raises(ConfigError, match="lam"):
        make_hc_grpo(lam=-1)
    with pytest.raises(ConfigError, match="expected one of"):
        make_otc(correct="reward")
    with pytest.raises(ConfigError, match="c must"):
        make_otc(c=0)
    m = episode_metrics(g[0])
    assert m["cost/nav"] == pytest.approx(0.2) and m["cost"] == pytest.approx(0.3) and m["tool_calls"] == 3


def test_invalid_action_penalty_hand_computed():
    e = ep([{}, {}, {}], success=True)  # rewards [0, 0, 1]
    e.infos[0]["invalid_action"] = True
    e.infos[1]["invalid_action"] = False
    assert invalid_action_penalty([e], coef=0.1) == [pytest.approx([-0.1, 0.0, 1.0])]
    shaper = make_invalid_penalty(coef=0.5)
    assert shaper([e], None) == [pytest.approx([-0.5, 0.0, 1.0])]
    with pytest.raises(ConfigError, match="coef"):
        make_invalid_penalty(coef=-1)
    from turngym.trainers import hooks

    assert hooks.REWARD_SHAPERS["invalid_penalty"] is make_invalid_penalty


def test_group_metrics():
    g = [ep([{"nav": 1.0}], True, tool_calls=2), ep([{"ask": 1.0}], False, tool_calls=6)]
    m = group_metrics(g)
    assert m["success"] == 0.5
    assert m["cost/nav"] == 0.5 and m["cost/ask"] == 0.5 and m["cost"] == 1.0
    assert m["tool_calls"] == 4.0
    assert m["tool_calls_per_success"] == 2.0


def from_episode(e) -> TokenEpisode:
    """The turn-level part of a TokenEpisode (all a shaper reads) from a text Episode of a real env."""
    return TokenEpisode(
        input_ids=[],
        policy_mask=[],
        logprobs=[],
        turn_index=[],
        rewards=[s.reward for s in e.steps],
        obs_keys=[s.info.get("obs_key", "") for s in e.steps],
        infos=[s.info for s in e.steps],
        task_id=e.task_id,
    )


def test_hc_grpo_matches_the_embodied_envs_own_return():
    """EmbodiedSearch pays R = success − λ·Σ costs as its return; the shaper, reading only info["cost"] and
    info["success"], must give the same R (weights 1, same λ) on real expert episodes."""
    from turngym.agents.base import ExpertAgent
    from turngym.agents.rollout import run_episodes

    eps = run_episodes(
        "turngym/EmbodiedSearch-v0", ExpertAgent(), episodes=3, seed=0, num_envs=1, env_kwargs={"lam": 0.5}
    )
    group = [from_episode(e) for e in eps]
    shaped = hc_grpo(group, lam=0.5)
    assert any(episode_costs(g) for g in group)  # the episodes did cost something
    for e, r in zip(eps, shaped):
        assert sum(r) == pytest.approx(e.total_reward, abs=1e-9)
    # λ = 0 leaves success only
    assert [sum(r) for r in hc_grpo(group, lam=0.0)] == [float(e.success) for e in eps]


def test_selected_by_name_from_the_trainer_config_and_logged(tmp_path):
    import json
    from types import SimpleNamespace

    from turngym.trainers import hooks

    g = [ep([{"nav": 0.2}], success=True, tool_calls=2), ep([{"nav": 0.6}], success=False, tool_calls=1)]
    ctx = SimpleNamespace(step=3, config=SimpleNamespace(output_dir=str(tmp_path)))
    shaper = hooks.resolve(hooks.REWARD_SHAPERS, {"name": "hc_grpo", "lam": 0.5}, "reward shaper")
    assert shaper(g, ctx) == [pytest.approx([0.9]), pytest.approx([-0.3])]
    otc_shaper = hooks.resolve(hooks.REWARD_SHAPERS, {"name": "otc"}, "reward shaper")
    assert otc_shaper(g, ctx) == [[1.0], [0.0]]
    assert hooks.resolve(hooks.REWARD_SHAPERS, {"name": "zero"}, "reward shaper")(g, ctx) == [[0.0], [0.0]]
    # shapers are pure: they write nothing; each asks the trainer for a group log line (name, file)
    assert not any(tmp_path.iterdir())
    assert shaper.group_log == ("hc_grpo", "rewards.jsonl") and otc_shaper.group_log == (
        "otc",
        "rewards.jsonl",
    )
    no_log = hooks.resolve(hooks.REWARD_SHAPERS, {"name": "otc", "log_file": None}, "reward shaper")
    assert no_log.group_log is None
    from turngym.trainers.rewards import append_row, group_row

    append_row(tmp_path / "rewards.jsonl", group_row(3, "hc_grpo", g, shaper(g, ctx)))
    rows = [json.loads(x) for x in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert rows[0]["shaper"] == "hc_grpo" and rows[0]["episodes"] == 2
    assert rows[0]["step"] == 3 and rows[0]["cost/nav"] == pytest.approx(0.4) and rows[0]["tool_calls"] == 1.5
    assert rows[0]["shaped_reward"] == pytest.approx(0.3)


def test_shapers_run_in_the_trainer_loop_and_log_costs(tmp_path):
    pytest.importorskip("transformers")
    import json

    from tests.trainers.bandit import BanditEngine, tiny_model
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    class Costly(BanditEngine):
        """Each episode costs its first action token / 10 ("fuel") and makes that many tool calls."""

        def collect(self, *a, **kw):
            eps = super().collect(*a, **kw)
            for e in eps:
                tok = e.input_ids[3]
                e.infos = [{**e.infos[0], "cost": {"fuel": tok / 10}, "tool_calls": tok}]
            return eps

    model = tiny_model()
    cfg = GRPOConfig(
        env_id="bandit",
        task_ids=["0"],
        steps=2,
        tasks_per_step=1,
        group_size=4,
        mini_batch_size=4,
        micro_batch_size=4,
        max_new_tokens=2,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
        reward_shaping=[{"name": "hc_grpo", "lam": 1.0}],
    )
    trainer = GRPOTrainer(model, config=cfg, engine=Costly(model, {"0": {4, 5, 6, 7}}))
    groups, stats = trainer.rollout()
    for e in groups[0]:
        assert e.rewards == pytest.approx([float(e.infos[0]["success"]) - e.input_ids[3] / 10])
    assert stats["reward"] == pytest.approx(stats["success"] - sum(e.input_ids[3] for e in groups[0]) / 40)
    row = json.loads((tmp_path / "rewards.jsonl").read_text().splitlines()[0])
    assert row["shaper"] == "hc_grpo" and row["cost/fuel"] == pytest.approx(
        sum(e.input_ids[3] for e in groups[0]) / 40
    )


def test_every_piece_is_selectable_from_cli_overrides():
    """`turngym train key=value ...` goes through load_config; each spec then resolves in the hooks registries."""
    from turngym.trainers import hooks
    from turngym.trainers.config import GRPOConfig, load_config

    cfg = load_config(
        GRPOConfig,
        None,
        [
            'reward_shaping=[{"name": "hc_grpo", "lam": 0.5, "weights": {"ask": 2}}, {"name": "otc"}, {"name": "spa"}, '
            '{"name": "slim", "bank": "skills.json", "every": 5}]',
            'max_turns_schedule={"name": "scaling_inter_rl", "stages": "0:10,50:20,100:30"}',
            'extra_advantages=[{"name": "exopd", "teacher": "hf:/nowhere", "tcod": {"d0": 1, "every": 10}}]',
        ],
    )
    from turngym.trainers.callbacks import Callback

    shapers = [hooks.resolve(hooks.REWARD_SHAPERS, s, "reward shaper") for s in cfg.reward_shaping]
    assert [callable(s) for s in shapers] == [
        True,
        True,
        True,
        False,
    ]  # SLIM changes no reward: a callback only
    assert [isinstance(s, Callback) for s in shapers] == [False, False, True, True]  # SPA: shaper + callback
    assert hooks.resolve(hooks.MAX_TURNS_SCHEDULES, cfg.max_turns_schedule, "schedule")(60) == 20
    extra = hooks.resolve(hooks.EXTRA_ADVANTAGES, cfg.extra_advantages[0], "extra advantage")
    assert callable(extra)  # the teacher loads lazily, at the first call


def test_otc_on_the_real_coding_env_rewards_the_fewest_calls():
    """Coding-v0 counts tool calls in info["tool_calls"]: an agent that runs the tests twice more than the expert
    before following it solves the same task with 2 extra calls and earns the OTC tool reward sin(f(m,n)·π/(2n))."""
    from turngym.agents.base import Agent, ExpertAgent
    from turngym.agents.rollout import run_episodes

    class Dawdler(Agent):
        def act(self, contexts):
            out = []
            for ctx in contexts:
                ctx.state["n"] = ctx.state.get("n", 0) + 1
                extra = ctx.state["n"] <= 2
                out.append("run_tests()" if extra else ctx.env.unwrapped.expert_action())
            return out

    kw = dict(episodes=1, seed=0, num_envs=1, task_ids=["HumanEval/139"])
    expert = run_episodes("turngym/Coding-v0", ExpertAgent(), **kw)[0]
    slow = run_episodes("turngym/Coding-v0", Dawdler(), **kw)[0]
    assert expert.success and slow.success
    group = [from_episode(expert), from_episode(slow)]
    n = expert.steps[-1].info["tool_calls"]
    m = slow.steps[-1].info["tool_calls"]
    assert m == n + 2
    out = otc(group)
    assert out[0][-1] == 1.0
    assert out[1][-1] == pytest.approx(math.sin(otc_f(m, n) * math.pi / (2 * n))) and out[1][-1] < 1.0


def test_trainer_rollout_logs_cost_per_name_next_to_success(tmp_path, one_thread):
    """GRPOTrainer.rollout reports the env's named costs, tool calls and invalid actions per episode (issue 11)."""
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.experiments.demo import ENV_ID, derived_pack
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    pack = derived_pack(tmp_path, ["easy"])
    cfg = GRPOConfig(
        env_id=ENV_ID,
        env_kwargs={"image": False, "task_pack": str(pack)},
        steps=1,
        tasks_per_step=2,
        group_size=2,
        max_turns=2,
        max_new_tokens=4,
        output_dir=str(tmp_path / "rl"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    trainer = GRPOTrainer(tiny_policy(seed=0, hidden=32, layers=1), config=cfg)
    groups, stats = trainer.rollout()
    eps = [e for g in groups for e in g]
    assert len(eps) == 4
    want = group_metrics(eps)
    for name in ("navigate", "ask", "memory"):  # the embodied env's named costs
        assert stats[f"cost/{name}"] == pytest.approx(want[f"cost/{name}"])
    for key in ("cost", "tool_calls", "invalid_actions", "success"):
        assert stats[key] == pytest.approx(want[key])
    # an untrained model writes no valid action: every turn is an invalid action
    assert stats["invalid_actions"] == pytest.approx(2.0)


def test_success_reward_is_one_on_the_last_turn_of_a_success_only():
    from turngym.agents.trajectory import TokenEpisode
    from turngym.trainers import hooks
    from turngym.trainers.rewards import success_reward

    def ep(rewards, success):
        n = len(rewards)
        infos = [{} for _ in range(n - 1)] + [{"success": success, "score": 0.7}]
        return TokenEpisode([1], [0], [0.0], [-1], list(rewards), ["k"] * n, infos, "t")

    group = [ep([0.0, 0.0, 0.6], False), ep([0.0, 1.0], True), ep([-0.1], False)]
    assert success_reward(group) == [[0.0, 0.0, 0.0], [0.0, 1.0], [0.0]]
    shaper = hooks.REWARD_SHAPERS.get_entry("success")()
    assert shaper(group, None) == success_reward(group)
    # with the env's reward added back: a success outranks every near miss, near misses keep their order
    assert success_reward(group, env_weight=1.0) == [[0.0, 0.0, 0.6], [0.0, 2.0], [-0.1]]
    assert hooks.REWARD_SHAPERS.get_entry("success")(env_weight=1.0)(group, None)[1] == [0.0, 2.0]
    with pytest.raises(ConfigError, match="env_weight must be >= 0"):
        success_reward(group, env_weight=-1)
