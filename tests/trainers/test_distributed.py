"""Data-parallel GRPO on CPU: two real processes joined by torch.distributed (gloo), as `torchrun` would start them."""

import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.trainers.bandit import BanditEngine, tiny_model
from turngym.trainers.config import GRPOConfig
from turngym.trainers.grpo import GRPOTrainer, TaskStream, dist_info, init_distributed

TARGETS = {"0": {4, 5, 6, 7}, "1": {8, 9, 10, 11}, "2": {4, 5}, "3": {12, 13}}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        model = tiny_model(seed=rank)  # different on purpose: the trainer must start every rank from rank 0's
        engine = BanditEngine(model, TARGETS)
        cfg = GRPOConfig(
            env_id="bandit",
            task_ids=list(TARGETS),
            steps=2,
            tasks_per_step=2,
            group_size=4,
            lr=1e-2,
            mini_batch_size=8,
            micro_batch_size=4,
            max_new_tokens=2,
            output_dir=out,
            progress=False,
            tensorboard=False,
            plot=False,
        )
        GRPOTrainer(model, config=cfg, engine=engine).train()
        torch.save({"state": model.state_dict(), "calls": engine.calls}, Path(out) / f"result{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_share_weights_split_tasks_and_average_gradients(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"result{r}.pt") for r in (0, 1))
    # identical weights after training although rank 1 started from other weights and saw other tasks
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0)
    init = tiny_model(seed=0).state_dict()
    assert any(not torch.equal(r0["state"][k], init[k]) for k in init)
    # each step, the ranks got disjoint halves of the same seeded stream (4 tasks per step in all)
    stream = TaskStream(list(TARGETS), seed=0)
    for step in range(2):
        both = stream.take(4)
        assert r0["calls"][step] == both[0::2] and r1["calls"][step] == both[1::2]
    # rank 0 writes the run folder, rank 1 its own subfolder
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "rank1" / "metrics.jsonl").is_file()


def test_single_process_is_rank_zero_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist_info() == (0, 1) and init_distributed() == (0, 1)


@pytest.mark.slow
def test_turngym_train_cli_loads_a_model_folder_and_trains(tmp_path):
    """`turngym train --config cfg.yaml model=FOLDER ...` end to end on a real env (the CLI's policy loading path)."""
    import json

    from turngym.agents.backends.tiny import char_tokenizer, tiny_llama
    from turngym.cli import main

    tok = char_tokenizer()
    tiny_llama(len(tok), hidden=32, layers=1, seed=1).save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "cfg.yaml").write_text("env_id: turngym/EmbodiedSearch-v0\nsteps: 1\ngroup_size: 2\n")
    out = tmp_path / "run"
    overrides = [f"model={tmp_path / 'ckpt'}", f"output_dir={out}", "tasks_per_step=1", "max_turns=2"]
    overrides += ["max_new_tokens=4", "progress=false", "tensorboard=false", "plot=false", "num_envs=2"]
    assert main(["train", "--config", str(tmp_path / "cfg.yaml"), *overrides]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and (out / "checkpoints" / "step-000001" / "model.pt").is_file()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_worker(rank: int, world: int, port: int, out: str, fsdp: bool, stop_at: int) -> None:
    """Two GRPO steps on the real EmbodiedSearch env with a tiny HFPolicy; `stop_at` 1: stop after step 1 (a
    checkpoint), then a fresh trainer resumes it to step 2."""
    from turngym.agents.backends.tiny import tiny_policy

    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    torch.set_num_threads(1)
    try:
        cfg = GRPOConfig(
            env_id="turngym/EmbodiedSearch-v0",
            env_kwargs={"image": False},
            steps=2,
            tasks_per_step=2,
            group_size=2,
            max_turns=2,
            max_new_tokens=6,
            lr=3e-2,
            entropy_coef=0.05,  # a gradient even when a group's rewards are all equal
            mini_batch_size=4,
            micro_batch_size=1,  # rank with 2 episodes: 2 real + 2 zero passes per optimizer step under FSDP
            num_envs=2,
            fsdp=fsdp,
            output_dir=out,
            progress=False,
            tensorboard=False,
            plot=False,
        )
        first = replace(cfg, steps=stop_at)
        trainer = GRPOTrainer(tiny_policy(seed=rank, hidden=32, layers=2), config=first)
        if stop_at < 2:
            trainer.train()
            trainer.engine.close()
            trainer = GRPOTrainer(tiny_policy(seed=5, hidden=32, layers=2), config=cfg)
            trainer.train(resume=True)
        else:
            trainer.train()
        trainer.engine.close()
        full = trainer._full_state() if trainer.fsdp else trainer.model.state_dict()
        rollout = trainer.rollout_policy.model.state_dict() if trainer.rollout_policy is not None else None
        torch.save(
            {"state": {k: v.detach().clone() for k, v in full.items()}, "rollout": rollout},
            Path(out) / f"result{rank}.pt",
        )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_fsdp_trains_the_same_weights_as_data_parallel_and_resumes(tmp_path):
    """FSDP2 over two gloo processes: parameters sharded, rollouts from an unsharded replica synced after every
    update; the result equals plain data parallel (gradients averaged the same way), a rank with fewer micro-batches
    keeps in step through zero passes, and a checkpointed run resumes to the same weights."""
    runs = {}
    for name, fsdp, stop_at in (("ddp", False, 2), ("fsdp", True, 2), ("resumed", True, 1)):
        out = tmp_path / name
        torch.multiprocessing.spawn(
            _env_worker, args=(2, _port(), str(out), fsdp, stop_at), nprocs=2, join=True
        )
        runs[name] = [torch.load(out / f"result{r}.pt") for r in (0, 1)]
    ddp, fsdp, resumed = runs["ddp"], runs["fsdp"], runs["resumed"]
    init = tiny_policy_state()
    assert any(not torch.equal(ddp[0]["state"][k], init[k]) for k in init)  # it trained
    for r in (0, 1):
        for k in init:
            torch.testing.assert_close(fsdp[r]["state"][k], ddp[0]["state"][k], rtol=0, atol=1e-5)
            torch.testing.assert_close(resumed[r]["state"][k], fsdp[r]["state"][k], rtol=0, atol=1e-6)
            # the rollout replica holds the trained weights
            torch.testing.assert_close(fsdp[r]["rollout"][k], fsdp[r]["state"][k], rtol=0, atol=0)
    assert (tmp_path / "fsdp" / "checkpoints" / "step-000002" / "model.pt").is_file()


def tiny_policy_state():
    from turngym.agents.backends.tiny import tiny_policy

    return tiny_policy(seed=0, hidden=32, layers=2).model.state_dict()
