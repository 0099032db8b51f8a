"""Rollout engines as Ray actors on a local Ray cluster (2 CPUs): two workers with the tiny HF model in
EmbodiedSearch give one in-process engine's episodes, follow weight updates over the gloo group, survive a worker
killed mid-collect, and train async in-process (`turngym train` on Ray: test_ray_cli.py)."""

from __future__ import annotations

import copy
import os
import threading
import time

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
        (["rollout_worker_cpus=-0.5"], "rollout_worker_cpus"),
        (["rollout_backend=rays"], "rollout_backend"),
        (["rollout_backend=ray", "rollout_strategy=arpo", "group_size=2"], "rollout_strategy"),
        (["rollout_backend=ray", "lora_r=8"], "lora_r"),
        (["env_backend=docker"], "env_backend"),
        (["rollout_backend=vllm", "max_staleness=1"], "max_staleness"),
        (["rollout_backend=ray", "max_staleness=1", "fsdp=true"], "max_staleness"),
        (["rollout_backend=ray", "tis_cap=2", "fsdp=true"], "tis_cap"),
    ):
        with pytest.raises(ConfigError, match=field):
            load_config(GRPOConfig, None, bad)
    # async rollouts and truncated IS on the Ray backend, env actors: accepted
    cfg = load_config(
        GRPOConfig, None, ["rollout_backend=ray", "max_staleness=2", "tis_cap=2", "env_backend=ray"]
    )
    assert (cfg.max_staleness, cfg.tis_cap, cfg.env_backend) == (2, 2.0, "ray")


def test_ray_backend_with_several_ranks_refuses_dynamic_sampling(monkeypatch):
    from turngym.trainers import grpo
    from turngym.trainers.config import GRPOConfig

    monkeypatch.setattr(grpo, "dist_info", lambda: (1, 2))  # refused before any collective
    cfg = GRPOConfig(env_id=ENV, rollout_backend="ray", dynamic_sampling=True, group_size=2)
    with pytest.raises(ConfigError, match="dynamic_sampling"):
        grpo.GRPOTrainer(tiny_policy(), config=cfg)


def test_workers_with_env_actors_give_the_same_episodes(ray_local):
    """env_backend='ray' inside rollout workers: each worker's 2 env slots are env actors of their own (2 x (0.5 +
    2 x 0.25) = 2 CPUs of the 2-CPU cluster); the episodes are those of one local engine."""
    policy = tiny_policy(max_new_tokens=8)
    with ray_engine(policy, worker_cpus=0.5, env_backend="ray") as eng:
        got = eng.collect(2, group_size=2, seed=7)
        assert ray_local.available_resources().get("CPU", 0.0) < 1e-6  # 4 env actors hold the other CPU
    assert_same_episodes(got, local_episodes(policy, 2, 2, 7))


# ---- async: the Ray engine's stream ------------------------------------------------------------------------------
def spec(seed, n_tasks=2, group_size=2):
    return {"task_ids": n_tasks, "group_size": group_size, "seed": seed}


def test_stream_with_staleness_0_equals_synchronous_collect(ray_local):
    policy = tiny_policy(max_new_tokens=8)
    trained = trained_copy(policy.model)
    with ray_engine(policy) as eng:
        with eng.stream([spec(11), spec(12)], max_staleness=0) as stream:
            first = next(stream)
            time.sleep(0.5)  # batch 1 may not start before the update (k = 0)
            assert eng.update_policy(trained) == 1
            second = next(stream)
            with pytest.raises(StopIteration):
                next(stream)
        assert eng._stream is None
    assert all(e.meta["policy_versions"] == [0] * len(e.rewards) for e in first)
    assert all(e.meta["policy_versions"] == [1] * len(e.rewards) for e in second)
    assert all(e.meta["staleness"] == 0 for e in first + second)
    assert_same_episodes(first, local_episodes(policy, 2, 2, 11))
    policy.load_weights(trained)
    assert_same_episodes(second, local_episodes(policy, 2, 2, 12))


