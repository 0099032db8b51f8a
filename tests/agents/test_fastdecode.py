"""The lean Llama/Qwen2 forward HFPolicy generates with (agents/backends/fastdecode.py): same tokens and log-probs
as the model's own forward, with padding, GQA, biases, kept KV caches and weights changed in place."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from turngym.agents.backends import fastdecode  # noqa: E402
from turngym.agents.backends.hf import HFPolicy  # noqa: E402
from turngym.agents.backends.tiny import char_tokenizer, tiny_llama  # noqa: E402


def tiny_qwen2(vocab: int):
    torch.manual_seed(3)
    cfg = transformers.Qwen2Config(
        vocab_size=vocab,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
    )
    return transformers.Qwen2ForCausalLM(cfg).eval()


def policies(build, **kw):
    tok = char_tokenizer()
    fast, slow = HFPolicy(build(len(tok)), tok, **kw), HFPolicy(build(len(tok)), tok, fast_decode=False, **kw)
    slow.model.load_state_dict(fast.model.state_dict())
    return fast, slow


def same(a, b, tol=1e-5):
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.finish_reason for g in a] == [g.finish_reason for g in b]
    gap = max(abs(x - y) for ga, gb in zip(a, b) for x, y in zip(ga.logprobs, gb.logprobs))
    assert gap < tol, gap


@pytest.mark.parametrize(
    "build",
    [lambda v: tiny_llama(v, hidden=64, layers=2, heads=4, seed=1), tiny_qwen2],
    ids=["llama-gqa-tied", "qwen2-bias-gqa"],
)
def test_generations_equal_the_models_own_forward(build):
    fast, slow = policies(build, max_new_tokens=12, temperature=1.0)
    assert fastdecode.supports(fast.model)
    chat = fast.chat
    prompts = [chat.prompt_ids([{"role": "user", "content": "go " * k + "now"}]) for k in (1, 5, 12)]
    same(fast.generate(prompts, seed=[1, 2, 3]), slow.generate(prompts, seed=[1, 2, 3]))  # sampled, padded
    same(fast.generate(prompts, temperature=0.0), slow.generate(prompts, temperature=0.0))  # greedy
    # weights changed in place (as an optimizer step does): the next call uses them
    with torch.no_grad():
        for m in (fast.model, slow.model):
            m.model.layers[0].mlp.down_proj.weight.mul_(-2.0)
    same(fast.generate(prompts, seed=[4, 5, 6]), slow.generate(prompts, seed=[4, 5, 6]))


def test_kept_kv_caches_give_the_same_continuations():
    fast, slow = policies(
        lambda v: tiny_llama(v, hidden=64, layers=2, seed=2), max_new_tokens=8, kv_reuse=True
    )
    chat = fast.chat
    p = [chat.prompt_ids([{"role": "user", "content": f"task {i}"}]) for i in range(3)]
    a, b = (
        fast.generate(p, seed=[1, 2, 3], cache_keys="abc"),
        slow.generate(p, seed=[1, 2, 3], cache_keys="abc"),
    )
    same(a, b)
    nxt = [p[i] + a[i].token_ids + chat.encode(f"\nnext {i}") for i in range(3)]
    before = fast.prefill_tokens
    same(
        fast.generate(nxt, seed=[4, 5, 6], cache_keys="abc"),
        slow.generate(nxt, seed=[4, 5, 6], cache_keys="abc"),
    )
    assert fast.prefill_tokens - before < sum(map(len, nxt)) / 2  # the kept prefixes were not fed again


def test_models_it_cannot_compute_exactly_keep_their_own_forward():
    tok = char_tokenizer()
    model = tiny_llama(len(tok), hidden=32, layers=1, seed=0)

    class Adapted(torch.nn.Linear):  # stands for an adapter layer (e.g. LoRA) whose forward is not F.linear
        def forward(self, x):
            return super().forward(x) * 0.5

    old = model.model.layers[0].self_attn.q_proj
    new = Adapted(old.in_features, old.out_features, bias=False)
    new.load_state_dict(old.state_dict())
    model.model.layers[0].self_attn.q_proj = new
    assert not fastdecode.supports(model)
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2)
    )
    assert not fastdecode.supports(gpt2)
    policy = HFPolicy(model, tok, max_new_tokens=4)
    assert (
        len(policy.generate([policy.chat.prompt_ids([{"role": "user", "content": "hi"}])])[0].token_ids) >= 1
    )
