"""UI-S1 semi-online RL (`rollout_strategy: uis1`): hand-computed rewards, returns, advantages and SOP; the patch
budget on a lock whose expert is known; token invariants of episodes and side samples; a real GRPO step."""

from __future__ import annotations

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.agents.test_engine import RecordingPolicy, check_template, spans  # noqa: E402
from tests.conftest import LockEnv  # noqa: E402
from turngym.agents.backends.tiny import char_tokenizer, tiny_llama  # noqa: E402
from turngym.agents.engine import RolloutEngine  # noqa: E402
from turngym.agents.policy import Generation, TokenPolicyBase  # noqa: E402
from turngym.envs.core import TurnEnv  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402
from turngym.trainers.config import GRPOConfig  # noqa: E402
from turngym.trainers.grpo import GRPOTrainer  # noqa: E402
from turngym.trainers.uis1 import (  # noqa: E402
    UIS1Strategy,
    patch_text,
    same_action,
    sop_scores,
    step_rewards,
    uis1_advantages,
)


# ---- the formulas on small hand-computed numbers ----------------------------------------------------------------
def test_step_rewards_are_format_plus_match():
    assert step_rewards([True, True, False], [True, False, False], 0.1, 0.9) == [1.0, 0.1, 0.0]
    assert step_rewards([True], [True], 0.5, 0.25) == [0.75]


def test_advantages_mix_step_and_episode_levels_by_hand():
    """Three episodes, gamma 0.5, w 0.5. Returns: A [1.5, 1.0], B [0.1, 0.0], C [1.05, 0.1].
    Step group 0:a = {1.5, 0.1, 1.05}: mean 0.88333, std 0.714726 -> A^S = 0.86280, -1.09599, 0.23319.
    Step group 1:b = {A 1.0, C 0.1} -> +-0.70711; B's turn 1 (key 1:c) is alone -> 0.
    Episode sums 2.0, 0.1, 1.1: mean 1.06667, std 0.950438 -> A^E = 0.98200, -1.01709, 0.03507.
    A = A^S + 0.5 A^E."""
    rewards = [torch.tensor([1.0, 1.0]), torch.tensor([0.1, 0.0]), torch.tensor([1.0, 0.1])]
    keys = [["0:a", "1:b"], ["0:a", "1:c"], ["0:a", "1:b"]]
    got = uis1_advantages(rewards, keys, gamma=0.5, omega=0.5, eps=0.0)
    want = [[1.35380, 1.19811], [-1.60454, -0.50855], [0.25073, -0.68957]]
    for g, w in zip(got, want):
        assert g.tolist() == pytest.approx(w, abs=1e-4)
    # w = 0: the step level alone; equal returns in every step group and equal sums: all zero
    flat = uis1_advantages([torch.tensor([0.1, 0.1])] * 2, [["0:a", "1:b"]] * 2, gamma=0.5, omega=0.0)
    assert all(a.abs().max() == 0 for a in flat)


def test_sop_scores_and_action_normalisation():
    assert sop_scores([True, True, False, True], success=False, expert_length=6) == (2 / 6, 0.0)
    assert sop_scores([True, True, True], success=True, expert_length=3) == (1.0, 1.0)
    # an assisted (patched) success is not an SOP success
    assert sop_scores([False], success=True, expert_length=4) == (0.0, 0.0)
    assert same_action(" try 1\n", "try 1")
    assert not same_action("Try 1", "try 1")  # the lock is case-sensitive
    assert not same_action("try  1", "try 1")
    assert patch_text("try 1", "react") == "Action: try 1" and patch_text("try 1", "raw") == "try 1"


def test_config_is_validated_at_construction():
    GRPOConfig(rollout_strategy="uis1", uis1_max_patches=0, uis1_on_budget="continue", uis1_match="state")
    for bad, what in (
        ({"uis1_max_patches": -1}, "uis1_max_patches"),
        ({"uis1_on_budget": "patch"}, "uis1_on_budget"),
        ({"uis1_match": "fuzzy"}, "uis1_match"),
        ({"uis1_gamma": 1.5}, "uis1_gamma"),
        ({"uis1_omega": -1.0}, "uis1_omega"),
        ({"uis1_format_weight": 0.0, "uis1_match_weight": 0.0}, "uis1_format_weight"),
        ({"uis1_online_episodes": -2}, "uis1_online_episodes"),
        ({"advantage": "gigpo"}, "computes its own advantages"),
    ):
        with pytest.raises(ConfigError, match=what):
            GRPOConfig(rollout_strategy="uis1", **bad)


