"""Evaluate an agent on an env: trajectories, a summary with confidence intervals, and a self-contained HTML report.

from turngym import evaluate
result = evaluate("turngym/ALFWorld-v0", "expert", episodes=20, split="valid_unseen", out="runs/eval")
result.summary["success_rate"]
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.agents.base import Agent, make_agent
from turngym.agents.rollout import run_episodes
from turngym.agents.trajectory import Episode, TokenEpisode
from turngym.errors import ConfigError

log = logging.getLogger(__name__)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    n = len(episodes)
    wins = sum(e.success for e in episodes)
    turns = sum(e.turns for e in episodes)
    cost: dict[str, float] = {}
    for e in episodes:
        for k, v in e.total_cost.items():
            cost[k] = cost.get(k, 0.0) + v
    lo, hi = wilson_interval(wins, n)
    return {
        "episodes": n,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": [lo, hi],
        "mean_score": sum(e.score for e in episodes) / n if n else 0.0,
        "mean_reward": sum(e.total_reward for e in episodes) / n if n else 0.0,
        "mean_turns": turns / n if n else 0.0,
        "invalid_action_rate": sum(e.invalid_actions for e in episodes) / turns if turns else 0.0,
        "mean_cost": {k: v / n for k, v in sorted(cost.items())},
        "mean_tool_calls": sum((e.steps[-1].info.get("tool_calls", 0) if e.steps else 0) for e in episodes)
        / n
        if n
        else 0.0,
    }


@dataclass
class EvalResult:
    env_id: str
    agent: str
    summary: dict[str, Any]
    episodes: list[Episode]
    out_dir: Path | None = None

    @property
    def report_path(self) -> Path | None:
        return self.out_dir / "report.html" if self.out_dir else None


RUN_FIELDS = ("env_id", "agent", "split", "seed", "max_turns", "task_pack", "env_kwargs")


def _agent_key(spec: str) -> str:
    """An agent spec without the options that do not change its actions (request timeout, retries)."""
    target, _, query = str(spec).partition("?")
    keep = [o for o in query.split("&") if o and not o.startswith(("timeout=", "retries="))]
    return target + ("?" + "&".join(keep) if keep else "")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_finished(path: Path) -> list[Episode]:
    """Episodes of an episodes.jsonl written by an interrupted run; a torn last line (killed mid-write) is dropped,
    any other unreadable line is an error naming it."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Episode] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(Episode.from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            if n == len(lines):
                log.warning("%s:%d: dropping a partly written last line", path, n)
                break
            raise ConfigError(f"{path}:{n}: not an episode record ({exc}); cannot resume from it") from exc
    return out


def _previous_run(out_dir: Path, run: dict[str, Any], episodes: int) -> list[Episode]:
    """The finished episodes in `out_dir`, after checking they belong to the same evaluation as `run`."""
    summary_path = out_dir / "summary.json"
    previous = _read_finished(out_dir / "episodes.jsonl")
    if summary_path.exists():
        try:
            old = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{summary_path} is not valid JSON ({exc}); cannot resume from it") from exc
        for key in RUN_FIELDS:
            if key not in old:
                continue
            a, b = old[key], run[key]
            if key == "agent":
                a, b = _agent_key(a), _agent_key(b)
            if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
                raise ConfigError(
                    f"cannot resume: {summary_path} records {key}={old[key]!r} but this run has "
                    f"{key}={run[key]!r}; use the same settings, or a new --out folder"
                )
    for ep in previous:
        if ep.env_id != run["env_id"]:
            raise ConfigError(
                f"cannot resume: {out_dir / 'episodes.jsonl'} holds episodes of {ep.env_id}, not {run['env_id']}"
            )
    unique = {(e.task_id, e.seed): e for e in previous}
    if len(unique) > episodes:
        raise ConfigError(
            f"cannot resume: {out_dir / 'episodes.jsonl'} already holds {len(unique)} episodes, more than the "
            f"{episodes} asked for"
        )
    if not previous and not summary_path.exists():
        log.warning("nothing to resume in %s: starting from the first episode", out_dir)
    else:
        log.info("resuming %s: %d of %d episodes already finished", out_dir, len(unique), episodes)
    return list(unique.values())


