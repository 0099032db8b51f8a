"""docs/extending.md, followed literally: every file and config the walkthroughs show is written into a temporary
folder as shown, the config is loaded the way `turngym train --config` loads it (its `plugins` entry imports the
file), and two GRPO steps run with the tiny test model; each test checks the new piece was used."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from tests.trainers.bandit import BanditEngine, tiny_model
from turngym.errors import ConfigError
from turngym.trainers import hooks
from turngym.trainers.advantages import ADVANTAGES
from turngym.trainers.callbacks import CALLBACKS
from turngym.trainers.config import GRPOConfig, help_text, load_config
from turngym.trainers.grpo import GRPOTrainer
from turngym.trainers.losses import POLICY_LOSSES
from turngym.trainers.strategies import ROLLOUT_STRATEGIES

pytestmark = pytest.mark.usefixtures("one_thread")

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
BLOCK = re.compile(r"```(?:python|yaml) file=(\S+)\n(.*?)```", re.S)
TARGETS = {"0": {4, 5, 6, 7}, "1": {8, 9, 10, 11}}
REGISTRIES = (ADVANTAGES, POLICY_LOSSES, hooks.REWARD_SHAPERS, CALLBACKS, ROLLOUT_STRATEGIES)


def doc_files() -> dict[str, str]:
    """The trainer walkthroughs' files (the model backend and env family walkthroughs are checked by
    tests/test_extending_agents_envs.py)."""
    text = DOC.read_text(encoding="utf-8")
    files = dict(BLOCK.findall(text[: text.index("## A model backend")]))
    assert len(files) == 10, sorted(files)  # five walkthroughs: a file and a config each
    return files


@pytest.fixture
def walkthrough(tmp_path, monkeypatch):
    """Writes the doc's files into tmp_path (the working directory); afterwards removes the names they registered."""
    for registry in REGISTRIES:
        registry.load_plugins()
    before = [set(r) for r in REGISTRIES]
    for name, text in doc_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    monkeypatch.undo()  # the spies first, so that they do not put a walkthrough's name back
    for registry, names in zip(REGISTRIES, before):
        for name in set(registry) - names:
            del registry[name]


