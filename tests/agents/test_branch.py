"""RolloutEngine.branch (ARPO's partial rollouts) on a real env: replayed env state, shared token prefix."""

from __future__ import annotations

import copy

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.agents.test_engine import RecordingPolicy, check_episode  # noqa: E402
from turngym.agents.backends.hf import Generation  # noqa: E402
from turngym.agents.backends.tiny import char_tokenizer, tiny_llama  # noqa: E402
from turngym.agents.engine import RolloutEngine  # noqa: E402
from turngym.errors import ConfigError, EnvError  # noqa: E402

ENV = "turngym/EmbodiedSearch-v0"
KW = {"image": False}
TASK, SEED = "train-easy-000", 3


class ScriptedPolicy(RecordingPolicy):
    """The real tiny HFPolicy; while `script` is set, its turn t emits `script[t]` (+ the end-of-turn id) with the
    log-probs the model gives those tokens (an expert trajectory scored by the model), and samples otherwise."""

    script: list[str] | None = None

    def generate(self, prompts, **kw):
        if self.script is None:
            return super().generate(prompts, **kw)
        out = []
        for p in prompts:
            t = self.chat.decode(p).count("<|im_start|>assistant") - 1
            ids = self.chat.encode(self.script[t]) + [self.chat.end_ids[0]]
            with torch.no_grad():
                logits = self.model(torch.tensor([p + ids])).logits[0].float()
            lp = torch.log_softmax(logits / self.temperature, -1)
            lps = [lp[len(p) - 1 + j, i].item() for j, i in enumerate(ids)]
            g = Generation(ids, lps, self.script[t], "stop")
            self.record.setdefault(tuple(p), []).append(g)
            out.append(g)
        self.calls.append(len(prompts))
        return out


def expert_script(max_turns):
    env = gym.make(ENV, **KW)
    try:
        env.reset(seed=SEED, options={"task_id": TASK, "max_turns": max_turns})
        actions = []
        for _ in range(max_turns):
            actions.append(env.unwrapped.expert_action())
            *_, term, trunc, _ = env.step(actions[-1])
            if term or trunc:
                return actions
        return actions
    finally:
        env.close()


@pytest.fixture(scope="module")
def policy():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tok = char_tokenizer()
    yield ScriptedPolicy(tiny_llama(len(tok), seed=0), tok, seed=0, max_new_tokens=12)
    torch.set_num_threads(before)  # later modules (and their subprocesses) must see the default again


def expert_parent(eng, policy, max_turns):
    """A parent episode whose first turns are the env's expert actions (they move the agent and open things)."""
    policy.script = expert_script(max_turns)
    try:
        (parent,) = eng.collect([TASK], group_size=1, seed=SEED)
    finally:
        policy.script = None
    return parent


def replay(episode, actions):
    """Observations of a fresh env reset with the episode's seed and options, after each action."""
    env = gym.make(ENV, **KW)
    try:
        obs, _ = env.reset(seed=episode.meta["seed"], options=episode.episode.meta["options"])
        out = [obs["text"]]
        for a in actions:
            obs, *_ = env.step(a)
            out.append(obs["text"])
        return out
    finally:
        env.close()


