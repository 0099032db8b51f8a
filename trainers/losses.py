"""Policy losses (formulas and sources: docs/algorithms.md), KL estimators, loss aggregation and token entropy, as pure tensor functions.

Shapes: B episodes (rows) × L token positions. `logp`, `old_logp`, `ref_logp`: [B, L] log-probs of the token at each
position (0 where not a policy token); `adv`: [B, L] per-token advantages; `mask`: [B, L] float, 1 on policy tokens.
Every loss returns (scalar loss, metrics dict of floats). The POLICY_LOSSES registry maps a config name to
`fn(logp, old_logp, adv, mask, cfg, entropy=None, norm_len=None, vocab_size=None) -> (loss, metrics)`; a loss is
added with `@register_loss("name", default_agg=..., clip_eps=..., needs_entropy=...)` (docs/extending.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from turngym.trainers.registry import Registry, decorator

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


def aggregate(per_token: Tensor, mask: Tensor, mode: str, norm_len: int | None = None) -> Tensor:
    """Reduce per-token losses [B, L] to a scalar.

    token_mean              sum_i sum_t ℓ / sum_i |o_i|                      (DAPO, Yu et al. 2025)
    seq_mean_token_mean     (1/B) sum_i (1/|o_i|) sum_t ℓ                    (GRPO, Shao et al. 2024)
    seq_mean_token_sum_norm (1/B) sum_i sum_t ℓ / norm_len, a constant      (Dr. GRPO, Liu et al. 2025)
    Rows with no policy token count in B for the seq modes (turngym choice: they add 0, so a batch's scale does not
    depend on how many rows happen to be empty).
    """
    masked = per_token * mask
    if mode == "token_mean":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if mode == "seq_mean_token_mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if mode == "seq_mean_token_sum_norm":
        if not norm_len:
            raise ValueError("seq_mean_token_sum_norm needs norm_len (max generation length)")
        return (masked.sum(-1) / float(norm_len)).mean()
    raise ValueError(f"unknown loss aggregation {mode!r}")


def truncated_is_weights(
    old_logp: Tensor, rollout_logp: Tensor, mask: Tensor, cap: float
) -> tuple[Tensor, dict[str, float]]:
    """Truncated importance sampling (DART; verl/SkyRL): the rollout engine (vLLM, other kernels, stale weights)
    sampled from π_rollout, not from the trainer's π_old, so each policy token's policy-gradient term is weighted by
    w_t = min(π_old(o_t) / π_rollout(o_t), C) (no gradient through w). Returns w (0 off the mask) and the mismatch
    mean |log π_old − log π_rollout| and the share of clipped tokens (ratio > C), over the masked tokens."""
    if cap <= 0:
        raise ValueError(f"truncated IS needs a cap C > 0, got {cap}")
    diff = (old_logp - rollout_logp).detach()
    ratio = torch.exp(diff)
    n = mask.sum().clamp(min=1.0)
    stats = {
        "tis_mismatch": float((diff.abs() * mask).sum() / n),
        "tis_clipped_share": float(((ratio > cap).float() * mask).sum() / n),
    }
    return ratio.clamp(max=cap) * mask, stats


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token KL(π_θ || π_ref) estimate (Schulman's estimators, as in DeepSeekMath). [B, L] -> [B, L].

    k1 = log π_θ − log π_ref;  k3 = π_ref/π_θ − log(π_ref/π_θ) − 1 (non-negative, unbiased).
    """
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k3":
        d = ref_logp - logp
        return torch.exp(d) - d - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}")


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Token entropy H = −sum_v p_v log p_v of the next-token distribution. logits [..., V] -> [...]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def ppo_clip_token_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, eps_low: float = 0.2, eps_high: float | None = None
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate per token (GRPO, Shao et al. 2024; clip-higher ε_low/ε_high from DAPO, Yu et al. 2025).

    ℓ_t = −min(r_t A_t, clip(r_t, 1−ε_low, 1+ε_high) A_t), r_t = exp(logp − old_logp). [B, L] -> ([B, L] loss,
    [B, L] bool "clipped" = the clipped branch was the minimum).
    """
    eps_high = eps_low if eps_high is None else eps_high
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    return loss, clipped < unclipped


def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO (Zheng et al. 2025): log s_i = (1/|o_i|) sum_t (logp − old_logp). [B, L] -> [B]."""
    return ((logp - old_logp) * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def _seq_adv(adv: Tensor, mask: Tensor) -> Tensor:
    """One advantage per sequence: the mean over its policy tokens (exactly A_i for episode-level estimators)."""
    return (adv * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def gspo_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, eps_low: float = 3e-4, eps_high: float = 4e-4
) -> tuple[Tensor, dict[str, float]]:
    """GSPO (Zheng et al. 2025, Qwen): −(1/G) sum_i min(s_i A_i, clip(s_i, 1−ε_l, 1+ε_h) A_i),
    s_i = exp((1/|o_i|) sum_t log r_{i,t}). Inputs [B, L]; rows without policy tokens are ignored."""
    s = torch.exp(sequence_log_ratio(logp, old_logp, mask))
    a = _seq_adv(adv, mask)
    unclipped, clipped = s * a, torch.clamp(s, 1.0 - eps_low, 1.0 + eps_high) * a
    per_seq = -torch.minimum(unclipped, clipped)
    has = (mask.sum(-1) > 0).float()
    loss = (per_seq * has).sum() / has.sum().clamp(min=1.0)
    frac = float(((clipped < unclipped).float() * has).sum() / has.sum().clamp(min=1.0))
    ratio_mean = float((s.detach() * has).sum() / has.sum().clamp(min=1.0))
    return loss, {"clip_frac": frac, "ratio_mean": ratio_mean}


def gspo_token_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO-token (Zheng et al. 2025): s_{i,t} = sg[s_i] · π_θ(o_t)/sg[π_θ(o_t)]. Value s_i, gradient of log π_θ(o_t)
    scaled by s_i. [B, L] -> [B, L]."""
    s = torch.exp(sequence_log_ratio(logp, old_logp, mask)).detach()
    return s.unsqueeze(-1) * torch.exp(logp - logp.detach())


def dhpo_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    eps_tok: float = 0.2,
    eps_seq: float = 4e-4,
    weight: Tensor | float = 0.5,
) -> tuple[Tensor, Tensor]:
    """DHPO ("Orchestrating Tokens and Sequences"): token and sequence ratios clipped in their own trust regions, mixed.

    ρ_t = w_t r_t + (1−w_t) s_i (unclipped mix); ρ̃_t = w_t clip(r_t, 1±ε_tok) + (1−w_t) clip(s_i, 1±ε_seq);
    ℓ_t = −min(ρ_t A_t, ρ̃_t A_t). weight: scalar or [B, L] in [0, 1]. Returns ([B, L] loss, [B, L] clipped flag).
    """
    r = torch.exp(logp - old_logp)
    s = torch.exp(sequence_log_ratio(logp, old_logp, mask)).unsqueeze(-1)
    rho = weight * r + (1 - weight) * s
    rho_c = weight * torch.clamp(r, 1 - eps_tok, 1 + eps_tok) + (1 - weight) * torch.clamp(
        s, 1 - eps_seq, 1 + eps_seq
    )
    unclipped, clipped = rho * adv, rho_c * adv
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def dhpo_entropy_weight(entropy: Tensor, vocab_size: int) -> Tensor:
    """DHPO entropy-guided mixing (turngym choice): w_t = H_t / log|V| ∈ [0, 1], detached. [B, L] -> [B, L]."""
    return (entropy.detach() / math.log(max(vocab_size, 2))).clamp(0.0, 1.0)


PolicyLossFn = Callable[..., tuple[Tensor, dict[str, float]]]
POLICY_LOSSES: Registry = Registry(
    "policy loss",
    defaults={
        "default_agg": "seq_mean_token_mean",
        "clip_eps": 0.2,
        "clip_eps_high": None,
        "needs_entropy": False,
    },
)
"""name -> fn(logp, old_logp, adv, mask, cfg, entropy=None, norm_len=None, vocab_size=None) -> (loss, metrics).

Metadata, what the trainer asks a loss instead of branching on its name: `default_agg` (the aggregation when
`loss_agg` is null; with token_mean the trainer weights micro-batches by policy tokens), `clip_eps` /
`clip_eps_high` (the clip range when the config's are null; clip_eps_high None = clip_eps), `needs_entropy`
(bool, or a function of the config: the loss reads token entropies *with* their gradient)."""
register_loss = decorator(POLICY_LOSSES)


def loss_agg(cfg: Any) -> str:
    """The aggregation a run uses: `cfg.loss_agg`, else the default its loss declares."""
    return cfg.loss_agg or POLICY_LOSSES.meta(cfg.loss)["default_agg"]


def default_agg(loss_name: str) -> str:
    """The aggregation loss `loss_name` declares as its default."""
    return POLICY_LOSSES.meta(loss_name)["default_agg"]


def needs_entropy(cfg: Any) -> bool:
    """Whether the configured loss reads token entropies with their gradient (its `needs_entropy` metadata)."""
    need = POLICY_LOSSES.meta(cfg.loss)["needs_entropy"]
    return bool(need(cfg) if callable(need) else need)


def clip_range(cfg: Any, loss_name: str) -> tuple[float, float]:
    """(ε_low, ε_high): the config's clip_eps / clip_eps_high, else the defaults loss `loss_name` declares."""
    meta = POLICY_LOSSES.meta(loss_name)
    low = getattr(cfg, "clip_eps", None)
    low = meta["clip_eps"] if low is None else low
    high = getattr(cfg, "clip_eps_high", None)
    if high is None:
        high = low if meta["clip_eps_high"] is None else meta["clip_eps_high"]
    return float(low), float(high)


def _cfg(cfg: Any) -> Any:
    """The config a loss reads its fields from: `cfg`, or the `GRPOConfig` defaults when None."""
    if cfg is not None:
        return cfg
    from turngym.trainers.config import default_grpo_config

    return default_grpo_config()


def _token_loss_metrics(
    per_tok: Tensor, clipped: Tensor, mask: Tensor, logp: Tensor, old_logp: Tensor
) -> dict:
    n = mask.sum().clamp(min=1.0)
    return {
        "clip_frac": float((clipped.float() * mask).sum() / n),
        "ratio_mean": float((torch.exp(logp.detach() - old_logp) * mask).sum() / n),
    }


def _ppo_like(name: str) -> PolicyLossFn:
    def fn(logp, old_logp, adv, mask, cfg=None, entropy=None, norm_len=None, vocab_size=None):
        lo, hi = clip_range(cfg, name)
        per_tok, clipped = ppo_clip_token_loss(logp, old_logp, adv, lo, hi)
        agg = getattr(cfg, "loss_agg", None) or default_agg(name)
        return aggregate(per_tok, mask, agg, norm_len), _token_loss_metrics(
            per_tok, clipped, mask, logp, old_logp
        )

    fn.__name__ = f"_{name}"
    return fn


register_loss("ppo_clip", _ppo_like("ppo_clip"))  # GRPO's clipped surrogate (Shao et al. 2024)
register_loss("dapo", _ppo_like("dapo"), default_agg="token_mean", clip_eps_high=0.28)  # Yu et al. 2025


@register_loss("gspo", clip_eps=3e-4, clip_eps_high=4e-4)
def _gspo(logp, old_logp, adv, mask, cfg=None, entropy=None, norm_len=None, vocab_size=None):
    """GSPO (Zheng et al. 2025): `gspo_loss` with the configured clip range."""
    lo, hi = clip_range(cfg, "gspo")
    return gspo_loss(logp, old_logp, adv, mask, lo, hi)


@register_loss("gspo_token", clip_eps=3e-4, clip_eps_high=4e-4)
def _gspo_token(logp, old_logp, adv, mask, cfg=None, entropy=None, norm_len=None, vocab_size=None):
    """GSPO-token (Zheng et al. 2025): the clipped surrogate of `gspo_token_ratio`, aggregated per token."""
    lo, hi = clip_range(cfg, "gspo_token")
    s = gspo_token_ratio(logp, old_logp, mask)
    unclipped, clipped = s * adv, torch.clamp(s, 1 - lo, 1 + hi) * adv
    per_tok = -torch.minimum(unclipped, clipped)
    agg = getattr(cfg, "loss_agg", None) or default_agg("gspo_token")
    return aggregate(per_tok, mask, agg, norm_len), _token_loss_metrics(
        per_tok, clipped < unclipped, mask, logp, old_logp
    )


@register_loss("dhpo", needs_entropy=lambda cfg: cfg.dhpo_mixing == "entropy")
def _dhpo(logp, old_logp, adv, mask, cfg=None, entropy=None, norm_len=None, vocab_size=None):
    """DHPO ("Orchestrating Tokens and Sequences"): `dhpo_token_loss`, weight 0.5 or entropy-guided."""
    c = _cfg(cfg)
    if c.dhpo_mixing == "entropy":
        if entropy is None or vocab_size is None:
            raise ValueError("DHPO entropy mixing needs token entropies and the vocabulary size")
        w: Tensor | float = dhpo_entropy_weight(entropy, vocab_size)
    else:
        w = 0.5
    per_tok, clipped = dhpo_token_loss(logp, old_logp, adv, mask, c.dhpo_eps_tok, c.dhpo_eps_seq, w)
    agg = getattr(cfg, "loss_agg", None) or default_agg("dhpo")
    return aggregate(per_tok, mask, agg, norm_len), _token_loss_metrics(
        per_tok, clipped, mask, logp, old_logp
    )
