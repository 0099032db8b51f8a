"""Advantage estimators (formulas and sources: docs/algorithms.md), as pure functions on tensors, plus the ADVANTAGES registry.

Every registry entry maps one *group* of episodes (same task) to per-turn advantages:

    fn(episode_rewards: list[Tensor[T_i]], obs_keys: list[list[str]], cfg) -> list[Tensor[T_i]]

registered with `@register_advantage("name")`, where episode i has T_i turns with per-turn rewards `episode_rewards[i]` (after reward shaping). Episode-level
estimators give every turn of episode i the same value A_i; GiGPO adds a step-level term. The trainer then
broadcasts turn t's advantage onto the policy tokens of turn t (`token_advantages`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from turngym.trainers.registry import Registry, decorator


def grpo_advantages(rewards: Tensor, eps: float = 1e-6, std_norm: bool = True) -> Tensor:
    """GRPO (Shao et al. 2024, DeepSeekMath): A_i = (R_i - mean_j R_j) / (std_j R_j + eps).

    rewards: [G] episode rewards of one group -> [G]. std is the unbiased sample std (torch default, as TRL/verl);
    a group of one gets 0. A group with all-equal rewards gets all zeros (the trainer counts and logs those).
    """
    rewards = rewards.float()
    centred = rewards - rewards.mean()
    if not std_norm:
        return centred
    if rewards.numel() < 2:
        return torch.zeros_like(rewards)
    return centred / (rewards.std() + eps)


def drgrpo_advantages(rewards: Tensor) -> Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like training"): A_i = R_i - mean_j R_j (no std division).

    rewards: [G] -> [G]. (Its length normalisation change lives in the loss aggregation `seq_mean_token_sum_norm`.)
    """
    rewards = rewards.float()
    return rewards - rewards.mean()


def rloo_advantages(rewards: Tensor) -> Tensor:
    """RLOO (Ahmadian et al. 2024): A_i = R_i - (1/(G-1)) sum_{j != i} R_j.  rewards: [G] -> [G], needs G >= 2."""
    rewards = rewards.float()
    g = rewards.numel()
    if g < 2:
        raise ValueError("RLOO needs at least 2 episodes per group")
    loo_mean = (rewards.sum() - rewards) / (g - 1)
    return rewards - loo_mean


def discounted_returns(step_rewards: Tensor, gamma: float) -> Tensor:
    """R^γ_t = sum_{k>=t} γ^(k-t) r_k.  step_rewards: [T] -> [T]."""
    out = torch.zeros_like(step_rewards, dtype=torch.float32)
    running = 0.0
    for t in range(step_rewards.numel() - 1, -1, -1):
        running = float(step_rewards[t]) + gamma * running
        out[t] = running
    return out


def gigpo_advantages(
    step_rewards: list[Tensor],
    obs_keys: list[list[str]],
    gamma: float = 0.95,
    omega: float = 1.0,
    std_norm: bool = True,
    eps: float = 1e-6,
) -> list[Tensor]:
    """GiGPO (Feng et al. 2025, "Group-in-Group Policy Optimization"): A_{i,t} = A^E_i + ω·A^S_{i,t}.

    step_rewards: G tensors [T_i] (per-turn rewards of episode i); obs_keys: G lists [T_i] (the anchor state each
    action was taken in, info["obs_key"]). Returns G tensors [T_i].
      A^E_i = (R_i - mean_j R_j) / F with R_i = sum_t r_{i,t};
      A^S_{i,t} = (R^γ_{i,t} - mean of R^γ over the steps of the group sharing obs_key) / F, 0 for singleton anchors;
      F = std (unbiased, + eps) when std_norm else 1. An anchor group whose returns are all equal gives 0.
    """
    if len(step_rewards) != len(obs_keys):
        raise ValueError("gigpo_advantages: one obs_keys list per episode")
    totals = torch.tensor([float(r.sum()) for r in step_rewards])
    ep_adv = grpo_advantages(totals, eps=eps, std_norm=std_norm)
    returns = [discounted_returns(r, gamma) for r in step_rewards]
    step_adv = anchor_advantages(returns, obs_keys, std_norm=std_norm, eps=eps)
    return [ep_adv[i] + omega * step_adv[i] for i in range(len(step_rewards))]


