"""Constrained decoding (turngym.agents.constraints): the constraints' logic on hand-made id sequences, a real tiny
HFPolicy sampling under them, the rollout engine recording what each token was sampled among, and the trainer
computing the same renormalised log-probs token by token (so the GRPO ratio is that of the policy that acted)."""

from __future__ import annotations

import math

import pytest
import torch

from turngym.agents.backends.tiny import tiny_policy
from turngym.agents.constraints import Choices, SlotChoices, TokenTrie, constraints_for, make_constraint
from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.batch import collate, shift_entropy, shift_logprobs

EMB = "turngym/EmbodiedSearch-v0"


# ---- the constraints' logic -------------------------------------------------------------------------------------
def test_trie_lists_the_ids_that_continue_a_prefix():
    t = TokenTrie([[1, 2, 3], [1, 4], [5]])
    assert t.next_ids([]) == [1, 5]
    assert t.next_ids([1]) == [2, 4]
    assert t.next_ids([1, 4]) == [] and t.is_end([1, 4])
    assert t.next_ids([2]) is None and not t.is_end([1])
    with pytest.raises(ConfigError, match="no sequences"):
        TokenTrie([])
    with pytest.raises(ConfigError, match="empty id sequence"):
        TokenTrie([[1], []])


def test_choices_walk_the_trie_and_refuse_a_prefix_outside_it():
    c = Choices([[7, 8, 0], [7, 9, 0]])
    assert c.allowed([]) == [7]
    assert c.allowed([7]) == [8, 9]
    assert c.allowed([7, 9]) == [0]
    with pytest.raises(ConfigError, match="left the allowed sequences"):
        c.allowed([8])
    named = Choices([[7, 8, 0], [7, 9, 0]], texts=["click[next >]", "end"])
    assert named.text_for([7, 8, 0]) == "click[next >]" and named.text_for([7, 8]) is None
    assert c.text_for([7, 8, 0]) is None
    with pytest.raises(ConfigError, match="1 texts for 2 sequences"):
        Choices([[1], [2]], texts=["a"])


def test_a_choice_replies_with_its_own_text_where_decoding_is_lossy():
    """A word-level tokenizer decodes `click[next >]` as `click[next>]`, which the env would refuse; under the
    'admissible' constraint the reply is the admissible string itself."""
    from turngym.agents.backends.bpe import bpe_policy

    acts = ["click[next >]", "click[< prev]", "click[buy now]"]
    policy = bpe_policy(acts, vocab_size=2048, implicit_spaces=True, lowercase=True, max_new_tokens=12)
    assert policy.tokenizer.decode(policy.chat.encode("click[next >]")) == "click[next>]"  # lossy
    policy.constrain("admissible")

    class Ctx:
        admissible_actions = acts

    prompt = policy.chat.prompt_ids([{"role": "user", "content": "page"}])
    cons = [policy.constraint(Ctx())] * 8
    gens = policy.generate([prompt] * 8, seed=list(range(8)), constraints=cons)
    assert {g.text for g in gens} <= set(acts) and len({g.text for g in gens}) > 1


def test_slot_choices_constrain_only_the_argument_after_a_trigger():
    c = SlotChoices({(10, 11): [[20], [21, 22]], (12,): [[30]]})
    assert c.allowed([]) is None and c.allowed([5, 6]) is None  # free text
    assert c.allowed([5, 10]) is None  # half a trigger is free
    assert c.allowed([5, 10, 11]) == [20, 21]  # right after the trigger: an argument's first id
    assert c.allowed([10, 11, 21]) == [22]
    assert c.allowed([10, 11, 21, 22]) is None  # argument complete: free again
    assert c.allowed([10, 11, 20, 12]) == [30]  # a second trigger later
    assert c.allowed([10, 11, 20, 12, 30, 4]) is None
    with pytest.raises(ConfigError, match="left the allowed arguments"):
        c.allowed([10, 11, 23])
    with pytest.raises(ConfigError, match="empty trigger"):
        SlotChoices({(): [[1]]})


def test_a_whole_argument_that_a_longer_one_extends_leaves_the_next_id_free():
    c = SlotChoices({(1,): [[2], [2, 3]]})
    assert c.allowed([1, 2]) is None
    assert c.allowed([1, 2, 3]) is None
    assert c.allowed([1, 2, 9]) is None  # the short argument, then free text