# ---- the patch budget on a lock (code of train-0: 1000; the expert: try 1, try 0, try 0, try 0, open) --------------
class Replies(TokenPolicyBase):
    """A model-free token policy: turn t of an episode replies `replies[min(t, last)]` (+ the end-of-turn id),
    log-prob -0.5 per token; remembers every (prompt, generation)."""

    def __init__(self, replies: list[str]):
        super().__init__(char_tokenizer(), spec="replies", max_new_tokens=12)
        self.replies = replies
        self.record: dict[tuple[int, ...], list[Generation]] = {}

    def generate(self, prompts, **kw):
        out = []
        for p in prompts:
            t = self.chat.decode(p).count("<|im_start|>assistant") - 1
            text = self.replies[min(t, len(self.replies) - 1)]
            ids = [*self.chat.encode(text), self.chat.end_ids[0]]
            g = Generation(ids, [-0.5] * len(ids), text, "stop")
            self.record.setdefault(tuple(p), []).append(g)
            out.append(g)
        return out

    def load_weights(self, model_or_state):
        pass


class AliasLock(LockEnv):
    """The lock where `press D` does what `try D` does (another wording, the same state)."""

    def _act(self, action):
        a = action.strip()
        return super()._act("try " + a[6:] if a.startswith("press ") else a)


def collect(env_id, replies, max_turns=5, **fields):
    policy = Replies(replies)
    cfg = GRPOConfig(rollout_strategy="uis1", uis1_online_episodes=0, **fields)
    with RolloutEngine(policy, env_id, num_envs=2, max_turns=max_turns) as eng:
        eps = UIS1Strategy(eng, None, cfg).collect(["train-0"], 2, 0, "train", {})
    return policy, eps


def test_patch_budget_stop_ends_at_the_first_unpatched_divergence(lock_id):
    policy, eps = collect(lock_id, ["try 9"], uis1_max_patches=2)
    ep = eps[0]
    u = ep.meta["uis1"]
    assert u["patched_turns"] == [0, 1] and u["matched"] == [False] * 3
    assert ep.meta["stop_reason"] == "patch_budget"
    assert [s.action for s in ep.episode.steps] == ["try 1", "try 0", "try 9"]  # two patches, then its own
    assert ep.rewards == pytest.approx([0.1, 0.1, 0.1]) and ep.env_rewards == [0.0, 0.0, 0.0]
    assert [m["content"] for m in ep.meta["messages"] if m["role"] == "assistant"] == [
        "try 1",
        "try 0",
        "try 9",
    ]
    assert [s.meta["uis1_turn"] for s in ep.meta["uis1_side"]] == [0, 1]
    # only its own (unpatched) turn is trained in the episode
    assert set(t for t in ep.turn_index if t >= 0) == {2}
    # SOP: nothing matched; the expert needs 5 steps from the reset state
    assert (u["sop_progress"], u["sop_success"]) == (0.0, 0.0)


def test_patch_budget_continue_goes_on_unpatched(lock_id):
    _, eps = collect(lock_id, ["try 9"], uis1_max_patches=2, uis1_on_budget="continue")
    ep = eps[0]
    assert ep.meta["stop_reason"] == "max_turns" and len(ep.rewards) == 5
    assert [s.action for s in ep.episode.steps] == ["try 1", "try 0", "try 9", "try 9", "try 9"]
    assert ep.meta["uis1"]["patched_turns"] == [0, 1]
    assert set(t for t in ep.turn_index if t >= 0) == {2, 3, 4}


