"""SPA-RL: the estimator loss and step rewards by hand; a real (tiny) transformer backbone fitted so that step
contributions sum to the episode reward and land on the steps that earned it."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from turngym.agents.trajectory import TokenEpisode  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402
from turngym.trainers.progress import (  # noqa: E402
    ProgressEstimator,
    SpaCallback,
    SpaRL,
    grounding,
    make_spa,
    progress_loss,
    spa_shaper,
    spa_step_rewards,
    step_positions,
)

GOOD = 7  # the action token that earns reward 1


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py


def test_progress_loss_hand_computed():
    c = [torch.tensor([0.5, 0.25]), torch.tensor([1.0])]
    # ((0.75 - 1)^2 + (1 - 0)^2) / 2 = (0.0625 + 1) / 2
    assert progress_loss(c, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.53125)


def test_spa_step_rewards_hand_computed():
    assert spa_step_rewards([0.2, -0.4, 1.0], [1, 0, True], alpha=1.0, beta=0.5) == pytest.approx(
        [0.7, -0.4, 1.5]
    )
    assert spa_step_rewards([0.2], [0], alpha=2.0, beta=1.0) == pytest.approx([0.4])
    with pytest.raises(ConfigError):
        spa_step_rewards([0.1], [1, 1])


def episode(actions: list[int], invalid: list[bool] | None = None, group: int = 0) -> TokenEpisode:
    """Observation token 1 then one action token per turn; reward 1 per GOOD action, paid at the end (sparse)."""
    ids, mask, turn = [], [], []
    for t, a in enumerate(actions):
        ids += [1, 2]
        mask += [0, 0]
        turn += [-1, -1]
        ids += [3, a]  # two action tokens: the step's feature is read at the last one
        mask += [1, 1]
        turn += [t, t]
    r = float(sum(a == GOOD for a in actions))
    n = len(actions)
    return TokenEpisode(
        input_ids=ids,
        policy_mask=mask,
        logprobs=[-1.0 * m for m in mask],
        turn_index=turn,
        rewards=[0.0] * (n - 1) + [r],
        obs_keys=[""] * n,
        infos=[{"invalid_action": bool(invalid and invalid[t])} for t in range(n)],
        task_id="t",
        group=group,
    )


def tiny_backbone():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=16,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return transformers.LlamaModel(cfg), 32


def test_step_positions_and_grounding():
    ep = episode([7, 4], invalid=[False, True])
    assert step_positions(ep) == [3, 7]
    assert grounding(ep) == [1, 0]


def test_estimator_learns_to_attribute_reward_to_steps():
    backbone, h = tiny_backbone()
    spa = SpaRL(ProgressEstimator(backbone, h, head_hidden=32), lr=1e-2, fit_epochs=60, batch_size=16, seed=0)
    rng = torch.Generator().manual_seed(1)
    data = [
        episode(torch.randint(4, 10, (int(n),), generator=rng).tolist())
        for n in torch.randint(1, 5, (64,), generator=rng)
    ]

    def held_out_loss():
        with torch.no_grad():
            c = [spa.estimator(e) for e in data[48:]]
        return progress_loss(c, torch.tensor([e.total_reward for e in data[48:]])).item()

    before = held_out_loss()
    assert spa.update(data[:48]) < 0.05
    assert held_out_loss() < 0.1 < before
    test = episode([GOOD, 4, GOOD, 9])
    c = spa.contributions(test)
    assert sum(c) == pytest.approx(2.0, abs=0.3)  # sums to the episode reward
    assert (
        c[0] > 0.7 and c[2] > 0.7 and abs(c[1]) < 0.3 and abs(c[3]) < 0.3
    )  # credit lands on the right steps
    # the shaping stage: r_t = c_t + 0.5 g_t, grounding from info
    bad = episode([GOOD, 4], invalid=[False, True])
    cb = spa.contributions(bad)
    assert spa_shaper([bad], spa) == [pytest.approx([cb[0] + 0.5, cb[1]])]
    # once the trainer has replaced the rewards, the estimator still fits the env's reward (ep.env_rewards)
    bad.env_rewards, bad.rewards = list(bad.rewards), [5.0, 5.0]
    assert spa.update([bad]) < 0.5


def test_state_dict_roundtrip():
    backbone, h = tiny_backbone()
    spa = SpaRL(ProgressEstimator(backbone, h), fit_epochs=3)
    spa.update([episode([GOOD, 4]), episode([5])])
    state = spa.state_dict()
    backbone2, _ = tiny_backbone()  # same seed: the same frozen backbone, as a reloaded snapshot would be
    spa2 = SpaRL(ProgressEstimator(backbone2, h))
    spa2.load_state_dict(state)
    ep = episode([GOOD, 9, 5])
    assert spa2.contributions(ep) == pytest.approx(spa.contributions(ep))
    assert spa2.fitted_steps == 1


class Trainer:
    """What SpaCallback reads from the trainer: its model and config (`model`: a checkpoint path or '')."""

    def __init__(self, model, out):
        self.step, self.model = 0, model
        self.config = type("Cfg", (), {"model": "", "output_dir": str(out)})()


def test_spa_callback_snapshots_the_policy_fits_on_rollouts_and_restores_its_state(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=16,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    policy = transformers.LlamaForCausalLM(cfg)
    cb = make_spa(alpha=1.0, beta=0.5, fit_epochs=2, lr=1e-2)
    group = [episode([GOOD, 4]), episode([5, 6, GOOD])]
    with pytest.raises(ConfigError, match="not built"):
        cb(group)
    cb.on_train_begin(Trainer(policy, tmp_path))
    spa = cb.spa
    assert spa.estimator.backbone is not policy.base_model  # a frozen snapshot, not the policy itself
    assert not any(p.requires_grad for p in spa.estimator.backbone.parameters())
    assert all(p.requires_grad for p in policy.parameters())  # the policy is untouched
    before = cb(group)
    metrics = cb.on_rollouts(None, group)
    assert set(metrics) == {"spa_loss"} and math.isfinite(metrics["spa_loss"]) and spa.fitted_steps == 1
    out = cb(group)
    assert [len(r) for r in out] == [2, 3] and out != before  # the fit changed the shaped rewards
    assert cb(group) == out == spa_shaper(group, spa)  # shaping is pure: calling again changes nothing
    assert not any(tmp_path.iterdir())  # no files: the state goes into the trainer's checkpoints
    cb2 = make_spa(alpha=1.0, beta=0.5, fit_epochs=0)
    cb2.on_train_begin(Trainer(policy, tmp_path))
    cb2.load_state_dict(cb.state_dict())
    assert cb2(group[:1])[0] == pytest.approx(out[0], abs=1e-5)
    assert cb2.spa.fitted_steps == 1


def test_selected_by_name_from_the_trainer_config():
    from turngym.trainers import hooks

    cb = hooks.resolve(hooks.REWARD_SHAPERS, {"name": "spa", "alpha": 2.0, "fit_epochs": 1}, "reward shaper")
    assert isinstance(cb, SpaCallback) and callable(cb) and cb.spa is None  # built at on_train_begin


def test_spa_with_gigpo_in_the_trainer_loop(tmp_path):
    from tests.trainers.bandit import BanditEngine, tiny_model
    from turngym.trainers.checkpoint import latest_checkpoint
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    model = tiny_model()
    cfg = GRPOConfig(
        env_id="bandit",
        task_ids=["0", "1"],
        steps=3,
        tasks_per_step=2,
        group_size=4,
        mini_batch_size=8,
        micro_batch_size=8,
        max_new_tokens=2,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
        advantage="gigpo",
        reward_shaping=[{"name": "spa", "alpha": 1.0, "beta": 0.5, "fit_epochs": 2}],
    )
    trainer = GRPOTrainer(model, config=cfg, engine=BanditEngine(model, {"0": {4, 5, 6, 7}, "1": {8, 9}}))
    cb = trainer.callbacks[0]
    assert trainer.shapers == [cb]  # one config entry: the shaper and its callback
    recs = trainer.train()
    assert len(recs) == 3 and all(math.isfinite(r["reward"]) for r in recs)
    assert all(math.isfinite(r["spa_loss"]) for r in recs)  # the estimator's loss reaches metrics.jsonl
    assert cb.spa.fitted_steps == 3 * 2  # one fit per group, each group scored right after its fit
    # every shaped reward is α·c + β·1 (all bandit actions are valid): reward − env_reward is not identically 0
    assert any(abs(r["reward"] - r["env_reward"]) > 1e-6 for r in recs)
    blob = torch.load(latest_checkpoint(tmp_path) / "trainer.pt", weights_only=False)
    (state,) = blob["state"]["callbacks"].values()
    assert state["fitted_steps"] == 6
    # a resumed trainer (the same initial policy) snapshots it again and gets the fitted head from the checkpoint
    fresh = tiny_model()
    again = GRPOTrainer(fresh, config=cfg, engine=BanditEngine(fresh, {"0": {4, 5, 6, 7}, "1": {8, 9}}))
    assert again.resume()
    ep = episode([GOOD, 4])
    assert again.callbacks[0].spa.contributions(ep) == pytest.approx(cb.spa.contributions(ep))


def test_spa_callback_loads_the_initial_policy_from_config_model(tmp_path):
    """With `config.model` set (a CLI run), the snapshot is the initial checkpoint, so a resumed run scores with the
    same frozen features."""
    backbone, h = tiny_backbone()
    cfg = backbone.config
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "init")
    trainer = Trainer(None, tmp_path / "run")
    trainer.config.model = str(tmp_path / "init")
    cb = make_spa(fit_epochs=1)
    cb.on_train_begin(trainer)
    cb.on_rollouts(trainer, [episode([GOOD, 4])])
    assert [len(r) for r in cb([episode([GOOD, 4])])] == [2]
    bb = cb.spa.estimator.backbone
    assert type(bb).__name__ == "LlamaModel" and not any(p.requires_grad for p in bb.parameters())
    assert not (tmp_path / "run").exists()  # nothing written
