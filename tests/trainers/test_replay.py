"""Selective Sample Buffer (trainers/replay.py): priority, eviction, age, the zero-advantage shares, clipping of
replayed samples, real GRPO steps on the one-token bandit, and resume."""

import pytest
import torch

from tests.trainers.test_grpo import make as grpo_make
from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.callbacks import build_callback
from turngym.trainers.config import GRPOConfig, load_config
from turngym.trainers.replay import SelectiveSampleBuffer, sample_priority, zero_advantage_share


def ep(name: str, tokens=(1,)) -> TokenEpisode:
    """A sample with `tokens[t]` policy tokens in turn t (after a 1-token prompt)."""
    ti = [-1] + [t for t, n in enumerate(tokens) for _ in range(n)]
    n = len(ti)
    return TokenEpisode(
        input_ids=[1] * n,
        policy_mask=[0] + [1] * (n - 1),
        logprobs=[0.0] * n,
        turn_index=ti,
        rewards=[0.0] * len(tokens),
        obs_keys=[""] * len(tokens),
        infos=[{}] * len(tokens),
        task_id=name,
    )


def items(*advs):
    return [(ep(f"s{a}"), torch.tensor([float(a)])) for a in advs]


def names(batch):
    return [e.task_id for e, _ in batch]


def test_priority_is_the_token_weighted_mean_abs_advantage():
    # turn 0: 2 tokens at |0.5|, turn 1: 1 token at |-2| -> (2*0.5 + 1*2) / 3 = 1
    assert sample_priority(ep("a", (2, 1)), torch.tensor([0.5, -2.0])) == pytest.approx(1.0)
    assert sample_priority(ep("b", (0, 3)), torch.tensor([9.0, -0.25])) == pytest.approx(0.25)
    assert zero_advantage_share(items(0, 1, 0, 0)) == 0.75 and zero_advantage_share([]) == 0.0


def test_buffer_priority_eviction_and_age():
    b = SelectiveSampleBuffer(capacity=3, replay_fraction=0.5, max_age=2)
    out = b.mix(items(1.0, 0, 0.5, 2.0), step=0)  # empty buffer: nothing to replay; 0 is not buffered
    assert names(out) == ["s1.0", "s0", "s0.5", "s2.0"]
    assert b.last["ssb_replayed"] == 0 and b.last["ssb_buffer_size"] == 3
    assert b.last["ssb_zero_adv_fresh"] == b.last["ssb_zero_adv_batch"] == 0.25
    # step 1: round(0.5 * 4) = 2 replays, the highest |A| first: 2.0 then 1.0; 3 of 6 samples have A = 0
    out = b.mix(items(0, 0, 0, 0.7), step=1)
    assert names(out)[4:] == ["s2.0", "s1.0"]
    assert b.last["ssb_zero_adv_fresh"] == 0.75 and b.last["ssb_zero_adv_batch"] == 0.5
    # 0.7 goes in; over capacity 3 the lowest (0.5) is evicted
    assert sorted(e.priority for e in b.entries) == pytest.approx([0.7, 1.0, 2.0])
    assert b.last["ssb_replay_age"] == 1.0
    # round(0.5 * 2) = 1 replay; the step-0 samples are 2 steps old: still allowed
    out = b.mix(items(0, 0), step=2)
    assert names(out)[2:] == ["s2.0"] and b.last["ssb_replay_age"] == 2.0
    assert b.last["ssb_zero_adv_batch"] == pytest.approx(2 / 3)
    out = b.mix(items(0, 0), step=3)  # step-0 samples are now 3 > max_age steps old: expired
    assert names(out)[2:] == ["s0.7"] and b.last["ssb_buffer_size"] == 1
    b.mix(items(0, 0), step=5)
    assert b.last["ssb_replayed"] == 0 and b.entries == []


def test_ties_prefer_the_newest_and_fresh_samples_are_not_replayed_in_their_own_step():
    b = SelectiveSampleBuffer(capacity=2, replay_fraction=1.0, max_age=4)
    b.mix([(ep("old"), torch.tensor([1.0]))], step=0)
    b.mix([(ep("new"), torch.tensor([-1.0]))], step=1)  # replays "old" (age 1); "new" only goes in
    assert b.last["ssb_replayed"] == 1
    out = b.mix([(ep("x"), torch.tensor([0.0]))], step=2)
    assert names(out) == ["x", "new"]  # equal |A|: the newer one
    b.mix([(ep("top"), torch.tensor([3.0]))], step=2)
    # capacity 2: of the two equal ones the older goes
    assert sorted(e.episode.task_id for e in b.entries) == ["new", "top"]


def test_replace_zero_keeps_the_batch_size():
    b = SelectiveSampleBuffer(capacity=4, replay_fraction=1.0, max_age=4, replace_zero=True)
    b.mix(items(2.0, 1.0), step=0)
    out = b.mix(items(0, 0, 1.5), step=1)  # 3 wanted, 2 zero-advantage places
    assert names(out) == ["s1.5", "s2.0", "s1.0"]
    assert b.last["ssb_zero_adv_fresh"] == pytest.approx(2 / 3) and b.last["ssb_zero_adv_batch"] == 0.0