# ---- the trainer's renormalised log-probs, by hand ----------------------------------------------------------------
def test_shift_logprobs_renormalise_over_the_allowed_ids_by_hand():
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    ids = torch.tensor([[0, 2, 1]])
    allowed = torch.full((1, 3, 2), -1)
    allowed[0, 1] = torch.tensor([1, 2])  # token 1 (id 2) was drawn among ids {1, 2}; token 2 is free
    lp = shift_logprobs(logits, ids, allowed=allowed)[0]
    assert lp[0] == 0
    assert lp[1].item() == pytest.approx(2.0 - math.log(math.exp(1.0) + math.exp(2.0)))
    assert lp[2].item() == pytest.approx(0.0 - math.log(math.e + 3))  # the full softmax
    # temperature divides the logits before the renormalisation, as the sampler does
    lp2 = shift_logprobs(logits, ids, temperature=2.0, allowed=allowed)[0]
    assert lp2[1].item() == pytest.approx(1.0 - math.log(math.exp(0.5) + math.exp(1.0)))
    h = shift_entropy(logits, allowed=allowed)[0]
    p = torch.softmax(torch.tensor([1.0, 2.0]), -1)
    assert h[1].item() == pytest.approx(float(-(p * p.log()).sum()))
    q = torch.softmax(torch.tensor([1.0, 0.0, 0.0, 0.0]), -1)
    assert h[2].item() == pytest.approx(float(-(q * q.log()).sum()))
    assert torch.equal(shift_logprobs(logits, ids), shift_logprobs(logits, ids, allowed=None))


def test_a_token_episode_refuses_allowed_ids_off_the_policy_tokens():
    base = dict(
        input_ids=[1, 2, 3],
        policy_mask=[0, 1, 1],
        logprobs=[0.0, -0.1, -0.2],
        turn_index=[-1, 0, 0],
        rewards=[0.0],
        obs_keys=["a"],
        infos=[{}],
        task_id="t",
    )
    assert TokenEpisode(**base, allowed={1: [2, 5]}).allowed == {1: [2, 5]}
    with pytest.raises(ValueError, match="not a policy token"):
        TokenEpisode(**base, allowed={0: [1]})
    with pytest.raises(ValueError, match="own id"):
        TokenEpisode(**base, allowed={2: [4]})


# ---- a real tiny policy under a constraint ------------------------------------------------------------------------
def _policy(**kw):
    return tiny_policy(seed=0, hidden=32, layers=1, **kw)


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_generate_samples_only_the_allowed_ids_with_renormalised_logprobs(temperature):
    policy = _policy(max_new_tokens=24, temperature=temperature)
    end = policy.chat.end_ids[0]
    choices = [policy.chat.encode(a) + [end] for a in ("look()", "ask(why)", "navigate(sink 1)")]
    prompt = policy.chat.prompt_ids([{"role": "user", "content": "Where is the towel?"}])
    gens = policy.generate([prompt] * 6, seed=list(range(6)), constraints=[Choices(choices)] * 5 + [None])
    for g in gens[:5]:
        assert g.token_ids in choices and g.finish_reason == "stop"
        assert len(g.allowed) == len(g.token_ids) and all(t in a for t, a in zip(g.token_ids, g.allowed))
        # each log-prob is the model's, renormalised over the ids it was drawn among (one forward pass)
        ids = torch.tensor([prompt + g.token_ids])
        with torch.no_grad():
            logits = policy.model(ids).logits[0].float()
        for j, (t, a) in enumerate(zip(g.token_ids, g.allowed)):
            row = logits[len(prompt) + j - 1]
            want = row[t] - torch.logsumexp(row[a], -1)  # temperature 1, or greedy: the log-prob unscaled
            assert g.logprobs[j] == pytest.approx(want.item(), abs=1e-4)
    assert gens[5].allowed is None  # a free row in the same batch
    if temperature == 0:
        assert len({tuple(g.token_ids) for g in gens[:5]}) == 1


def test_generate_refuses_a_bad_constraint_list():
    policy = _policy()
    prompt = policy.chat.prompt_ids([{"role": "user", "content": "hi"}])
    with pytest.raises(ConfigError, match="2 constraints for 1 prompts"):
        policy.generate([prompt], constraints=[None, None])
    with pytest.raises(ConfigError, match="allowed"):
        policy.generate([prompt], constraints=[object()])

    class Nothing:
        def allowed(self, generated):
            return []

    with pytest.raises(ConfigError, match="allows"):
        policy.generate([prompt], constraints=[Nothing()])


def test_make_constraint_names_what_is_wrong():
    policy = _policy()
    assert make_constraint("", policy) is None and make_constraint("none", policy) is None
    with pytest.raises(ConfigError, match="unknown constraint 'choices'"):
        make_constraint("choices", policy)
    with pytest.raises(ConfigError, match="bad: \\['view\\['\\]"):
        make_constraint("arguments:view[", policy)
    with pytest.raises(ConfigError, match="list the verbs"):
        make_constraint("arguments:", policy)
    react = _policy(parser="react")
    with pytest.raises(ConfigError, match="'raw' parser"):
        make_constraint("admissible", react)

    class NoConstraints:
        constraint = staticmethod(lambda ctx: None)
        supports_constraints = False

    with pytest.raises(ConfigError, match="cannot decode under a constraint"):
        constraints_for(NoConstraints(), [None])