def test_stream_staleness_stays_within_k_while_updates_land_mid_batch(ray_local):
    """k = 1: batch i+1 runs while the consumer trains on batch i and updates the weights (the broadcast reaches
    workers in the middle of a `run`); every episode of batch i is at most 1 version old when handed out, its
    per-turn versions never go back, and the workers end on the last weights."""
    policy = tiny_policy(max_new_tokens=8)
    models = [policy.model]
    for s in range(4):
        models.append(trained_copy(models[-1], seed=s + 2))
    seen = []
    with ray_engine(policy) as eng:
        with eng.stream((spec(20 + i, n_tasks=4) for i in range(4)), max_staleness=1) as stream:
            for i, batch in enumerate(stream):
                assert eng.policy_version == i
                seen.append(batch)
                time.sleep(0.3)  # "training": batch i+1 is running meanwhile
                assert eng.update_policy(models[i + 1]) == i + 1
        assert eng.checksums() == [checksum(models[4].state_dict())] * 2
        assert [i["version"] for i in eng.worker_info()] == [4, 4]
    assert len(seen) == 4 and all(len(b) == 8 for b in seen)
    for i, batch in enumerate(seen):
        for ep in batch:
            versions = ep.meta["policy_versions"]
            assert versions == sorted(versions) and len(versions) == len(ep.rewards)
            assert i - 1 <= min(versions) and max(versions) <= i  # sampled by version i-1 or i
            assert ep.meta["staleness"] == i - min(versions) <= 1
    mixed = sum(len(set(ep.meta["policy_versions"])) > 1 for b in seen for ep in b)
    print(f"episodes sampled across an update: {mixed} of 32")


def test_stream_close_aborts_the_batch_in_flight(ray_local):
    policy = tiny_policy(max_new_tokens=8)
    with ray_engine(policy) as eng:
        stream = eng.stream((spec(30 + i, n_tasks=6) for i in range(100)), max_staleness=3)
        next(stream)
        t0 = time.monotonic()
        stream.close()  # batches 1.. run or wait; close stops them without waiting for a batch to finish
        closed_s = time.monotonic() - t0
        got = eng.collect(2, group_size=2, seed=5)  # the engine works on after the stream
    assert closed_s < 20
    assert_same_episodes(got, local_episodes(policy, 2, 2, 5))


def async_trainer_run(tmp_path, name, on_batch=None):
    """3 steps of async GRPO (max_staleness 1) on 2 Ray workers; returns (metrics, each step's episodes, trainer
    checksum == every worker's at the end, the workers' versions and pids at the end). `on_batch(trainer, i)`
    runs in the trainer's thread when batch i is handed to the step (while batch i+1 is in flight)."""
    from turngym.trainers.callbacks import Callback
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    class Batches(Callback):
        def __init__(self):
            self.batches = []

        def on_rollouts(self, trainer, episodes):
            self.batches.append(list(episodes))
            if on_batch is not None:
                on_batch(trainer, len(self.batches) - 1)

    cfg = GRPOConfig(
        env_id=ENV, model="tiny", steps=3, tasks_per_step=2, group_size=4, max_new_tokens=6, max_turns=2,
        num_envs=2, lr=1e-2, entropy_coef=0.1, mini_batch_size=8, micro_batch_size=8, save_every=0,
        rollout_backend="ray", rollout_workers=2, max_staleness=1, tis_cap=2.0,
        output_dir=str(tmp_path / name), progress=False, tensorboard=False, plot=False,
    )  # fmt: skip
    cb = Batches()
    trainer = GRPOTrainer(tiny_policy(max_new_tokens=6), config=cfg, callbacks=[cb])
    assert trainer.rollout_policy is None  # the workers sample; no replica in this process
    try:
        recs = trainer.train()
        assert trainer.engine._stream is None  # closed with training
        synced = trainer.engine.checksums() == [checksum(trainer.model.state_dict())] * 2
        info = trainer.engine.worker_info()
        assert trainer.engine.policy_version == 4  # the start, then one per step
    finally:
        trainer.engine.close()
    assert not [t for t in threading.enumerate() if t.name == "turngym-rollout-stream"]
    return recs, cb.batches, synced, info


