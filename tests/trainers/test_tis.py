"""Truncated importance sampling (`tis_cap`): the weights on hand-computed numbers, and the trainer with a sampler
that is (a) the trained model itself, (b) a stale copy of it (what a rollout service lagging a step behind gives)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.trainers.bandit import BanditEngine, tiny_model
from turngym.errors import ConfigError
from turngym.trainers.config import GRPOConfig
from turngym.trainers.grpo import GRPOTrainer
from turngym.trainers.losses import truncated_is_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py
TARGETS = {"0": {4, 5, 6, 7}, "1": {8, 9, 10, 11}}


def test_weights_by_hand():
    old = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    rollout = torch.tensor([[-1.5, -1.0, -3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # the third token is not the policy's: ignored
    w, stats = truncated_is_weights(old, rollout, mask, cap=1.5)
    # ratios e^0.5 = 1.6487 -> clipped to 1.5; e^-1 = 0.3679 kept; masked tokens weigh 0
    assert w[0].tolist() == pytest.approx([1.5, math.exp(-1.0), 0.0, 0.0])
    assert stats["tis_mismatch"] == pytest.approx((0.5 + 1.0) / 2)
    assert stats["tis_clipped_share"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="cap"):
        truncated_is_weights(old, rollout, mask, cap=0)


class StaleEngine(BanditEngine):
    """Samples from `sampler`, a copy of the trained model that is never updated (log-probs are the copy's)."""


def run(tmp_path, sampler_is_trained: bool, tis_cap: float, steps: int = 3):
    model = tiny_model(seed=0)
    sampler = model if sampler_is_trained else copy.deepcopy(model)
    cfg = GRPOConfig(
        env_id="bandit",
        task_ids=["0", "1"],
        steps=steps,
        tasks_per_step=2,
        group_size=8,
        lr=3e-2,
        mini_batch_size=8,
        micro_batch_size=4,
        max_new_tokens=2,
        tis_cap=tis_cap,
        output_dir=str(tmp_path / f"run{int(sampler_is_trained)}{tis_cap}"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    trainer = GRPOTrainer(model, config=cfg, engine=StaleEngine(sampler, TARGETS))
    return trainer.train(), model


def test_on_policy_tis_is_plain_grpo(tmp_path):
    recs, model = run(tmp_path, sampler_is_trained=True, tis_cap=2.0)
    plain_recs, plain = run(tmp_path, sampler_is_trained=True, tis_cap=0.0)
    # the sampler is the trained model: π_old = π_rollout up to float noise, every weight 1, nothing clipped
    assert all(r["tis_mismatch"] < 1e-5 and r["tis_clipped_share"] == 0.0 for r in recs)
    assert all("tis_mismatch" not in r for r in plain_recs)
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_stale_sampler_is_measured_and_corrected(tmp_path):
    recs, _ = run(tmp_path, sampler_is_trained=False, tis_cap=1.0)
    # step 1: the copy still equals the trained model; afterwards the trained model has moved away from it, and with
    # C = 1 the tokens the update made likelier (ratio > 1) are clipped, the others not
    assert recs[0]["tis_mismatch"] < 1e-5
    assert recs[-1]["tis_mismatch"] > 1e-3 and 0.0 < recs[-1]["tis_clipped_share"] < 1.0
    # the PPO ratio is taken against π_old: before the first optimizer step the trainer's gap to it is ~0
    assert recs[-1]["rollout_logprob_gap"] < 1e-5


def test_config_checks():
    with pytest.raises(ConfigError, match="tis_cap"):
        GRPOConfig(env_id="bandit", tis_cap=-1.0)
    with pytest.raises(ConfigError, match="tis_cap"):
        GRPOConfig(env_id="bandit", tis_cap=2.0, fsdp=True)
