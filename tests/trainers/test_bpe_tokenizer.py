"""The word-level BPE tokenizer the CPU learning demo trains on the env's own text (agents/backends/bpe.py)."""

import random
import tempfile
from pathlib import Path

import pytest

from turngym.agents.backends.bpe import bpe_policy, bpe_tokenizer, join_words
from turngym.errors import ConfigError

CORPUS = [
    'The person says: "Can you find the white cup?"',
    "From your last visit you remember: red cup at shelf 3; white cup at fridge 1.",
    "You walk 2.50 m. You are at fridge 1 in the kitchen. It is closed.",
    "get_memory(cup)",
    "navigate(fridge 1)",
    "done(white cup)",
]


@pytest.mark.parametrize("implicit", [False, True])
def test_a_word_is_one_id_wherever_it_appears(implicit):
    tok = bpe_tokenizer(CORPUS, vocab_size=600, implicit_spaces=implicit)
    obs = tok.convert_ids_to_tokens(tok.encode("You are at fridge 1 in the kitchen."))
    act = tok.convert_ids_to_tokens(tok.encode("navigate(fridge 1)"))
    assert "fridge" in obs and "fridge" in act
    assert act[:3] == ["navigate", "(", "fridge"]
    if implicit:  # no ids for spaces: navigate ( fridge 1 )
        assert act == ["navigate", "(", "fridge", "1", ")"]
    else:
        assert act == ["navigate", "(", "fridge", "Ġ", "1", ")"]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == 0


def test_implicit_spaces_decode_action_grammars_exactly_even_unseen_words():
    tok = bpe_tokenizer(CORPUS, vocab_size=600, implicit_spaces=True)
    rng = random.Random(0)
    chars = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789"  # words are ASCII letters/digits
    for _ in range(300):
        words = [
            "".join(rng.choice(chars) for _ in range(rng.randint(1, 9))) for _ in range(rng.randint(1, 3))
        ]
        action = f"{rng.choice(['navigate', 'done', 'get_memory', 'zap2'])}({' '.join(words)})"
        assert tok.decode(tok.encode(action)) == action
    # an unseen word is split into a first piece and "##" continuations, glued back without spaces
    pieces = tok.convert_ids_to_tokens(tok.encode("zebra"))
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    # spacing next to punctuation is normalised (documented): the text is otherwise intact
    assert tok.decode(tok.encode("a , b")) == "a,b"
    assert tok.decode(tok.encode("<|im_end|>x y<|im_end|>"), skip_special_tokens=True) == "x y"


def test_join_words_hand_computed():
    special = {"<|im_end|>"}
    assert join_words(["navigate", "(", "side", "table", "2", ")", "<|im_end|>"], special) == (
        "navigate(side table 2)<|im_end|>"
    )
    assert join_words(["d", "##on", "##e", "(", "x", ")"], special) == "done(x)"
    assert join_words(["#", "#", "a"], special) == "##a"  # "#" alone is a character, not a continuation


def test_bad_corpus_or_vocab_is_a_config_error():
    with pytest.raises(ConfigError, match="non-empty corpus"):
        bpe_tokenizer([])
    with pytest.raises(ConfigError, match="vocab_size"):
        bpe_tokenizer(CORPUS, vocab_size=100)


@pytest.mark.slow
def test_policy_renders_expert_episode_and_is_shorter_than_char_level(one_thread):
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.base import ExpertAgent
    from turngym.agents.rollout import run_episodes
    from turngym.experiments.demo import ENV_ID, derived_pack
    from turngym.experiments.pipeline import episode_texts
    from turngym.trainers.sft import expert_token_episode

    with tempfile.TemporaryDirectory() as d:
        pack = derived_pack(Path(d), ["easy"])
        eps = run_episodes(
            ENV_ID,
            ExpertAgent(),
            episodes=6,
            split="train",
            env_kwargs={"image": False, "task_pack": str(pack)},
        )
    words = bpe_policy(episode_texts(eps), implicit_spaces=True, hidden=32, layers=1)
    chars = tiny_policy(hidden=32, layers=1)
    for ep in eps:
        te = expert_token_episode(words, ep)
        for t, step in enumerate(ep.steps):  # the policy tokens of turn t decode to the expert's action
            ids = [i for i, k in zip(te.input_ids, te.turn_index) if k == t]
            assert words.chat.decode(ids[:-1]) == step.action and ids[-1] in words.chat.end_ids
        assert 3 * len(te.input_ids) < len(expert_token_episode(chars, ep).input_ids)


def test_same_corpus_same_ids_most_frequent_words_first():
    vocabs = [bpe_tokenizer(CORPUS * 3, implicit_spaces=True).get_vocab() for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    v = vocabs[0]
    # "cup" (5 times per copy of the corpus) comes before "shelf" (once); both after the 4 + 256 + 126 base ids
    assert 386 <= v["cup"] < v["shelf"]
    assert bpe_tokenizer(CORPUS, vocab_size=386, implicit_spaces=True).encode("cup") == [
        v["c"],
        v["##u"],
        v["##p"],
    ]