def test_matched_output_stays_and_sop_counts_the_matched_prefix(lock_id):
    # "try 1" is the expert's action: its own output stays in the history; then 1 patch, then stop
    _, eps = collect(lock_id, ["try 1", "try 9"], uis1_max_patches=1)
    ep = eps[0]
    u = ep.meta["uis1"]
    assert u["matched"] == [True, False, False] and u["patched_turns"] == [1]
    assert ep.rewards == pytest.approx([1.0, 0.1, 0.1])
    assert [m["content"] for m in ep.meta["messages"] if m["role"] == "assistant"] == [
        "try 1",
        "try 0",
        "try 9",
    ]
    # m = 1; from position 2 the expert needs try 0, try 0, try 0, open: L = 5
    assert u["sop_progress"] == pytest.approx(1 / 5) and u["sop_success"] == 0.0
    # an expert-perfect policy: SOP progress and success 1, no patch, no side sample
    _, eps = collect(lock_id, ["try 1", "try 0", "try 0", "try 0", "open"], uis1_max_patches=1)
    u = eps[0].meta["uis1"]
    assert (u["sop_progress"], u["sop_success"], u["patched_turns"]) == (1.0, 1.0, [])
    assert eps[0].success and not eps[0].meta["uis1_side"]


def test_state_matching_accepts_an_equivalent_action(lock_pack):
    env_id = "turngymtest/AliasLock-v0"
    gym.register(
        env_id, entry_point=AliasLock, kwargs={"task_pack": str(lock_pack)}, disable_env_checker=True
    )
    try:
        _, by_text = collect(env_id, ["press 1", "try 9"], uis1_max_patches=1, uis1_match="action")
        _, by_state = collect(env_id, ["press 1", "try 9"], uis1_max_patches=1, uis1_match="state")
    finally:
        del gym.registry[env_id]
    assert by_text[0].meta["uis1"]["matched"][0] is False and by_text[0].meta["uis1"]["patched_turns"] == [0]
    assert by_state[0].meta["uis1"]["matched"][0] is True and by_state[0].meta["uis1"]["patched_turns"] == [1]
    assert by_state[0].episode.steps[0].action == "press 1"  # its own wording stays (the env took it)
    assert by_state[0].obs_keys[1] == by_text[0].obs_keys[1]  # the same state after turn 0


# ---- token invariants of the samples, with a real sampling model ------------------------------------------------
def test_samples_follow_the_template_and_train_each_generated_token_once():
    tok = char_tokenizer()
    policy = RecordingPolicy(tiny_llama(len(tok), seed=0), tok, seed=0, max_new_tokens=8)
    cfg = GRPOConfig(rollout_strategy="uis1", uis1_max_patches=2, uis1_online_episodes=0, group_size=2)
    env_id = "turngym/EmbodiedSearch-v0"
    with RolloutEngine(policy, env_id, env_kwargs={"image": False}, num_envs=3, max_turns=4) as eng:
        strategy = UIS1Strategy(eng, policy.model, cfg)
        eps = strategy.collect(["train-easy-000", "train-easy-001"], 2, 7, "train", {})
    chat = policy.chat
    samples = strategy.training_samples(eps, strategy.postprocess_advantages(eps, [None] * len(eps)))
    n_trained = 0
    for sample, adv in samples:
        # the chat template's rendering of the sample's conversation, token by token
        check_template(chat, sample)
        assert adv.numel() == len(sample.rewards)
        for a, b in spans(sample.policy_mask):
            gens = policy.record[tuple(sample.input_ids[:a])]
            ids = sample.input_ids[a:b]
            assert any(g.token_ids == ids and g.logprobs == sample.logprobs[a:b] for g in gens)
            assert len(set(sample.turn_index[a:b])) == 1
            n_trained += 1
        assert all(
            t == -1 and lp == 0.0
            for t, lp, m in zip(sample.turn_index, sample.logprobs, sample.policy_mask)
            if not m
        )
    for ep in eps:  # a patched turn has no policy tokens in the episode; its side sample trains that turn
        trained = {t for t in ep.turn_index if t >= 0}
        patched = set(ep.meta["uis1"]["patched_turns"])
        assert trained.isdisjoint(patched) and trained | patched == set(range(len(ep.rewards)))
        assert [s.meta["uis1_turn"] for s in ep.meta["uis1_side"]] == sorted(patched)
        for s in ep.meta["uis1_side"]:
            t = s.meta["uis1_turn"]
            cut = s.policy_mask.index(1)
            assert s.input_ids[:cut] == ep.input_ids[:cut]  # the same history
            assert {i for i in s.turn_index if i >= 0} == {t}
    assert n_trained == sum(len(v) for v in policy.record.values())  # every generation trained exactly once


