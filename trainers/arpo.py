"""ARPO ("Agentic Reinforced Policy Optimization", 2025): entropy-based adaptive branching of rollouts.

Formula and defaults in docs/algorithms.md. Of a per-task budget M = G episodes, N = G·global_frac are sampled from scratch. For each global
rollout and each turn t ≥ 1 (i.e. after an env observation), H_t is the mean entropy of the first k action tokens,
H_initial that of the first turn; ΔH_t = (H_t − H_initial) / H_initial (turngym choice of "normalise": relative
change), branch probability P_t = α + β·ΔH_t. Turns with P_t > τ (highest first) fork Z partial rollouts that share
the prefix up to turn t, until the budget M is used; if no turn qualifies the rest of the budget is global rollouts.
Advantage attribution: the shared prefix turns of a branch family get the mean advantage of the family.

The engine must offer `branch(episode, turn, n, seed) -> list[TokenEpisode]` (replay the first `turn` actions of
`episode.episode`, then sample `n` continuations); see docs/trainers.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.strategies import RolloutStrategy, register_strategy


def turn_entropies(entropy: Tensor, turn_index: Tensor, k: int) -> Tensor:
    """Mean entropy of the first k policy tokens of each turn. entropy [L], turn_index [L] (−1 off-policy) -> [T]."""
    n_turns = int(turn_index.max()) + 1 if (turn_index >= 0).any() else 0
    out = torch.zeros(n_turns)
    for t in range(n_turns):
        h = entropy[turn_index == t][:k]
        out[t] = h.mean() if h.numel() else 0.0
    return out


def branch_probabilities(h_turns: Tensor, alpha: float = 0.0, beta: float = 1.0, eps: float = 1e-8) -> Tensor:
    """P_t = α + β·(H_t − H_0)/H_0 for turns t ≥ 1 (index 0 of the output is turn 1). [T] -> [T−1]."""
    h0 = h_turns[0]
    return alpha + beta * (h_turns[1:] - h0) / (h0.abs() + eps)


def plan_branches(
    probs: list[Tensor], budget: int, tau: float = 0.5, z: int = 2
) -> list[tuple[int, int, int]]:
    """Choose branch points: (episode index, turn, n branches) by decreasing P_t among P_t > τ, Z each (the last one
    may get fewer), until `budget` extra episodes are planned. probs[i]: [T_i − 1] for episode i (turns 1..)."""
    cands = [(float(p), i, t + 1) for i, ps in enumerate(probs) for t, p in enumerate(ps.tolist()) if p > tau]
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    plan, left = [], budget
    for _, i, t in cands:
        if left <= 0:
            break
        n = min(z, left)
        plan.append((i, t, n))
        left -= n
    return plan


def attribute_shared_prefix(turn_adv: list[Tensor], families: list[tuple[list[int], int]]) -> list[Tensor]:
    """ARPO advantage attribution: for each family (episode indices sharing their first `n_shared` turns), the shared
    turns get the family's mean advantage; other turns keep their own. Returns new tensors."""
    out = [a.clone().float() for a in turn_adv]
    for members, n_shared in families:
        if n_shared <= 0 or len(members) < 2:
            continue
        shared = torch.stack([turn_adv[j][:n_shared].float() for j in members]).mean(0)
        for j in members:
            out[j][:n_shared] = shared
    return out


@register_strategy("arpo", min_group_size=1, supports_fsdp=False)
class ARPOStrategy(RolloutStrategy):
    """Rollout strategy: N global rollouts per task, then entropy-triggered branches up to the budget G; the shared
    prefix turns of a branch family get the family's mean advantage."""

    def __init__(self, engine: Any, model: torch.nn.Module, cfg: Any):
        if not hasattr(engine, "branch"):
            raise ConfigError(
                "rollout_strategy=arpo needs a rollout engine with branch(episode, turn, n, seed); this one has none"
            )
        super().__init__(engine, model, cfg)

    def postprocess_advantages(self, group: list[TokenEpisode], advantages: list[Tensor]) -> list[Tensor]:
        return attribute_shared_prefix(advantages, arpo_families(group))

    def _probs(self, ep: TokenEpisode) -> Tensor:
        from turngym.trainers.batch import collate, shift_entropy
        from turngym.trainers.grpo import forward_logits

        b = collate([ep])
        with torch.no_grad():
            ent = shift_entropy(forward_logits(self.model, b), self.cfg.temperature, b.allowed)[0]
        h = turn_entropies(ent, b.turn_index[0], self.cfg.arpo_k)
        return (
            branch_probabilities(h, self.cfg.arpo_alpha, self.cfg.arpo_beta)
            if h.numel() > 1
            else torch.zeros(0)
        )

    def collect(
        self, task_ids: list[str], group_size: int, seed: int, split: str | None, options: dict[str, Any]
    ) -> list[TokenEpisode]:
        cfg = self.cfg
        n_global = max(1, int(round(group_size * cfg.arpo_global_frac)))
        eps = self.engine.collect(task_ids, n_global, seed, split=split, options=options or None)
        out: list[TokenEpisode] = []
        for g_i, group in enumerate(_by_group(eps)):
            budget = group_size - len(group)
            plan = plan_branches([self._probs(e) for e in group], budget, cfg.arpo_tau, cfg.arpo_z)
            members = list(group)
            for b_i, (i, t, n) in enumerate(plan):
                kids = self.engine.branch(group[i], t, n, seed + 7919 * (g_i + 1) + b_i)
                for k in kids:
                    k.meta["arpo_parent"] = i
                    k.meta["arpo_shared_turns"] = t
                members += kids
            left = group_size - len(members)
            if left > 0:
                extra = self.engine.collect(
                    [group[0].task_id], left, seed + 104729 * (g_i + 1), split=split, options=options or None
                )
                members += extra
            for m in members:
                m.group = group[0].group
            out += members
        return out


def _by_group(eps: list[TokenEpisode]) -> list[list[TokenEpisode]]:
    d: dict[Any, list[TokenEpisode]] = {}
    for e in eps:
        d.setdefault(e.group, []).append(e)
    return list(d.values())


def arpo_families(group: list[TokenEpisode]) -> list[tuple[list[int], int]]:
    """Branch families of a group from `meta["arpo_parent"]` / `meta["arpo_shared_turns"]` (indices into group)."""
    fam: dict[tuple[int, int], list[int]] = {}
    for j, e in enumerate(group):
        if "arpo_parent" in e.meta:
            key = (int(e.meta["arpo_parent"]), int(e.meta["arpo_shared_turns"]))
            fam.setdefault(key, [key[0]]).append(j)
    return [(m, t) for (_, t), m in fam.items()]
