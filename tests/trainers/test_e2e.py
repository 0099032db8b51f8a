"""End to end with the real rollout engine: a tiny Llama (char tokenizer) in the LockEnv, SFT from the expert, GRPO."""

import pytest
import torch

from turngym.agents.backends.tiny import tiny_policy
from turngym.agents.base import ExpertAgent
from turngym.agents.engine import RolloutEngine
from turngym.agents.rollout import run_episodes
from turngym.trainers.config import GRPOConfig, SFTConfig
from turngym.trainers.grpo import GRPOTrainer
from turngym.trainers.sft import SFTTrainer, expert_token_episode


@pytest.mark.slow
def test_sft_expert_rendering_matches_engine_then_grpo(lock_id, tmp_path):
    policy = tiny_policy(seed=0, hidden=32, layers=1, max_new_tokens=8)
    experts = run_episodes(lock_id, ExpertAgent(), episodes=4, split="train", num_envs=2)
    token_eps = [expert_token_episode(policy, ep) for ep in experts]
    ep0 = token_eps[0]
    # the expert's action tokens are exactly the policy tokens, one turn each, ending with the end-of-turn id
    for t, step in enumerate(ep0.episode.steps):
        ids = [i for i, k in zip(ep0.input_ids, ep0.turn_index) if k == t]
        assert policy.chat.decode(ids[:-1]) == step.action and ids[-1] in policy.chat.end_ids
    sft = SFTTrainer(
        policy,
        token_eps,
        SFTConfig(
            epochs=30,
            lr=3e-3,
            mini_batch_size=4,
            output_dir=str(tmp_path / "sft"),
            progress=False,
            tensorboard=False,
            plot=False,
        ),
    )
    recs = sft.train()
    assert recs[-1]["loss"] < recs[0]["loss"] * 0.5
    engine = RolloutEngine(policy, lock_id, num_envs=4, max_turns=6)
    try:
        cfg = GRPOConfig(
            env_id=lock_id,
            steps=2,
            tasks_per_step=2,
            group_size=2,
            max_new_tokens=8,
            max_turns=6,
            mini_batch_size=4,
            micro_batch_size=2,
            advantage="gigpo",
            output_dir=str(tmp_path / "rl"),
            progress=False,
            tensorboard=False,
            plot=False,
        )
        # the engine's prompt for a task is token for token the prompt SFT trained on
        got = engine.collect([experts[0].task_id], 1, seed=0, split="train")[0]
        first = got.policy_mask.index(1)
        assert got.input_ids[:first] == ep0.input_ids[: ep0.policy_mask.index(1)]
        before = torch.cat([p.detach().flatten() for p in policy.model.parameters()]).clone()
        recs = GRPOTrainer(policy, config=cfg, engine=engine).train()
        assert [r["step"] for r in recs] == [1, 2]
        assert all(r["policy_tokens"] > 0 and r["optimizer_steps"] >= 1 for r in recs)
        changed = not torch.equal(
            before, torch.cat([p.detach().flatten() for p in policy.model.parameters()])
        )
        # all-equal groups give zero advantages (and no change); any informative group must move the weights
        assert changed == any(r["degenerate_groups"] < 2 for r in recs)
    finally:
        engine.close()


def test_a_separate_rollout_policy_generates_and_gets_the_trained_weights_after_every_update(
    lock_id, tmp_path
):
    """`rollout_policy` (how the vLLM backend plugs in): a second real HFPolicy with its own model copy collects the
    episodes; the trainer syncs the trained weights into it at start and after each update, so its sampling
    log-probs equal the trainer's recomputed ones (the logged sampler gap stays ~0)."""
    trained = tiny_policy(seed=0, hidden=32, layers=1, max_new_tokens=6)
    sampler = tiny_policy(seed=1, hidden=32, layers=1, max_new_tokens=6)  # other initial weights
    cfg = GRPOConfig(
        env_id=lock_id,
        steps=2,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=6,
        max_turns=2,
        lr=1e-2,
        entropy_coef=0.1,  # a gradient even when every group's rewards are equal
        mini_batch_size=4,
        micro_batch_size=4,
        output_dir=str(tmp_path / "rl"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    trainer = GRPOTrainer(trained, config=cfg, rollout_policy=sampler)
    try:
        assert trainer.engine.policy is sampler

        def same() -> bool:
            a, b = trained.model.state_dict(), sampler.model.state_dict()
            return all(torch.equal(a[k], b[k]) for k in a)

        assert same()  # synced before the first rollout
        before = {k: v.clone() for k, v in trained.model.state_dict().items()}
        recs = trainer.train()
        assert any(not torch.equal(before[k], v) for k, v in trained.model.state_dict().items())
        assert same()  # and after the updates
        assert all(r["rollout_logprob_gap"] < 1e-4 and r["weight_sync_s"] >= 0 for r in recs)
    finally:
        trainer.engine.close()


def test_a_rollout_policy_that_cannot_take_weights_is_refused(lock_id, tmp_path):
    from turngym.errors import ConfigError

    class Frozen:
        def generate(self, prompts, **kw):
            raise AssertionError("never called")

    with pytest.raises(ConfigError, match="load_weights"):
        GRPOTrainer(
            tiny_policy(seed=0, hidden=32, layers=1),
            config=GRPOConfig(env_id=lock_id, output_dir=str(tmp_path)),
            rollout_policy=Frozen(),
        )
