"""Scaf-GRPO / GHPO hint guidance: tier switching by hand, the hint texts, the prompt hook, hint tokens never trained
on (token by token on a real episode), and a real GRPO run from the CLI, resumed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from turngym.errors import ConfigError
from turngym.trainers.guidance import GuidanceCallback, ghpo_hint, next_tier, scaf_hint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py

ENV = "turngym/EmbodiedSearch-v0"
TASK = "train-easy-000"
PLAN = ["get_memory(pen)", "navigate(drawer 6)", "open(drawer 6)", "done(blue pen)"]


def test_tiers_rise_over_the_window_and_fall_as_the_task_is_solved():
    # window 2, tiers 0..3, lower at success rate >= 0.5
    rates = [0, 0, 0, 0, 0, 0, 0, 0, 0.25, 0.5, 1.0, 0, 0.75, 0.5, 0.25]
    want = [
        (0, 1), (1, 0),  # two failed groups: tier 1
        (1, 1), (2, 0),  # two more: tier 2
        (2, 1), (3, 0),  # tier 3, the last
        (3, 1), (3, 2),  # failing on at the top: the streak stops at the window
        (3, 0),  # 1 of 4 solved: in between, the streak resets, the tier stays
        (2, 0), (1, 0),  # 0.5 and 1.0 reach lower_at: one tier down each
        (1, 1),  # one failure: not yet a window
        (0, 0), (0, 0),  # solved: down to no hint, and not below
        (0, 0),
    ]  # fmt: skip
    state, got = (0, 0), []
    for p in rates:
        state = next_tier(*state, success_rate=p, window=2, max_tier=3, lower_at=0.5)
        got.append(state)
    assert got == want
    assert next_tier(0, 0, 0.0, window=1, max_tier=3) == (1, 0)  # window 1: every failed group raises


def test_hint_texts_abstract_to_concrete():
    assert scaf_hint(PLAN, 0) is None and scaf_hint([], 3) is None
    assert scaf_hint(PLAN, 1) == "Hint: a solution takes 4 actions: get_memory -> navigate -> open -> done."
    assert scaf_hint(PLAN, 2) == (
        "Hint: a solution starts with these actions:\n1. get_memory(pen)\n2. navigate(drawer 6)"
    )
    assert scaf_hint(PLAN, 3).splitlines()[1:] == ["1. get_memory(pen)", "2. navigate(drawer 6)",
                                                   "3. open(drawer 6)", "4. done(blue pen)"]  # fmt: skip
    # GHPO: tier k shows ceil(ω_k · L) actions; L = 5, ω = 0.25, 0.5, 0.75, 1 -> 2, 3, 4, 5 actions
    five = [f"a{i}" for i in range(5)]
    assert [ghpo_hint(five, k).count("\n") for k in range(1, 5)] == [2, 3, 4, 5]
    assert ghpo_hint(five, 9).count("\n") == 5 and ghpo_hint(five, 0) is None
    assert ghpo_hint(PLAN, 2, ratios=(0.5, 0.5)).endswith("2. navigate(drawer 6)")
    with pytest.raises(ConfigError, match="ratios"):
        GuidanceCallback(mode="ghpo", ratios=(0.5, 0.25))
    with pytest.raises(ConfigError, match="mode"):
        GuidanceCallback(mode="hints")


def fake_ep(task, group, ok, instructions):
    return SimpleNamespace(
        task_id=task, group=group, success=ok, meta={}, episode=SimpleNamespace(instructions=instructions)
    )


def test_callback_hooks_the_prompt_counts_hinted_groups_and_round_trips():
    plans = {"a": (["go(x)", "take(y)"], "do a"), "b": (["z()"], "do b")}
    cb = GuidanceCallback(mode="scaf_grpo", window=1, plan_fn=lambda tr, t: plans[t])
    engine = SimpleNamespace(prompt_hook=lambda ins: "skills: none")
    trainer = SimpleNamespace(engine=engine, config=None)
    cb.on_train_begin(trainer)
    assert engine.prompt_hook("do a") == "skills: none"  # no hint yet: the previous hook's text alone
    metrics: list[dict] = []
    # step 1: a fails (-> tier 1), b solves; step 2: a hinted, fails again (-> tier 2), b solved
    for _ in range(2):
        cb.on_step_begin(trainer)
        cb.on_rollouts(trainer, [fake_ep("a", 0, False, "do a"), fake_ep("a", 0, False, "do a"),
                                 fake_ep("b", 1, True, "do b"), fake_ep("b", 1, False, "do b")])  # fmt: skip
        metrics.append({})
        cb.on_step_end(trainer, metrics[-1])
    assert [m["hint_share"] for m in metrics] == [0.0, 0.5]  # step 2: 1 of 2 groups had a hint
    assert [m["hint_raised"] for m in metrics] == [1.0, 1.0] and metrics[1]["hinted_tasks"] == 1.0
    assert cb.tasks["a"].tier == 2 and cb.tasks["b"].tier == 0
    cb.on_step_begin(trainer)
    assert engine.prompt_hook("do a") == "skills: none\n\n" + scaf_hint(["go(x)", "take(y)"], 2)
    assert engine.prompt_hook("do b") == "skills: none" and engine.prompt_hook("other") == "skills: none"
    again = GuidanceCallback(mode="scaf_grpo", window=1, plan_fn=lambda tr, t: pytest.fail("replanned"))
    again.load_state_dict(json.loads(json.dumps(cb.state_dict())))  # plain data
    again.on_train_begin(SimpleNamespace(engine=SimpleNamespace(prompt_hook=None), config=None))
    again.on_step_begin(trainer)  # the plan comes from the state, not from a new expert episode
    assert again.prompt_hook("do a") == scaf_hint(["go(x)", "take(y)"], 2)
    assert {t: (s.tier, s.streak) for t, s in again.tasks.items()} == {"a": (2, 0), "b": (0, 0)}
    cb.on_train_end(trainer)
    assert engine.prompt_hook("do a") == "skills: none"  # the previous hook is back


def test_hint_tokens_are_context_never_trained_on():
    """A real episode of EmbodiedSearch with the tiny policy and the concrete hint: every token of the hint is in
    the first prompt with policy_mask 0, turn_index -1 and log-prob 0; the policy tokens are exactly the generated
    ones."""
    pytest.importorskip("transformers")
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.engine import RolloutEngine

    policy = tiny_policy(max_new_tokens=6)
    cb = GuidanceCallback(mode="scaf_grpo", window=1)  # plays the real expert
    with RolloutEngine(policy, ENV, num_envs=2, max_turns=2) as engine:
        trainer = SimpleNamespace(
            engine=engine, config=SimpleNamespace(env_id=ENV, split=None, env_kwargs={})
        )
        cb.on_train_begin(trainer)
        cb.observe(TASK, 0.0)  # one failed group with window 1: tier 1 ... three: the concrete tier
        cb.observe(TASK, 0.0)
        cb.observe(TASK, 0.0)
        cb.on_step_begin(trainer)
        assert cb.plans[TASK] == PLAN  # the expert's actions on a fresh env of the task
        hint = cb.hint(TASK)
        assert hint == scaf_hint(PLAN, 3)
        hinted, plain = engine.collect([TASK, "train-easy-001"], group_size=1, seed=3)
    ids = policy.tokenizer.encode(hint, add_special_tokens=False)
    assert len(ids) == len(hint)  # one token per character
    seq = hinted.input_ids
    starts = [k for k in range(len(seq) - len(ids) + 1) if seq[k : k + len(ids)] == ids]
    assert len(starts) == 1
    span = range(starts[0], starts[0] + len(ids))
    first_policy = hinted.policy_mask.index(1)
    assert span[-1] < first_policy  # in the prompt, before anything the policy generated
    for k in span:
        assert (hinted.policy_mask[k], hinted.turn_index[k], hinted.logprobs[k]) == (0, -1, 0.0)
    assert hinted.meta["messages"][0] == {"role": "system", "content": hint}
    # the trained tokens: exactly each turn's generated ids, nothing of the prompt
    for ep in (hinted, plain):
        for t in range(len(ep.rewards)):
            trained = [i for i, m, ti in zip(ep.input_ids, ep.policy_mask, ep.turn_index) if m and ti == t]
            text = policy.tokenizer.decode(trained, skip_special_tokens=True)
            assert text == ep.meta["messages"][2 + 2 * t - (ep is plain)]["content"]
    assert plain.meta["messages"][0]["role"] == "user"  # the other task: no hint, no system message


@pytest.mark.slow
def test_scaf_grpo_from_the_cli_in_a_real_run_and_resumed(tmp_path):
    """`turngym train ... callbacks='[{name: scaf_grpo, window: 1}]'` with the tiny model on EmbodiedSearch: the
    untrained policy fails every group, so the one task's tier rises each step (none -> abstract -> partial ->
    concrete); hint_share is logged; a resumed run continues from the saved tiers."""
    pytest.importorskip("transformers")
    from turngym.cli import main
    from turngym.trainers.checkpoint import latest_checkpoint, load_checkpoint
    from turngym.trainers.logging import read_metrics

    out = tmp_path / "run"
    args = [
        f"env_id={ENV}", "model=tiny", f"task_ids=[\"{TASK}\"]", "tasks_per_step=1", "group_size=2",
        "max_turns=2", "max_new_tokens=4", "mini_batch_size=2", "micro_batch_size=2", "num_envs=2",
        "progress=false", "tensorboard=false", "plot=false", "save_every=1", f"output_dir={out}",
        "callbacks=[{name: scaf_grpo, window: 1}]",
    ]  # fmt: skip
    assert main(["train", *args, "steps=3"]) == 0
    recs = read_metrics(out / "metrics.jsonl")
    assert [r["success"] for r in recs] == [0.0, 0.0, 0.0]
    assert [r["hint_share"] for r in recs] == [0.0, 1.0, 1.0]  # the hint from step 2 on
    assert [r["hinted_tasks"] for r in recs] == [1.0, 1.0, 1.0]
    state = load_checkpoint(latest_checkpoint(out), None)["state"]["callbacks"]["0:GuidanceCallback"]
    assert state["tasks"] == {TASK: [3, 0]} and state["plans"] == {TASK: PLAN}

    assert main(["train", *args, "steps=4", "--resume"]) == 0
    recs = read_metrics(out / "metrics.jsonl")
    # at the top tier: hinted, not raised further
    assert len(recs) == 4 and recs[3]["hint_share"] == 1.0 and recs[3]["hint_raised"] == 0.0
    state = load_checkpoint(latest_checkpoint(out), None)["state"]["callbacks"]["0:GuidanceCallback"]
    assert state["tasks"] == {TASK: [3, 1]}  # restored tier 3, one more failed group


def test_guidance_names_from_yaml_and_cli_overrides(tmp_path):
    from turngym.trainers.callbacks import build_callback
    from turngym.trainers.config import GRPOConfig, load_config

    (tmp_path / "c.yaml").write_text("callbacks:\n  - {name: ghpo, window: 3, ratios: [0.5, 1.0]}\n")
    cfg = load_config(GRPOConfig, tmp_path / "c.yaml")
    cb = build_callback(cfg.callbacks[0])
    assert (cb.mode, cb.window, cb.ratios, cb.max_tier) == ("ghpo", 3, (0.5, 1.0), 2)
    cfg = load_config(GRPOConfig, None, ["callbacks=[{name: scaf_grpo, lower_at: 0.75}]"])
    assert cfg.callbacks == [{"name": "scaf_grpo", "lower_at": 0.75}]
    cb = build_callback(cfg.callbacks[0])
    assert (cb.mode, cb.lower_at, cb.max_tier) == ("scaf_grpo", 0.75, 3)
