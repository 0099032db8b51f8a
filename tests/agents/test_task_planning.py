"""An env id's task set is the one source of truth: evaluation, the rollout engine and the trainer's task stream plan
only tasks that `gym.make(id)` plays, for every registered id (per-task MiniWoB ids pin one task)."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest

import turngym
from turngym.agents.rollout import plan_episodes
from turngym.errors import ConfigError
from turngym.registration import ENVS, EnvEntry
from turngym.tasks.pack import load_pack

INSTALLED = [e for e in ENVS if e.installed()]


@pytest.fixture(scope="module", autouse=True)
def _miniwob_server():
    """One MiniWoB page server for the module (each env would otherwise start and stop its own)."""
    if not any(e.family == "web" for e in INSTALLED):
        yield
        return
    from turngym.envs.web.miniwob import miniwob_html_root
    from turngym.envs.web.server import acquire_server, release_server

    server = acquire_server(miniwob_html_root())
    yield
    release_server(server)


def playable(entry: EnvEntry, split: str | None) -> set[str]:
    """What the id plays, from its registry entry and its packs: the pack's tasks of the split (the env class's
    default split when None; a split the registered pack lacks comes from the class's `split_packs`), narrowed to
    the task the id pins, if any."""
    module, name = entry.entry_point.split(":")
    cls = getattr(__import__(module, fromlist=[name]), name)
    split = split or cls.default_split
    pack = load_pack(entry.default_pack)
    if split not in pack.splits:
        pack = load_pack(cls.split_packs[split])
    ids = set(pack.task_ids(split))
    if "task" in entry.kwargs:
        assert entry.kwargs["task"] in ids
        ids &= {entry.kwargs["task"]}
    return ids


def planned(entry: EnvEntry, split: str | None, n: int = 12) -> dict[str, list[str]]:
    """The task ids that evaluation, the rollout engine and the trainer's task stream plan for `n` episodes."""
    from turngym.agents.backends.tiny import char_tokenizer
    from turngym.agents.engine import RolloutEngine
    from turngym.agents.policy import TokenPolicyBase
    from turngym.trainers.grpo import TaskStream, split_task_ids

    class NoPolicy(TokenPolicyBase):  # planning never generates
        def generate(self, prompts, **kwargs):
            raise AssertionError("planning generated")

        def load_weights(self, model_or_state):
            raise AssertionError("planning loaded weights")

    env = gym.make(entry.id)
    try:
        evaluation = [s.options["task_id"] for s in plan_episodes(env, n, seed=3, split=split)]
    finally:
        env.close()
    with RolloutEngine(NoPolicy(char_tokenizer(), spec="none"), entry.id, num_envs=1) as engine:
        collect = [tid for _, _, tid in engine.plan(n, 1, 5, split, None)[0]]
    stream = TaskStream(split_task_ids(entry.id, {}, split), seed=7).take(n)
    return {"eval": evaluation, "collect": collect, "train": stream}


@pytest.mark.parametrize("split", [None, "train"])
def test_every_id_plans_only_the_tasks_it_plays(split):
    pytest.importorskip("torch")
    assert len(INSTALLED) > 100  # every MiniWoB task has its id
    for entry in INSTALLED:
        truth = playable(entry, split)
        for who, ids in planned(entry, split).items():
            assert ids and set(ids) <= truth, (entry.id, split, who, sorted(set(ids) - truth)[:5])
            if "task" in entry.kwargs:
                assert set(ids) == {entry.kwargs["task"]}, (entry.id, who)
            elif len(truth) >= 12:  # a seeded draw from the whole set, not one task repeated
                assert len(set(ids)) > 1, (entry.id, who)


