"""Reward shaping: the stage between rollouts and advantages that turns a group of episodes into new rewards.

A shaper reads one GRPO group (the `TokenEpisode`s sampled for the same task) and returns, for each episode, its new
per-turn rewards. Episode-level shapers (HC-GRPO, OTC) put the whole shaped reward R on the last turn and 0 elsewhere,
so `sum(rewards) == R` (what GRPO's episode advantage reads) and a discounted return from any step still sees R (what
GiGPO's step level reads). Step-level shapers (SPA-RL, in `trainers.progress`) return one reward per turn.

    hc_grpo(group, lam, weights) / otc(group, alpha, c) -> list[list[float]]   one list of per-turn rewards per episode
    make_hc_grpo(**cfg) / make_otc(**cfg) -> shaper(group, ctx)                  the trainer's hook factories,
                                                                                 registered with `hooks.register_shaper`

Everything reads the env's info schema (`envs/core.py`): `info["cost"]` (named costs of one step), `info["total_cost"]`,
`info["tool_calls"]` (episode so far) and `info["success"]`. `episode_metrics` / `group_metrics` give the numbers the
trainer's logs and progress bar show next to success: cost per name, total cost, tool calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError

Shaper = Callable[..., list[list[float]]]


# ---- what an episode reports ------------------------------------------------------------------------------------
def episode_costs(ep: TokenEpisode) -> dict[str, float]:
    """Named costs of an episode: the sum of the per-step `info["cost"]` dicts (falls back to the last
    `info["total_cost"]` when no step reports `cost`)."""
    total: dict[str, float] = {}
    for info in ep.infos:
        for name, value in (info.get("cost") or {}).items():
            total[name] = total.get(name, 0.0) + float(value)
    if not total and ep.infos:
        total = {k: float(v) for k, v in (ep.infos[-1].get("total_cost") or {}).items()}
    return total


def episode_tool_calls(ep: TokenEpisode) -> int:
    """Tool calls of the episode: `info["tool_calls"]` counts the episode so far, so the last step's value."""
    return int(ep.infos[-1].get("tool_calls", 0)) if ep.infos else 0


def episode_metrics(ep: TokenEpisode) -> dict[str, float]:
    """Flat numbers for logs: success, reward, tool_calls, cost (total) and cost/<name> per named cost."""
    costs = episode_costs(ep)
    out = {
        "success": float(ep.success),
        "reward": ep.total_reward,
        "tool_calls": float(episode_tool_calls(ep)),
        "cost": float(sum(costs.values())),
        "invalid_actions": float(sum(bool(i.get("invalid_action")) for i in ep.infos)),
        "turns": float(len(ep.infos)),
    }
    out.update({f"cost/{k}": v for k, v in sorted(costs.items())})
    return out


def group_metrics(episodes: Sequence[TokenEpisode]) -> dict[str, float]:
    """Means over episodes of `episode_metrics` (a named cost absent from an episode counts as 0), plus
    `tool_calls_per_success` (tool calls of successful episodes / number of successes; the OTC ablation's metric)."""
    if not episodes:
        return {}
    rows = [episode_metrics(ep) for ep in episodes]
    keys = sorted({k for r in rows for k in r})
    out = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in keys}
    wins = [r for r in rows if r["success"]]
    out["tool_calls_per_success"] = sum(r["tool_calls"] for r in wins) / len(wins) if wins else float("nan")
    return out


def _last_turn(ep: TokenEpisode, value: float) -> list[float]:
    n = len(ep.rewards)
    if n == 0:
        raise ConfigError(f"episode of task {ep.task_id!r} has no turns: nothing to shape")
    return [0.0] * (n - 1) + [float(value)]


# ---- HC-GRPO ----------------------------------------------------------------------------------------------------
def hc_reward(
    success: float,
    costs: Mapping[str, float],
    lam: float = 1.0,
    weights: Mapping[str, float] | None = None,
    default_weight: float = 1.0,
) -> float:
    """HC-GRPO episode reward (ESearch-R1, heterogeneous-cost GRPO): R = success − λ · Σ_name w_name · cost_name.

    `costs` are the env's named costs (e.g. navigate, ask, memory: the env already applies its per-unit prices such as
    c_nav per metre); `weights` re-weight them per name (turngym choice: a name without a weight gets `default_weight`).
    """
    w = dict(weights or {})
    return float(success) - lam * sum(w.get(k, default_weight) * float(v) for k, v in costs.items())


