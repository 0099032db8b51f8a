"""SLIM lifecycle: leave-one-out values, retire after exposure, expansion from the expert's plan (a real env)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from turngym.agents.base import RandomAgent
from turngym.agents.memory import Skill, SkillBank
from turngym.agents.rollout import run_episodes
from turngym.errors import ConfigError
from turngym.trainers.skills import (
    ExpertPlanWriter,
    SlimConfig,
    SlimLifecycle,
    SlimManager,
    TeacherSkillWriter,
    active_counts,
    default_task_type,
    engine_evaluator,
    marginal_values,
    plot_history,
    read_history,
    subset_bank,
)


def Bank(skills=()):  # noqa: N802 - the agents' real skill bank, as SLIM uses it
    return SkillBank(list(skills))


EFFECT = {"a": 0.3, "b": 0.0, "c": -0.1}


def evaluate(names):
    """Validation success as a known function of the active skills: 0.5 + Σ effect."""
    return 0.5 + sum(EFFECT.get(n, 0.0) for n in names)


def test_marginal_values_hand_computed():
    full, d = marginal_values(evaluate, ["a", "b", "c"])
    assert full == pytest.approx(0.7)
    assert d == pytest.approx({"a": 0.3, "b": 0.0, "c": -0.1})


def test_retire_only_after_min_exposure(tmp_path):
    bank = Bank([Skill("a", "", ""), Skill("b", "", ""), Skill("c", "", "")])
    slim = SlimManager(
        bank, SlimConfig(every=5, delta=0.0, min_exposure=10), history_path=tmp_path / "h.jsonl"
    )
    assert not slim.update(3, evaluate)["ran"]  # not a multiple of K
    r5 = slim.update(5, evaluate)
    assert r5["ran"] and r5["retired"] == [] and set(slim.active) == {"a", "b", "c"}  # exposure 5 < E
    r10 = slim.update(10, evaluate)
    assert sorted(r10["retired"]) == ["b", "c"] and slim.active == ["a"]  # Δ <= δ after E steps
    assert r10["values"] == pytest.approx({"a": 0.3, "b": 0.0, "c": -0.1})
    hist = read_history(tmp_path / "h.jsonl")
    assert hist == slim.history
    assert [r["event"] for r in hist].count("retired") == 2
    assert active_counts(hist) == [(0, 3), (5, 3), (10, 1)]
    png = plot_history(hist, tmp_path / "skills.png")
    assert png.stat().st_size > 1000


def test_expand_from_expert_plan_on_a_real_env(lock_id):
    bank = Bank()
    writer = ExpertPlanWriter(lock_id, make_skill=Skill)
    slim = SlimManager(bank, SlimConfig(every=1, window=4, min_failures=2, fail_rate=0.5), writer=writer)
    failed = run_episodes(
        lock_id, RandomAgent(seed=0), episodes=4, seed=0, options={"max_turns": 2}, num_envs=1
    )
    assert not any(e.success for e in failed)
    assert {default_task_type(e) for e in failed} == {"train"}
    slim.observe(failed[:3])
    assert slim.failing_types() == []  # window not full yet
    slim.observe(failed[3:])
    assert slim.failing_types() == ["train"]
    rep = slim.update(1)
    assert rep["added"] == ["train-plan-1"]
    skill = bank.skills["train-plan-1"]
    # the pack's codes are 1000 + 7 i: the expert's plan tries each digit of the failed task's code, then opens
    code = str(1000 + 7 * int(failed[0].task_id.split("-")[1]))
    assert skill.body.splitlines() == [f"{i + 1}. try {d}" for i, d in enumerate(code)] + [
        f"{len(code) + 1}. open"
    ]
    assert slim.failing_types() == []  # the window restarts for the new skill
    assert slim.history[-1]["event"] == "added" and slim.history[-1]["source"] == "train"


def test_teacher_writer_prompt_and_parse():
    seen = []

    def generate(prompt):
        seen.append(prompt)
        return "Open only after all digits.\n1. try digits in order\n2. open"

    w = TeacherSkillWriter(generate, Skill)

    @dataclass
    class Ep:
        task_id: str
        steps: list

    @dataclass
    class St:
        action: str

    s = w("lock", [Ep("lock-1", [St("open"), St("try 3")])])
    assert "lock-1: open ; try 3" in seen[0]
    assert (s.name, s.description, s.body) == (
        "lock-skill-1",
        "Open only after all digits.",
        "1. try digits in order\n2. open",
    )


def test_state_dict_and_subset_and_config_errors():
    bank = Bank([Skill("a", "", ""), Skill("b", "", "")])
    slim = SlimManager(bank, SlimConfig(every=1, min_exposure=0))
    slim.update(1, evaluate)
    other = SlimManager(Bank([Skill("a", "", "")]))
    other.load_state_dict(slim.state_dict())
    assert other.history == slim.history and set(other.records) == {"a"}
    assert list(subset_bank(Bank([Skill("a", "", ""), Skill("b", "", "")]), ["b"]).skills) == ["b"]
    with pytest.raises(ConfigError, match="fail_rate"):
        SlimConfig(fail_rate=2.0)


class ValidationEngine:
    """Stands in for the rollout engine's `collect`: an episode succeeds when the prompt the engine would render
    (its real `prompt_hook`, a PromptContext over the subset bank) offers the skill named 'a'."""

    def __init__(self):
        self.prompt_hook = None
        self.prompts = []

    def collect(self, task_ids, group_size, seed, split=None, options=None):
        text = self.prompt_hook("find the code") or ""
        self.prompts.append(text)
        ok = "- a:" in text
        return [SimpleNamespace(success=ok, task_id=t) for t in task_ids for _ in range(group_size)]


def test_engine_evaluator_and_hook_in_a_run():
    bank = Bank([Skill("a", "the code", "try digits"), Skill("b", "noise", "")])
    eng = ValidationEngine()
    evaluate = engine_evaluator(eng, bank, ["v1", "v2"], group_size=2)
    assert evaluate(["a", "b"]) == 1.0 and evaluate(["b"]) == 0.0
    assert "- a:" not in eng.prompts[-1] and eng.prompt_hook is None  # restored
    slim = SlimManager(bank, SlimConfig(every=2, min_exposure=2))
    cb = SlimLifecycle(slim, evaluate)
    group = [SimpleNamespace(success=False, task_id="t-1", rewards=[0.0, 1.0], meta={})]
    for step in range(1, 5):
        cb.on_step_begin(SimpleNamespace(step=step))
        assert cb.on_rollouts(None, group)["slim_skills"] == len(slim.active)
    assert slim.outcomes["t"] and len(slim.outcomes["t"]) == 4  # every round observed
    assert slim.active == ["a"]  # b: Δ = 0 after 2 steps of exposure -> retired at step 2
    assert [r["event"] for r in slim.history if r["skill"] == "b"] == ["added", "valued", "retired"]


@pytest.mark.slow
def test_slim_from_the_config_in_a_grpo_run_and_resumed(lock_id, tmp_path):
    """`reward_shaping: [{name: slim, ...}]` (config/CLI): inside GRPOTrainer on a real env SLIM runs as a callback:
    it builds the bank from a JSON file, puts it in the engine's prompt, values and retires skills on the validation
    batch, expands a failing task type from the expert's plan, logs its numbers, and its bank and records are saved in
    the checkpoints, so a resumed run continues from them."""
    import json

    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.memory import PromptContext
    from turngym.trainers.config import GRPOConfig, load_config
    from turngym.trainers.grpo import GRPOTrainer
    from turngym.trainers.logging import read_metrics
    from turngym.trainers.skills import SlimCallback

    Bank([Skill("noise-1", "unrelated", "hum"), Skill("noise-2", "unrelated", "whistle")]).save(
        tmp_path / "b.json"
    )
    spec = {"name": "slim", "bank": str(tmp_path / "b.json"), "val_tasks": 2, "every": 1, "min_exposure": 1}
    spec |= {"window": 2, "min_failures": 1, "fail_rate": 0.0, "max_skills": 4}
    out = tmp_path / "run"
    cfg = load_config(GRPOConfig, None, [f"reward_shaping=[{json.dumps(spec)}]"])
    assert cfg.reward_shaping == [spec]

    def trainer(steps):
        c = GRPOConfig(
            env_id=lock_id, steps=steps, tasks_per_step=1, group_size=2, max_turns=2, max_new_tokens=4,
            mini_batch_size=2, micro_batch_size=2, output_dir=str(out), progress=False, tensorboard=False,
            plot=False, num_envs=4, reward_shaping=[spec], save_every=1,
        )  # fmt: skip
        return GRPOTrainer(tiny_policy(max_new_tokens=4), config=c)

    tr = trainer(2)
    assert tr.shapers == [] and [type(cb) for cb in tr.callbacks] == [SlimCallback]  # SLIM shapes no reward
    tr.train()  # steps 0, 1: the lifecycle update runs before step 1's rollouts
    slim = tr.callbacks[0]
    assert (
        isinstance(tr.engine.prompt_hook, PromptContext) and tr.engine.prompt_hook.skills is slim.manager.bank
    )
    hist = read_history(out / "skills.jsonl")
    # the untrained policy fails with and without each skill: Δ = 0 <= δ after 1 step -> both retired
    assert [(r["event"], r["skill"]) for r in hist if r["skill"].startswith("noise")] == [
        ("added", "noise-1"), ("added", "noise-2"), ("valued", "noise-1"), ("retired", "noise-1"),
        ("valued", "noise-2"), ("retired", "noise-2"),
    ]  # fmt: skip
    added = [r for r in hist if r["event"] == "added" and r.get("source") == "train"]
    assert len(added) == 1 and added[0]["step"] == 1  # the failing type 'train' got the expert's plan
    plan = slim.manager.bank.skills[added[0]["skill"]].body
    assert plan.startswith("1. try ") and plan.endswith("open")
    assert set(json.loads((out / "slim_state.json").read_text())["records"]) == {added[0]["skill"]}
    assert (out / "skills.png").stat().st_size > 1000
    saved = json.loads((out / "skills_bank.json").read_text())
    assert [s["name"] for s in saved] == [added[0]["skill"]]
    recs = read_metrics(out / "metrics.jsonl")
    assert [r["slim_skills"] for r in recs] == [2.0, 1.0] and "slim_val_success" in recs[1]

    tr2 = trainer(3)
    tr2.resume()  # from step 2's checkpoint: the bank and records, no new "added" event for the loaded skill
    slim2 = tr2.callbacks[0]
    assert list(slim2.manager.bank.skills) == [added[0]["skill"]]
    assert tr2.engine.prompt_hook.skills is slim2.manager.bank
    assert slim2.manager.history == slim.manager.history
    close = getattr(tr2.engine, "close", None)
    close and close()