# ---- a real GRPO step on real envs with the tiny model -----------------------------------------------------------
class KnowsFirstMove(RecordingPolicy):
    """The tiny model; in rows with an even sampling seed (every other episode) its first reply is `first` (the
    expert's first action), scored by the model (those ids with the model's log-probs); it samples otherwise."""

    first: str = ""

    def generate(self, prompts, seed=None, **kw):
        gens = super().generate(prompts, seed=seed, **kw)
        for i, p in enumerate(prompts):
            if self.chat.decode(p).count("<|im_start|>assistant") == 1 and seed[i] % 2 == 0:
                ids = [*self.chat.encode(self.first), self.chat.end_ids[0]]
                with torch.no_grad():
                    logits = self.model(torch.tensor([p + ids])).logits[0].float()
                lp = torch.log_softmax(logits / self.temperature, -1)
                gens[i] = Generation(
                    ids, [lp[len(p) - 1 + j, x].item() for j, x in enumerate(ids)], self.first, "stop"
                )
        return gens


@pytest.mark.parametrize(
    "env_id,kwargs,tasks",
    [
        ("turngym/EmbodiedSearch-v0", {"image": False}, ["train-easy-000"]),
        ("turngym/WebShop-v0", {}, ["ws-train-0"]),
    ],
)
def test_grpo_step_with_uis1(tmp_path, env_id, kwargs, tasks):
    tok = char_tokenizer()
    policy = KnowsFirstMove(tiny_llama(len(tok), seed=0), tok, seed=0, max_new_tokens=8)
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0, options={"task_id": tasks[0]})
    policy.first = env.unwrapped.expert_action()  # the same for every seed of this task
    env.close()
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    cfg = GRPOConfig(
        env_id=env_id,
        env_kwargs=kwargs,
        rollout_strategy="uis1",
        uis1_max_patches=2,
        steps=1,
        tasks_per_step=1,
        group_size=2,
        max_turns=4,
        max_new_tokens=8,
        mini_batch_size=16,
        micro_batch_size=8,
        lr=1e-3,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
        task_ids=tasks,
    )
    trainer = GRPOTrainer(policy, config=cfg)
    stats = trainer.train_step()
    for k in ("uis1_sop", "uis1_sop_progress", "uis1_sop_success", "uis1_online_success", "success"):
        assert 0.0 <= stats[k] <= 1.0
    # one episode of the pair matched the expert's first move, then (like the other) diverged twice: patched, patched,
    # then stopped unpatched; the other diverged at once. 4 turns vs 3, 2 patches each
    assert stats["uis1_patches"] == 2.0 and stats["uis1_match_rate"] == pytest.approx(1 / 7)
    assert stats["batch_samples"] == 2 + stats["uis1_side_samples"] == 6  # episodes + their side samples
    assert stats["uis1_sop_progress"] > 0.0
    assert any(not torch.equal(before[k], v) for k, v in policy.model.state_dict().items())


class NoExpertLock(LockEnv):
    expert_action = TurnEnv.expert_action


def test_uis1_needs_an_env_with_an_expert_and_an_engine(lock_pack):
    cfg = GRPOConfig(rollout_strategy="uis1")
    with pytest.raises(ConfigError, match="needs a RolloutEngine"):
        UIS1Strategy(object(), None, cfg)
    env_id = "turngymtest/NoExpertLock-v0"
    gym.register(
        env_id, entry_point=NoExpertLock, kwargs={"task_pack": str(lock_pack)}, disable_env_checker=True
    )
    try:
        with (
            RolloutEngine(Replies(["open"]), env_id) as eng,
            pytest.raises(ConfigError, match="scripted expert"),
        ):
            UIS1Strategy(eng, None, cfg)
    finally:
        del gym.registry[env_id]


def test_uis1_refuses_a_constrained_policy(lock_id):
    from turngym.agents.backends.tiny import tiny_policy

    policy = tiny_policy(seed=0, hidden=16, layers=1, max_new_tokens=16)
    policy.constrain("admissible")
    cfg = GRPOConfig(rollout_strategy="uis1")
    with RolloutEngine(policy, lock_id) as eng, pytest.raises(ConfigError, match="constrain\\(''\\)"):
        UIS1Strategy(eng, None, cfg)
