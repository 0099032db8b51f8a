"""SLIM (Dynamic Skill Lifecycle Management): the agent's skill bank as an object trained alongside the policy.

Every K training steps (`SlimManager.update(step, evaluate)`):
  - value: Δ_s = success(S) − success(S \\ {s}) for each active skill s (leave-one-skill-out, same validation batch);
  - retain skills with Δ_s > δ; retire a skill with Δ_s ≤ δ once it has been active at least E steps;
  - expand: a task type whose failure rate over the last `window` episodes exceeds ρ gets a new skill written from
    its failed trajectories (`TeacherSkillWriter`: a teacher model) or from the expert's plan (`ExpertPlanWriter`).
Between updates the trainer reports finished episodes with `observe(episodes)` (failure tracking).
The history (added / retired / valued, with Δ and step) goes to `history` (and JSONL); `plot_history` draws it.
In a GRPO run SLIM is a trainer callback (`SlimLifecycle` over a manager you built, or `SlimCallback` from the
config: `callbacks: [{name: slim, ...}]`): the update before a step's rollouts, failure tracking after them.

The skill bank is duck-typed (turngym choice, the minimal interface SLIM needs): `bank.skills: dict[name, skill]`,
`bank.add(skill)`, `bank.remove(name)`, a skill has `name`, `description`, `body`. The agents' `SkillBank` /
`Skill` (agents/memory.py) fit it; `subset_bank(bank, names)` builds the S \\ {s} view for validation when the bank's
class takes a list of skills (as `SkillBank` does). `evaluate(bank_view) -> success rate` runs the validation batch
with that view in the agent's prompt (e.g. a `PromptContext(skills=view)` prompt hook of the rollout engine).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from turngym.errors import ConfigError
from turngym.trainers.callbacks import Callback, register_callback
from turngym.trainers.hooks import register_shaper

log = logging.getLogger(__name__)


class SkillLike(Protocol):
    name: str
    description: str
    body: str


class SkillBankLike(Protocol):
    skills: dict[str, Any]

    def add(self, skill: Any) -> None: ...

    def remove(self, name: str) -> None: ...


@dataclass
class SlimConfig:
    """SLIM hyper-parameters (defaults: turngym choice). `every` = K, `min_exposure` = E (steps), `delta` = δ,
    `fail_rate` = ρ over the last `window` episodes of a task type (checked once at least `min_failures` failed),
    `max_skills` caps the active set (expansion stops there)."""

    every: int = 10
    delta: float = 0.0
    min_exposure: int = 20
    fail_rate: float = 0.5
    window: int = 16
    min_failures: int = 4
    max_skills: int = 16

    def __post_init__(self) -> None:
        if self.every < 1 or self.window < 1 or self.min_exposure < 0 or self.max_skills < 0:
            raise ConfigError(
                "SlimConfig: every >= 1, window >= 1, min_exposure >= 0, max_skills >= 0 required"
            )
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ConfigError(f"SlimConfig.fail_rate must be in [0, 1], got {self.fail_rate}")


def marginal_values(
    evaluate: Callable[[Sequence[str]], float], active: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """SLIM leave-one-skill-out: success(S) and Δ_s = success(S) − success(S \\ {s}) for every s in S.
    `evaluate(names)` returns the validation success rate with exactly the skills `names` active."""
    full = float(evaluate(list(active)))
    return full, {s: full - float(evaluate([n for n in active if n != s])) for s in active}


def subset_bank(bank: Any, names: Sequence[str]) -> Any:
    """A new bank of the same class holding only `names` (the class must accept a list of skills)."""
    return type(bank)([bank.skills[n] for n in names])


def default_task_type(ep: Any) -> str:
    """The task type of an episode: `meta["task_type"]`, else the last info's `task_type`, else the task id's prefix
    before the last '-' (e.g. 'pick_and_place-12' -> 'pick_and_place')."""
    meta = getattr(ep, "meta", {}) or {}
    if meta.get("task_type"):
        return str(meta["task_type"])
    infos = getattr(ep, "infos", None) or ([s.info for s in ep.steps] if getattr(ep, "steps", None) else [])
    if infos and infos[-1].get("task_type"):
        return str(infos[-1]["task_type"])
    tid = str(ep.task_id)
    return tid.rsplit("-", 1)[0] if "-" in tid else tid


@dataclass
class _Record:
    added_step: int
    source: str
    values: list[tuple[int, float]] = field(default_factory=list)


SkillWriter = Callable[[str, list[Any]], Any]  # (task_type, failed episodes) -> a skill or None


class SlimManager:
    """The skill lifecycle over a run. Records per active skill when it was added (exposure = step − added_step)."""

    def __init__(
        self,
        bank: SkillBankLike,
        config: SlimConfig | None = None,
        writer: SkillWriter | None = None,
        task_type: Callable[[Any], str] = default_task_type,
        history_path: str | Path | None = None,
    ):
        self.bank = bank
        self.config = config or SlimConfig()
        self.writer = writer
        self.task_type = task_type
        self.records: dict[str, _Record] = {n: _Record(0, "initial") for n in bank.skills}
        self.outcomes: dict[str, deque[tuple[bool, Any]]] = {}
        self.history: list[dict[str, Any]] = []
        self.history_path = Path(history_path) if history_path else None
        for n in bank.skills:
            self._event(0, "added", n, source="initial")

    @property
    def active(self) -> list[str]:
        return list(self.bank.skills)

    def _event(self, step: int, event: str, skill: str, **extra: Any) -> None:
        row = {"step": step, "event": event, "skill": skill, **extra}
        self.history.append(row)
        if self.history_path is not None:
            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.history_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    def observe(self, episodes: Sequence[Any]) -> None:
        """Record finished episodes (anything with `task_id` and `success`) for failure tracking."""
        for ep in episodes:
            q = self.outcomes.setdefault(self.task_type(ep), deque(maxlen=self.config.window))
            q.append((bool(ep.success), ep))

    def failing_types(self) -> list[str]:
        """Task types whose failure rate over a full window exceeds ρ (with at least `min_failures` failures)."""
        out = []
        for tt, q in sorted(self.outcomes.items()):
            fails = sum(not ok for ok, _ in q)
            if (
                len(q) == self.config.window
                and fails >= self.config.min_failures
                and fails / len(q) > self.config.fail_rate
            ):
                out.append(tt)
        return out

    def update(
        self, step: int, evaluate: Callable[[Sequence[str]], float] | None = None, force: bool = False
    ) -> dict[str, Any]:
        """The lifecycle step at training step `step` (runs when step % K == 0, or when `force`). Returns a report:
        success with all skills, Δ per skill, retired and added names."""
        cfg = self.config
        report: dict[str, Any] = {"step": step, "ran": False, "retired": [], "added": [], "values": {}}
        if not force and (step == 0 or step % cfg.every):
            return report
        report["ran"] = True
        if evaluate is not None and self.active:
            full, values = marginal_values(evaluate, self.active)
            report["success"], report["values"] = full, values
            for name, d in values.items():
                rec = self.records.setdefault(name, _Record(step, "unknown"))
                rec.values.append((step, d))
                self._event(step, "valued", name, delta=d, success=full)
                exposure = step - rec.added_step
                if d <= cfg.delta and exposure >= cfg.min_exposure:
                    self.bank.remove(name)
                    self.records.pop(name, None)
                    report["retired"].append(name)
                    self._event(step, "retired", name, delta=d, exposure=exposure)
        if self.writer is not None:
            for tt in self.failing_types():
                if len(self.active) >= cfg.max_skills:
                    break
                failed = [ep for ok, ep in self.outcomes[tt] if not ok]
                skill = self.writer(tt, failed)
                if skill is None:
                    continue
                if skill.name in self.bank.skills:
                    raise ConfigError(f"SLIM: the skill writer returned an existing name {skill.name!r}")
                self.bank.add(skill)
                self.records[skill.name] = _Record(step, tt)
                report["added"].append(skill.name)
                self._event(step, "added", skill.name, source=tt, failures=len(failed))
                self.outcomes[tt].clear()  # judge the new skill on fresh episodes
        report["active"] = self.active
        return report

    def state_dict(self) -> dict[str, Any]:
        return {
            "records": {
                n: {"added_step": r.added_step, "source": r.source, "values": r.values}
                for n, r in self.records.items()
            },
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = {
            n: _Record(int(r["added_step"]), str(r["source"]), [tuple(v) for v in r["values"]])
            for n, r in state["records"].items()
        }
        self.history = list(state["history"])


# ---- wiring into a run --------------------------------------------------------------------------------------------
def engine_evaluator(
    engine: Any,
    bank: Any,
    task_ids: Sequence[str],
    group_size: int = 1,
    seed: int = 0,
    split: str | None = None,
    k: int = 3,
) -> Callable[[Sequence[str]], float]:
    """`evaluate(names)` for `SlimManager.update`: the validation tasks played by the rollout engine (the agents'
    `RolloutEngine`) with exactly the skills `names` retrievable in the prompt (`PromptContext(skills=subset, k)` as the
    engine's `prompt_hook`, restored afterwards). The same `seed` for every subset (common random numbers), so Δ_s
    compares like with like."""
    from turngym.agents.memory import PromptContext

    def evaluate(names: Sequence[str]) -> float:
        old = engine.prompt_hook
        engine.prompt_hook = PromptContext(skills=subset_bank(bank, list(names)), k=k)
        try:
            eps = engine.collect(list(task_ids), group_size, seed, split=split)
        finally:
            engine.prompt_hook = old
        return sum(bool(e.success) for e in eps) / max(1, len(eps))

    return evaluate


class SlimLifecycle(Callback):
    """SLIM inside a GRPO run, as a trainer callback: before each step's rollouts (`on_step_begin`) the lifecycle
    update of `manager` runs (every K-th step: validation rollouts through `evaluate`, retire, expand); every rollout
    round's episodes are observed for failure tracking (`on_rollouts`). `on_update(report)` runs after each update
    that ran (persistence). Logs `slim_skills` (active skills) and, at an update, `slim_val_success`."""

    def __init__(
        self,
        manager: SlimManager,
        evaluate: Callable[[Sequence[str]], float] | None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.manager, self.evaluate, self.on_update = manager, evaluate, on_update
        self._report: dict[str, Any] = {}

    def on_step_begin(self, trainer: Any) -> None:
        step = int(trainer.step)
        rep = self.manager.update(step, self.evaluate)
        self._report = rep
        if rep["ran"]:
            log.info(
                "SLIM step %d: active %s, retired %s, added %s",
                step,
                rep["active"],
                rep["retired"],
                rep["added"],
            )
            if self.on_update is not None:
                self.on_update(rep)

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float]:
        self.manager.observe(episodes)
        out = {"slim_skills": float(len(self.manager.active))}
        if "success" in self._report:
            out["slim_val_success"] = float(self._report["success"])
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "manager": self.manager.state_dict(),
            "bank": [dataclasses.asdict(sk) for sk in self.manager.bank.skills.values()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        bank = self.manager.bank
        for name in list(bank.skills):
            bank.remove(name)
        cls = _skill_class(bank)
        for row in state["bank"]:
            bank.add(cls(**row))
        self.manager.load_state_dict(state["manager"])


def _skill_class(bank: Any) -> Any:
    from turngym.agents.memory import Skill

    return next((type(sk) for sk in bank.skills.values()), Skill)


class SlimCallback(SlimLifecycle):
    """SLIM selected from a config or the CLI (`callbacks: [{name: slim, bank: skills.json, val_tasks: 8, every: 10,
    ...}]`, or the same entry under `reward_shaping`, where earlier configs put it).

    At `on_train_begin` it builds, from the trainer: the skill bank (`bank`: a `SkillBank` JSON file, or empty), the
    rollout engine's prompt hook `PromptContext(skills=bank, k)` (training rollouts see the active skills), the
    validation batch (the first `val_tasks` tasks of `val_split`, default the training split, seed `val_seed`:
    common random numbers for every leave-one-out subset), the writer (`expert`: `ExpertPlanWriter` on the trainer's
    env; `none`: no expansion) and a `SlimManager` with the `SlimConfig` fields given here. The bank and the
    manager's records are saved in the trainer's checkpoints (a resumed run continues from them). After each
    lifecycle update it writes into the run's output_dir: `skills.jsonl` (history), `skills.png` (plot),
    `skills_bank.json` and `state_file` (records and history, JSON; None: not written).
    """

    def __init__(
        self,
        bank: str = "",
        val_tasks: int = 8,
        val_split: str | None = None,
        val_seed: int = 0,
        k: int = 3,
        writer: str = "expert",
        every: int = 10,
        delta: float = 0.0,
        min_exposure: int = 20,
        fail_rate: float = 0.5,
        window: int = 16,
        min_failures: int = 4,
        max_skills: int = 16,
        state_file: str | None = "slim_state.json",
    ):
        self.slim_config = SlimConfig(every, delta, min_exposure, fail_rate, window, min_failures, max_skills)
        if writer not in ("expert", "none"):
            raise ConfigError(f"slim: writer must be 'expert' or 'none', got {writer!r}")
        if val_tasks < 1:
            raise ConfigError(f"slim: val_tasks must be >= 1, got {val_tasks}")
        self.bank_file, self.val_tasks, self.val_split, self.val_seed, self.k = (
            bank,
            val_tasks,
            val_split,
            val_seed,
            k,
        )
        self.writer, self.state_file = writer, state_file
        self.out: Path | None = None
        super().__init__(SlimManager(_empty_bank(), self.slim_config), None, self._persist)

    def on_train_begin(self, trainer: Any) -> None:
        from turngym.agents.memory import PromptContext, Skill, SkillBank
        from turngym.trainers.grpo import split_task_ids

        engine, tcfg = trainer.engine, trainer.config
        if engine is None or not getattr(tcfg, "env_id", ""):
            raise ConfigError(
                "slim: needs the trainer's rollout engine and env_id (use it inside GRPOTrainer)"
            )
        self.out = Path(tcfg.output_dir or ".")
        skills = SkillBank.load(self.bank_file) if self.bank_file else SkillBank()
        if getattr(engine, "prompt_hook", None) is not None:
            log.warning("slim: replacing the engine's prompt_hook with the skill bank's PromptContext")
        engine.prompt_hook = PromptContext(skills=skills, k=self.k)
        split = self.val_split or tcfg.split
        ids = split_task_ids(tcfg.env_id, tcfg.env_kwargs, split)[: self.val_tasks]
        wr = ExpertPlanWriter(tcfg.env_id, Skill, tcfg.env_kwargs) if self.writer == "expert" else None
        self.manager = SlimManager(skills, self.slim_config, wr)
        self.evaluate = engine_evaluator(engine, skills, ids, seed=self.val_seed, split=split, k=self.k)

    def on_train_end(self, trainer: Any) -> None:
        self._persist({})

    def _persist(self, _report: dict[str, Any]) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.manager.bank.save(self.out / "skills_bank.json")
        with open(self.out / "skills.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in self.manager.history)
        if self.state_file:
            (self.out / self.state_file).write_text(json.dumps(self.manager.state_dict()))
        plot_history(self.manager.history, self.out / "skills.png")


def _empty_bank() -> Any:
    from turngym.agents.memory import SkillBank

    return SkillBank()


@register_shaper("slim")
@register_callback("slim")
def make_slim(**kwargs: Any) -> SlimCallback:
    """Config factory (`callbacks: [{name: slim, ...}]`; `reward_shaping: [{name: slim, ...}]` also works): a
    `SlimCallback`, which runs as a callback only (SLIM changes no reward)."""
    return SlimCallback(**kwargs)


# ---- writers: where a new skill comes from ---------------------------------------------------------------------
def _actions(ep: Any) -> list[str]:
    if getattr(ep, "steps", None):
        return [s.action for s in ep.steps]
    if getattr(ep, "episode", None) is not None:
        return [s.action for s in ep.episode.steps]
    return []


class TeacherSkillWriter:
    """Writes a skill from failed trajectories with a teacher model: `generate(prompt) -> text` (any backend).
    The prompt shows up to `max_examples` failed action sequences; the reply's first line is the description, the
    rest the body."""

    def __init__(self, generate: Callable[[str], str], make_skill: Callable[..., Any], max_examples: int = 3):
        self.generate, self.make_skill, self.max_examples = generate, make_skill, max_examples
        self.count = 0

    def prompt(self, task_type: str, failed: Sequence[Any]) -> str:
        lines = [
            f"An agent keeps failing tasks of type '{task_type}'. Failed attempts (actions in order):",
        ]
        for i, ep in enumerate(failed[: self.max_examples]):
            lines.append(f"{i + 1}. task {ep.task_id}: " + " ; ".join(_actions(ep)[:20]))
        lines.append(
            "Write one reusable skill that would avoid these failures. First line: a one-sentence description. "
            "Then the skill as short imperative steps."
        )
        return "\n".join(lines)

    def __call__(self, task_type: str, failed: list[Any]) -> Any:
        text = self.generate(self.prompt(task_type, failed)).strip()
        if not text:
            return None
        desc, _, body = text.partition("\n")
        self.count += 1
        return self.make_skill(
            name=f"{task_type}-skill-{self.count}",
            description=desc.strip(),
            body=body.strip() or desc.strip(),
        )


class ExpertPlanWriter:
    """Derives a skill from the env's scripted expert: replays a failed task with the expert and writes its action
    sequence as a plan (the 'expert plan' source of SLIM's expansion)."""

    def __init__(
        self,
        env_id: str,
        make_skill: Callable[..., Any],
        env_kwargs: dict[str, Any] | None = None,
        max_steps: int = 30,
    ):
        self.env_id, self.make_skill, self.env_kwargs, self.max_steps = (
            env_id,
            make_skill,
            env_kwargs or {},
            max_steps,
        )
        self.count = 0

    def __call__(self, task_type: str, failed: list[Any]) -> Any:
        from turngym.agents.base import ExpertAgent
        from turngym.agents.rollout import run_episodes

        if not failed:
            return None
        (ep,) = run_episodes(
            self.env_id,
            ExpertAgent(),
            episodes=1,
            task_ids=[failed[0].task_id],
            env_kwargs=self.env_kwargs,
            num_envs=1,
        )
        if not ep.success:
            log.warning("SLIM: the expert did not solve %s; no skill written", failed[0].task_id)
            return None
        plan = [s.action for s in ep.steps][: self.max_steps]
        self.count += 1
        return self.make_skill(
            name=f"{task_type}-plan-{self.count}",
            description=f"A plan that solves '{task_type}' tasks (from an expert demonstration).",
            body="\n".join(f"{i + 1}. {a}" for i, a in enumerate(plan)),
        )


# ---- the history, as a picture -----------------------------------------------------------------------------------
def read_history(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def active_counts(history: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """(step, number of active skills after that step's events) from a history."""
    n, out = 0, []
    for row in sorted(history, key=lambda r: r["step"]):
        n += {"added": 1, "retired": -1}.get(row["event"], 0)
        if out and out[-1][0] == row["step"]:
            out[-1] = (row["step"], n)
        else:
            out.append((row["step"], n))
    return out


def plot_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Two panels: active skills over steps (with add/retire marks), and each skill's Δ_s over time."""
    from turngym.optional import require

    matplotlib = require("matplotlib", "train", "plotting the skill history")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    counts = active_counts(history)
    if counts:
        a.step([s for s, _ in counts], [n for _, n in counts], where="post")
    for row in history:
        if row["event"] in ("added", "retired") and row["step"] > 0:
            a.axvline(row["step"], color="g" if row["event"] == "added" else "r", alpha=0.3)
    a.set_ylabel("active skills")
    values: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        if row["event"] == "valued":
            values.setdefault(row["skill"], []).append((row["step"], row["delta"]))
    for name, pts in values.items():
        b.plot([s for s, _ in pts], [d for _, d in pts], marker="o", label=name)
    b.axhline(0.0, color="k", lw=0.5)
    b.set_ylabel("Δ_s (leave-one-out)")
    b.set_xlabel("training step")
    if values:
        b.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
