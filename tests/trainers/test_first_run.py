"""A newcomer's first training run: checkpoints by default, `--resume` that says what it did, the named tiny model,
readable console metrics, and the README's first training snippets run literally (killed with SIGKILL, resumed)."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from turngym.cli import main
from turngym.errors import ConfigError
from turngym.trainers.checkpoint import list_checkpoints
from turngym.trainers.config import GRPOConfig, SFTConfig, load_config, save_interval
from turngym.trainers.logging import MetricsLogger, format_metric, read_metrics
from turngym.trainers.sft import SFTTrainer

from .bandit import tiny_model
from .test_grpo import make
from .test_sft import tep

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SMALL = dict(tasks_per_step=1, group_size=2, mini_batch_size=2, micro_batch_size=2)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_default_config_checkpoints_during_the_run(tmp_path):
    """With the default save_every a run writes checkpoints before its last step (GRPO and SFT)."""
    assert save_interval(GRPOConfig().save_every, GRPOConfig().steps) == 10
    assert save_interval(None, 3) == 1 and save_interval(0, 100) == 0 and save_interval(7, 100) == 7
    trainer, _ = make(tmp_path / "grpo", steps=3, keep_checkpoints=0, **SMALL)
    trainer.train()
    assert [p.name for p in list_checkpoints(tmp_path / "grpo" / "run")] == [
        "step-000001",
        "step-000002",
        "step-000003",
    ]
    eps = [tep([1, 2, 3, 4, 5], [0, 0, 0, 1, 1]), tep([1, 3, 2, 6], [0, 0, 1, 1])] * 2
    cfg = SFTConfig(
        epochs=2, mini_batch_size=2, micro_batch_size=2, keep_checkpoints=0, output_dir=str(tmp_path / "sft")
    )
    cfg.progress = cfg.tensorboard = cfg.plot = False
    SFTTrainer(tiny_model(seed=0), eps, cfg).train()
    assert [p.name for p in list_checkpoints(tmp_path / "sft")] == [f"step-{k:06d}" for k in (1, 2, 3, 4)]


@pytest.mark.parametrize("bad", ["-1", "1.5", "true", '"often"'])
def test_save_every_must_be_a_count_or_null(bad):
    with pytest.raises(ConfigError, match="save_every"):
        load_config(GRPOConfig, None, [f"save_every={bad}"])
    with pytest.raises(ConfigError, match="save_every"):
        load_config(SFTConfig, None, [f"save_every={bad}"])
    assert load_config(GRPOConfig, None, ["save_every=null"]).save_every is None


def test_resume_without_a_checkpoint_says_so_and_starts_at_step_one(tmp_path, caplog):
    trainer, _ = make(tmp_path, steps=2, **SMALL)
    with caplog.at_level(logging.INFO):
        recs = trainer.train(resume=True)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "no checkpoint" in r.getMessage()]
    assert len(warned) == 1 and "starting from step 1" in warned[0].getMessage()
    assert str(tmp_path / "run" / "checkpoints") in warned[0].getMessage()
    assert [r["step"] for r in recs] == [1, 2]
    caplog.clear()
    again, _ = make(tmp_path, steps=3, **SMALL)
    with caplog.at_level(logging.INFO):
        recs = again.train(resume=True)
    assert any("resumed at step 2 of 3; continuing with step 3" in r.getMessage() for r in caplog.records)
    assert [r["step"] for r in recs] == [1, 2, 3]
    other, _ = make(tmp_path, steps=3, **SMALL)
    with pytest.raises(ConfigError, match="is not a checkpoint folder"):
        other.train(resume=str(tmp_path / "nowhere"))


def test_console_metrics_keep_small_numbers(tmp_path, caplog):
    assert format_metric(1e-05) == "1e-05" and format_metric(3e-4) == "0.0003"
    assert format_metric(0.123456) == "0.1235" and format_metric(0.0) == "0" and format_metric(12) == "12"
    logger = MetricsLogger(tmp_path, 1, tensorboard=False, progress=False)
    with caplog.at_level(logging.INFO, logger="turngym.trainers.logging"):
        logger.log(1, {"lr": 1e-05, "reward": 0.25, "optimizer_steps": 2})
    logger.close()
    line = caplog.records[-1].getMessage()
    assert "lr=1e-05" in line and "reward=0.25" in line and "optimizer_steps=2" in line
    assert read_metrics(tmp_path)[0]["lr"] == 1e-05


def test_cli_trains_the_named_tiny_model(lock_id, tmp_path, capsys):
    out = tmp_path / "run"
    args = f"env_id={lock_id} model=tiny steps=2 tasks_per_step=1 group_size=2 max_turns=2 max_new_tokens=8"
    rc = main(
        ["train", *args.split(), f"output_dir={out}", "progress=false", "tensorboard=false", "plot=false"]
    )
    assert rc == 0
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    assert [p.name for p in list_checkpoints(out)] == ["step-000001", "step-000002"]
    assert json.loads((out / "config.json").read_text())["model"] == "tiny"
    from turngym.agents.backends.hf import HFPolicy

    assert HFPolicy.from_pretrained("tiny", seed=3).spec == "hf:tiny-llama-64x2"
    assert main(["train", f"env_id={lock_id}", "model=", f"output_dir={out}"]) == 2
    assert "'tiny'" in capsys.readouterr().err


def readme_training_blocks() -> tuple[str, str]:
    """The README's first training snippets (Python, then the CLI), between the first-run markers."""
    text = README.read_text()
    section = text[text.index("<!-- first-run -->") : text.index("<!-- /first-run -->")]
    blocks = dict((lang, code) for lang, code in re.findall(r"```(bash|python)\n(.*?)```", section, re.S))
    return blocks["python"], blocks["bash"]


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))