def test_branches_resume_from_the_replayed_state_with_the_parents_prefix(policy):
    with RolloutEngine(policy, ENV, env_kwargs=KW, num_envs=3, max_turns=4) as eng:
        parent = expert_parent(eng, policy, 4)
        kids = eng.branch(parent, turn=2, n=3, seed=11)
        again = eng.branch(parent, turn=2, n=3, seed=11)
    steps = parent.episode.steps
    # the expert's actions changed the env state (the replay has something to reproduce)
    assert [s.action.split("(")[0] for s in steps] == ["get_memory", "navigate", "open", "done"]
    assert parent.success and len(set(parent.obs_keys)) == 4
    check_episode(policy, parent)
    cut = parent.turn_index.index(2)
    assert len(kids) == 3
    for k, kid in enumerate(kids):
        assert kid.task_id == parent.task_id and kid.group == parent.group
        assert kid.meta["seed"] == parent.meta["seed"]
        assert kid.meta["branch"] == {"parent_index": 0, "turn": 2, "seed": 11, "k": k}
        # the shared prefix: the parent's tokens, mask, log-probs and turns up to its action 2
        for name in ("input_ids", "policy_mask", "logprobs", "turn_index"):
            assert getattr(kid, name)[:cut] == getattr(parent, name)[:cut]
        assert kid.rewards[:2] == parent.rewards[:2] and kid.obs_keys[:3] == parent.obs_keys[:3]
        assert [(s.action, s.observation) for s in kid.episode.steps[:2]] == [
            (s.action, s.observation) for s in steps[:2]
        ]
        assert kid.meta["policy_versions"][:2] == parent.meta["policy_versions"][:2]
        # the continuation: sampled by the model for exactly the prefix before it, template-exact, log-probs right
        check_episode(policy, kid)
        assert len(kid.rewards) > 2
        # it ran on the true env state: a fresh env replaying all of the branch's actions sees what it saw
        assert replay(kid, [s.action for s in kid.episode.steps]) == [
            kid.episode.observation,
            *[s.observation for s in kid.episode.steps],
        ]
    assert len({kid.meta["sample_seed"] for kid in kids}) == 3
    assert [k.input_ids for k in again] == [k.input_ids for k in kids]  # branching is reproducible


def test_branch_refuses_a_state_it_cannot_recreate(policy):
    with RolloutEngine(policy, ENV, env_kwargs=KW, num_envs=2, max_turns=3) as eng:
        parent = expert_parent(eng, policy, 3)
        bad_obs = copy.deepcopy(parent)
        bad_obs.episode.steps[0].observation += " (not what this env says)"
        with pytest.raises(EnvError, match="observation after action 0 differs on replay.*not deterministic"):
            eng.branch(bad_obs, turn=2, n=1, seed=0)
        bad_reward = copy.deepcopy(parent)
        bad_reward.episode.steps[1].reward += 1.0
        with pytest.raises(EnvError, match="reward of action 1 differs on replay"):
            eng.branch(bad_reward, turn=2, n=1, seed=0)
        with pytest.raises(ConfigError, match="turn must be in"):
            eng.branch(parent, turn=len(parent.rewards), n=1, seed=0)
        with pytest.raises(ConfigError, match="n >= 1"):
            eng.branch(parent, turn=0, n=0, seed=0)
        stripped = copy.deepcopy(parent)
        stripped.episode = None
        with pytest.raises(ConfigError, match="made by RolloutEngine"):
            eng.branch(stripped, turn=0, n=1, seed=0)
        # turn 0: a fresh start of the same task and env seed (nothing replayed)
        (fresh,) = eng.branch(parent, turn=0, n=1, seed=5)
        assert fresh.episode.observation == parent.episode.observation
        check_episode(policy, fresh)


def test_arpo_strategy_runs_on_the_engine(policy):
    """The trainers' ARPO strategy (read-only use here) gets its branches from `RolloutEngine.branch`."""
    from turngym.trainers.arpo import ARPOStrategy, arpo_families
    from turngym.trainers.config import GRPOConfig

    cfg = GRPOConfig(env_id=ENV, arpo_tau=-1e9, arpo_global_frac=0.5, arpo_z=2, temperature=1.0)
    with RolloutEngine(policy, ENV, env_kwargs=KW, num_envs=4, max_turns=3) as eng:
        eps = ARPOStrategy(eng, policy.model, cfg).collect([TASK], 4, 0, None, {})
    assert len(eps) == 4 and len({e.group for e in eps}) == 1
    fams = arpo_families(eps)
    assert fams
    for members, shared in fams:
        head = eps[members[0]]
        for j in members[1:]:
            cut = head.turn_index.index(shared)
            assert eps[j].input_ids[:cut] == head.input_ids[:cut]
            assert eps[j].rewards[:shared] == head.rewards[:shared]
