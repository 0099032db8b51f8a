"""Teaching a tiny model one reply, trained to a margin rather than for a fixed number of steps.

A fixed step count leaves the greedy answer to the CPU's rounding (AVX2 and AVX-512 kernels sum in different
orders); a clear margin between each target token and the best other token makes it the same on every CPU."""

from __future__ import annotations

from typing import Any

import torch

MARGIN = 3.0  # nats between each target token and the best other one; rounding differences are far smaller
MAX_STEPS = 300


def token_margins(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per position: the target token's logit minus the largest other logit. logits [N, V], target [N] -> [N]."""
    others = logits.scatter(1, target[:, None], -float("inf"))
    return logits.gather(1, target[:, None])[:, 0] - others.max(1).values


def fit_reply(
    policy: Any,
    messages: list[dict[str, str]],
    reply: str,
    margin: float = MARGIN,
    max_steps: int = MAX_STEPS,
    lr: float = 1e-2,
) -> int:
    """Adam on the cross-entropy of `reply` (and the template's closing tokens) after `messages`, in place on
    `policy.model`, until every one of those tokens leads by `margin` nats; returns the steps taken. Fails the test
    when `max_steps` do not get there."""
    target = policy.chat.template_ids([*messages, {"role": "assistant", "content": reply}])
    n = len(policy.chat.prompt_ids(messages))
    x = torch.tensor([target])
    answer = x[0, n:]
    opt = torch.optim.Adam(policy.model.parameters(), lr=lr)
    policy.model.train()
    got = torch.full((len(answer),), -float("inf"))
    step = 0
    try:
        for step in range(max_steps + 1):
            logits = policy.model(x).logits[0, n - 1 : -1]
            with torch.no_grad():
                got = token_margins(logits, answer)
            if got.min() >= margin or step == max_steps:
                break
            loss = torch.nn.functional.cross_entropy(logits, answer)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        policy.model.eval()
    assert got.min() >= margin, f"{reply!r} not fitted in {max_steps} steps: margins {got.tolist()}"
    return step