def hc_grpo(
    group: Sequence[TokenEpisode],
    lam: float = 1.0,
    weights: Mapping[str, float] | None = None,
    default_weight: float = 1.0,
    base: str = "success",
) -> list[list[float]]:
    """HC-GRPO shaping (ESearch-R1): R_i = base_i − λ·Σ w·cost_i on each episode's last turn; GRPO's group
    normalisation over these R_i then gives the advantages (no critic).

    `base`: "success" (1/0, the paper), "score" (`info["score"]` in [0,1]) or "reward" (the env's summed reward).
    """
    if lam < 0:
        raise ConfigError(f"hc_grpo: lam must be >= 0, got {lam}")
    out = []
    for ep in group:
        b = _base(ep, base, "hc_grpo")
        out.append(_last_turn(ep, hc_reward(b, episode_costs(ep), lam, weights, default_weight)))
    return out


def _base(ep: TokenEpisode, base: str, who: str) -> float:
    if base == "success":
        return float(ep.success)
    if base == "score":
        return float(ep.infos[-1].get("score", 0.0)) if ep.infos else 0.0
    if base == "reward":
        return ep.total_reward
    raise ConfigError(f"{who}: base must be 'success', 'score' or 'reward', got {base!r}")


# ---- OTC --------------------------------------------------------------------------------------------------------
def otc_f(m: int, n: int) -> float:
    """OTC's mapping of tool calls m against the group optimum n (Optimal Tool Calls): f = m if n = 0 else 2nm/(m+n)."""
    if n == 0:
        return float(m)
    return 2.0 * n * m / (m + n)


def otc_tool_reward(m: int, n: int, c: float = 1.0) -> float:
    """OTC tool reward (Optimal Tool Calls): 1 if m = n = 0; cos(m·π/(2m+c)) if n = 0; sin(f(m,n)·π/(2n)) otherwise.

    It is 1 exactly at the optimum (m = n) and falls off on both sides (too few calls as well as too many).
    """
    if m < 0 or n < 0:
        raise ConfigError(f"otc: tool-call counts must be >= 0, got m={m}, n={n}")
    if c <= 0:
        raise ConfigError(f"otc: c must be > 0, got {c}")
    if m == 0 and n == 0:
        return 1.0
    if n == 0:
        return math.cos(m * math.pi / (2 * m + c))
    return math.sin(otc_f(m, n) * math.pi / (2 * n))


def otc(
    group: Sequence[TokenEpisode], alpha: float = 1.0, c: float = 1.0, correct: str = "success"
) -> list[list[float]]:
    """OTC-GRPO shaping (Optimal Tool Calls): R_i = α · r_tool(m_i, n) · r_correct_i, with m_i the episode's tool
    calls and n the fewest tool calls among the group's correct episodes. An incorrect episode earns 0; a group with no
    correct episode earns 0 everywhere (no optimum to measure against).

    `correct`: "success" (1/0, the paper) or "score" (`info["score"]`, graded correctness; turngym choice).
    """
    if correct not in ("success", "score"):
        raise ConfigError(f"otc: correct must be 'success' or 'score', got {correct!r}")
    r_correct = [_base(ep, correct, "otc") for ep in group]
    calls = [episode_tool_calls(ep) for ep in group]
    good = [m for m, r in zip(calls, r_correct) if r > 0]
    out = []
    for ep, m, rc in zip(group, calls, r_correct):
        r = alpha * otc_tool_reward(m, min(good), c) * rc if good else 0.0
        out.append(_last_turn(ep, r))
    return out


def make_hc_grpo(
    lam: float = 1.0,
    weights: Mapping[str, float] | None = None,
    default_weight: float = 1.0,
    base: str = "success",
    log_file: str | None = "rewards.jsonl",
) -> Shaper:
    """Hook factory (config `{"name": "hc_grpo", "lam": ..., "weights": {...}}`): shaper(group, ctx)."""
    if lam < 0:
        raise ConfigError(f"hc_grpo: lam must be >= 0, got {lam}")
    _base_check(base, ("success", "score", "reward"), "hc_grpo")
    w = dict(weights or {})
    return _logged(lambda group: hc_grpo(group, lam, w, default_weight, base), "hc_grpo", log_file)


def make_otc(
    alpha: float = 1.0, c: float = 1.0, correct: str = "success", log_file: str | None = "rewards.jsonl"
) -> Shaper:
    """Hook factory (config `{"name": "otc", "alpha": 1, "c": 1}`): shaper(group, ctx)."""
    if c <= 0:
        raise ConfigError(f"otc: c must be > 0, got {c}")
    _base_check(correct, ("success", "score"), "otc")
    return _logged(lambda group: otc(group, alpha, c, correct), "otc", log_file)


