"""EPO ("Entropy-regularized Policy Optimization for LLM agents", 2025), formula and defaults in docs/algorithms.md.

For long sparse-reward episodes: an entropy bonus over the policy tokens, plus a hinge regulariser keeping the
batch entropy H inside a band around its historical moving average H̄, with a phase-dependent bonus weight β_k:

    L_EPO = −β_k·H + α·[max(0, H − κ_hi·H̄) + max(0, κ_lo·H̄ − H)]

(the hinge form the paper states; the band-penalty sign of the authors' released code is reported wrong and not used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


def masked_mean_entropy(entropy: Tensor, mask: Tensor) -> Tensor:
    """H averaged over the policy tokens of the batch. entropy, mask: [B, L] -> scalar."""
    return (entropy * mask).sum() / mask.sum().clamp(min=1.0)


def epo_smoothing(h: Tensor, h_hist: float, kappa_lo: float = 0.8, kappa_hi: float = 1.2) -> Tensor:
    """Hinge band penalty max(0, H − κ_hi·H̄) + max(0, κ_lo·H̄ − H); zero inside [κ_lo·H̄, κ_hi·H̄]. scalar -> scalar."""
    return torch.relu(h - kappa_hi * h_hist) + torch.relu(kappa_lo * h_hist - h)


def epo_loss(
    h: Tensor,
    h_hist: float | None,
    beta: float,
    alpha: float = 1e-3,
    kappa_lo: float = 0.8,
    kappa_hi: float = 1.2,
) -> Tensor:
    """EPO regulariser added to the policy-gradient loss: −β_k·H + α·smooth(H, H̄). With no history yet (first step),
    only the bonus applies. h: scalar batch entropy (with grad)."""
    out = -beta * h
    if h_hist is not None:
        out = out + alpha * epo_smoothing(h, h_hist, kappa_lo, kappa_hi)
    return out


def epo_beta(step: int, beta0: float = 1e-3, decay: float = 0.0, beta_min: float = 0.0) -> float:
    """Adaptive phase weighting (turngym choice of schedule): β_k = max(β_min, β_0·(1 − decay)^k), larger early."""
    return max(beta_min, beta0 * (1.0 - decay) ** step)


@dataclass
class EntropyHistory:
    """Moving average H̄ of past batch entropies: H̄ ← m·H̄ + (1−m)·H (first value taken as is). Checkpointed."""

    momentum: float = 0.9
    value: float | None = None

    def update(self, h: float) -> float | None:
        """Record this step's entropy; returns H̄ *before* the update (what this step was regularised against)."""
        prev = self.value
        self.value = h if prev is None else self.momentum * prev + (1 - self.momentum) * h
        return prev

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "value": self.value}

    def load_state_dict(self, d: dict) -> None:
        self.momentum, self.value = d["momentum"], d["value"]


class EntropyTerms:
    """The entropy terms of the trainer's loss, from the config: the plain bonus −c·H (`entropy_coef`) and, with
    `epo`, the EPO regulariser against H̄. One object per trainer: `begin_update(step)` fixes β_k and H̄ for an
    update, `apply(loss, h)` adds the terms to a micro-batch's loss, `end_update(entropies)` records the update's
    mean entropy in H̄ and returns what to log. `state_dict` is H̄ (checkpointed)."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.history = EntropyHistory(cfg.epo_momentum)
        self._beta = 0.0
        self._h_hist: float | None = None

    @property
    def needs_grad(self) -> bool:
        """Whether the loss differentiates through the entropy."""
        return self.cfg.entropy_coef > 0 or self.cfg.epo

    def begin_update(self, step: int) -> None:
        c = self.cfg
        self._beta = epo_beta(step, c.epo_beta0, c.epo_beta_decay, c.epo_beta_min)
        self._h_hist = self.history.value

    def apply(self, loss: Tensor, h: Tensor) -> Tensor:
        c = self.cfg
        if c.entropy_coef > 0:
            loss = loss - c.entropy_coef * h
        if c.epo:
            loss = loss + epo_loss(h, self._h_hist, self._beta, c.epo_alpha, c.epo_kappa_lo, c.epo_kappa_hi)
        return loss

    def end_update(self, entropies: list[float]) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.cfg.epo:
            out["epo_beta"] = self._beta
            out["entropy_hist"] = self._h_hist if self._h_hist is not None else float("nan")
        if entropies:
            self.history.update(float(np.mean(entropies)))
        return out

    def state_dict(self) -> dict:
        return self.history.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.history.load_state_dict(d)
