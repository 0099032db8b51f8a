"""SFT losses on hand-computed cases: action NLL on policy tokens, and the optional context LM loss."""

import math

import pytest
import torch

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.batch import collate
from turngym.trainers.config import SFTConfig
from turngym.trainers.sft import SFTTrainer, context_mask, sft_loss

from .bandit import tiny_model


def tep(ids: list[int], mask: list[int]) -> TokenEpisode:
    return TokenEpisode(
        input_ids=ids,
        policy_mask=mask,
        logprobs=[0.0] * len(ids),
        turn_index=[0 if m else -1 for m in mask],
        rewards=[1.0],
        obs_keys=["k"],
        infos=[{}],
        task_id="t",
    )


def test_sft_loss_hand_computed():
    logp = torch.tensor([[0.0, -1.0, -3.0], [0.0, -2.0, 0.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    assert float(sft_loss(logp, mask)) == pytest.approx((1 + 3 + 2) / 3)


def test_context_mask_skips_first_token_policy_tokens_and_padding():
    b = collate([tep([5, 6, 7, 8], [0, 0, 1, 1]), tep([5, 6], [0, 1])], pad_id=0)
    assert context_mask(b).tolist() == [[0, 1, 0, 0], [0, 0, 0, 0]]


def test_context_loss_adds_the_lm_loss_of_context_tokens(tmp_path):
    """One step with coef c (micro-batches of 1): the gradient equals that of action NLL + c × context NLL
    computed by hand on the whole batch (token means over the mini-batch)."""
    eps = [tep([1, 2, 3, 4, 5], [0, 0, 0, 1, 1]), tep([1, 3, 2, 6], [0, 0, 1, 1])]
    coef = 0.5
    model = tiny_model(seed=0)
    cfg = SFTConfig(
        epochs=1,
        lr=0.0,
        mini_batch_size=2,
        micro_batch_size=1,
        context_loss_coef=coef,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
        max_grad_norm=1e9,
    )
    m = SFTTrainer(model, eps, cfg).train_step()
    got = [p.grad.clone() for p in model.parameters()]
    # by hand: a fresh copy of the same weights, both episodes in one batch
    ref = tiny_model(seed=0)
    b = collate(eps, pad_id=0)
    logp = torch.log_softmax(ref(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, -1)
    tok = logp[:, :-1].gather(-1, b.input_ids[:, 1:, None])[..., 0]  # log p(token k | < k), k >= 1
    cmask = context_mask(b)
    assert cmask.tolist() == [[0, 1, 1, 0, 0], [0, 1, 0, 0, 0]]
    act = -(tok * b.policy_mask[:, 1:]).sum() / 4
    ctx = -(tok * cmask[:, 1:]).sum() / 3
    (act + coef * ctx).backward()
    assert m["loss"] == pytest.approx(float(act.detach()), rel=1e-5)
    assert m["context_loss"] == pytest.approx(float(ctx.detach()), rel=1e-5)
    for g, p in zip(got, ref.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)
    # coef 0: no context term, and the gradient is the action NLL's alone
    model0 = tiny_model(seed=0)
    m0 = SFTTrainer(model0, eps, SFTConfig(**{**cfg.__dict__, "context_loss_coef": 0.0})).train_step()
    assert "context_loss" not in m0 and math.isfinite(m0["loss"])


def test_negative_context_coef_is_a_config_error():
    with pytest.raises(ConfigError, match="context_loss_coef"):
        SFTConfig(context_loss_coef=-1.0)


def test_frozen_embeddings_stay_put_while_the_rest_trains(tmp_path):
    """tiny_llama(freeze_embeddings=True): an SFT step changes the untied output layer and the blocks, never the
    input embedding matrix; freezing a tied matrix is refused (it would freeze the output layer too)."""
    from turngym.agents.backends.tiny import tiny_llama

    model = tiny_llama(8, hidden=16, layers=1, tie_embeddings=False, freeze_embeddings=True)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert not emb.requires_grad and head.requires_grad and emb.data_ptr() != head.data_ptr()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = SFTConfig(
        epochs=1,
        lr=1e-2,
        mini_batch_size=2,
        micro_batch_size=2,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    SFTTrainer(
        model, [tep([1, 2, 3, 4, 5], [0, 0, 0, 1, 1]), tep([1, 3, 2, 6], [0, 0, 1, 1])], cfg
    ).train_step()
    after = model.state_dict()
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert not torch.equal(after["lm_head.weight"], before["lm_head.weight"])
    tied = tiny_llama(8, hidden=16, layers=1)
    assert tied.get_input_embeddings().weight is tied.get_output_embeddings().weight
    with pytest.raises(ConfigError, match="needs tie_embeddings=False"):
        tiny_llama(8, hidden=16, layers=1, freeze_embeddings=True)
