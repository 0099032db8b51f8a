"""Every registered env family through the rollout engine (1 and 4 envs, and Ray env workers) and two GRPO steps with
a tiny model: episodes of the planned tasks, consistent token masks, finite rewards, and no browser left after
close. The families come from the registry, so a new family is covered without editing this file."""

from __future__ import annotations

import math
import threading
import time

import pytest

from turngym.optional import is_available
from turngym.registration import families

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

MAX_TURNS = 2
TASKS, GROUP = 2, 2


def representatives() -> list:
    """One id per family: the first installed one, preferring an id that pins a task (the narrowest task set);
    a family with no installed id is a skip that names what it needs."""
    out = []
    for family, entries in sorted(families().items()):
        installed = [e for e in entries if e.installed()]
        if installed:
            pinned = [e for e in installed if "task" in e.kwargs]
            out.append(pytest.param((pinned or installed)[0].id, id=family))
        for e in entries:
            if not e.installed():
                reason = f"{e.id} needs turngym[{e.extra}] ({', '.join(e.needs)})"
                out.append(pytest.param(e.id, id=e.name, marks=pytest.mark.skip(reason=reason)))
    return out


FAMILIES = representatives()


def needs_family(env_id: str) -> None:
    from turngym.registration import entry

    e = entry(env_id)
    if e.family in ("web", "webshopbrowser"):
        from turngym.envs.web.browser import BrowserConfig

        if not BrowserConfig().resolved_executable():
            pytest.skip("needs Debian chromium (apt-get install chromium)")


def env_tasks(env_id: str, split: str | None = None) -> set[str]:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return set(env.unwrapped.task_ids(split))
    finally:
        env.close()


def browser_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("turngym-browser")]


def chromium_left(before: set[int]) -> set[int]:
    from turngym.envs.web.browser import chromium_pids

    deadline = time.time() + 5
    while (left := chromium_pids() - before) and time.time() < deadline:
        time.sleep(0.05)
    return left


def check_episodes(eps: list, env_id: str, tasks: set[str], n_tasks: int = TASKS, group: int = GROUP) -> None:
    assert len(eps) == n_tasks * group
    groups: dict = {}
    for ep in eps:
        groups.setdefault(ep.group, []).append(ep)
        n = len(ep.input_ids)
        assert n == len(ep.policy_mask) == len(ep.logprobs) == len(ep.turn_index)
        assert set(ep.policy_mask) <= {0, 1} and ep.policy_mask[0] == 0  # the prompt is not the policy's
        assert all((m == 1) == (t >= 0) for m, t in zip(ep.policy_mask, ep.turn_index))
        turns = len(ep.rewards)
        assert 1 <= turns <= MAX_TURNS and len(ep.obs_keys) == len(ep.infos) == turns
        assert sorted({t for t in ep.turn_index if t >= 0}) == list(range(turns))
        # each turn's generated tokens form one contiguous span
        for t in range(turns):
            idx = [i for i, x in enumerate(ep.turn_index) if x == t]
            assert idx == list(range(idx[0], idx[-1] + 1))
        assert all(math.isfinite(r) for r in ep.rewards)
        assert all(math.isfinite(lp) and lp <= 1e-6 for lp, m in zip(ep.logprobs, ep.policy_mask) if m)
        assert ep.task_id in tasks and ep.meta["env_id"] == env_id
        assert all(info["task_id"] == ep.task_id for info in ep.infos)
    assert len(groups) == n_tasks
    for members in groups.values():
        assert len(members) == group and len({ep.task_id for ep in members}) == 1


@pytest.fixture(scope="module")
def policy():
    from turngym.agents.backends.tiny import tiny_policy

    return tiny_policy(max_new_tokens=8)


@pytest.mark.parametrize("num_envs", [1, 4])
@pytest.mark.parametrize("env_id", FAMILIES)
def test_collect(policy, env_id, num_envs):
    from turngym.agents.engine import RolloutEngine
    from turngym.envs.web.browser import chromium_pids

    needs_family(env_id)
    tasks = env_tasks(env_id)
    before = chromium_pids()
    with RolloutEngine(policy, env_id, num_envs=num_envs, max_turns=MAX_TURNS) as engine:
        eps = engine.collect(TASKS, group_size=GROUP, seed=1)
        assert len(engine._envs) == min(num_envs, TASKS * GROUP)
    check_episodes(eps, env_id, tasks)
    assert not chromium_left(before), "Chromium processes left after the engine closed"
    assert not browser_threads(), "browser threads left after the engine closed"


@pytest.fixture(scope="module")
def ray_cluster():
    if not is_available("ray"):
        pytest.skip("needs ray (pip install 'turngym[distributed]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("env_id", FAMILIES)
def test_collect_with_ray_env_workers(policy, ray_cluster, env_id):
    import os

    from turngym.agents.engine import RolloutEngine
    from turngym.envs.web.browser import chromium_pids

    needs_family(env_id)
    tasks = env_tasks(env_id)
    with RolloutEngine(policy, env_id, num_envs=2, max_turns=MAX_TURNS, env_backend="ray") as engine:
        eps = engine.collect(TASKS, group_size=GROUP, seed=1)
        pids = {env.pid() for env in engine._envs}
        browsers = set().union(*(chromium_pids(p) for p in pids))  # the workers' Chromium processes
    assert len(pids) == 2 and os.getpid() not in pids  # the envs ran in two worker processes
    check_episodes(eps, env_id, tasks)
    deadline = time.time() + 10  # closing closes the envs in the workers, then kills the actors
    while browsers & chromium_pids(1) and time.time() < deadline:
        time.sleep(0.1)
    assert not browsers & chromium_pids(1), "the workers' Chromium processes outlived the engine"


@pytest.mark.parametrize("env_id", FAMILIES)
def test_two_grpo_steps(env_id, tmp_path):
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.envs.web.browser import chromium_pids
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    needs_family(env_id)
    train_tasks = env_tasks(env_id, "train")
    before = chromium_pids()
    cfg = GRPOConfig(
        steps=2,
        group_size=GROUP,
        tasks_per_step=1,
        max_turns=MAX_TURNS,
        num_envs=GROUP,
        max_new_tokens=8,
        mini_batch_size=GROUP,
        micro_batch_size=GROUP,
        output_dir=str(tmp_path),
        progress=False,
        plot=False,
        tensorboard=False,
    )
    trainer = GRPOTrainer(tiny_policy(max_new_tokens=8), env_id=env_id, config=cfg)
    try:
        collected = []
        collect = trainer.engine.collect

        def recording(*args, **kwargs):
            eps = collect(*args, **kwargs)
            collected.append(eps)
            return eps

        trainer.engine.collect = recording
        before_w = [p.detach().clone() for p in trainer.model.parameters()]
        records = trainer.train()
    finally:
        trainer.engine.close()
    assert trainer.step == 2 and len(records) == 2
    assert set(trainer.tasks.ids) == train_tasks  # the task stream is the env's own train set
    assert len(collected) == 2
    for eps in collected:
        check_episodes(eps, env_id, train_tasks, n_tasks=1)
    for rec in records:
        assert all(math.isfinite(v) for v in rec.values() if isinstance(v, float)), rec
    totals = [[ep.total_reward for ep in eps] for eps in collected]
    if any(max(t) > min(t) for t in totals):  # a group with a learning signal: the weights moved
        assert any(not (a == b.detach()).all() for a, b in zip(before_w, trainer.model.parameters()))
    assert not chromium_left(before), "Chromium processes left after the trainer's engine closed"
    assert not browser_threads()