def test_state_dict_round_trip_and_config_checks():
    b = SelectiveSampleBuffer(capacity=3, replay_fraction=0.5, max_age=2)
    b.mix(items(1.0, 0.5, 2.0), step=0)
    # the settings come from the config, the entries from the state
    c = SelectiveSampleBuffer(replay_fraction=0.5, max_age=2)
    c.load_state_dict(b.state_dict())
    assert c.capacity == 3 and [(e.episode.task_id, e.step, e.priority) for e in c.entries] == [
        (e.episode.task_id, e.step, e.priority) for e in b.entries
    ]
    assert names(c.mix(items(0, 0), step=1)) == names(b.mix(items(0, 0), step=1))
    for bad in ({"replay_fraction": 1.5}, {"max_age": 0}, {"capacity": 0}):
        with pytest.raises(ConfigError):
            SelectiveSampleBuffer(**bad)
    cfg = load_config(GRPOConfig, None, ["callbacks=[{name: ssb, max_age: 2, replay_fraction: 0.5}]"])
    cb = build_callback(cfg.callbacks[0])
    assert isinstance(cb, SelectiveSampleBuffer) and (cb.max_age, cb.replay_fraction) == (2, 0.5)


def make(tmp_path, steps=4, **kw):
    """test_grpo's bandit trainer (2 tasks x 8 samples per step) with a bigger learning rate, one micro-batch."""
    return grpo_make(tmp_path, steps=steps, **{"lr": 3e-2, "micro_batch_size": 8, "plot": False, **kw})


def test_replayed_samples_train_with_the_clipped_ratio_to_their_own_sampling_logprobs(tmp_path, one_thread):
    """The loss of a replayed sample uses r = π_θ / π_sample with π_sample its stored log-probs: outside the trust
    region in the advantage's direction it gives no gradient (clipped); inside, or on the unclipped side, it does."""
    trainer, model = make(tmp_path)
    ids = [1, 2, 3, 5, 6]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    cur = [0.0, 0.0, 0.0, float(lp[2, 5]), float(lp[3, 6])]

    def grad_norm(shift: float, adv: float) -> tuple[float, dict]:
        old = [x - shift if i >= 3 else 0.0 for i, x in enumerate(cur)]  # ratio exp(shift) on both tokens
        e = TokenEpisode(ids, [0, 0, 0, 1, 1], old, [-1, -1, -1, 0, 0], [1.0], ["k"], [{}], "0")
        model.zero_grad()
        loss, m = trainer.micro_loss([(e, torch.tensor([adv]))])
        loss.backward()
        return float(sum(p.grad.norm() ** 2 for p in model.parameters() if p.grad is not None) ** 0.5), m

    g_in, m_in = grad_norm(0.0, 1.0)  # ratio 1: inside the region
    g_clip, m_clip = grad_norm(1.0, 1.0)  # ratio e > 1.2 with A > 0: clipped
    g_neg, m_neg = grad_norm(1.0, -1.0)  # ratio e with A < 0: the unclipped branch is the minimum
    assert g_in > 1e-4 and g_neg > 1e-4 and g_clip == 0.0
    assert m_clip["clip_frac"] == 1.0 and m_in["clip_frac"] == 0.0 and m_neg["clip_frac"] == 0.0
    assert m_clip["ratio_mean"] == pytest.approx(torch.e, rel=1e-4)


@pytest.mark.slow
def test_grpo_steps_with_the_buffer_and_resume(tmp_path, one_thread):
    spec = [{"name": "ssb", "replay_fraction": 0.25, "max_age": 2}]
    trainer, _ = make(tmp_path / "a", steps=4, callbacks=spec, save_every=2)
    recs = trainer.train()
    ssb = trainer.callbacks[0]
    assert ssb.capacity == 16  # one batch: 2 tasks x 8
    for r in recs:
        assert r["batch_samples"] == 16 + r["ssb_replayed"]
        assert r["ssb_replayed"] <= 4  # round(0.25 * 16)
        n_zero_fresh = r["ssb_zero_adv_fresh"] * 16
        # replayed samples never have A = 0: the batch's zero share is the fresh zeros over the bigger batch
        assert r["ssb_zero_adv_batch"] == pytest.approx(n_zero_fresh / r["batch_samples"])
    assert recs[0]["ssb_replayed"] == 0 and any(r["ssb_replayed"] > 0 for r in recs[1:])
    assert all(0 < r["ssb_buffer_size"] <= 16 for r in recs)
    # resume from the step-2 checkpoint: the buffer comes back and the last two steps are the same
    trainer2, _ = make(tmp_path / "a", steps=4, callbacks=spec, save_every=2)
    trainer2.resume(tmp_path / "a" / "run" / "checkpoints" / "step-000002")
    assert trainer2.step == 2 and len(trainer2.callbacks[0].entries) == recs[1]["ssb_buffer_size"]
    again = [trainer2.train_step() for _ in range(2)]
    for a, b in zip(again, recs[2:]):
        for k in ("ssb_replayed", "ssb_buffer_size", "ssb_zero_adv_batch", "batch_samples", "reward"):
            assert a[k] == pytest.approx(b[k]), k