@pytest.fixture(scope="module")
def async_reference(ray_local, tmp_path_factory):
    """One un-killed async run, shared: checked on its own and the reference of the killed run."""
    return async_trainer_run(tmp_path_factory.mktemp("async"), "reference")


def test_trainer_trains_async_on_ray_workers(async_reference):
    recs, batches, synced, info = async_reference
    assert synced and [i["version"] for i in info] == [4, 4]  # every worker on the trainer's weights
    assert [r["step"] for r in recs] == [1, 2, 3]
    for r in recs:
        assert 0.0 <= r["staleness"] <= 1.0
        assert r["tis_mismatch"] >= 0.0 and 0.0 <= r["tis_clipped_share"] <= 1.0
        assert r["weight_sync_s"] > 0
        assert r["rerun_episodes"] == 0 and r["rollout_restarts"] == 0
    for step, batch in enumerate(batches):
        assert sorted(ep.meta["index"] for ep in batch) == list(range(8))  # 2 tasks x 4 episodes
        for ep in batch:  # version 1 is the start's sync (step 0 -> version >= 1 - 1)
            assert ep.meta["staleness"] <= 1 and min(ep.meta["policy_versions"]) >= step


def test_worker_killed_during_async_training_reruns_its_share(ray_local, async_reference, tmp_path):
    """max_staleness 1: while step 1 trains, batch 1 runs on the workers; worker 1 is killed once its share has
    finished an episode. The step's update_policy meets the dead worker (gloo reports the lost peer), waits for the
    restart, forms the group again and sends the weights again; the batch's collect then re-runs the dead worker's
    share (4 episodes) at the current version. Every step trains on 8 episodes, each plan index once, the same
    tasks as an un-killed run; the workers end on the trainer's weights."""
    ray = ray_local
    killed = {}

    def kill_mid_batch(trainer, i):
        if i != 0:
            return
        victim = trainer.engine.workers[1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = ray.get(victim.info.remote())
            if info["running"] and info["done"] >= 1:  # batch 1's share is running, one episode finished
                ray.kill(victim, no_restart=False)
                killed.update(pid=info["pid"], done=info["done"])
                return
            time.sleep(0.01)

    t0 = time.monotonic()
    recs, batches, synced, info = async_trainer_run(tmp_path, "killed", kill_mid_batch)
    print(f"killed run {time.monotonic() - t0:.1f} s; killed {killed}")
    ref_recs, ref_batches, _, _ = async_reference
    assert killed, "worker 1 was never seen running batch 1"
    assert [r["step"] for r in recs] == [1, 2, 3]
    for batch in batches:  # nothing lost or doubled: 2 tasks x 4 episodes, each plan index once
        assert sorted(ep.meta["index"] for ep in batch) == list(range(8))
    assert [[ep.task_id for ep in b] for b in batches] == [[ep.task_id for ep in b] for b in ref_batches]
    assert [r["rerun_episodes"] for r in recs] == [0, 4, 0]  # worker 1's share of batch 1, once
    assert recs[-1]["rollout_restarts"] == 1 and all(r["rollout_restarts"] == 0 for r in ref_recs)
    reran = [ep for ep in batches[1] if ep.meta.get("rerun")]
    assert sorted(ep.meta["index"] for ep in reran) == [4, 5, 6, 7]  # the second half of the plan: worker 1's
    assert all(min(ep.meta["policy_versions"]) >= 2 for ep in reran)  # played again after step 1's update
    for r in recs:
        assert 0.0 <= r["staleness"] <= 1.0
    for step, batch in enumerate(batches):
        assert all(ep.meta["staleness"] <= 1 and min(ep.meta["policy_versions"]) >= step for ep in batch)
    assert synced and [i["version"] for i in info] == [4, 4]  # the start's sync, then one per step
    assert info[1]["pid"] != killed["pid"]
