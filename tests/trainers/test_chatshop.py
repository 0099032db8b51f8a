"""ChatShopBuddy (trainers/chatshop.py): the offline rubric, the gated HRM reward on hand-made episodes (gate closed vs
open), DCPO's selection, and real `turngym/ShopAssistant-v0` episodes and GRPO steps."""

import math

import pytest
import torch

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.chatshop import (
    DCPOSelection,
    ModelJudge,
    chatshopbuddy,
    dcpo_select,
    final_message,
    make_chatshopbuddy,
    rubric_checks,
    rubric_score,
)
from turngym.trainers.config import GRPOConfig, load_config
from turngym.trainers.hooks import HookContext

ID = "turngym/ShopAssistant-v0"
CUSTOMER = "Customer: Hi! I'm looking for wellies."
PITCH = "These red wellies are waterproof and within your $40 budget. Action: recommend[B0X, color: red]"


def shop_ep(success: bool, asks: int, tools: int, final: str, group=0, tokens: int = 1) -> TokenEpisode:
    """A ShopAssistant-like episode: `asks` questions, then `tools` search/view steps, then the final message."""
    infos, msgs = [], [{"role": "user", "content": CUSTOMER}]
    calls = 0
    for _ in range(asks):
        infos.append({"cost": {"turn": 0.01, "question": 0.05}, "tool_calls": calls})
        msgs += [
            {"role": "assistant", "content": "ask[Which color?]"},
            {"role": "user", "content": "Customer: red."},
        ]
    for _ in range(tools):
        calls += 1
        infos.append({"cost": {"turn": 0.01}, "tool_calls": calls})
        msgs += [
            {"role": "assistant", "content": "search[wellies]"},
            {"role": "user", "content": "Results ..."},
        ]
    infos.append({"cost": {"turn": 0.01}, "tool_calls": calls, "success": success, "score": float(success)})
    msgs.append({"role": "assistant", "content": final})
    n = len(infos)
    ids = [1] + [5] * (n * tokens)
    return TokenEpisode(
        input_ids=ids,
        policy_mask=[0] + [1] * (n * tokens),
        logprobs=[0.0] * len(ids),
        turn_index=[-1] + [t for t in range(n) for _ in range(tokens)],
        rewards=[-0.01] * (n - 1) + [1.0 if success else -0.01],
        obs_keys=[""] * n,
        infos=infos,
        task_id="t",
        group=group,
        meta={"messages": msgs},
    )


def test_rubric_on_hand_made_messages():
    said = "Customer: I'd like color red, please. I'd like to spend at most $40."
    assert rubric_checks(PITCH, said) == {"explains": True, "grounded": True, "concise": True}
    assert rubric_score("recommend[B0X, color: red]", said) == pytest.approx(1 / 3)  # concise only
    # prose that does not use anything the customer said: explains and concise, not grounded
    generic = "This one is a great pick for anybody. Action: recommend[B0X]"
    assert rubric_score(generic, said) == pytest.approx(2 / 3)
    assert rubric_checks("word " * 80, said)["concise"] is False  # 400 chars > 300
    assert final_message(shop_ep(True, 0, 0, "<think>hmm</think> " + PITCH)) == PITCH


def test_gated_reward_hand_computed():
    a = shop_ep(True, asks=1, tools=2, final=PITCH)  # m = 3, q = 1 (explains, grounded: "wellies")
    b = shop_ep(True, asks=3, tools=2, final="recommend[B0X, color: red]")  # m = 5, q = 1/3
    c = shop_ep(False, asks=0, tools=2, final=PITCH)  # m = 2, wrong product: the gate is closed
    judged = []

    def judge(message, ep):
        judged.append(message)
        return rubric_score(message, CUSTOMER)

    rewards, terms = chatshopbuddy([a, b, c], judge=judge)
    # n = fewest calls among correct = 3; e = sin(f(m, 3) pi / 6) with f = 2*3*m / (m + 3)
    e_b, e_c = math.sin(3.75 * math.pi / 6), math.sin(2.4 * math.pi / 6)
    assert [t["e"] for t in terms] == pytest.approx([1.0, e_b, e_c])
    assert [t["q"] for t in terms] == pytest.approx([1.0, 1 / 3, 0.0])
    assert [r[-1] for r in rewards] == pytest.approx([2.0, 1 + 0.5 / 3 + 0.5 * e_b, 0.0])
    assert all(sum(r) == r[-1] for r in rewards) and len(rewards[1]) == 6
    assert len(judged) == 2  # the judge never sees the wrong product's message
    # process reward outside the gate: the wrong episode earns w_e * e, nothing for its persuasive message
    rewards, _ = chatshopbuddy([a, b, c], gate_process=False)
    assert [r[-1] for r in rewards] == pytest.approx([2.0, 1 + 0.5 / 3 + 0.5 * e_b, 0.5 * e_c])
    # no correct episode in the group: every reward 0 (gated), or w_e * 1 without the gate
    assert [r[-1] for r in chatshopbuddy([c, c])[0]] == [0.0, 0.0]
    assert [r[-1] for r in chatshopbuddy([c], gate_process=False, w_e=0.4)[0]] == pytest.approx([0.4])