def anchor_advantages(
    values: list[Tensor], keys: list[list[str]], std_norm: bool = True, eps: float = 1e-6
) -> list[Tensor]:
    """Step-level group normalisation: values[i][t] minus the mean of every step of the group with the same key
    keys[i][t], divided by their std (unbiased, + eps) when std_norm; 0 for a key held by one step only.

    values: G tensors [T_i] (e.g. discounted returns); keys: G lists [T_i]. Returns G tensors [T_i]. GiGPO's anchor
    states use the env's obs_key; UI-S1 keys steps by (turn, obs_key)."""
    anchors: dict[str, list[tuple[int, int]]] = {}
    for i, ks in enumerate(keys):
        if len(ks) != values[i].numel():
            raise ValueError(f"episode {i}: {len(ks)} obs_keys for {values[i].numel()} steps")
        for t, k in enumerate(ks):
            anchors.setdefault(str(k), []).append((i, t))
    out = [torch.zeros_like(v, dtype=torch.float32) for v in values]
    for members in anchors.values():
        if len(members) < 2:
            continue
        vals = torch.stack([values[i][t].float() for i, t in members])
        centred = vals - vals.mean()
        if std_norm:
            centred = centred / (vals.std() + eps)
        for (i, t), a in zip(members, centred):
            out[i][t] = a
    return out


AdvantageFn = Callable[[list[Tensor], list[list[str]], Any], list[Tensor]]
ADVANTAGES: Registry = Registry("advantage estimator", defaults={"min_group_size": 1})
"""name -> estimator(step_rewards, obs_keys, cfg) -> per-turn advantages. Metadata: `min_group_size` (the smallest
`group_size` the estimator is defined for; the config checks it)."""
register_advantage = decorator(ADVANTAGES)


def _cfg(cfg: Any) -> Any:
    """The config an estimator reads its fields from: `cfg`, or the `GRPOConfig` defaults when None."""
    if cfg is not None:
        return cfg
    from turngym.trainers.config import default_grpo_config

    return default_grpo_config()


def _per_turn(step_rewards: list[Tensor], adv: Tensor) -> list[Tensor]:
    """Episode i's advantage adv[i] on every one of its turns."""
    return [torch.full((r.numel(),), float(a)) for r, a in zip(step_rewards, adv)]


def _totals(step_rewards: list[Tensor]) -> Tensor:
    return torch.tensor([float(r.sum()) for r in step_rewards])


@register_advantage("grpo")
def _grpo_estimator(step_rewards: list[Tensor], obs_keys: list[list[str]], cfg: Any = None) -> list[Tensor]:
    """GRPO (Shao et al. 2024): `grpo_advantages` of the episode returns on every turn."""
    return _per_turn(step_rewards, grpo_advantages(_totals(step_rewards), eps=_cfg(cfg).adv_eps))


@register_advantage("drgrpo")
def _drgrpo_estimator(step_rewards: list[Tensor], obs_keys: list[list[str]], cfg: Any = None) -> list[Tensor]:
    """Dr. GRPO (Liu et al. 2025): `drgrpo_advantages` of the episode returns on every turn."""
    return _per_turn(step_rewards, drgrpo_advantages(_totals(step_rewards)))


@register_advantage("rloo", min_group_size=2)
def _rloo_estimator(step_rewards: list[Tensor], obs_keys: list[list[str]], cfg: Any = None) -> list[Tensor]:
    """RLOO (Ahmadian et al. 2024): `rloo_advantages` of the episode returns on every turn."""
    return _per_turn(step_rewards, rloo_advantages(_totals(step_rewards)))


@register_advantage("gigpo")
def _gigpo(step_rewards: list[Tensor], obs_keys: list[list[str]], cfg: Any = None) -> list[Tensor]:
    """GiGPO (Feng et al. 2025): `gigpo_advantages` with the config's gamma, omega, std_norm and eps."""
    c = _cfg(cfg)
    return gigpo_advantages(
        step_rewards,
        obs_keys,
        gamma=c.gigpo_gamma,
        omega=c.gigpo_omega,
        std_norm=c.gigpo_std_norm,
        eps=c.adv_eps,
    )


def token_advantages(turn_index: Tensor, turn_adv: list[Tensor]) -> Tensor:
    """Broadcast per-turn advantages onto tokens: out[b, k] = turn_adv[b][turn_index[b, k]], 0 where turn_index < 0.

    turn_index: [B, L] long (-1 for prompt/observation/padding tokens); turn_adv: B tensors [T_b] -> [B, L] float.
    """
    out = torch.zeros(turn_index.shape, dtype=torch.float32)
    for b, adv in enumerate(turn_adv):
        idx = turn_index[b]
        valid = idx >= 0
        if valid.any():
            if int(idx[valid].max()) >= adv.numel():
                raise ValueError(
                    f"episode {b}: token turn_index {int(idx.max())} but only {adv.numel()} turns"
                )
            out[b, valid] = adv.float()[idx[valid]]
    return out
