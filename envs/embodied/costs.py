"""Heterogeneous action costs and the cost-aware episode reward of HC-GRPO (ESearch-R1).

HC-GRPO (ESearch-R1; formula and defaults in docs/algorithms.md, "Cost-aware rewards"):
    Navigate:  c_nav * d            d = shortest-path metres travelled
    Ask:       c_ask * (1 + alpha * n)   n = questions already asked this episode (the person's patience wears out)
    GetMemory: c_mem
    R = success - lambda * sum(costs)     (lambda = 0 gives plain success)
Defaults (turngym's choice, docs/algorithms.md): c_nav = 0.02 / m, c_ask = 0.1, alpha = 0.5, c_mem = 0.01, lambda = 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from turngym.errors import ConfigError

COST_NAMES = ("navigate", "ask", "memory")


@dataclass(frozen=True)
class CostModel:
    c_nav: float = 0.02
    c_ask: float = 0.1
    alpha: float = 0.5
    c_mem: float = 0.01
    lam: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"cost {f.name!r} must be a non-negative number, got {v!r}")

    @classmethod
    def from_config(cls, config: CostModel | dict[str, Any] | None) -> CostModel:
        if config is None or isinstance(config, CostModel):
            return config or cls()
        if not isinstance(config, dict):
            raise ConfigError(f"costs must be a dict like {asdict(cls())}, got {type(config).__name__}")
        unknown = set(config) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(
                f"unknown cost name(s) {sorted(unknown)}; accepted: {[f.name for f in fields(cls)]}"
            )
        return cls(**config)

    def navigate(self, metres: float) -> float:
        """c_nav * distance (HC-GRPO)."""
        return self.c_nav * metres

    def ask(self, asked_before: int) -> float:
        """c_ask * (1 + alpha * n_asks_so_far) (HC-GRPO)."""
        return self.c_ask * (1.0 + self.alpha * asked_before)

    def memory(self) -> float:
        """c_mem (HC-GRPO)."""
        return self.c_mem

    def penalty(self, step_costs: dict[str, float]) -> float:
        """lambda * sum of this step's costs: summed over an episode, plus success, gives R."""
        return self.lam * sum(step_costs.values())

    def episode_reward(self, success: bool, total_costs: dict[str, float]) -> float:
        """R = success - lambda * sum(costs) (HC-GRPO)."""
        return float(success) - self.penalty(total_costs)