def test_shaper_factory_logs_terms_and_takes_a_judge():
    ctx = HookContext(step=3, config=None)
    shaper = make_chatshopbuddy(judge=lambda m, ep: 0.5, w_q=1.0, w_e=0.0)
    out = shaper([shop_ep(True, 0, 1, "x"), shop_ep(False, 0, 1, "x")], ctx)
    assert [r[-1] for r in out] == [1.5, 0.0]
    assert ctx.extra == {"hrm_gate_open": 0.5, "hrm_quality": 0.5, "hrm_efficiency": 1.0}
    shaper = make_chatshopbuddy(judge="turngym.trainers.chatshop:rubric_score")  # importable for YAML
    with pytest.raises(ConfigError):
        make_chatshopbuddy(judge="no_such_module:f")
    with pytest.raises(ConfigError):
        make_chatshopbuddy(w_q=-1)
    # a model judge: the first number of the reply / 10; no number falls back to the rubric
    assert ModelJudge(lambda p: "Score: 7")(PITCH, shop_ep(True, 0, 0, PITCH)) == 0.7
    assert ModelJudge(lambda p: "great")(PITCH, shop_ep(True, 0, 0, PITCH)) == 1.0
    cfg = load_config(
        GRPOConfig,
        None,
        [
            "reward_shaping=[{name: chatshopbuddy, w_q: 0.25, gate_process: false}]",
            "callbacks=[{name: dcpo, keep: 1}]",
        ],
    )
    assert cfg.reward_shaping == [{"name": "chatshopbuddy", "w_q": 0.25, "gate_process": False}]
    assert cfg.callbacks == [{"name": "dcpo", "keep": 1}]


def test_dcpo_selects_by_reward_then_reasoning_length():
    # one group: rewards 2, 2, 1, 0, 0 with 10, 4, 6, 3, 8 policy tokens; advantages R - mean = 1, 1, 0, -1, -1
    spec = [(True, 10, 2.0), (True, 4, 2.0), (True, 6, 1.0), (False, 3, 0.0), (False, 8, 0.0)]
    group = []
    for ok, n, r in spec:
        e = shop_ep(ok, 0, 0, "x", tokens=n)
        e.rewards = [r]
        group.append(e)
    items = [(e, torch.tensor([r - 1.0])) for e, (_, _, r) in zip(group, spec)]
    pick = lambda keep: [items.index(x) for x in dcpo_select(items, keep)]  # noqa: E731
    assert pick(1) == [1, 4]  # the shorter of the best, the longer of the worst
    assert pick(2) == [0, 1, 3, 4]  # the zero-advantage middle one is dropped
    # an all-equal group: nothing to contrast
    other = [(shop_ep(True, 0, 0, "x", group=1), torch.tensor([0.0]))] * 2
    assert [items.index(x) for x in dcpo_select(items + other, 1)] == [1, 4]
    cb = DCPOSelection(keep=1)
    assert len(cb.on_batch(None, items)) == 2
    assert cb.last == {
        "dcpo_kept": 2.0,
        "dcpo_dropped": 3.0,
        "dcpo_len_kept_pos": 4.0,
        "dcpo_len_kept_neg": 8.0,
    }
    with pytest.raises(ConfigError):
        DCPOSelection(keep=0)


@pytest.fixture(scope="module")
def expert_token_episodes():
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.base import ExpertAgent
    from turngym.agents.rollout import run_episodes
    from turngym.trainers.sft import expert_token_episode

    policy = tiny_policy(seed=0, hidden=32, layers=1, max_new_tokens=8)
    eps = run_episodes(ID, ExpertAgent(), episodes=3, split="train", num_envs=1)
    return [expert_token_episode(policy, e) for e in eps]


def test_real_shop_assistant_episodes(expert_token_episodes):
    """The expert's real episodes: accepted products open the gate; the reward is rebuilt from the env's infos."""
    group = expert_token_episodes
    assert any(e.success for e in group)
    rewards, terms = chatshopbuddy(group)
    for e, r, t in zip(group, rewards, terms):
        asks = sum("question" in i["cost"] for i in e.infos)
        assert t["m"] == asks + e.infos[-1]["tool_calls"]
        assert t["c"] == float(e.success)
        # the expert's bare recommend[...] passes only the conciseness check
        assert t["q"] == (pytest.approx(1 / 3) if e.success else 0.0)
        assert r[-1] == pytest.approx(t["c"] * (1 + 0.5 * t["q"] + 0.5 * t["e"]))
    best = min(t["m"] for t in terms if t["c"])
    assert all(t["e"] == 1.0 for t in terms if t["m"] == best)


@pytest.mark.slow
def test_grpo_steps_on_shop_assistant(tmp_path, one_thread):
    """Real GRPO steps on ShopAssistant-v0 (tiny policy, real rollout engine) with the HRM shaper and DCPO."""
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.engine import RolloutEngine
    from turngym.trainers.grpo import GRPOTrainer

    policy = tiny_policy(seed=0, hidden=32, layers=1, max_new_tokens=6)
    engine = RolloutEngine(policy, ID, num_envs=4, max_turns=2)
    cfg = GRPOConfig(
        env_id=ID,
        steps=2,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=6,
        max_turns=2,
        mini_batch_size=4,
        micro_batch_size=4,
        reward_shaping=[{"name": "chatshopbuddy"}],
        callbacks=[{"name": "dcpo", "keep": 1}],
        output_dir=str(tmp_path / "rl"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    try:
        trainer = GRPOTrainer(policy, config=cfg, engine=engine)
        recs = trainer.train()
    finally:
        engine.close()
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        # an untrained policy never sells the right product: every gate closed, every shaped reward 0
        assert r["hrm_gate_open"] == 0.0 and r["reward"] == 0.0 and r["env_reward"] < 0
        assert r["degenerate_groups"] == 2 and r["dcpo_kept"] == 0 and r["batch_samples"] == 0
