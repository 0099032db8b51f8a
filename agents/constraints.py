"""Constrained decoding: restrict which tokens a policy may sample, and train on the distribution it sampled from.

A *constraint* says, from the tokens generated so far in a turn, which token ids may come next (`allowed(generated)`
-> a list of ids, or None where any token may come). The transformers backends (`HFPolicy`, `VLMPolicy`) sample from
the model's distribution renormalised over the allowed ids,

    π(y_t | x, y_<t) = exp(z_t[y_t] / T) / Σ_{v ∈ A_t} exp(z_t[v] / T)        (A_t the allowed ids; all ids if None)

and record A_t per token (`Generation.allowed`, then `TokenEpisode.allowed`), so the trainers compute the same
renormalised log-probs (`turngym.trainers.batch.shift_logprobs(..., allowed=...)`): the GRPO/PPO ratio and its
gradient are those of the policy that acted, token by token, not of the unconstrained model (masking only at
sampling time would train a different distribution than the one sampled; see the tests). This is the "invalid action
masking" of RL with discrete actions (Huang & Ontañón, 2022, "A Closer Look at Invalid Action Masking in Policy
Gradient Algorithms": the masked policy's gradient is the valid one) applied to tokens.

Constraints (both stateless: `allowed` is a function of the generated ids):
- `Choices(sequences)`: the turn's whole output is one of the given id sequences (e.g. each admissible action's
  content ids followed by the end-of-turn id): a trie walk.
- `SlotChoices(slots)`: free text, except that right after a *trigger* (e.g. the ids of `view[`) the next ids spell
  one of the trigger's arguments (e.g. the product ids on screen), then free text again.

A policy carries one *constraint builder* (`policy.constraint`: EpisodeContext -> constraint or None), called before
each turn with the episode's context (so it reads the env's current `info`, e.g. `admissible_actions`). `make_constraint`
builds the named ones:
- `"admissible"`: the output is exactly one of `info["admissible_actions"]` (parser "raw": content is the action).
- `"arguments:VERB,VERB..."`: the first argument of each listed verb (`verb[ARG, ...]`) is one of the arguments that
  verb's admissible actions carry, pooled over the listed verbs (e.g. `arguments:view,recommend` on ShopAssistant:
  `view[...]` and `recommend[...]` name a product on screen or the one viewed). The rest of the text stays free (so
  free-text searches and option lists are still generated).
An episode whose env lists no admissible actions is not constrained.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from turngym.errors import ConfigError

log = logging.getLogger("turngym.agents.constraints")

__all__ = [
    "Choices",
    "Constraint",
    "SlotChoices",
    "TokenTrie",
    "constraints_for",
    "make_constraint",
]


@runtime_checkable
class Constraint(Protocol):
    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        """The ids that may follow `generated` (this turn's ids so far); None: any id."""
        ...


class TokenTrie:
    """A prefix tree over id sequences: `next_ids(prefix)` are the ids that continue `prefix` towards some sequence
    (sorted; empty when `prefix` is a whole sequence that nothing extends, None when no sequence starts with it)."""

    def __init__(self, sequences: Sequence[Sequence[int]]):
        if not sequences:
            raise ConfigError("TokenTrie: no sequences to choose from")
        self.root: dict[int, dict] = {}
        self.ends: set[tuple[int, ...]] = set()
        for s in sequences:
            s = [int(t) for t in s]
            if not s:
                raise ConfigError("TokenTrie: an empty id sequence cannot be chosen")
            node = self.root
            for t in s:
                node = node.setdefault(t, {})
            self.ends.add(tuple(s))

    def node(self, prefix: Sequence[int]) -> dict[int, dict] | None:
        node: dict[int, dict] | None = self.root
        for t in prefix:
            node = node.get(int(t)) if node is not None else None
            if node is None:
                return None
        return node

    def next_ids(self, prefix: Sequence[int]) -> list[int] | None:
        node = self.node(prefix)
        return None if node is None else sorted(node)

    def is_end(self, prefix: Sequence[int]) -> bool:
        return tuple(int(t) for t in prefix) in self.ends


class Choices:
    """The turn's output is one of `sequences` (each should end with an end-of-turn id, or the turn runs on to the
    token budget after it; past a whole sequence nothing more is allowed, so generation must stop there).

    `texts` (one per sequence): the reply text a generated sequence stands for, used instead of decoding its ids (a
    tokenizer whose decoding is lossy, e.g. a word-level one that drops spaces around punctuation, would otherwise
    turn the admissible `click[next >]` into `click[next>]`)."""

    def __init__(self, sequences: Sequence[Sequence[int]], texts: Sequence[str] | None = None):
        self.trie = TokenTrie(sequences)
        if texts is not None and len(texts) != len(sequences):
            raise ConfigError(f"Choices: {len(texts)} texts for {len(sequences)} sequences")
        self.texts = (
            {tuple(int(t) for t in s): x for s, x in zip(sequences, texts)} if texts is not None else {}
        )

    def text_for(self, ids: Sequence[int]) -> str | None:
        """The text of the chosen sequence `ids` (None: no texts given, or `ids` is not a whole sequence)."""
        return self.texts.get(tuple(int(t) for t in ids))

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        nxt = self.trie.next_ids(generated)
        if nxt is None:
            raise ConfigError(
                f"Choices: the generated ids {list(generated)} left the allowed sequences "
                "(a backend sampled an id it was not allowed)"
            )
        return nxt


class SlotChoices:
    """Free text, except after a trigger: `slots` maps a trigger (an id sequence) to the id sequences that may follow
    it. Once a trigger's last id is generated, the next ids must walk one of its sequences to the end; then the text is
    free again (until the next trigger). A trigger inside an argument is not a trigger."""

    def __init__(self, slots: dict[tuple[int, ...], Sequence[Sequence[int]]]):
        if not slots:
            raise ConfigError("SlotChoices: no slots")
        for trig in slots:
            if not trig:
                raise ConfigError("SlotChoices: an empty trigger (use Choices to constrain a whole output)")
        self.slots = {tuple(int(t) for t in k): TokenTrie(v) for k, v in slots.items()}

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        g = [int(t) for t in generated]
        i = 0
        while i < len(g):
            hit = next((k for k in self.slots if tuple(g[max(0, i + 1 - len(k)) : i + 1]) == k), None)
            i += 1
            if hit is None:
                continue
            trie, start = self.slots[hit], i  # the argument starts right after the trigger
            while True:
                arg = g[start:i]
                nxt = trie.next_ids(arg)
                if nxt is None:
                    raise ConfigError(
                        f"SlotChoices: the generated ids {g} left the allowed arguments after trigger {list(hit)}"
                    )
                done = trie.is_end(arg)
                if done and not nxt:
                    break  # a whole argument that nothing extends: free text again
                if i == len(g):
                    return None if done else nxt  # a whole argument that may go on: the next id is free
                if g[i] not in nxt:
                    if done:
                        break
                    raise ConfigError(
                        f"SlotChoices: the generated ids {g} left the allowed arguments after trigger {list(hit)}"
                    )
                i += 1
        return None


# ---- builders ----------------------------------------------------------------------------------------------------
Builder = Callable[[Any], "Constraint | None"]


def _encode(policy: Any, text: str) -> list[int]:
    return list(policy.chat.encode(text))


def _admissible(policy: Any) -> Builder:
    if getattr(policy, "parser", "raw") != "raw":
        raise ConfigError(
            f"constraint 'admissible' needs the 'raw' parser (the content is the action); the policy parses "
            f"{policy.parser!r}"
        )
    end = list(policy.chat.end_ids)[:1]
    warned: list[bool] = []
    if not end:
        raise ConfigError(
            "constraint 'admissible': the chat template has no end-of-turn id to end a choice with"
        )

    def build(ctx: Any) -> Constraint | None:
        acts = list(dict.fromkeys(ctx.admissible_actions))
        if not acts:
            return None
        seqs = [_encode(policy, a) + end for a in acts]
        longest = max(len(x) for x in seqs)
        if longest > policy.max_new_tokens and not warned:
            warned.append(True)
            log.warning(
                "constraint 'admissible': an admissible action takes %d tokens but max_new_tokens is %d; such "
                "choices are cut off (raise max_new_tokens)",
                longest,
                policy.max_new_tokens,
            )
        return Choices(seqs, texts=acts)

    return build


_ARG = re.compile(r"^\s*([A-Za-z_]\w*)\[([^,\]]*)")


def _arguments(policy: Any, verbs: list[str]) -> Builder:
    triggers = {}
    for v in verbs:
        trig = _encode(policy, f"{v}[")
        if not trig:
            raise ConfigError(f"constraint 'arguments': {v}[ encodes to no ids")
        triggers[v] = trig

    def build(ctx: Any) -> Constraint | None:
        args: list[str] = []
        for act in ctx.admissible_actions:
            m = _ARG.match(act)
            if m and m.group(1) in triggers and m.group(2).strip() and m.group(2).strip() not in args:
                args.append(m.group(2).strip())
        if not args:
            return None
        slots: dict[tuple[int, ...], list[list[int]]] = {}
        for v, trig in triggers.items():
            seqs = []
            for arg in args:
                full = _encode(policy, f"{v}[{arg}")
                if full[: len(trig)] != trig or len(full) == len(trig):
                    raise ConfigError(
                        f"constraint 'arguments': the tokenizer does not spell {v}[{arg} as the ids of {v}[ followed "
                        "by the argument's ids, so the argument cannot be a slot after the trigger"
                    )
                seqs.append(full[len(trig) :])
            slots[tuple(trig)] = seqs
        return SlotChoices(slots)

    return build


def make_constraint(spec: str, policy: Any) -> Builder | None:
    """The constraint builder named by `spec` for `policy` ("" or "none": None; see the module docstring)."""
    spec = (spec or "").strip()
    if spec in ("", "none"):
        return None
    if spec == "admissible":
        return _admissible(policy)
    if spec.startswith("arguments:"):
        verbs = [v.strip() for v in spec[len("arguments:") :].split(",") if v.strip()]
        bad = [v for v in verbs if not re.fullmatch(r"[A-Za-z_]\w*", v)]
        if not verbs or bad:
            raise ConfigError(
                f"constraint {spec!r}: list the verbs as arguments:VERB,VERB (bad: {bad or 'none'})"
            )
        return _arguments(policy, verbs)
    raise ConfigError(f"unknown constraint {spec!r}: use '', 'admissible' or 'arguments:VERB,...'")


def reply_text(constraint: Any, token_ids: Sequence[int], decoded: str) -> str:
    """The reply text of a generation: the chosen sequence's own text under a `Choices` with texts, else `decoded`."""
    text_for = getattr(constraint, "text_for", None)
    got = text_for(token_ids) if callable(text_for) else None
    return decoded if got is None else got


def constraints_for(policy: Any, contexts: Sequence[Any]) -> list[Constraint | None] | None:
    """One constraint per live episode from `policy.constraint`, or None when the policy has no builder (or no episode
    is constrained). Raises ConfigError when the policy's backend cannot decode under constraints."""
    build = getattr(policy, "constraint", None)
    if build is None:
        return None
    if not getattr(policy, "supports_constraints", False):
        raise ConfigError(
            f"{type(policy).__name__} cannot decode under a constraint (policy.constraint is set); the transformers "
            "backends (HFPolicy, VLMPolicy) can"
        )
    out = [build(ctx) for ctx in contexts]
    return out if any(c is not None for c in out) else None