def invalid_action_penalty(group: Sequence[TokenEpisode], coef: float = 0.1) -> list[list[float]]:
    """Invalid-action penalty (verl-agent, the GiGPO paper's framework: `use_invalid_action_penalty`, coefficient
    0.1 in its scripts): r'_t = r_t − coef · [turn t was an invalid action] (the env's `info["invalid_action"]`),
    per turn, on top of the rewards so far (so it composes with the shapers before it in the config)."""
    if coef < 0:
        raise ConfigError(f"invalid_penalty: coef must be >= 0, got {coef}")
    out = []
    for ep in group:
        if len(ep.infos) != len(ep.rewards):
            raise ConfigError(
                f"invalid_penalty: episode of task {ep.task_id!r} has {len(ep.rewards)} rewards but "
                f"{len(ep.infos)} infos"
            )
        out.append([r - coef * float(bool(i.get("invalid_action"))) for r, i in zip(ep.rewards, ep.infos)])
    return out


def make_invalid_penalty(coef: float = 0.1) -> Shaper:
    """Hook factory (config `{"name": "invalid_penalty", "coef": 0.1}`): shaper(group, ctx)."""
    if coef < 0:
        raise ConfigError(f"invalid_penalty: coef must be >= 0, got {coef}")
    return lambda group, ctx=None: invalid_action_penalty(group, coef)


def success_reward(group: Sequence[TokenEpisode], env_weight: float = 0.0) -> list[list[float]]:
    """The binary outcome reward: 1 on the last turn of a successful episode (`info["success"]`), 0 on every other
    turn. What agentic RL papers train WebShop and ALFWorld on (e.g. GiGPO / verl-agent: reward 10·success); an env
    whose own reward is graded (WebShop's attribute-match score) otherwise pays for buying a near miss.

    `env_weight` > 0 adds the env's own episode reward back, R = success + env_weight · Σ_t r_t (on WebShop with
    weight 1: 2 for a success, the score in [0, 1) for a near miss), so a group with no success still ranks its
    episodes by the graded reward while a success outranks every near miss."""
    if env_weight < 0:
        raise ConfigError(f"success: env_weight must be >= 0, got {env_weight}")
    return [_last_turn(ep, float(ep.success) + env_weight * ep.total_reward) for ep in group]


def make_success(env_weight: float = 0.0) -> Shaper:
    return lambda group, ctx=None: success_reward(group, env_weight)


def make_zero() -> Shaper:
    """Hook factory `{"name": "zero"}`: every reward 0, for pure on-policy distillation (the GRPO advantage
    vanishes and only the distillation advantage trains)."""
    return lambda group, ctx=None: [[0.0] * len(ep.rewards) for ep in group]


def _logged(
    fn: Callable[[Sequence[TokenEpisode]], list[list[float]]], name: str, log_file: str | None
) -> Shaper:
    """A group shaper (a pure function of the group) that asks the trainer to log each group it shapes: its
    `group_log = (name, log_file)` makes the trainer append `group_row` to `<output_dir>/<log_file>` (the run's
    episode-level cost log); None logs nothing."""

    def shaper(group: Sequence[TokenEpisode], ctx: Any = None) -> list[list[float]]:
        return fn(group)

    shaper.group_log = (name, log_file) if log_file else None  # type: ignore[attr-defined]
    return shaper


def group_row(
    step: int, name: str, group: Sequence[TokenEpisode], shaped: list[list[float]]
) -> dict[str, Any]:
    """One line of a shaper's group log: the step, the shaper, the mean shaped episode reward and `group_metrics`
    (success, cost per name, tool calls, ...)."""
    row: dict[str, Any] = {"step": int(step), "shaper": name, "episodes": len(group)}
    row["shaped_reward"] = sum(sum(r) for r in shaped) / max(1, len(shaped))
    row.update(group_metrics(group))
    return row


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _base_check(value: str, allowed: tuple[str, ...], who: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{who}: expected one of {allowed}, got {value!r}")


def _register() -> None:
    from turngym.trainers import hooks

    for name, factory in (
        ("hc_grpo", make_hc_grpo),
        ("otc", make_otc),
        ("zero", make_zero),
        ("success", make_success),
        ("invalid_penalty", make_invalid_penalty),
    ):
        hooks.register_shaper(name, factory)


_register()