def test_the_engine_records_the_allowed_ids_and_the_trainer_recomputes_the_sampled_logprobs():
    """Every action is admissible; every constrained token records its allowed ids; the trainer's renormalised
    log-probs equal the sampler's token by token, and the unconstrained ones (the bug this guards) do not."""
    from turngym.agents.engine import RolloutEngine

    policy = _policy(max_new_tokens=48)
    policy.constrain("admissible")
    with RolloutEngine(policy, EMB, num_envs=4, max_turns=3) as eng:
        eps = eng.collect(["train-easy-000", "train-easy-001"], group_size=2, seed=3, split="train")
    assert eps and all(e.allowed for e in eps)
    for e in eps:
        assert all(not i.get("invalid_action") for i in e.infos), [s.action for s in e.episode.steps]
        pol = [k for k, m in enumerate(e.policy_mask) if m]
        assert sorted(e.allowed) == pol  # "admissible" constrains every generated token
    batch = collate(eps)
    with torch.no_grad():
        logits = policy.model(batch.input_ids, attention_mask=batch.attention_mask).logits
    mask = batch.policy_mask.bool()
    renorm = shift_logprobs(logits, batch.input_ids, allowed=batch.allowed)[mask]
    free = shift_logprobs(logits, batch.input_ids)[mask]
    sampled = batch.old_logprobs[mask]
    assert torch.allclose(renorm, sampled, atol=1e-4)
    assert (free - sampled).abs().max() > 0.01


def test_grpo_trains_a_constrained_policy_on_the_distribution_it_sampled(tmp_path):
    """One GRPO step on EmbodiedSearch under the 'admissible' constraint: the trainer's first log-probs match the
    sampler's (the logged gap ~0), and the update moves the weights."""
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    policy = _policy(max_new_tokens=48)
    policy.constrain("admissible")
    cfg = GRPOConfig(
        env_id=EMB,
        steps=1,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=48,
        max_turns=2,
        lr=1e-2,
        entropy_coef=0.1,
        mini_batch_size=4,
        micro_batch_size=4,
        num_envs=4,
        output_dir=str(tmp_path / "rl"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    before = [p.detach().clone() for p in policy.model.parameters()]
    trainer = GRPOTrainer(policy, config=cfg)
    try:
        recs = trainer.train()
    finally:
        trainer.engine.close()
    assert recs[0]["rollout_logprob_gap"] < 1e-4
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.model.parameters()))


def test_arguments_constraint_on_shopassistant_allows_the_products_on_screen():
    """'arguments:view,recommend' on a real ShopAssistant page: right after `view[` or `recommend[` the next id is a
    product id on screen; elsewhere the text is free."""
    import gymnasium as gym

    from turngym.agents.backends.bpe import bpe_policy
    from turngym.agents.base import EpisodeContext
    from turngym.experiments.shopassistant import catalog_words

    policy = bpe_policy(
        [catalog_words(), "view[ recommend[ search[ ] ,"], vocab_size=16384, implicit_spaces=True
    )
    policy.constrain("arguments:view,recommend")
    env = gym.make("turngym/ShopAssistant-v0")
    try:
        obs, info = env.reset(seed=0)
        ctx = EpisodeContext.from_reset(env, obs, info, 0, 0)
        assert policy.constraint(ctx) is None  # nothing on screen yet: free text
        obs, _, _, _, info = env.step(f"search[{env.unwrapped.task['noun']}]")
        ctx.observation, ctx.info = obs, info
        shown = list(env.unwrapped.results)
        assert shown
        c = policy.constraint(ctx)
        enc = policy.chat.encode
        want = sorted(enc(a)[0] for a in shown)
        assert c.allowed(enc("view[")) == want and c.allowed(enc("recommend[")) == want
        assert c.allowed(enc("search[")) is None and c.allowed(enc(f"view[{shown[0]}")) is None
    finally:
        env.close()


def test_ray_worker_specs_carry_the_constraint():
    from turngym.agents.ray_engine import PolicySpec

    policy = _policy(max_new_tokens=48)
    policy.constrain("admissible")
    spec = PolicySpec.from_policy(policy)
    assert spec.constraint == "admissible"
    worker_policy = spec.build()
    assert worker_policy.constraint_spec == "admissible" and worker_policy.constraint is not None
    assert policy.replica().constraint_spec == "admissible"
    policy.constrain("")
    assert policy.constraint is None and PolicySpec.from_policy(policy).constraint == ""
