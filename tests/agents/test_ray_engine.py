"""Rollout engines as Ray actors on a local Ray cluster (2 CPUs): two workers with the tiny HF model in
EmbodiedSearch give one in-process engine's episodes, follow weight updates over the gloo group, survive a worker
killed mid-collect, and run from `turngym train`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from turngym.optional import is_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not is_available("ray"), reason="needs ray (pip install 'turngym[distributed]')"),
]
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.agents.backends.tiny import tiny_policy  # noqa: E402
from turngym.agents.engine import RolloutEngine  # noqa: E402
from turngym.agents.weight_sync import checksum  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402

ENV = "turngym/EmbodiedSearch-v0"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def ray_engine(policy, **kw):
    from turngym.agents.ray_engine import RayRolloutEngine

    kw = {"num_workers": 2, "num_envs": 2, "max_turns": 3, **kw}
    return RayRolloutEngine(policy, ENV, **kw)


def local_episodes(policy, n_tasks, group_size, seed):
    with RolloutEngine(policy, ENV, num_envs=4, max_turns=3) as eng:
        return eng.collect(n_tasks, group_size=group_size, seed=seed)


def trained_copy(model, seed=1):
    """`model` after one AdamW step on a next-token loss over random ids (every weight moves)."""
    out = copy.deepcopy(model).train()
    ids = torch.randint(0, out.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(out.parameters(), lr=1e-2)
    out(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    return out.eval()


def assert_same_episodes(got, want):
    assert [e.meta["index"] for e in got] == list(range(len(want)))
    assert [(e.task_id, e.group) for e in got] == [(e.task_id, e.group) for e in want]
    assert [e.input_ids for e in got] == [e.input_ids for e in want]
    assert [e.policy_mask for e in got] == [e.policy_mask for e in want]
    assert [e.rewards for e in got] == [e.rewards for e in want]
    for a, b in zip(got, want):  # different batch-mates: float rounding only
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)


def test_two_workers_give_one_engines_episodes(ray_local):
    policy = tiny_policy(max_new_tokens=8)
    with ray_engine(policy) as eng:
        pids = {i["pid"] for i in eng.worker_info()}
        got = eng.collect(3, group_size=2, seed=5)
        assert eng.stats["episodes"] == 6 and eng.stats["generated_tokens"] > 0
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, not this one
    assert_same_episodes(got, local_episodes(policy, 3, 2, 5))
    assert all(e.meta["policy_versions"] == [0] * len(e.rewards) for e in got)


def test_update_policy_syncs_every_worker(ray_local):
    from turngym.agents.ray_engine import PolicySpec

    policy = tiny_policy(max_new_tokens=8)
    spec = PolicySpec("tiny", {"max_new_tokens": 8})  # each worker builds the model itself
    with ray_engine(spec) as eng:
        assert eng.checksums() == [checksum(policy.model.state_dict())] * 2  # tiny: the same seeded weights
        trained = trained_copy(policy.model)
        assert checksum(trained.state_dict()) != checksum(policy.model.state_dict())
        assert eng.update_policy(trained) == 1
        assert eng.checksums() == [checksum(trained.state_dict())] * 2
        assert [i["version"] for i in eng.worker_info()] == [1, 1]
        got = eng.collect(2, group_size=2, seed=9)
        again = trained_copy(trained, seed=2)
        assert eng.update_policy(again) == 2
        assert eng.checksums() == [checksum(again.state_dict())] * 2
        assert [i["version"] for i in eng.worker_info()] == [2, 2]
    assert all(set(e.meta["policy_versions"]) == {1} for e in got)
    policy.load_weights(trained)
    assert_same_episodes(got, local_episodes(policy, 2, 2, 9))


def test_worker_killed_mid_collect_loses_and_doubles_nothing(ray_local):
    ray = ray_local
    policy = tiny_policy(max_new_tokens=8)
    with ray_engine(policy) as eng:
        trained = trained_copy(policy.model)
        eng.update_policy(trained)  # the restarted worker must get these weights back, at version 1
        victim = eng.workers[1]
        old_pid = eng.worker_info()[1]["pid"]
        killed = threading.Event()

        def kill_when_started():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if ray.get(victim.info.remote())["done"] >= 1:  # its share is running: one episode back
                    ray.kill(victim, no_restart=False)
                    killed.set()
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_when_started)
        killer.start()
        got = eng.collect(6, group_size=2, seed=3)  # 12 episodes, 6 per worker on 2 env slots each
        killer.join()
        assert killed.is_set()
        assert eng.restarts == 1 and eng.stats["rerun_episodes"] == 6
        info = eng.worker_info()
        assert info[1]["pid"] != old_pid
        assert [i["version"] for i in info] == [1, 1]
        assert eng.checksums() == [checksum(trained.state_dict())] * 2
    assert sorted(e.meta["index"] for e in got) == list(range(12))  # each once
    assert all(set(e.meta["policy_versions"]) == {1} for e in got)
    policy.load_weights(trained)
    assert_same_episodes(got, local_episodes(policy, 6, 2, 3))


def test_config_fields_are_checked():
    from turngym.trainers.config import GRPOConfig, load_config

    cfg = load_config(GRPOConfig, None, ["rollout_backend=ray", "rollout_workers=3", "ray_address=auto"])
    assert (cfg.rollout_workers, cfg.ray_address) == (3, "auto")
    for bad, field in (
        (["rollout_workers=0"], "rollout_workers"),
        (["rollout_workers=1.5"], "rollout_workers"),
        (['ray_address=""'], "ray_address"),
        (["rollout_worker_gpus=-1"], "rollout_worker_gpus"),
        (["rollout_backend=rays"], "rollout_backend"),
        (["rollout_backend=ray", "rollout_strategy=arpo", "group_size=2"], "rollout_strategy"),
        (["rollout_backend=ray", "lora_r=8"], "lora_r"),
    ):
        with pytest.raises(ConfigError, match=field):
            load_config(GRPOConfig, None, bad)


def test_cli_trains_a_step_with_ray_rollouts(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        f"env_id={ENV}",
        "model=tiny",
        "steps=1",
        "rollout_backend=ray",
        "rollout_workers=2",
        "tasks_per_step=2",
        "group_size=2",
        "num_envs=2",
        "max_new_tokens=8",
        "max_turns=2",
        "mini_batch_size=4",
        "micro_batch_size=4",
        f"output_dir={out}",
        "progress=false",
        "plot=false",
        "tensorboard=false",
        "save_every=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "turngym.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]
    assert rows[0]["weight_sync_s"] > 0  # the update went to the workers
