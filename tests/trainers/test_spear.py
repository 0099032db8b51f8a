"""SPEAR: the weight schedules, the auxiliary valid-action / tool-call reward, advantage recalibration of replays and
the bounded buffer, by hand; a real GRPO run on EmbodiedSearch with a replayed win, resumed with its buffer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from turngym.errors import ConfigError
from turngym.trainers.hooks import HookContext
from turngym.trainers.spear import (
    SpearCallback,
    SuccessBuffer,
    make_tool_reward,
    recalibrated_advantage,
    schedule_weight,
    turn_signal,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py


def ep(task, ok, rewards=(0.0,), group=0):
    from turngym.agents.trajectory import TokenEpisode

    n = len(rewards)
    return TokenEpisode(
        input_ids=[1] + [2] * n,
        policy_mask=[0] + [1] * n,
        logprobs=[0.0] + [-1.0] * n,
        turn_index=[-1, *range(n)],
        rewards=list(rewards),
        obs_keys=[""] * n,
        infos=[{}] * (n - 1) + [{"success": ok}],
        task_id=task,
        group=group,
    )


def test_schedules_by_hand():
    # linear 0.1 -> 0 over 50 steps: 0.1, 0.05 at 25, 0 from 50 on
    assert [schedule_weight(k, 0.1, 0.0, 50) for k in (0, 25, 50, 80)] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    # cosine over 4 steps at k = 1: 0.1 - 0.1 * (1 - cos(pi/4)) / 2 = 0.1 - 0.1 * 0.1464466 = 0.0853553
    assert schedule_weight(1, 0.1, 0.0, 4, "cosine") == pytest.approx(0.0853553)
    assert schedule_weight(2, 0.1, 0.0, 4, "cosine") == pytest.approx(0.05)
    assert schedule_weight(7, 0.1, 0.0, 4, "constant") == 0.1
    assert schedule_weight(10, 0.5, 1.0, 50) == pytest.approx(0.6)  # the imitation weight grows
    assert schedule_weight(3, 0.5, 1.0, 0) == 1.0  # no ramp: the end value
    with pytest.raises(ConfigError, match="schedule"):
        schedule_weight(0, 1.0, 0.0, 10, "step")


def test_tool_reward_decays_per_turn_by_hand():
    infos = [
        {"invalid_action": False},
        {"invalid_action": True},
        {"parse_error": "no verb"},
        {"success": True},
    ]
    assert turn_signal(infos) == [1.0, 0.0, 0.0, 1.0]
    calls = [{"tool_calls": 0}, {"tool_calls": 1}, {"tool_calls": 1}, {"tool_calls": 3}]
    assert turn_signal(calls, "tool_call") == [0.0, 1.0, 0.0, 1.0]
    shaper = make_tool_reward(start=0.1, end=0.0, steps=50)
    e = SimpleNamespace(rewards=[0.0, 0.0, 0.0, 1.0], infos=infos)
    # w = 0.1 at step 0: r_t + 0.1 * s_t / 4 -> 0.025 on the valid turns
    assert shaper([e], HookContext(step=0, config=None)) == [pytest.approx([0.025, 0.0, 0.0, 1.025])]
    assert shaper([e], HookContext(step=25, config=None)) == [pytest.approx([0.0125, 0.0, 0.0, 1.0125])]
    assert shaper([e], HookContext(step=60, config=None)) == [[0.0, 0.0, 0.0, 1.0]]
    assert e.rewards == [0.0, 0.0, 0.0, 1.0]  # pure: the episode is not touched
    with pytest.raises(ConfigError, match="signal"):
        make_tool_reward(signal="calls")


def test_recalibration_and_the_bounded_buffer_by_hand():
    assert recalibrated_advantage(1.0, 0.25) == 0.75
    # clipped at 0
    assert recalibrated_advantage(1.0, 1.0) == 0.0 and recalibrated_advantage(0.5, 0.75) == 0.0
    buf = SuccessBuffer(size=3, max_age=2)
    assert buf.add([ep("a", True, (0.0, 1.0)), ep("a", False), ep("b", True, (0.9,))], step=0) == 2
    assert buf.add([ep("c", True, (1.0,)), ep("a", True, (0.6,))], step=1) == 2
    assert [(e.task_id, e.ret, e.step) for e in buf.entries] == [("b", 0.9, 0), ("c", 1.0, 1), ("a", 0.6, 1)]
    # current group means a 0.25, b 0.0, c 1.0: a 0.6 - 0.25 = 0.35, b 0.9 - 0 = 0.9, c 1 - 1 = 0 (not replayed)
    picks = buf.pick({"a": 0.25, "b": 0.0, "c": 1.0}, n=5)
    assert [(e.task_id, a) for e, a in picks] == [("b", 0.9), ("a", pytest.approx(0.35))]
    assert [e.task_id for e, _ in buf.pick({"a": 0.25, "b": 0.0}, n=1)] == ["b"]
    assert buf.pick({"d": 0.0}, n=5) == []  # no current group of the task: no baseline, no replay
    buf.evict(step=3)  # age 3 > 2: b goes
    assert [e.task_id for e in buf.entries] == ["c", "a"]
    assert buf.entries[0].episode.episode is None and buf.entries[0].episode.meta == {}


def test_on_batch_appends_recalibrated_replays():
    cb = SpearCallback(
        replay_per_step=2, imitation_start=0.5, imitation_end=1.0, imitation_steps=10, aux=False
    )
    trainer = SimpleNamespace(step=0, shapers=[])
    cb.on_train_begin(trainer)
    assert trainer.shapers == []
    cb.on_step_begin(trainer)
    wins = [ep("a", True, (0.0, 1.0)), ep("a", False, (0.0, 0.0))]
    cb.on_rollouts(trainer, wins)
    items = [(e, torch.zeros(2)) for e in wins]
    assert cb.on_batch(trainer, items) is None  # an empty buffer: nothing added; this step's win goes in
    trainer.step = 4
    cb.on_step_begin(trainer)
    now = [ep("a", False, (0.0, 0.0)), ep("a", True, (0.0, 0.5))]  # a's current mean return 0.25
    cb.on_rollouts(trainer, now)
    out = cb.on_batch(trainer, [(e, torch.zeros(2)) for e in now])
    assert len(out) == 3 and out[2][0].task_id == "a"
    # Â = max(0, 1.0 - 0.25) = 0.75, times the imitation weight at step 4: 0.5 + 0.5 * 4/10 = 0.7 -> 0.525 per turn
    assert out[2][1].tolist() == pytest.approx([0.525, 0.525])
    trainer.step = 5
    m: dict = {}
    cb.on_step_end(trainer, m)
    assert m == {"spear_buffer": 2.0, "spear_replayed": 1.0, "spear_aux_weight": 0.0,
                 "spear_imitation_weight": pytest.approx(0.7)}  # fmt: skip


@pytest.mark.slow
def test_spear_in_a_real_grpo_run_resumed_with_its_buffer(tmp_path):
    """GRPO steps on EmbodiedSearch with the tiny model and `callbacks: [{name: spear}]`. The untrained policy never
    wins, so the buffer is seeded with one of its own real episodes marked as a win (env return 1): it is replayed
    every step (batch of 2 + 1), the numbers are logged, and a resumed run gets the buffer back."""
    pytest.importorskip("transformers")
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer
    from turngym.trainers.logging import read_metrics

    task = "train-easy-000"
    out = tmp_path / "run"

    def trainer(steps):
        c = GRPOConfig(
            env_id="turngym/EmbodiedSearch-v0", task_ids=[task], steps=steps, tasks_per_step=1, group_size=2,
            max_turns=2, max_new_tokens=4, mini_batch_size=3, micro_batch_size=3, output_dir=str(out),
            progress=False, tensorboard=False, plot=False, num_envs=2, save_every=1,
            callbacks=[{"name": "spear", "max_age": 2, "replay_per_step": 2}],
        )  # fmt: skip
        return GRPOTrainer(tiny_policy(max_new_tokens=4), config=c)

    tr = trainer(2)
    spear = tr.callbacks[0]
    assert isinstance(spear, SpearCallback)
    (win,) = tr.engine.collect([task], group_size=1, seed=12345)
    win.infos[-1]["success"] = True
    win.env_rewards = [0.0] * (len(win.rewards) - 1) + [1.0]
    assert spear.buffer.add([win], step=0) == 1
    tr.train()
    assert len(tr.shapers) == 1  # the auxiliary reward joined the trainer's shapers
    recs = read_metrics(out / "metrics.jsonl")
    assert [r["batch_samples"] for r in recs] == [3, 3]
    assert [r["spear_replayed"] for r in recs] == [1.0, 1.0]
    assert [r["spear_buffer"] for r in recs] == [1.0, 1.0]
    assert [r["spear_aux_weight"] for r in recs] == pytest.approx([0.1, 0.098])  # 0.1 -> 0 over 50 steps
    assert [r["spear_imitation_weight"] for r in recs] == pytest.approx([0.5, 0.51])

    tr2 = trainer(4)
    # steps 3 and 4: the buffer came back; the win (step 0) is too old for step 4 (age 3 > 2)
    tr2.train(resume=True)
    recs = read_metrics(out / "metrics.jsonl")
    assert [r["spear_replayed"] for r in recs] == [1.0, 1.0, 1.0, 0.0]
    assert [r["batch_samples"] for r in recs] == [3, 3, 3, 2]
    assert tr2.callbacks[0].buffer.entries == []


def test_spear_from_the_cli_overrides():
    from turngym.trainers.callbacks import build_callback
    from turngym.trainers.config import GRPOConfig, load_config

    cfg = load_config(GRPOConfig, None, ["callbacks=[{name: spear, buffer_size: 8, aux_schedule: cosine}]"])
    cb = build_callback(cfg.callbacks[0])
    assert cb.buffer.size == 8 and cb.aux == (0.1, 0.0, 50, "cosine")
    cfg = load_config(GRPOConfig, None, ["reward_shaping=[{name: spear_tool_reward, start: 0.2}]"])
    assert cfg.shaper_specs()[-1] == {"name": "spear_tool_reward", "start": 0.2}