def config(yaml_file: str, out: Path, **kw) -> GRPOConfig:
    """The doc's YAML plus the test's run settings (bandit tasks, tiny sizes) as key=value overrides."""
    base = dict(
        env_id="bandit",
        task_ids=["0", "1"],
        steps=2,
        tasks_per_step=2,
        group_size=4,
        lr=3e-3,
        mini_batch_size=8,
        micro_batch_size=4,
        max_new_tokens=2,
        output_dir=str(out),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    return load_config(GRPOConfig, yaml_file, [f"{k}={json.dumps(v)}" for k, v in {**base, **kw}.items()])


def trainer(cfg: GRPOConfig, **kw) -> GRPOTrainer:
    model = tiny_model(seed=0)
    return GRPOTrainer(model, config=cfg, engine=BanditEngine(model, TARGETS), **kw)


def spy(monkeypatch, registry, name):
    calls = []
    fn = registry[name]

    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setitem(registry, name, wrapped)
    return calls


def test_the_doc_shows_five_walkthroughs_each_one_file_and_one_config():
    files = doc_files()
    assert sorted(n for n in files if n.endswith(".py")) == [
        "balanced_strategy.py",
        "cispo_loss.py",
        "median_advantage.py",
        "reward_ema.py",
        "turn_penalty.py",
    ]
    for name, text in files.items():  # each config imports exactly its walkthrough's file
        if name.endswith(".yaml"):
            assert re.match(r"plugins: \[(\w+\.py)\]\n", text), (name, text)


def test_advantage_estimator_walkthrough(walkthrough, monkeypatch):
    cfg = config("median.yaml", walkthrough / "run")
    assert cfg.advantage == "median" and ADVANTAGES.meta("median")["min_group_size"] == 2
    calls = spy(monkeypatch, ADVANTAGES, "median")
    recs = trainer(cfg).train()
    assert len(recs) == 2 and len(calls) == 2 * 2  # once per group, two groups a step
    for (step_rewards, _keys, _cfg), _kw, adv in calls:
        returns = torch.stack([r.sum() for r in step_rewards])
        want = returns - returns.median()  # by hand: R_i - median_j R_j
        assert torch.allclose(torch.stack([a[0] for a in adv]), want)
    t = torch.tensor
    (a, b, c) = ADVANTAGES["median"]([t([0.0, 1.0]), t([0.0]), t([5.0])], [["x", "y"], ["x"], ["z"]], cfg)
    assert a.tolist() == [0.0, 0.0] and b.tolist() == [-1.0] and c.tolist() == [4.0]
    with pytest.raises(ConfigError, match="needs at least 2"):
        config("median.yaml", walkthrough / "run1", group_size=1, rollout_strategy="arpo")


def test_policy_loss_walkthrough(walkthrough, monkeypatch):
    cfg = config("cispo.yaml", walkthrough / "run")
    meta = POLICY_LOSSES.meta("cispo")
    assert (meta["default_agg"], meta["clip_eps"], meta["clip_eps_high"]) == ("token_mean", 1.0, 0.28)
    calls = spy(monkeypatch, POLICY_LOSSES, "cispo")
    tr = trainer(cfg)
    recs = tr.train()
    assert len(calls) == 2 * 2  # two micro-batches of 4 a step
    losses = [float(out[0].detach()) for _a, _k, out in calls]
    # the logged pg_loss of a step is the mean of the walkthrough loss over its micro-batches
    assert [r["pg_loss"] for r in recs] == pytest.approx([sum(losses[:2]) / 2, sum(losses[2:]) / 2], abs=1e-6)
    assert all(r["clip_frac"] == pytest.approx(sum(c[2][1]["clip_frac"] for c in calls[2 * i : 2 * i + 2]) / 2)
               for i, r in enumerate(recs))  # fmt: skip
    # by hand: ratio 1.5 -> weight min(1.5, 1.28) = 1.28; loss = -1.28 * A * logp, token mean over the mask
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    old = logp - math.log(1.5)
    loss, m = POLICY_LOSSES["cispo"](logp, old, torch.ones(1, 2), torch.tensor([[1.0, 0.0]]), cfg)
    assert loss.item() == pytest.approx(-1.28 * math.log(0.5)) and m["clip_frac"] == 1.0


def test_reward_shaper_walkthrough(walkthrough):
    cfg = config("turn_penalty.yaml", walkthrough / "run")
    recs = trainer(cfg).train()
    # one turn per bandit episode: the shaped reward is the env's minus 0.25
    assert all(r["reward"] == pytest.approx(r["env_reward"] - 0.25) for r in recs)
    with pytest.raises(ConfigError, match="cost must be >= 0"):
        trainer(
            config(
                "turn_penalty.yaml",
                walkthrough / "run2",
                reward_shaping=[{"name": "turn_penalty", "cost": -1}],
            )
        )


def test_callback_walkthrough(walkthrough):
    cfg = config("reward_ema.yaml", walkthrough / "run", save_every=1)
    tr = trainer(cfg)
    recs = tr.train()
    env = [r["env_reward"] for r in recs]
    assert [r["reward_ema"] for r in recs] == pytest.approx([env[0], 0.5 * env[0] + 0.5 * env[1]])
    (ema,) = tr.callbacks
    # resumed from the last checkpoint, a new trainer's callback continues from the saved state
    again = trainer(config("reward_ema.yaml", walkthrough / "run", steps=3))
    assert again.resume()
    assert (again.callbacks[0].value, again.callbacks[0].rounds) == (ema.value, 2)


def test_rollout_strategy_walkthrough(walkthrough, monkeypatch):
    cfg = config("balanced.yaml", walkthrough / "run")
    tr = trainer(cfg)
    assert type(tr.strategy).__name__ == "BalancedStrategy"
    sizes = []
    collect = tr.engine.collect

    def recording(task_ids, group_size, seed, split=None, options=None):
        sizes.append(group_size)
        out = collect(task_ids, group_size, seed, split=split, options=options)
        recording.last = out
        return out

    monkeypatch.setattr(tr.engine, "collect", recording)
    groups, _ = tr.rollout()
    assert sizes == [8] and [len(g) for g in groups] == [4, 4]  # 2G sampled, G kept per task
    for g in groups:
        sampled = [e.total_reward for e in recording.last if e.group == g[0].group]
        kept = [e.total_reward for e in g]
        assert max(kept) == max(sampled) and min(kept) == min(sampled)  # both ends of the group are kept
    recs = tr.train()
    assert len(recs) == 2


def test_a_name_registered_by_assignment_is_accepted_and_unknown_names_list_the_registered_ones(monkeypatch):
    monkeypatch.setitem(ADVANTAGES, "mine", ADVANTAGES["grpo"])
    assert GRPOConfig(env_id="x", advantage="mine").advantage == "mine"
    for field, value, listed in (
        ("advantage", "nope", "gigpo"),
        ("loss", "nope", "dhpo"),
        ("rollout_strategy", "nope", "arpo"),
        ("reward_shaping", [{"name": "nope"}], "hc_grpo"),
        ("callbacks", [{"name": "nope"}], "slim"),
    ):
        with pytest.raises(ConfigError, match=f"{field}.*'nope'.*registered: .*{listed}"):
            GRPOConfig(env_id="x", **{field: value})
    with pytest.raises(ConfigError, match="plugins.*nowhere.py.*not a file"):
        GRPOConfig(env_id="x", plugins=["nowhere.py"])
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        GRPOConfig(env_id="x", plugins=["no_such_module_xyz"])
    with pytest.raises(ConfigError, match="unknown metadata"):
        POLICY_LOSSES.register("x", lambda *a: None, needs_sequence=True)


@pytest.mark.parametrize("needs", [True, False])
def test_a_loss_that_declares_needs_entropy_gets_entropies_with_their_gradient(tmp_path, needs):
    seen = []

    def probe(logp, old_logp, adv, mask, cfg=None, entropy=None, norm_len=None, vocab_size=None):
        seen.append(entropy.requires_grad)
        return POLICY_LOSSES["ppo_clip"](logp, old_logp, adv, mask, cfg)

    POLICY_LOSSES.register("entropy_probe", probe, needs_entropy=needs)
    try:
        cfg = GRPOConfig(
            env_id="bandit", task_ids=["0", "1"], steps=1, tasks_per_step=2, group_size=4, mini_batch_size=8,
            micro_batch_size=8, max_new_tokens=2, output_dir=str(tmp_path), progress=False, tensorboard=False,
            plot=False, loss="entropy_probe",
        )  # fmt: skip
        trainer(cfg).train()
    finally:
        del POLICY_LOSSES["entropy_probe"]
    assert seen == [needs]


def test_help_config_prints_every_field_with_its_help_grouped():
    text = help_text(GRPOConfig)
    import dataclasses

    for f in dataclasses.fields(GRPOConfig):
        assert f.metadata.get("help"), f.name
        assert f"\n  {f.name} (" in text
    flat = " ".join(text.split())
    assert "policy loss:" in text and "dapo (agg token_mean, clip 0.2/0.28)" in flat
    assert text.index("policy loss:") < text.index("optimisation:")


def test_turngym_train_help_config(capsys):
    from turngym.cli import main

    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert out == help_text(GRPOConfig) and "ARPO (rollout_strategy=arpo" in out
    assert main(["train", "--help-config", "--sft"]) == 0
    out = capsys.readouterr().out
    assert "context_loss_coef (float, default 0.0)" in out and "arpo_k" not in out