@pytest.mark.slow
def test_readme_python_training_snippet_runs_and_checkpoints(tmp_path):
    code, _ = readme_training_blocks()
    assert 'from_pretrained("tiny")' in code and "save_every" not in code
    t0 = time.time()
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = next(p.parent for p in tmp_path.rglob("metrics.jsonl"))
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    assert (out / "checkpoints" / f"step-{steps[-1]:06d}" / "model.pt").is_file()
    print(f"README python training snippet: {time.time() - t0:.1f} s")


@pytest.mark.slow
def test_readme_cli_training_snippet_survives_sigkill_and_resumes(tmp_path):
    """The README's CLI command is killed with SIGKILL after its first checkpoint; the same command with --resume
    continues with the next step and finishes, each step logged once."""
    _, bash = readme_training_blocks()
    cmds = [ln.split("#")[0].strip() for ln in bash.splitlines() if ln.strip().startswith("turngym train")]
    first, resume = cmds[0], next(c for c in cmds if c.endswith("--resume"))
    assert resume == first + " --resume" and "model=tiny" in first and "save_every" not in first
    out = tmp_path / re.search(r"output_dir=(\S+)", first).group(1)
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + first],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline and not list_checkpoints(out):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.05)
        killed_after = [p.name for p in list_checkpoints(out)]
        assert killed_after, "no checkpoint within 10 minutes"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    total = int(re.search(r"\bsteps=(\d+)", first).group(1))
    saved = max(int(p.name[5:]) for p in list_checkpoints(out))
    assert saved < total, "the run finished before it was killed"
    before = {r["step"]: r for r in read_metrics(out) if r["step"] <= saved}
    res = subprocess.run(
        ["bash", "-c", resume], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed at step {saved} of {total}; continuing with step {saved + 1}" in res.stderr
    recs = read_metrics(out)
    assert [r["step"] for r in recs] == list(range(1, total + 1))
    assert all(recs[s - 1] == before[s] for s in before)  # the killed run's steps are kept, not redone
    assert (out / "checkpoints" / f"step-{total:06d}" / "model.pt").is_file()
