"""Evaluation that keeps what finished: episodes appended as they end, outputs written on errors and Ctrl-C, and
`--resume` that plays only the missing (task, seed) episodes. The kill tests run `turngym eval` in a real
subprocess and stop it with SIGINT and SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from turngym.agents.base import Agent, make_agent
from turngym.agents.evaluate import evaluate
from turngym.agents.trajectory import read_episodes
from turngym.cli import main
from turngym.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


class FailingAgent(Agent):
    """The expert, until its `fail_at`-th call: then it raises as a timed-out model endpoint would."""

    name = "failing"
    spec = "expert"  # the same agent as far as the evaluation's records go

    def __init__(self, fail_at: int):
        self.expert = make_agent("expert")
        self.calls = 0
        self.fail_at = fail_at

    def act(self, contexts):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise TimeoutError("the model took too long")
        return self.expert.act(contexts)


def keys(eps):
    return sorted((e.task_id, e.seed) for e in eps)


def test_an_error_keeps_the_finished_episodes_and_resume_completes_them(lock_id, tmp_path):
    full = evaluate(lock_id, "expert", episodes=6, seed=2, num_envs=2)
    with pytest.raises(TimeoutError):
        evaluate(lock_id, FailingAgent(fail_at=12), episodes=6, seed=2, num_envs=2, out=tmp_path)
    kept = read_episodes(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 < len(kept) < 6
    assert summary["episodes"] == len(kept) and summary["episodes_planned"] == 6
    assert summary["complete"] is False and summary["status"].startswith("failed: TimeoutError")
    assert (tmp_path / "report.html").is_file()
    done = evaluate(lock_id, "expert", episodes=6, seed=2, num_envs=2, out=tmp_path, resume=True)
    assert keys(done.episodes) == keys(full.episodes)
    assert [e.to_json() for e in done.episodes] == [e.to_json() for e in full.episodes]
    assert [e.to_json() for e in read_episodes(tmp_path)] == [e.to_json() for e in full.episodes]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (
        summary["complete"] is True and summary["episodes"] == N_EPISODES and summary["success_rate"] == 1.0
    )


def test_resume_checks_the_settings_and_the_records(lock_id, tmp_path):
    evaluate(lock_id, "expert", episodes=3, seed=0, out=tmp_path)
    with pytest.raises(ConfigError, match=r"records seed=0 but this run has seed=1"):
        evaluate(lock_id, "expert", episodes=3, seed=1, out=tmp_path, resume=True)
    with pytest.raises(ConfigError, match=r"records max_turns=None but this run has max_turns=4"):
        evaluate(lock_id, "expert", episodes=3, max_turns=4, out=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="already holds 3 episodes, more than the 2 asked for"):
        evaluate(lock_id, "expert", episodes=2, out=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="resume needs `out`"):
        evaluate(lock_id, "expert", episodes=2, resume=True)
    # more episodes than before: the finished ones are kept, the plan's next ones are played
    more = evaluate(lock_id, "expert", episodes=5, out=tmp_path, resume=True)
    assert keys(more.episodes) == keys(evaluate(lock_id, "expert", episodes=5).episodes)
    # a line torn by a kill mid-write is dropped; a broken line elsewhere is an error naming it
    path = tmp_path / "episodes.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    again = evaluate(lock_id, "expert", episodes=5, out=tmp_path, resume=True)
    assert keys(again.episodes) == keys(more.episodes)
    path.write_text("not json\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"episodes.jsonl:1: not an episode record"):
        evaluate(lock_id, "expert", episodes=5, out=tmp_path, resume=True)


def test_resume_of_an_empty_folder_says_so(lock_id, tmp_path, caplog):
    res = evaluate(lock_id, "expert", episodes=2, out=tmp_path / "new", resume=True)
    assert res.summary["episodes"] == 2 and res.summary["complete"] is True
    assert any("nothing to resume" in r.getMessage() for r in caplog.records)


def test_cli_eval_flags(lock_id, tmp_path, capsys):
    assert (
        main(["eval", "--env", lock_id, "--agent", "expert", "--request-timeout", "5", "--episodes", "1"])
        == 2
    )
    assert "--request-timeout applies to openai:URL agents" in capsys.readouterr().err
    assert main(["eval", "--env", lock_id, "--episodes", "1", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


# ---- a real `turngym eval` process, interrupted ------------------------------------------------------------------
# Enough episodes that the eval cannot finish between the test seeing 2 of them and its signal arriving, even on a
# loaded machine where the test process is scheduled late.
N_EPISODES = 12
EVAL = [
    "eval",
    "--env",
    "turngym/EmbodiedSearch-v0",
    "--env-arg",
    "image=false",
    "--agent",
    "hf:tiny?max_new_tokens=32",
    "--episodes",
    str(N_EPISODES),
    "--num-envs",
    "1",
    "--max-turns",
    "3",
    "--split",
    "test",
    "--quiet",
]


def _cli(out: Path, *extra: str) -> list[str]:
    return [str(Path(sys.executable).parent / "turngym"), *EVAL, "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def _run_until_episodes(out: Path, n: int, sig: int) -> subprocess.CompletedProcess:
    """Start the eval, wait until `n` episodes are in episodes.jsonl, send `sig`."""
    proc = subprocess.Popen(_cli(out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = out / "episodes.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if path.exists() and len(path.read_text().splitlines()) >= n:
                break
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _resume_and_check(out: Path, kept: list) -> None:
    res = subprocess.run(_cli(out, "--resume"), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"{N_EPISODES} episodes" in res.stdout
    eps = read_episodes(out)
    assert len(eps) == N_EPISODES and len({(e.task_id, e.seed) for e in eps}) == N_EPISODES
    assert sorted(e.seed for e in eps) == list(range(N_EPISODES))
    by_key = {(e.task_id, e.seed): e.to_json() for e in eps}
    assert all(
        by_key[(e.task_id, e.seed)] == e.to_json() for e in kept
    )  # finished episodes kept, not replayed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["episodes"] == N_EPISODES
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_eval_interrupted_with_sigint_writes_what_finished_and_resumes(tmp_path):
    out = tmp_path / "eval"
    res = _run_until_episodes(out, 2, signal.SIGINT)
    assert res.returncode == 130, res.stderr[-3000:]
    assert "turngym: interrupted" in res.stderr and "--resume" in res.stderr
    assert "Traceback" not in res.stderr
    kept = read_episodes(out)
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= len(kept) < N_EPISODES and summary["episodes"] == len(kept)
    assert summary["status"] == "interrupted" and summary["complete"] is False
    report = (out / "report.html").read_text()
    assert report.count("<details") == len(kept)
    _resume_and_check(out, kept)


@pytest.mark.slow
def test_eval_killed_with_sigkill_keeps_finished_episodes_and_resumes(tmp_path):
    out = tmp_path / "eval"
    res = _run_until_episodes(out, 2, signal.SIGKILL)
    assert res.returncode == -signal.SIGKILL
    kept = read_episodes(out)
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= len(kept) < N_EPISODES
    # summary.json is rewritten after each episode; a kill between the two writes leaves it one behind
    assert summary["episodes"] in (len(kept), len(kept) - 1) and summary["complete"] is False
    _resume_and_check(out, kept)
