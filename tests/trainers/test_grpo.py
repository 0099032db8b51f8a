import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.trainers.bandit import BanditEngine, tiny_model
from turngym.trainers.config import GRPOConfig
from turngym.trainers.grpo import GRPOTrainer, TaskStream, lr_lambda
from turngym.trainers.logging import read_metrics

TARGETS = {"0": {4, 5, 6, 7}, "1": {8, 9, 10, 11}}


def make(tmp_path, steps=6, **kw):
    model = tiny_model(seed=0)
    base = dict(
        env_id="bandit",
        task_ids=["0", "1"],
        steps=steps,
        tasks_per_step=2,
        group_size=8,
        lr=3e-3,
        mini_batch_size=8,
        micro_batch_size=4,
        max_new_tokens=2,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
    )
    cfg = GRPOConfig(**{**base, **kw})
    return GRPOTrainer(model, config=cfg, engine=BanditEngine(model, TARGETS)), model


def test_task_stream_resumable():
    a = TaskStream(["a", "b", "c"], seed=1)
    first = a.take(7)
    b = TaskStream(["a", "b", "c"], seed=1)
    b.take(4)
    assert b.take(3) == first[4:]
    assert sorted(first[:3]) == ["a", "b", "c"]


def test_lr_schedule():
    f = lr_lambda("linear", 2, 10)
    assert [f(0), f(1), f(2), f(6), f(10)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    assert lr_lambda("cosine", 0, 10)(5) == pytest.approx(0.5)


@pytest.mark.slow
def test_grpo_loop_learns_bandit(tmp_path):
    trainer, _ = make(tmp_path, steps=12, lr=2e-2)
    recs = trainer.train()
    assert [r["step"] for r in recs] == list(range(1, 13))
    first = sum(r["success"] for r in recs[:3]) / 3
    last = sum(r["success"] for r in recs[-3:]) / 3
    assert last > first + 0.3, (first, last)
    assert all("degenerate_groups" in r and "entropy" in r and "clip_frac" in r for r in recs)
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "run" / "checkpoints" / "step-000012" / "model.pt").exists()


@pytest.mark.parametrize(
    "kw",
    [
        {"advantage": "gigpo", "loss": "dapo", "ppo_epochs": 2},
        {"advantage": "rloo", "loss": "gspo_token", "kl_beta": 0.1},
        {"advantage": "drgrpo", "loss": "dhpo", "dhpo_mixing": "entropy", "epo": True},
        {"advantage": "grpo", "loss": "gspo", "entropy_coef": 0.01, "lr_schedule": "cosine"},
    ],
)
def test_variants_run_a_step(tmp_path, kw):
    trainer, model = make(tmp_path, steps=2, plot=False, **kw)
    before = _params(model).clone()
    recs = trainer.train()
    assert len(recs) == 2 and all(
        torch.isfinite(torch.tensor(r["loss"] if "loss" in r else r["pg_loss"])) for r in recs
    )
    assert not torch.equal(before, _params(model))
    if kw.get("kl_beta"):
        assert "kl" in recs[-1]


