"""TokenEpisodes -> padded tensors for a forward pass, and per-token log-probs from a causal LM.

Positions line up with `input_ids`: `logprobs[b, k]` is log π(input_ids[b, k] | input_ids[b, :k]), so position 0
(never a policy token) is 0. Padding is on the right; padded positions have mask 0 and turn_index −1.

Constrained decoding (`turngym.agents.constraints`): episodes sampled under a constraint carry the allowed ids of
each constrained token; `collate` gathers them into `Batch.allowed` [B, L, W] (−1 padded; a row of −1: free) and
`shift_logprobs` / `shift_entropy` then use the distribution renormalised over them, the one the sampler drew from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from turngym.agents.trajectory import TokenEpisode


@dataclass
class Batch:
    input_ids: Tensor  # [B, L] long
    attention_mask: Tensor  # [B, L] long
    policy_mask: Tensor  # [B, L] float, 1 on policy tokens
    old_logprobs: Tensor  # [B, L] float, sampling log-probs
    turn_index: Tensor  # [B, L] long, −1 off-policy tokens
    # vision-language episodes: {"mm_token_type_ids" [B, L], and with images "pixel_values", "image_grid_thw"}
    images: dict[str, Tensor] | None = None
    # constrained episodes: [B, L, W] allowed ids per position, −1 padded (all −1: unconstrained); None: none
    allowed: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            *(
                t.to(device)
                for t in (
                    self.input_ids,
                    self.attention_mask,
                    self.policy_mask,
                    self.old_logprobs,
                    self.turn_index,
                )
            ),
            images=None if self.images is None else {k: v.to(device) for k, v in self.images.items()},
            allowed=None if self.allowed is None else self.allowed.to(device),
        )


def collate(episodes: list[TokenEpisode], pad_id: int = 0) -> Batch:
    """Right-pad a list of TokenEpisodes to the longest. Raises ValueError when an episode's first token is a policy
    token (nothing to condition it on) or an episode is empty."""
    if not episodes:
        raise ValueError("collate: no episodes")
    length = max(len(e.input_ids) for e in episodes)
    b = len(episodes)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    att = torch.zeros((b, length), dtype=torch.long)
    pm = torch.zeros((b, length), dtype=torch.float32)
    lp = torch.zeros((b, length), dtype=torch.float32)
    ti = torch.full((b, length), -1, dtype=torch.long)
    for i, e in enumerate(episodes):
        n = len(e.input_ids)
        if n == 0:
            raise ValueError(f"collate: episode {i} (task {e.task_id}) has no tokens")
        if e.policy_mask[0]:
            raise ValueError(f"collate: episode {i} starts with a policy token; it needs a prompt before it")
        ids[i, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        att[i, :n] = 1
        pm[i, :n] = torch.tensor(e.policy_mask, dtype=torch.float32)
        lp[i, :n] = torch.tensor(e.logprobs, dtype=torch.float32) * pm[i, :n]
        ti[i, :n] = torch.tensor(e.turn_index, dtype=torch.long)
    ti = torch.where(pm > 0, ti, torch.full_like(ti, -1))
    return Batch(
        ids,
        att,
        pm,
        lp,
        ti,
        images=_collate_images(episodes, length),
        allowed=_collate_allowed(episodes, length),
    )


def _collate_allowed(episodes: list[TokenEpisode], length: int) -> Tensor | None:
    """[B, L, W] allowed ids of the constrained positions (W: the most any position allows), −1 elsewhere."""
    if not any(e.allowed for e in episodes):
        return None
    width = max(len(ids) for e in episodes for ids in e.allowed.values())
    out = torch.full((len(episodes), length, width), -1, dtype=torch.long)
    for i, e in enumerate(episodes):
        for k, ids in e.allowed.items():
            out[i, k, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def _collate_images(episodes: list[TokenEpisode], length: int) -> dict[str, Tensor] | None:
    """Image inputs of vision-language episodes, rows in order: their images' pixel values and grids concatenated
    (the model assigns them to the placeholder runs in row-major order), token types right-padded with 0."""
    if all(getattr(e, "mm_token_type_ids", None) is None for e in episodes):
        return None
    mm = torch.zeros((len(episodes), length), dtype=torch.long)
    pixels, grids = [], []
    for i, e in enumerate(episodes):
        if e.mm_token_type_ids is None:
            raise ValueError(
                f"collate: episode {i} (task {e.task_id}) has no image token types among VLM episodes"
            )
        mm[i, : len(e.mm_token_type_ids)] = torch.tensor(e.mm_token_type_ids, dtype=torch.long)
        if e.image_inputs:
            pixels.append(torch.as_tensor(e.image_inputs["pixel_values"]))
            grids.append(torch.as_tensor(e.image_inputs["image_grid_thw"]))
    out = {"mm_token_type_ids": mm}
    if pixels:
        out["pixel_values"] = torch.cat(pixels)
        out["image_grid_thw"] = torch.cat(grids)
    return out


def _allowed_logits(logits: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
    """(the logits of each position's allowed ids [B, L-1, W] with −inf on padding, which positions are constrained
    [B, L-1]) for shifted `logits` [B, L-1, V] and `allowed` [B, L, W] (aligned with the tokens they constrain)."""
    a = allowed[:, 1:].to(logits.device)
    sel = logits.gather(-1, a.clamp(min=0)).masked_fill(a < 0, float("-inf"))
    return sel, a[..., 0] >= 0


def shift_logprobs(
    logits: Tensor, input_ids: Tensor, temperature: float = 1.0, allowed: Tensor | None = None
) -> Tensor:
    """Log-prob of each token given its prefix, aligned with input_ids. logits [B, L, V], input_ids [B, L] -> [B, L]
    (column 0 is 0). `temperature` divides the logits as the sampler did, so ratios compare like with like.
    `allowed` [B, L, W] (`Batch.allowed`): at a constrained position the log-prob is renormalised over its allowed
    ids, z[y]/T − logsumexp_{v allowed} z[v]/T, as the constrained sampler drew it."""
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    target = input_ids[:, 1:].unsqueeze(-1)
    lp = torch.log_softmax(logits, dim=-1).gather(-1, target).squeeze(-1)
    if allowed is not None:
        sel, on = _allowed_logits(logits, allowed)
        masked = logits.gather(-1, target).squeeze(-1) - torch.logsumexp(sel, dim=-1)
        lp = torch.where(on, masked, lp)
    return torch.cat([torch.zeros_like(lp[:, :1]), lp], dim=1)


def shift_entropy(logits: Tensor, temperature: float = 1.0, allowed: Tensor | None = None) -> Tensor:
    """Entropy of the distribution each token was drawn from, aligned with input_ids. [B, L, V] -> [B, L]; with
    `allowed`, a constrained position's distribution is the one renormalised over its allowed ids."""
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)
    h = -(logp.exp() * logp).sum(-1)
    if allowed is not None:
        sel, on = _allowed_logits(logits, allowed)
        lq = torch.log_softmax(sel, dim=-1)
        hq = -(lq.exp() * torch.where(torch.isfinite(lq), lq, torch.zeros_like(lq))).sum(-1)
        h = torch.where(on, hq, h)
    return torch.cat([torch.zeros_like(h[:, :1]), h], dim=1)