def test_task_ids_is_what_reset_plays():
    env = gym.make("turngym/MiniWoB-choose-list-v0")
    u = env.unwrapped
    try:
        assert u.task_ids() == ["choose-list"] == u.task_ids("expert")
        assert u.task_ids(options={"task_id": "choose-list"}) == ["choose-list"]
        with pytest.raises(ConfigError, match="plays only the task 'choose-list'"):
            env.reset(options={"task_id": "use-slider"})
        with pytest.raises(ConfigError, match="plays only the task 'choose-list'"):
            u.task_ids(options={"task_id": "use-slider"})
        with pytest.raises(ConfigError, match="unknown reset option"):
            u.task_ids(options={"tasks": 3})
    finally:
        env.close()
    whole = gym.make("turngym/MiniWoB-v0")
    try:
        ids = whole.unwrapped.task_ids()
        assert ids == load_pack("miniwob").task_ids("train") and len(ids) > 100
        assert whole.unwrapped.task_ids("expert") == load_pack("miniwob").task_ids("expert")
    finally:
        whole.close()


def test_a_pinned_task_missing_from_the_split_is_a_clear_error():
    expert = set(load_pack("miniwob").task_ids("expert"))
    task = next(t for t in load_pack("miniwob").task_ids("train") if t not in expert)
    env = gym.make(f"turngym/MiniWoB-{task}-v0")
    try:
        with pytest.raises(ConfigError, match=f"plays only the task '{task}'.*split 'expert'"):
            env.unwrapped.task_ids("expert")
    finally:
        env.close()


def test_family_options_narrow_the_task_list():
    pytest.importorskip("textworld")
    env = gym.make("turngym/ALFWorld-v0", task_types=["pick_and_place_simple"])
    try:
        u = env.unwrapped
        ids = u.task_ids("valid_seen")
        pack = u.load_task_pack()
        assert ids and all(pack.get(t)["task_type"] == "pick_and_place_simple" for t in ids)
        assert len(ids) < len(pack.task_ids("valid_seen"))
        other = u.task_ids("valid_seen", {"task_types": ["look_at_obj_in_light"]})
        assert other and not set(other) & set(ids)
        outside = next(t for t in pack.task_ids("valid_seen") if t not in ids)
        with pytest.raises(ConfigError, match="pick_and_place_simple"):
            env.reset(options={"task_id": outside})
        planned_ids = {s.options["task_id"] for s in plan_episodes(env, 20, split="valid_seen")}
        assert planned_ids <= set(ids)
    finally:
        env.close()


def test_coding_trains_on_repo_repair_and_a_missing_split_names_the_packs_that_have_it():
    env = gym.make("turngym/Coding-v0")
    try:
        u = env.unwrapped
        assert set(u.task_ids()) == set(load_pack("humaneval").task_ids("test"))  # evaluation: HumanEval
        assert u.task_ids("train") == load_pack("repo-repair").task_ids("train")  # training: repo-repair
        assert u.task_ids("train", {"task_pack": "repo-repair"}) == u.task_ids("train")
        with pytest.raises(
            ConfigError, match=r"no split 'train'.*'coding' family with a 'train' split.*repo-repair"
        ):
            u.task_ids("train", {"task_pack": "humaneval"})
        with pytest.raises(ConfigError, match="no installed pack of the 'coding' family has a 'valid' split"):
            u.task_ids("valid")
        obs, info = env.reset(seed=0, options={"split": "train"})
        assert info["task_id"] in u.task_ids("train") and env.unwrapped.pack.name == "repo-repair"
    finally:
        env.close()
    pinned = gym.make("turngym/Coding-v0", task_pack="humaneval")  # an explicit pack is never swapped
    try:
        with pytest.raises(ConfigError, match="has no split 'train'"):
            pinned.unwrapped.task_ids("train")
    finally:
        pinned.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("task", ["click-button", "choose-list"])
def test_turngym_eval_plays_the_pinned_task(tmp_path, task):
    from turngym.envs.web.browser import BrowserConfig

    if not (
        turngym.registration.entry(f"MiniWoB-{task}-v0").installed() and BrowserConfig().resolved_executable()
    ):
        pytest.skip("needs playwright, miniwob and chromium")
    out = tmp_path / task
    cmd = [
        sys.executable,
        "-m",
        "turngym",
        "eval",
        "--env",
        f"turngym/MiniWoB-{task}-v0",
        "--agent",
        "expert",
    ]
    cmd += ["--episodes", "3", "--num-envs", "2", "--out", str(out), "--quiet"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    episodes = [
        json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines() if line.strip()
    ]
    assert [e["task_id"] for e in episodes] == [task] * 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["success_rate"] == 1.0
