"""Async rollouts in the trainer (`max_staleness` > 0): the next steps' rollouts run in a background stream while a
step trains, within the staleness bound, with a separate sampler synced after every update; checkpoints keep the
position of the batches consumed, not of those read ahead."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("transformers")

from turngym.agents.backends.tiny import tiny_policy  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402
from turngym.trainers.callbacks import Callback  # noqa: E402
from turngym.trainers.config import GRPOConfig  # noqa: E402
from turngym.trainers.grpo import GRPOTrainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py
ENV = "turngym/EmbodiedSearch-v0"


class Lags(Callback):
    """Records each batch's episodes' staleness and policy versions as the trainer receives them."""

    def __init__(self):
        self.lags: list[list[int]] = []

    def on_rollouts(self, trainer, episodes):
        self.lags.append([ep.meta["staleness"] for ep in episodes])
        return None


def config(tmp_path, **kw):
    base = dict(
        env_id=ENV,
        steps=4,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=6,
        max_turns=2,
        num_envs=2,
        lr=1e-2,
        entropy_coef=0.1,
        mini_batch_size=4,
        micro_batch_size=4,
        save_every=2,
        max_staleness=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    return GRPOConfig(**{**base, **kw})


def streams() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "turngym-rollout-stream"]


def test_async_steps_stay_within_the_staleness_bound(tmp_path):
    policy = tiny_policy(seed=0, max_new_tokens=6)
    lags = Lags()
    trainer = GRPOTrainer(policy, config=config(tmp_path), callbacks=[lags])
    assert trainer.rollout_policy is not None and trainer.rollout_policy.model is not policy.model
    recs = trainer.train()
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert all(0 <= lag <= 1 for batch in lags.lags for lag in batch)  # never more than one version old
    assert all(0.0 <= r["staleness"] <= 1.0 for r in recs)
    assert not streams()  # the background thread ended with training
    # the sampler holds the trained weights after the last sync
    for k, v in policy.model.state_dict().items():
        assert (trainer.rollout_policy.model.state_dict()[k] == v).all(), k
    # checkpoints keep the consumed position (2 tasks per step), not the read-ahead one
    assert [r["task_position"] for r in recs] == [2, 4, 6, 8]
    trainer.engine.close()


def test_resume_continues_from_the_consumed_batches(tmp_path):
    trainer = GRPOTrainer(tiny_policy(seed=0, max_new_tokens=6), config=config(tmp_path, steps=2))
    trainer.train()
    trainer.engine.close()
    again = GRPOTrainer(tiny_policy(seed=0, max_new_tokens=6), config=config(tmp_path, steps=3))
    recs = again.train(resume=True)
    again.engine.close()
    assert recs[-1]["step"] == 3 and recs[-1]["task_position"] == 6
    assert not streams()


def test_async_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="max_staleness"):
        config(tmp_path, max_staleness=-1)
    with pytest.raises(ConfigError, match="dynamic_sampling"):
        config(tmp_path, dynamic_sampling=True)
    with pytest.raises(ConfigError, match="rollout_strategy"):
        config(tmp_path, rollout_strategy="arpo", group_size=4)
