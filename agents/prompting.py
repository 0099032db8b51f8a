"""Conversations for model-backed agents, and context management for long episodes.

The conversation of an episode is: an optional system prompt (plus retrieved skills/memory), the instructions and
first observation as the first user message, then each action as an assistant message and each next observation as
a user message. `fit_history` keeps a conversation inside a token budget by dropping the oldest turns (never the
system prompt or the instructions) and saying how many were dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from turngym.agents.base import EpisodeContext

Message = dict[str, str]


def system_text(
    system: str | None, prompt_hook: Callable[[str], str | None] | None, instructions: str
) -> str | None:
    """An episode's system message: the fixed `system` prompt, then what `prompt_hook(instructions)` adds (retrieved
    skills, memories, hints), a blank line between; None when both are empty."""
    extra = prompt_hook(instructions) if prompt_hook is not None else None
    if extra:
        return f"{system}\n\n{extra}" if system else extra
    return system


def first_user_message(instructions: str, observation: str) -> str:
    """Instructions, then the first observation unless the instructions already contain it."""
    instructions, observation = instructions.strip(), observation.strip()
    if not observation or observation in instructions:
        return instructions
    if not instructions:
        return observation
    return f"{instructions}\n\n{observation}"


def context_messages(
    ctx: EpisodeContext, system_prompt: str | None = None, raw_key: str = "raw_actions"
) -> list[Message]:
    """The conversation so far for a live episode. Past assistant turns use the agent's raw replies when it kept
    them in `ctx.state[raw_key]` (what the model actually wrote), else the actions the env received."""
    msgs: list[Message] = []
    if system_prompt:
        msgs.append({"role": "system", "content": system_prompt})
    first_obs = ctx.history[0].observation if ctx.history else ctx.observation["text"]
    msgs.append({"role": "user", "content": first_user_message(ctx.instructions, first_obs)})
    raws = ctx.state.get(raw_key, [])
    for t, turn in enumerate(ctx.history):
        msgs.append({"role": "assistant", "content": raws[t] if t < len(raws) else turn.action})
        nxt = ctx.history[t + 1].observation if t + 1 < len(ctx.history) else ctx.observation["text"]
        msgs.append({"role": "user", "content": nxt})
    return msgs


def fit_history(
    messages: list[Message],
    count_tokens: Callable[[list[Message]], int],
    budget: int,
    keep_last: int = 1,
) -> list[Message]:
    """Drop the oldest (assistant, user) turn pairs until `count_tokens(messages) <= budget`.

    The system prompt and the first user message (the instructions) always stay, and so do the last `keep_last`
    pairs; an omission note is appended to the instructions. If even that does not fit, the shortest
    conversation possible is returned (the caller's generation then sees a long prompt rather than no task).
    """
    if count_tokens(messages) <= budget:
        return messages
    head = 2 if messages and messages[0]["role"] == "system" else 1
    pairs = [messages[i : i + 2] for i in range(head, len(messages), 2)]
    dropped = 0
    while len(pairs) > keep_last:
        pairs.pop(0)
        dropped += 1
        kept = _with_note(messages[:head], pairs, dropped)
        if count_tokens(kept) <= budget:
            return kept
    return _with_note(messages[:head], pairs, dropped)


def _with_note(head: list[Message], pairs: list[list[Message]], dropped: int) -> list[Message]:
    out = [dict(m) for m in head]
    for pair in pairs:
        out.extend(dict(m) for m in pair)
    if dropped:
        out[len(head) - 1]["content"] += f"\n\n[{dropped} earlier turn(s) omitted]"
    return out