def evaluate(
    env_id: str,
    agent: str | Agent,
    episodes: int = 10,
    split: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    max_turns: int | None = None,
    task_pack: str | None = None,
    num_envs: int = 8,
    progress: bool = False,
    resume: bool = False,
    agent_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """Run `episodes` episodes and summarise.

    With `out`, each finished episode is appended to `out/episodes.jsonl` and `summary.json` is rewritten at once,
    so a killed run keeps what finished; `report.html` is written at the end, also when the run stops on an error
    or Ctrl-C. `resume=True` keeps the episodes already in `out` and plays only the missing (task_id, seed) pairs;
    the settings must match those in its summary.json. `agent_kwargs` go to `make_agent` (e.g. `timeout`).
    """
    spec = agent if isinstance(agent, str) else getattr(agent, "spec", agent.name)
    out_dir = Path(out) if out is not None else None
    if resume and out_dir is None:
        raise ConfigError("resume needs `out`: the folder of the evaluation to continue (--out)")
    run = {
        "env_id": env_id,
        "agent": str(spec),
        "split": split,
        "seed": seed,
        "max_turns": max_turns,
        "task_pack": task_pack,
        "env_kwargs": dict(env_kwargs or {}),
    }
    finished: list[Episode] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            finished = _previous_run(out_dir, run, episodes)
    agent_obj = make_agent(agent, **(agent_kwargs or {}))
    options: dict[str, Any] = {}
    if max_turns:
        options["max_turns"] = max_turns
    if task_pack:
        options["task_pack"] = task_pack

    def summary_of(eps: list[Episode], status: str) -> dict[str, Any]:
        return {
            **run,
            **summarize(eps),
            "episodes_planned": episodes,
            "complete": status == "complete",
            "status": status,
        }

    def write_summary(eps: list[Episode], status: str) -> None:
        if out_dir is not None:
            _write_atomic(out_dir / "summary.json", json.dumps(summary_of(eps, status), indent=2))

    if out_dir is not None:  # what already finished, in order (also drops a torn last line)
        _write_atomic(
            out_dir / "episodes.jsonl",
            "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in finished),
        )
        write_summary(finished, "running")
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        bar.start()
        wins = [sum(e.success for e in finished), len(finished)]
        task = bar.add_task(
            f"{env_id} · {spec} · success {wins[0]}/{wins[1]}", total=episodes, completed=len(finished)
        )

    def on_episode(ep: Episode) -> None:
        finished.append(ep)
        if out_dir is not None:
            with open(out_dir / "episodes.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(ep.to_json(), ensure_ascii=False) + "\n")
            write_summary(finished, "running")
        if bar is not None:
            wins[0] += ep.success
            wins[1] += 1
            bar.update(task, advance=1, description=f"{env_id} · {spec} · success {wins[0]}/{wins[1]}")

    status = "complete"
    try:
        run_episodes(
            env_id,
            agent_obj,
            episodes=episodes,
            seed=seed,
            split=split,
            env_kwargs=env_kwargs,
            options=options,
            num_envs=num_envs,
            out_dir=out_dir,
            on_episode=on_episode,
            skip={(e.task_id, e.seed) for e in finished},
        )
    except BaseException as exc:
        status = (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {type(exc).__name__}: {exc}"
        )
        raise
    finally:
        if bar is not None:
            bar.stop()
        if isinstance(agent, str):
            agent_obj.close()
        eps = sorted(finished, key=lambda e: (e.seed is None, e.seed or 0))
        if out_dir is not None:
            try:
                _finish_outputs(out_dir, summary_of(eps, status), eps)
            except Exception:
                if status == "complete":
                    raise
                log.exception("could not write the outputs of the interrupted evaluation to %s", out_dir)
        if status != "complete":
            where = f"; {out_dir} holds them, continue with --resume (resume=True)" if out_dir else ""
            log.warning(
                "evaluation stopped (%s) after %d of %d episodes%s", status, len(eps), episodes, where
            )
    summary = summary_of(eps, status)
    return EvalResult(env_id=env_id, agent=str(spec), summary=summary, episodes=eps, out_dir=out_dir)


def greedy_episodes(
    policy: Any,
    env_id: str,
    task_ids: list[str],
    *,
    split: str | None,
    seed: int,
    max_turns: int | None,
    env_kwargs: dict[str, Any] | None = None,
    num_envs: int = 16,
    prompt_hook: Any = None,
    log_to: str | Path | None = None,
) -> list[TokenEpisode]:
    """A token policy's greedy episodes (temperature 0 for the call, restored after), one per task in `task_ids`
    (the same tasks and seed give the same episodes: a fixed held-out set to evaluate a training run on).

    `prompt_hook`: the rollout engine's (e.g. SLIM's skill bank), so the evaluated agent sees what the trained one
    saw. `log_to`: append one JSON line per episode ({task_id, actions, success}) to that file. Summarise the
    returned `TokenEpisode`s with e.g. `turngym.trainers.rewards.group_metrics`."""
    from turngym.agents.engine import RolloutEngine

    temp = policy.temperature
    policy.temperature = 0.0
    try:
        with RolloutEngine(
            policy,
            env_id,
            env_kwargs=env_kwargs,
            num_envs=num_envs,
            max_turns=max_turns,
            prompt_hook=prompt_hook,
        ) as eng:
            eps = eng.collect(task_ids, group_size=1, seed=seed, split=split)
    finally:
        policy.temperature = temp
    if log_to is not None:
        with open(log_to, "a") as fh:
            for e in eps:
                acts = [s.action for s in e.episode.steps] if e.episode else []
                fh.write(
                    json.dumps({"task_id": e.task_id, "actions": acts, "success": bool(e.success)}) + "\n"
                )
    return eps


def _finish_outputs(out_dir: Path, summary: dict[str, Any], eps: list[Episode]) -> None:
    """episodes.jsonl in episode order, summary.json and report.html."""
    from turngym.agents.report import write_report

    _write_atomic(
        out_dir / "episodes.jsonl", "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in eps)
    )
    _write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    write_report(out_dir, summary, eps)