def test_all_equal_groups_are_logged_and_resampled(tmp_path, caplog):
    model = tiny_model()
    cfg = GRPOConfig(
        env_id="b",
        task_ids=["0"],
        steps=1,
        tasks_per_step=2,
        group_size=4,
        dynamic_sampling=True,
        dynamic_sampling_max_rounds=2,
        output_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    eng = BanditEngine(model, {"0": set(range(16))})  # every token succeeds: all groups have equal rewards
    rec = GRPOTrainer(model, config=cfg, engine=eng).train()[0]
    assert rec["degenerate_groups"] == 2 + 2 + 2 and rec["resampled_groups"] == 6 and rec["groups"] == 0
    assert rec["rollout_rounds"] == 3 and len(eng.calls) == 3
    assert "every group had equal rewards" in caplog.text
    cfg2 = GRPOConfig(**{**cfg.__dict__, "dynamic_sampling": False, "output_dir": str(tmp_path / "b")})
    rec = GRPOTrainer(model, config=cfg2, engine=BanditEngine(model, {"0": set(range(16))})).train()[0]
    assert rec["degenerate_groups"] == 2 and rec["groups"] == 2  # kept (zero advantage), counted


def test_reward_shaping_hook_changes_advantages(tmp_path):
    trainer, _ = make(tmp_path, steps=1, reward_shaping=[{"name": "dapo_overlong", "max_len": 2, "cache": 1}])
    groups, stats = trainer.rollout()
    # 2 policy tokens, L_max=2, cache=1: penalty (2-1-2)/1 = -1 on the last turn; env rewards kept in meta
    for g in groups:
        for ep in g:
            assert ep.rewards[-1] == ep.env_rewards[-1] - 1.0
    assert stats["reward"] == pytest.approx(stats["env_reward"] - 1.0)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    full, m_full = make(tmp_path / "a", steps=4, save_every=1)
    rec_full = full.train()
    part, _ = make(tmp_path / "b", steps=2, save_every=1)
    part.train()
    cont, m_cont = make(tmp_path / "b", steps=4, save_every=1)
    rec_cont = cont.train(resume=True)
    assert [r["step"] for r in rec_cont] == list(range(1, 5))
    assert [r["task_position"] for r in rec_cont] == [r["task_position"] for r in rec_full]
    assert [r["reward"] for r in rec_cont] == [r["reward"] for r in rec_full]
    assert torch.allclose(_params(m_full), _params(m_cont), atol=1e-6)


RUN_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from tests.trainers.test_grpo import _params, make
from pathlib import Path
import turngym.trainers.grpo as g
if {slow}:
    orig = g.GRPOTrainer.train_step
    def slow(self):
        out = orig(self); time.sleep(0.4); return out
    g.GRPOTrainer.train_step = slow
t, model = make(Path({tmp!r}), steps=6, save_every=1)
recs = t.train(resume={resume})
torch.save(_params(model), Path({tmp!r}) / "params.pt")
(Path({tmp!r}) / "records.json").write_text(json.dumps([[r["step"], r["task_position"], r["reward"]] for r in recs]))
"""


def _run_in_child(tmp: Path, resume: bool, slow: bool = False) -> subprocess.Popen:
    """The 6-step run of `make` in a fresh interpreter, one thread: the killed run, its resumption and the reference
    all run in processes started the same way, so their float rounding cannot depend on what this process did."""
    root = str(Path(__file__).resolve().parents[2])
    script = RUN_SCRIPT.format(root=root, tmp=str(tmp), resume=resume, slow=slow)
    return subprocess.Popen([sys.executable, "-c", script], cwd=root)


@pytest.mark.slow
def test_kill_mid_run_and_resume(tmp_path):
    """A run is SIGKILLed mid-way; resuming reaches the same step count, with every batch exactly once, and ends
    with the weights of an uninterrupted run."""
    proc = _run_in_child(tmp_path / "k", resume=True, slow=True)
    ckdir = tmp_path / "k" / "run" / "checkpoints"
    deadline = time.time() + 600
    try:
        while time.time() < deadline and not (ckdir / "step-000003").exists():
            time.sleep(0.05)
            assert proc.poll() is None, "training process exited early"
        assert (ckdir / "step-000003").exists()
    finally:
        proc.kill()
        proc.wait()
    killed_at = max(int(p.name[5:]) for p in ckdir.iterdir() if p.name.startswith("step-"))
    assert killed_at < 6
    for tmp, resume in ((tmp_path / "k", True), (tmp_path / "ref", False)):
        assert _run_in_child(tmp, resume).wait(timeout=600) == 0
    recs = json.loads((tmp_path / "k" / "records.json").read_text())
    rec_ref = json.loads((tmp_path / "ref" / "records.json").read_text())
    assert [r[0] for r in recs] == list(range(1, 7))
    assert recs == rec_ref  # steps, task positions and rewards
    params, params_ref = (torch.load(tmp_path / d / "params.pt") for d in ("k", "ref"))
    assert torch.allclose(params_ref, params, atol=1e-6)
    lines = (tmp_path / "k" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 7))
    assert read_metrics(tmp_path / "k" / "run")[-1]["step"] == 6


def test_lora_trains_only_the_adapters(tmp_path):
    pytest.importorskip("peft")
    trainer, model = make(tmp_path, steps=2, lora_r=2, lora_alpha=4, lr=3e-2)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    base0 = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(v, after[n]) for n, v in base0.items())  # every base weight frozen
    assert any(after[n].abs().sum() > 0 for n in trainable if "lora_B" in n)  # B starts at zero: it moved


def test_on_batch_callbacks_change_what_the_update_trains_on(tmp_path):
    from turngym.trainers.callbacks import Callback

    class KeepFirstTask(Callback):
        """Drops every sample but those of task "0" and records what the update got."""

        def __init__(self):
            self.seen: list[list[str]] = []

        def on_batch(self, trainer, items):
            kept = [(ep, adv) for ep, adv in items if ep.task_id == "0"]
            self.seen.append([ep.task_id for ep, _ in kept])
            return kept

    class Count(Callback):
        def __init__(self):
            self.sizes: list[int] = []

        def on_batch(self, trainer, items):
            self.sizes.append(len(items))  # runs after KeepFirstTask: sees its list
            return None

    keep, count = KeepFirstTask(), Count()
    trainer, _ = make(tmp_path, steps=2, dynamic_sampling=False)
    trainer.callbacks += [keep, count]
    recs = trainer.train()
    assert [set(s) for s in keep.seen] == [{"0"}, {"0"}] and count.sizes == [8, 8]
    assert [r["batch_samples"] for r in recs] == [8, 8]  # 2 tasks x 8 samples, half dropped
    assert all(r["optimizer_steps"] == 1 for r in recs)  # one mini-batch of 8 instead of two
