"""Evaluation that keeps what finished: episodes appended as they end, outputs written on errors and Ctrl-C, and
`--resume` that plays only the missing (task, seed) episodes. The kill tests run `turngym eval` in a real
subprocess and stop it with SIGINT and SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import threading
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
    assert summary["complete"] is True and summary["episodes"] == 6 and summary["success_rate"] == 1.0


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
# The eval's agent is the tiny model behind a real `ChatServer` (openai:URL). The server answers the first GATE_FREE
# generation requests and holds the next one until the test releases it, so the signal always lands mid-eval, with at
# least 2 episodes written (each episode asks at most --max-turns 3 times) and at most 6 (each asks at least once) of
# N_EPISODES: no assumption about how fast this machine plays episodes.
N_EPISODES = 12
GATE_FREE = 6
EVAL = [
    "eval",
    "--env",
    "turngym/EmbodiedSearch-v0",
    "--env-arg",
    "image=false",
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


class GatedServer:
    """A `ChatServer` over the tiny model whose generation worker holds call GATE_FREE + 1 until `release()`."""

    def __init__(self) -> None:
        from turngym.agents.backends.hf import HFPolicy
        from turngym.agents.server import ChatServer

        policy = HFPolicy.from_pretrained("tiny")
        generate, self.calls = policy.generate, 0
        self.held, self.gate = threading.Event(), threading.Event()

        def gated(
            prompts, max_new_tokens=None, temperature=None, top_p=None, stop=None, seed=None, cancel=None
        ):
            self.calls += 1
            if self.calls > GATE_FREE:
                self.held.set()
                self.gate.wait(timeout=300)
            return generate(prompts, max_new_tokens, temperature, top_p, stop, seed, cancel=cancel)

        policy.generate = gated
        self.server = ChatServer(policy).start()
        self.agent = f"openai:{self.server.url}?max_tokens=16"

    def release(self) -> None:
        self.gate.set()

    def stop(self) -> None:
        self.gate.set()
        self.server.stop()


@pytest.fixture
def served():
    pytest.importorskip("openai")
    server = GatedServer()
    yield server
    server.stop()


def _cli(out: Path, agent: str, *extra: str) -> list[str]:
    return [str(Path(sys.executable).parent / "turngym"), *EVAL, "--agent", agent, "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def _sigint_as_in_a_terminal() -> None:
    """The child's SIGINT back to the default: a test run started in the background of a non-interactive shell
    (as CI scripts do) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_until_held(out: Path, served: GatedServer, sig: int) -> subprocess.CompletedProcess:
    """Start the eval, wait until the server holds its request GATE_FREE + 1, send `sig`."""
    proc = subprocess.Popen(
        _cli(out, served.agent),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not served.held.is_set():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        assert served.held.is_set(), "the eval never reached the held request"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _resume_and_check(out: Path, served: GatedServer, kept: list) -> None:
    served.release()
    res = subprocess.run(
        _cli(out, served.agent, "--resume"), env=_env(), capture_output=True, text=True, timeout=600
    )
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
def test_eval_interrupted_with_sigint_writes_what_finished_and_resumes(tmp_path, served):
    out = tmp_path / "eval"
    res = _run_until_held(out, served, signal.SIGINT)
    assert res.returncode == 130, res.stderr[-3000:]
    assert "turngym: interrupted" in res.stderr and "--resume" in res.stderr
    assert "Traceback" not in res.stderr
    kept = read_episodes(out)
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= len(kept) < N_EPISODES and summary["episodes"] == len(kept)
    assert summary["status"] == "interrupted" and summary["complete"] is False
    report = (out / "report.html").read_text()
    assert report.count("<details") == len(kept)
    _resume_and_check(out, served, kept)


@pytest.mark.slow
def test_eval_killed_with_sigkill_keeps_finished_episodes_and_resumes(tmp_path, served):
    out = tmp_path / "eval"
    res = _run_until_held(out, served, signal.SIGKILL)
    assert res.returncode == -signal.SIGKILL
    kept = read_episodes(out)
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= len(kept) < N_EPISODES
    # summary.json is rewritten after each episode; a kill between the two writes leaves it one behind
    assert summary["episodes"] in (len(kept), len(kept) - 1) and summary["complete"] is False
    _resume_and_check(out, served, kept)
