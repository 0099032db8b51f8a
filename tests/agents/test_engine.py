"""The batched rollout engine: token sequences checked token by token against the chat template and the model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.agents.fitting import fit_reply  # noqa: E402
from turngym.agents.backends.hf import HFPolicy  # noqa: E402
from turngym.agents.backends.tiny import char_tokenizer, tiny_llama  # noqa: E402
from turngym.agents.engine import RolloutEngine  # noqa: E402
from turngym.agents.parsing import INVALID_PREFIX  # noqa: E402


class RecordingPolicy(HFPolicy):
    """The real HFPolicy, also remembering every (prompt, generation) pair it produced."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[int] = []
        self.record: dict[tuple[int, ...], list] = {}  # prompt -> generations (group members share prompts)

    def generate(self, prompts, **kw):
        gens = super().generate(prompts, **kw)
        self.calls.append(len(prompts))
        for p, g in zip(prompts, gens):
            self.record.setdefault(tuple(p), []).append(g)
        return gens


def make_policy(template=None, **kw):
    tok = char_tokenizer() if template is None else char_tokenizer(template)
    kw.setdefault("max_new_tokens", 10)
    return RecordingPolicy(tiny_llama(len(tok), seed=0), tok, seed=0, **kw)


def spans(mask):
    out, start = [], None
    for k, m in enumerate([*mask, 0]):
        if m and start is None:
            start = k
        elif not m and start is not None:
            out.append((start, k))
            start = None
    return out


def check_template(chat, ep):
    """The sequence is the template's rendering of the episode's conversation: the same text always, the same
    tokens when every generation was the tokenizer's own encoding of its text; otherwise (`noncanonical_turns`)
    re-encoding just the policy spans gives exactly the template's tokens, so every non-policy token is the
    template's."""
    ids, msgs = ep.input_ids, ep.meta["messages"]
    assert chat.decode(ids) == chat.render(msgs, False)
    ref = chat.template_ids(msgs)
    runs = spans(ep.policy_mask)
    flagged = set(ep.meta.get("noncanonical_turns", []))
    for t, (a, b) in enumerate(runs):
        body = ids[a:b][:-1] if ids[b - 1] in chat.end_ids else ids[a:b]
        assert (chat.encode(chat.decode(body)) != body) == (t in flagged)
    if not flagged:
        assert ids == ref
        return
    rebuilt, last = [], 0
    for a, b in runs:
        rebuilt += ids[last:a] + chat.encode(chat.decode(ids[a:b]))
        last = b
    assert rebuilt + ids[last:] == ref


def check_episode(policy, ep, temperature=1.0):
    chat = policy.chat
    ids = ep.input_ids
    # 1. exactly the chat template's rendering of the final conversation, token by token
    check_template(chat, ep)
    # 2. policy tokens are exactly what the model generated for the prompt before them, with its log-probs
    runs = spans(ep.policy_mask)
    assert len(runs) == len(ep.rewards) == len(ep.infos) == len(ep.obs_keys)
    for t, (a, b) in enumerate(runs):
        gens = [g for g in policy.record[tuple(ids[:a])] if g.token_ids == ids[a:b]]
        assert gens, f"turn {t}: the policy tokens are not a generation for the prompt before them"
        # exactly one of them: rows of a batch with the same tokens may round differently in the last bits
        assert any(ep.logprobs[a:b] == g.logprobs for g in gens)
        assert set(ep.turn_index[a:b]) == {t}
    assert all(
        ti == -1 and lp == 0.0 for ti, lp, m in zip(ep.turn_index, ep.logprobs, ep.policy_mask) if not m
    )
    # 3. observations are never policy tokens: every user message's text lies in a non-policy span
    text_nonpolicy = "".join(chat.decode([i]) if not m else "\x00" for i, m in zip(ids, ep.policy_mask))
    for m in ep.meta["messages"]:
        if m["role"] != "assistant":
            assert m["content"] in text_nonpolicy
    # 4. the sampling log-probs agree with a full forward pass of the same model over the final sequence
    with torch.no_grad():
        logits = policy.model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits / temperature, -1)
    for k in range(1, len(ids)):
        if ep.policy_mask[k]:
            assert abs(lp[k - 1, ids[k]].item() - ep.logprobs[k]) < 1e-3


def test_token_trajectories_match_template_and_model(lock_id):
    policy = make_policy()
    with RolloutEngine(policy, lock_id, num_envs=4, max_turns=3, system_prompt="You open locks.") as eng:
        eps = eng.collect(["train-0", "train-1", "train-2"], group_size=2, seed=5)
    assert [e.group for e in eps] == [0, 0, 1, 1, 2, 2]
    assert [e.task_id for e in eps] == ["train-0", "train-0", "train-1", "train-1", "train-2", "train-2"]
    # batched: the first turn generated for 4 episodes at once, never more than num_envs
    assert policy.calls[0] == 4 and max(policy.calls) == 4
    for ep in eps:
        check_episode(policy, ep)
        assert ep.meta["prefix_stable"] is True
        assert ep.episode.turns == len(ep.rewards) == 3  # a random model never opens the lock in 3 turns
        assert ep.meta["stop_reason"] == "max_turns"
        assert ep.infos[0]["task_id"] == ep.task_id
    # episodes of a group differ (different seeds), and a second collect with the same seed is identical
    assert eps[0].input_ids != eps[1].input_ids
    with RolloutEngine(policy, lock_id, num_envs=2, max_turns=3, system_prompt="You open locks.") as eng:
        again = eng.collect(["train-0", "train-1", "train-2"], group_size=2, seed=5)
    assert [e.input_ids for e in again] == [e.input_ids for e in eps]


