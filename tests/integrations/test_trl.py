"""turngym inside TRL's GRPOTrainer (turngym.integrations.trl): the rollout_func rows, rewards from the env, real
training steps with TRL, the environment_factory env, and the example. Skipped with the reason when TRL is absent."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
trl = pytest.importorskip("trl", reason="TRL is not installed: pip install 'turngym[trl]'")

from tests.conftest import LockEnv  # noqa: E402
from turngym.envs.core import Outcome  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402
from turngym.integrations.trl import (  # noqa: E402
    TurngymRollout,
    TurngymToolEnv,
    env_return,
    environment_factory,
    episode_return,
    task_dataset,
    task_id_of,
)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
ROOT = Path(__file__).resolve().parents[2]


class LetterEnv(LockEnv):
    """The lock's tasks, but every action earns the share of the letter 'a' in it (a per-step reward a random
    policy varies), costs one 'chars' per character, and the episode runs three turns."""

    default_max_turns = 3

    def _act(self, action):
        self.pos += 1
        text = action or ""
        return Outcome(
            text=f"Turn {self.pos} done. Write more.",
            reward=text.count("a") / max(1, len(text)),
            success=self.pos >= 3,
            terminated=self.pos >= 3,
            state=(self.pos, text[:8]),
            cost={"chars": float(len(text))},
        )


@pytest.fixture
def letter_id(lock_pack):
    env_id = "turngymtest/Letter-v0"
    gym.register(
        env_id, entry_point=LetterEnv, kwargs={"task_pack": str(lock_pack)}, disable_env_checker=True
    )
    yield env_id
    del gym.registry[env_id]


def test_episode_return_sums_discounted_rewards_minus_weighted_costs():
    # hand-computed: 1 + 0.5*2 + 0.25*4 = 3; costs 2*0.5 + 10*0 (unnamed weight 0 in a dict) = 1
    assert episode_return([1, 2, 4], {"a": 2.0, "b": 10.0}, gamma=0.5, cost_weights={"a": 0.5}) == 2.0
    assert episode_return([1, 2, 4], {"a": 2.0, "b": 10.0}, cost_weights=0.1) == pytest.approx(7 - 1.2)
    assert episode_return([]) == 0.0
    for bad in ({"gamma": 0.0}, {"gamma": 1.5}, {"cost_weights": "x"}, {"cost_weights": {"a": "1"}}):
        with pytest.raises(ConfigError):
            episode_return([1.0], **bad)


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="unknown env id"):
        TurngymRollout("turngym/NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="env id"):
        TurngymRollout(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_new_tokens"):
        TurngymRollout("turngym/EmbodiedSearch-v0", max_new_tokens=0)
    with pytest.raises(ConfigError, match="task id"):
        task_id_of("What is 2+2?")
    assert task_id_of([{"role": "user", "content": "turngym task: t-1"}]) == "t-1"
    with pytest.raises(ConfigError, match="turngym_return"):
        env_return(["x"])


def _trainer(rollout, tiny, tmp_path, steps, dataset, lr=1e-2):
    config = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=steps,
        per_device_train_batch_size=4,
        num_generations=4,
        learning_rate=lr,
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    return trl.GRPOTrainer(
        model=tiny.model,
        args=config,
        train_dataset=dataset,
        processing_class=tiny.tokenizer,
        reward_funcs=rollout.reward_funcs,
        rollout_func=rollout,
    )


@pytest.mark.slow  # ~10 s on an idle 2-core machine, ~45 s under load
def test_grpo_trainer_trains_on_env_returns_with_observations_masked(letter_id, tmp_path):
    import torch

    from turngym.agents.backends.hf import HFPolicy

    tiny = HFPolicy.from_pretrained("tiny", seed=0, hidden=32, layers=1)
    rollout = TurngymRollout(letter_id, max_new_tokens=6, gamma=0.9, cost_weights={"chars": 0.01})
    dataset = rollout.dataset(num_tasks=2)
    assert sorted(dataset["task_id"]) == sorted(set(dataset["task_id"])) and len(dataset) == 2
    seen = []
    original = rollout.__call__

    class Spy:  # records what TRL received from the real rollout (the call itself is not replaced)
        def __call__(self, prompts, trainer):
            out = original(prompts, trainer)
            seen.append((list(prompts), out, list(rollout.last_episodes)))
            return out

    trainer = _trainer(rollout, tiny, tmp_path, steps=2, dataset=dataset)
    trainer.rollout_func = Spy()
    before = torch.cat([p.detach().flatten() for p in tiny.model.parameters()]).clone()
    try:
        trainer.train()
    finally:
        rollout.close()
    assert len(seen) == 2
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2
    for (prompts, out, episodes), log in zip(seen, logged):
        # one episode per prompt row, in order; TRL's groups are one task played 4 times with distinct seeds
        assert [ep.task_id for ep in episodes] == [task_id_of(p) for p in prompts]
        assert len(set(task_id_of(p) for p in prompts)) == 1
        assert len({ep.meta["seed"] for ep in episodes}) == 4
        for k, ep in enumerate(episodes):
            assert len(ep.rewards) == 3  # multi-turn: three actions, observations in between
            first = ep.policy_mask.index(1)
            ids = out["prompt_ids"][k] + out["completion_ids"][k]
            assert ids == ep.input_ids[: len(ids)] and len(out["prompt_ids"][k]) == first
            mask = out["env_mask"][k]
            assert sum(mask) == ep.num_policy_tokens and mask[0] == 1 and mask[-1] == 1
            assert 0 in mask  # the observations between the actions are in the completion, masked out
            assert len(out["logprobs"][k]) == len(mask)
            assert all(lp == 0.0 for lp, m in zip(out["logprobs"][k], mask) if not m)
            assert all(lp < 0.0 for lp, m in zip(out["logprobs"][k], mask) if m)
            want = sum(0.9**t * r for t, r in enumerate(ep.rewards))
            want -= 0.01 * sum(len(s.action) for s in ep.episode.steps)
            assert out["turngym_return"][k] == pytest.approx(want)
            assert out["turngym_costs"][k] == {"chars": float(sum(len(s.action) for s in ep.episode.steps))}
        # TRL's reward is the env's return (env_return is the only reward function)
        mean = sum(out["turngym_return"]) / len(out["turngym_return"])
        assert log["reward"] == pytest.approx(mean, rel=1e-4, abs=1e-6)
        assert log["turngym/success"] == 1.0
    after = torch.cat([p.detach().flatten() for p in tiny.model.parameters()])
    spread = any(len(set(out["turngym_return"])) > 1 for _, out, _ in seen)
    assert spread  # random actions differ in their share of 'a' and length
    assert not torch.equal(before, after)  # a group with unequal returns moves the weights


def test_tool_env_plays_an_episode_through_act_and_reports_the_return(lock_id):
    import transformers

    make = environment_factory(lock_id, cost_weights={"tries": 0.25})
    env = make()
    assert isinstance(env, TurngymToolEnv)
    first = env.reset(task_id="train-1", prompt=[{"role": "user", "content": ""}])
    assert "A lock with 4 digits" in first and env.task_id == "train-1"
    # TRL exposes the public methods other than reset/get_reward as tools: exactly `act`, with a JSON schema
    tools = [n for n in dir(type(env)) if callable(getattr(type(env), n)) and not n.startswith("_")]
    assert sorted(tools) == ["act", "get_reward", "reset"]
    schema = transformers.utils.get_json_schema(env.act)
    assert schema["function"]["name"] == "act" and "action" in schema["function"]["parameters"]["properties"]
    assert "Invalid action" in env.act("dance")
    code = "1007"  # train-1 of the lock pack
    for d in code:
        env.act(f"try {d}")
    final = env.act("open")
    assert "The lock opens." in final and "episode has ended" in final
    assert env.success
    assert env.get_reward() == pytest.approx(1.0 - 0.25 * 4)
    assert "ended" in env.act("open")  # after the end nothing is stepped
    with pytest.raises(ConfigError, match="task_id"):
        env.reset(task_id=3)
    env._close()


def test_task_dataset_lists_the_split_and_draws_without_replacement(lock_id):
    full = task_dataset(lock_id, split="test")
    assert sorted(full["task_id"]) == [f"test-{i}" for i in range(6)]
    assert full["prompt"][0] == f"turngym task: {full['task_id'][0]}"
    some = task_dataset(lock_id, split="train", num_tasks=3, seed=1, conversational=True)
    assert len(set(some["task_id"])) == 3 and some["prompt"][0][0]["role"] == "user"
    with pytest.raises(ConfigError, match="num_tasks"):
        task_dataset(lock_id, num_tasks=0)


@pytest.mark.slow  # ~10 s on an idle 2-core machine, ~45 s under load
def test_example_trains_a_tiny_model_with_trl_on_a_turngym_env(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import trl_grpo
    finally:
        sys.path.pop(0)
    out = tmp_path / "run"
    assert trl_grpo.main(["--out", str(out), "--steps", "1", "--tasks", "2", "--max-turns", "2"]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["env"] == "turngym/EmbodiedSearch-v0" and result["rollout_calls"] == 1
    assert result["episodes_last_call"] == 4
    (step,) = [h for h in result["log_history"] if "reward" in h]
    assert step["step"] == 1 and "loss" in step and "turngym/success" in step


def test_grpo_trainer_takes_the_environment_factory_and_scores_with_get_reward(lock_id, tmp_path):
    # TRL's own tool-calling loop with a tool-call chat template (Qwen3's, from TRL) on the tiny model: TRL probes
    # the factory's env, exposes `act` as the one tool, resets a pooled env per rollout with the dataset row, and
    # the env's get_reward is a reward column. A random model writes no valid tool call, so every return is the
    # no-action return 0: what is checked is the plumbing (reset rows, tool schema, reward source), not learning.
    from trl.chat_template_utils import add_response_schema, qwen3_chat_template

    from turngym.agents.backends.tiny import char_tokenizer, tiny_llama

    tok = add_response_schema(char_tokenizer(qwen3_chat_template))
    model = tiny_llama(len(tok), hidden=32, layers=1, seed=0)
    dataset = task_dataset(lock_id, split="train", num_tasks=2, conversational=True)
    config = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        environment_factory=environment_factory(lock_id),
    )
    assert [t.__name__ for t in trainer.tools] == ["act"]
    assert trainer.reward_func_names == ["TurngymToolEnv"]
    trainer.train()
    pool = trainer._environment_pool[None]
    assert len(pool) == 4 and all(isinstance(e, TurngymToolEnv) for e in pool)
    # each rollout's env was reset on the task its dataset row names (TRL passes the row's columns to reset)
    assert {e.task_id for e in pool} <= set(dataset["task_id"]) and all(e.task_id for e in pool)
    (log,) = [h for h in trainer.state.log_history if "reward" in h]
    assert log["rewards/TurngymToolEnv/mean"] == 0.0 and log["reward"] == 0.0
    for e in pool:
        e._close()
