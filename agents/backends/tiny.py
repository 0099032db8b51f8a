"""Tiny real models built locally (no hub): a character-level ChatML tokenizer and a small Llama from a config.

For tests, examples and benchmarks that need a real `transformers` model in seconds. The tokenizer encodes printable
ASCII one character per token (so every generated id sequence is its own canonical encoding), plus the ChatML
special tokens; `tiny_policy()` wraps both in an `HFPolicy`.
"""

from __future__ import annotations

from typing import Any

from turngym.optional import require

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-char map used by byte-level BPE (Radford et al., 2019)."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars)))


def char_tokenizer(chat_template: str = CHATML_TEMPLATE) -> Any:
    """A byte-level tokenizer without merges over printable ASCII, `\\n` and `\\t`, with ChatML special tokens."""
    tokenizers = require("tokenizers", extra="train", purpose="building a local tokenizer")
    transformers = require("transformers", extra="train")
    b2u = _bytes_to_unicode()
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL)}
    for b in [9, 10, *range(32, 127)]:
        vocab[b2u[b]] = len(vocab)
    model = tokenizers.models.BPE(vocab=vocab, merges=[], unk_token="<unk>")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    fast.chat_template = chat_template
    return fast


def tiny_llama(
    vocab_size: int,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    tie_embeddings: bool = True,
    freeze_embeddings: bool = False,
) -> Any:
    """A randomly initialised LlamaForCausalLM (float32) of the given size; `seed` fixes the weights.

    `tie_embeddings=False` gives the output layer its own matrix; `freeze_embeddings=True` keeps the input embedding
    at its random init (requires_grad False, so trainers skip it). Why freeze: trained from scratch, the embeddings
    of tokens that play the same role (colours, numbers) collapse onto one direction (cosine 0.96 measured on the
    demo's colours), after which no attention head can copy *which* one was seen; fixed random embeddings stay
    distinct (docs/trainers.md, "The colour copy"). Freezing a tied matrix would freeze the output layer too, so
    it needs `tie_embeddings=False`."""
    torch = require("torch", extra="train")
    transformers = require("transformers", extra="train")
    cfg = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=8192,
        tie_word_embeddings=tie_embeddings,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg)
    if freeze_embeddings:
        if tie_embeddings:
            from turngym.errors import ConfigError

            raise ConfigError(
                "freeze_embeddings=True needs tie_embeddings=False (tied, the output layer would freeze)"
            )
        model.get_input_embeddings().weight.requires_grad_(False)
    model.eval()
    return model


def tiny_policy(seed: int = 0, hidden: int = 64, layers: int = 2, **kwargs: Any) -> Any:
    """An `HFPolicy` over `tiny_llama` + `char_tokenizer` (kwargs go to HFPolicy)."""
    from turngym.agents.backends.hf import HFPolicy

    tok = char_tokenizer()
    model = tiny_llama(len(tok), hidden=hidden, layers=layers, seed=seed)
    kwargs.setdefault("spec", f"hf:tiny-llama-{hidden}x{layers}")
    return HFPolicy(model, tok, seed=seed, **kwargs)
