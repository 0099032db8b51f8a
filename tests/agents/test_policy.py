"""The TokenPolicy contract: what the engine, the trainer and the server check, and the Agent side every backend
shares (system prompt + prompt_hook, history trimmed to max_context_tokens)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.agents import (  # noqa: E402
    EpisodeContext,
    Generation,
    RandomAgent,
    TokenPolicy,
    TokenPolicyBase,
    Turn,
    check_token_policy,
)
from turngym.agents.backends.hf import HFPolicy  # noqa: E402
from turngym.agents.backends.tiny import char_tokenizer, tiny_llama  # noqa: E402
from turngym.agents.backends.vllm import VLLMPolicy  # noqa: E402
from turngym.agents.engine import RolloutEngine  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402

ENV = "turngym/EmbodiedSearch-v0"


class FixedReply(TokenPolicyBase):
    """A backend of its own (no model): always replies `reply`, log-prob -1 per token; records its prompts."""

    name = "fixed"

    def __init__(self, reply: str, **settings):
        super().__init__(char_tokenizer(), spec=f"fixed:{reply}", **settings)
        self.reply = reply
        self.prompts: list[list[int]] = []

    def generate(self, prompts, **kwargs):
        self.prompts += [list(p) for p in prompts]
        ids = [*self.chat.encode(self.reply), self.chat.end_ids[0]]
        return [Generation(list(ids), [-1.0] * len(ids), self.reply, "stop") for _ in prompts]

    def load_weights(self, model_or_state):
        raise ConfigError("FixedReply has no weights")


def test_plain_agent_is_refused_with_the_missing_members():
    with pytest.raises(ConfigError) as err:
        RolloutEngine(RandomAgent(), ENV)
    msg = str(err.value)
    assert "RolloutEngine" in msg and "RandomAgent" in msg
    for member in ("generate", "chat", "load_weights", "max_new_tokens", "spec"):
        assert member in msg


def test_a_multimodal_policy_must_have_the_vision_members():
    pol = FixedReply("go")
    pol.multimodal = True
    with pytest.raises(ConfigError, match="expand_images.*image_inputs.*keep_images"):
        check_token_policy(pol, "RolloutEngine")


def test_the_trainer_and_the_server_check_the_contract(tmp_path):
    from turngym.agents.server import ChatServer
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    with pytest.raises(ConfigError, match="GRPOTrainer needs a token-level policy.*lacks"):
        GRPOTrainer(RandomAgent(), config=GRPOConfig(env_id=ENV, output_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="turngym serve needs a token-level policy"):
        ChatServer(RandomAgent())


def test_a_backend_of_its_own_runs_in_the_engine():
    pol = FixedReply("look around")
    assert isinstance(pol, TokenPolicy) and not pol.kv_reuse and not pol.multimodal
    with RolloutEngine(pol, ENV, num_envs=2, max_turns=2) as eng:
        eps = eng.collect(2, group_size=1, seed=0)
    assert len(eps) == 2
    for ep in eps:
        gen = [t for t, m in zip(ep.input_ids, ep.policy_mask) if m]
        per_turn = len(pol.chat.encode("look around")) + 1
        assert gen == ([*pol.chat.encode("look around"), pol.chat.end_ids[0]] * len(ep.rewards))
        assert len(gen) == per_turn * len(ep.rewards)
        assert [lp for lp, m in zip(ep.logprobs, ep.policy_mask) if m] == [-1.0] * len(gen)
        assert ep.episode.agent == "fixed:look around"


def test_replica_without_a_model_names_the_way_out():
    with pytest.raises(ConfigError, match="rollout_policy"):
        FixedReply("x").replica()


def _ctx(turns: int) -> EpisodeContext:
    hist = [Turn(f"observation {i} " + "x" * 40, f"action {i}", 0.0, {}) for i in range(turns)]
    return EpisodeContext(
        env=None, instructions="find the key", observation={"text": "now"}, info={}, history=hist
    )


def test_act_adds_the_prompt_hook_and_trims_to_the_context_budget():
    budget, new = 400, 8
    pol = FixedReply(
        "a",
        system_prompt="be brief",
        prompt_hook=lambda ins: f"hint for {ins}",
        max_context_tokens=budget,
        max_new_tokens=new,
    )
    ctx = _ctx(turns=12)
    pol.begin_episode(ctx)
    assert pol.act([ctx]) == ["a"]
    text = pol.chat.decode(pol.prompts[-1])
    assert "be brief\n\nhint for find the key" in text
    assert len(pol.prompts[-1]) <= budget - new
    # the first user turn (the task) stays; the oldest turns after it go first, the latest stay
    assert "action 11" in text and "observation 1 " not in text
    full = FixedReply("a", system_prompt="be brief")
    full.begin_episode(ctx)
    full.act([ctx])
    assert "observation 1 " in full.chat.decode(full.prompts[-1])
    assert len(full.prompts[-1]) > budget


def test_every_backend_shares_the_agent_side():
    # vLLM's act is the shared one: it honours prompt_hook and max_context_tokens as HFPolicy does
    assert VLLMPolicy.act is TokenPolicyBase.act and HFPolicy.act is TokenPolicyBase.act
    assert VLLMPolicy.messages_for is TokenPolicyBase.messages_for


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_new_tokens": 16, "max_context_tokens": 16}, "max_context_tokens"),
    ],
)
def test_settings_are_validated_in_every_backend(bad, field):
    tok = char_tokenizer()
    with pytest.raises(ConfigError, match=field):
        HFPolicy(tiny_llama(len(tok), seed=0), tok, **bad)
    with pytest.raises(ConfigError, match=field):
        VLLMPolicy(None, tok, **bad)
