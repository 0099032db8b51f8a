"""A small word-level tokenizer built locally from a text corpus (an env's own instructions, observations and
actions), with the ChatML template: the tiny demo models see each word as one id, so sequences are ~4x shorter than
with the character-level tokenizer of `tiny.py`, and a name copied from an observation into an action is the same id
in both places.

Construction (deterministic: the same corpus always gives the same ids): text is pre-tokenised into runs of ASCII
letters/digits and single other characters, mapped to GPT-2's byte alphabet (Radford et al., 2019); the vocabulary is
the 4 ChatML specials, the 256 bytes, "##"-continuation pieces for letters/digits and UTF-8 continuation bytes, then
the corpus's multi-character words, most frequent first, up to `vocab_size`. Encoding is WordPiece's greedy
longest-match (Wu et al., 2016): a corpus word is one id, an unseen word its longest known prefix plus "##" pieces,
so any text encodes without <unk>. (A first version trained merges with `tokenizers`' BPE trainer, whose
tie-breaking differs between runs; this construction replaced it.) The module keeps the name `bpe` for that history.

`implicit_spaces=True` drops the space characters when encoding and puts them back when decoding between two
letter/digit tokens (never next to punctuation): "navigate(fridge 1)" is 5 ids, not 6, and a name is one token
after "(" as after a space. This decodes exactly every text whose spaces sit only between two ASCII words (action
grammars such as `name(arg words)`); text with other spacing ("a , b", "mean? What", a space before "é") decodes with
its spaces normalised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from turngym.agents.backends.tiny import CHATML_TEMPLATE, SPECIAL, _bytes_to_unicode, tiny_llama
from turngym.errors import ConfigError
from turngym.optional import require

WORD = r"[A-Za-z0-9]+"
CONT = "##"


def _word_char(b: int) -> bool:
    return 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122


def join_words(tokens: list[str], special: set[str], implicit_spaces: bool = True) -> str:
    """Decode tokens: byte-level pieces; a `##` piece continues the previous one; with `implicit_spaces`, one space
    between two word tokens (letter/digit to letter/digit) unless the second continues the first; special tokens
    verbatim."""
    u2b = {u: b for b, u in _bytes_to_unicode().items()}
    out = bytearray()
    prev_word = False
    for t in tokens:
        if t in special:
            out += t.encode()
            prev_word = False
            continue
        cont = t.startswith(CONT) and len(t) > len(CONT)
        piece = bytes(u2b[c] for c in (t[len(CONT) :] if cont else t) if c in u2b)
        if implicit_spaces and prev_word and not cont and piece and _word_char(piece[0]):
            out += b" "
        out += piece
        prev_word = bool(piece) and _word_char(piece[-1])
    return out.decode("utf-8", errors="replace")


def bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 1024,
    implicit_spaces: bool = False,
    chat_template: str = CHATML_TEMPLATE,
    lowercase: bool = False,
) -> Any:
    """Build a word-level tokenizer of at most `vocab_size` ids (ChatML special tokens first: ids 0-3) from `texts`.

    Returns a `transformers.PreTrainedTokenizerFast` with eos `<|im_end|>`, pad `<|endoftext|>` and the chat
    template (`implicit_spaces`: see the module docstring). `lowercase`: text is lowercased before it is split (one
    id for `B04AMS6MWD` on a page and `b04ams6mwd` in `click[...]`; decoded text is lowercase).
    """
    tokenizers = require("tokenizers", extra="train", purpose="training a local tokenizer")
    transformers = require("transformers", extra="train")
    corpus = [t for t in texts if t]
    if not corpus:
        raise ConfigError("bpe_tokenizer needs a non-empty corpus of texts")
    corpus.append("system\nuser\nassistant\n")  # the template's role names: one id each
    pre = tokenizers.pre_tokenizers
    steps = [pre.Split(" ", behavior="removed")] if implicit_spaces else []
    steps += [
        pre.Split(tokenizers.Regex(WORD + r"|[^A-Za-z0-9]"), behavior="isolated"),
        pre.ByteLevel(add_prefix_space=False, use_regex=False),
    ]
    pre_tok = pre.Sequence(steps)
    # the base: every byte as a first piece; letters/digits and UTF-8 continuation bytes as "##" pieces (the only
    # bytes that can follow another inside one pre-token), so any text encodes without <unk>
    b2u = _bytes_to_unicode()
    alphabet = [b2u[b] for b in range(256)]
    cont = [CONT + b2u[b] for b in [*range(48, 58), *range(65, 91), *range(97, 123), *range(0x80, 0xC0)]]
    base = len(SPECIAL) + len(alphabet) + len(cont)
    if vocab_size < base:
        raise ConfigError(
            f"vocab_size={vocab_size} is smaller than the byte pieces plus special tokens ({base})"
        )
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(piece for piece, _ in pre_tok.pre_tokenize_str(text.lower() if lowercase else text))
    # the corpus's multi-character words, most frequent first (ties by the word itself): deterministic
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))[: vocab_size - base]
    vocab = {t: i for i, t in enumerate([*SPECIAL, *alphabet, *cont, *words])}
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordPiece(
            vocab=vocab, unk_token="<unk>", continuing_subword_prefix=CONT, max_input_chars_per_word=1000
        )
    )
    tok.pre_tokenizer = pre_tok
    if lowercase:
        tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.add_special_tokens(SPECIAL)
    fast = _WordTokenizer(transformers)(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    fast.chat_template = chat_template
    fast.implicit_spaces = implicit_spaces
    return fast


def _WordTokenizer(transformers: Any) -> type:
    """A PreTrainedTokenizerFast whose decode glues "##" pieces to the previous one and, with implicit spaces,
    puts the dropped spaces back between word tokens."""

    class WordTokenizer(transformers.PreTrainedTokenizerFast):
        implicit_spaces = False

        def _decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
            ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
            if skip_special_tokens:
                ids = [i for i in ids if i not in set(self.all_special_ids)]
            return join_words(
                self.convert_ids_to_tokens(ids), set(self.all_special_tokens), self.implicit_spaces
            )

    return WordTokenizer


def bpe_policy(
    texts: Iterable[str],
    vocab_size: int = 1024,
    implicit_spaces: bool = False,
    seed: int = 0,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    tie_embeddings: bool = True,
    freeze_embeddings: bool = False,
    lowercase: bool = False,
    **kwargs: Any,
) -> Any:
    """An `HFPolicy` over `tiny_llama` + `bpe_tokenizer(texts)` (kwargs go to HFPolicy)."""
    from turngym.agents.backends.hf import HFPolicy

    tok = bpe_tokenizer(texts, vocab_size=vocab_size, implicit_spaces=implicit_spaces, lowercase=lowercase)
    model = tiny_llama(
        len(tok),
        hidden=hidden,
        layers=layers,
        heads=heads,
        seed=seed,
        tie_embeddings=tie_embeddings,
        freeze_embeddings=freeze_embeddings,
    )
    kwargs.setdefault("spec", f"hf:tiny-llama-bpe{len(tok)}-{hidden}x{layers}")
    return HFPolicy(model, tok, seed=seed, **kwargs)