def test_parse_failures_reach_the_env_as_invalid_actions(lock_id):
    policy = make_policy(max_new_tokens=6)
    with RolloutEngine(policy, lock_id, num_envs=2, max_turns=2, parser="react") as eng:
        eps = eng.collect(2, group_size=1, seed=0, split="test")
    for ep in eps:
        assert ep.task_id.startswith("test-")
        for step in ep.episode.steps:
            assert step.action.startswith(INVALID_PREFIX) and "Action:" in step.action
            assert step.info["invalid_action"] is True
            assert "Action:" in step.info["parse_error"]
        check_episode(policy, ep)


@pytest.mark.isa_sensitive
def test_trained_weights_are_used_and_rewards_follow_the_env(lock_id):
    """Fit the tiny model (in place, on `.model`) to answer "open" to the lock's first prompt; greedy rollouts then
    open with it, and rewards, success and obs keys are the env's.

    Trained until every target token leads the runner-up by 3 nats, not for a fixed step count (tests/agents/
    fitting.py): rounding differs between CPUs, and only a clear margin makes the greedy answer the same on all."""
    import gymnasium as gym

    policy = make_policy(max_new_tokens=8, temperature=0.0)
    env = gym.make(lock_id)
    obs, info = env.reset(seed=0, options={"task_id": "train-0"})
    env.close()
    from turngym.agents.prompting import first_user_message

    opening = [{"role": "user", "content": first_user_message(info["instructions"], obs["text"])}]
    fit_reply(policy, opening, "open")
    with RolloutEngine(policy, lock_id, num_envs=2, max_turns=2) as eng:
        eps = eng.collect(["train-0"], group_size=2, seed=0)
    for ep in eps:
        check_episode(policy, ep, temperature=1.0)
        assert ep.episode.steps[0].action == "open"
        assert ep.infos[0]["invalid_action"] is False and ep.rewards[0] == 0.0 and not ep.success
        # obs_keys[t] is the key of the state action t was taken in
        assert ep.obs_keys[0] == info["obs_key"] and ep.obs_keys[1] == ep.infos[0]["obs_key"]
        assert ep.obs_keys[0] != ep.obs_keys[1]


def test_token_budget_ends_episodes_cleanly(lock_id):
    policy = make_policy(max_new_tokens=8)
    first = len(policy.chat.prompt_ids([{"role": "user", "content": "x"}]))
    with RolloutEngine(policy, lock_id, num_envs=2, max_turns=20, max_episode_tokens=160) as eng:
        eps = eng.collect(["train-0", "train-1"], group_size=1, seed=1)
    for ep in eps:
        assert ep.meta["stop_reason"] == "token_budget"
        assert len(ep.input_ids) <= 160 and first < len(ep.input_ids)
        assert ep.episode.steps[-1].truncated
        check_episode(policy, ep)


THINK_STRIPPING = (
    "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
    "{{ '<|im_start|>assistant\n' + m['content'].split('</think>')[-1] + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_template_that_rewrites_history_keeps_what_the_model_saw(lock_id):
    """A template that drops earlier `<think>` blocks is not prefix-stable: the sequence is what the model was
    conditioned on (each turn's prompt is a prefix of the final sequence), and the episode says so."""
    policy = make_policy(template=THINK_STRIPPING, max_new_tokens=6)
    assert policy.chat.prefix_stable is False
    with RolloutEngine(policy, lock_id, num_envs=2, max_turns=3) as eng:
        eps = eng.collect(["train-0"], group_size=2, seed=0)
    for ep in eps:
        assert ep.meta["prefix_stable"] is False
        for a, b in spans(ep.policy_mask):
            assert ep.input_ids[a:b] in [g.token_ids for g in policy.record[tuple(ep.input_ids[:a])]]
        # without a </think> in the generations, the rendering still agrees
        if not any("</think>" in m["content"] for m in ep.meta["messages"]):
            assert ep.input_ids == policy.chat.template_ids(ep.meta["messages"])


def test_bad_arguments_are_clear(lock_id):
    from turngym.agents.base import RandomAgent
    from turngym.errors import ConfigError

    with pytest.raises(ConfigError, match="token-level policy"):
        RolloutEngine(RandomAgent(), lock_id)
    with RolloutEngine(make_policy(), lock_id, num_envs=1) as eng:
        with pytest.raises(ConfigError, match="group_size"):
            eng.collect(["train-0"], group_size=0)
        with pytest.raises(ConfigError, match="empty task list"):
            eng.collect([], group_size=1)
