"""docs/extending.md's model-backend and env-family walkthroughs, followed literally: every file they show is written
into a temporary folder (the working directory) and every `turngym` command they show runs there, in order."""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

from turngym.agents.base import AGENTS, make_agent
from turngym.cli import main
from turngym.errors import ConfigError, TaskPackError, UnknownNameError

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FILE_BLOCK = re.compile(r"```(?:python|yaml|json|jsonl) file=(\S+)\n(.*?)```", re.S)
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def files_of(title: str) -> dict[str, str]:
    return dict(FILE_BLOCK.findall(section(title)))


def commands_of(title: str) -> list[list[str]]:
    """The `turngym ...` command lines of a section's bash blocks, as argv lists without the program name."""
    out = []
    for block in BASH_BLOCK.findall(section(title)):
        for line in block.splitlines():
            if line.strip().startswith("turngym "):
                out.append(shlex.split(line)[1:])
    return out


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The working directory of a walkthrough; afterwards the names it registered are removed."""
    monkeypatch.chdir(tmp_path)
    agents_before, envs_before, modules_before = set(AGENTS), set(gym.registry), set(sys.modules)
    yield tmp_path
    for name in set(AGENTS) - agents_before:
        del AGENTS[name]
    for env_id in set(gym.registry) - envs_before:
        del gym.registry[env_id]
    for mod in set(sys.modules) - modules_before:
        if mod.startswith("turngym_plugin_"):
            del sys.modules[mod]


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_walkthroughs_show_one_new_file_each_and_their_commands():
    assert sorted(files_of("A model backend")) == ["vote_backend.py"]
    env_files = files_of("An env family")
    assert [n for n in env_files if n.endswith(".py")] == ["guess_env.py"]
    assert all(n.startswith("guess-pack/") for n in env_files if n.endswith((".json", ".jsonl")))
    assert [c[0] for c in commands_of("A model backend")] == ["eval"]
    assert [c[:2] for c in commands_of("An env family")] == [
        ["tasks", "validate"],
        ["eval", "--plugin"],
        ["train", "--config"],
    ]


def test_model_backend_walkthrough(folder):
    write_files(folder, files_of("A model backend"))
    (cmd,) = commands_of("A model backend")
    assert main(cmd) == 0
    out = folder / cmd[cmd.index("--out") + 1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == cmd[cmd.index("--agent") + 1] == "vote:tiny?n=3"
    assert summary["episodes"] == int(cmd[cmd.index("--episodes") + 1])
    assert len((out / "episodes.jsonl").read_text().splitlines()) == summary["episodes"]

    # the registered backend votes: each action played is the most common parsed reply of its n samples
    from turngym.agents.evaluate import evaluate
    from turngym.agents.parsing import parse_action

    agent = make_agent("vote:tiny?n=5&temperature=1.5&max_new_tokens=6")
    generated, checked = [], []
    generate, act = agent.policy.generate, agent.act

    def recording_generate(prompts, *args, **kwargs):
        generated.append(generate(prompts, *args, **kwargs))
        return generated[-1]

    def checking_act(contexts):
        actions = act(contexts)
        gens = generated[-1]
        assert len(gens) == 5 * len(contexts)
        for i, action in enumerate(actions):
            parsed = [parse_action(g.text, agent.policy.parser) for g in gens[5 * i : 5 * i + 5]]
            votes = Counter(p.action for p in parsed if p.ok) or Counter(p.action for p in parsed)
            assert action == votes.most_common(1)[0][0]
            checked.append(len(votes))
        return actions

    agent.policy.generate, agent.act = recording_generate, checking_act
    res = evaluate("turngym/EmbodiedSearch-v0", agent, episodes=3, max_turns=2, num_envs=3, progress=False)
    assert res.summary["episodes"] == 3 and len(checked) >= 3
    assert max(checked) > 1  # at temperature 1.5 the samples disagree: there was something to vote on


def test_env_family_walkthrough(folder):
    write_files(folder, files_of("An env family"))
    validate, evaluate_cmd, train = commands_of("An env family")
    assert main(validate) == 0
    assert main(evaluate_cmd) == 0
    out = folder / evaluate_cmd[evaluate_cmd.index("--out") + 1]
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["env_id"] == "mylab/Guess-v0" and summary["success_rate"] == 1.0
    )  # the expert: binary search
    assert main(train) == 0
    run = folder / re.search(r"output_dir=(\S+)", " ".join(train)).group(1)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]

    # the family's env honours the contract every registered env passes
    from turngym.envs.checker import check_env

    env = gym.make("mylab/Guess-v0", task_pack="./guess-pack")
    try:
        check_env(env)
    finally:
        env.close()


def test_env_family_pack_errors_name_the_record_and_field(folder, capsys):
    files = files_of("An env family")
    files["guess-pack/train.jsonl"] += '{"task_id": "bad", "low": 1, "high": 10, "secret": 11}\n'
    write_files(folder, files)
    assert main(["tasks", "validate", "--plugin", "guess_env.py", "./guess-pack"]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:5" in err and "'bad'" in err and "secret" in err and "outside [1, 10]" in err
    with pytest.raises(TaskPackError, match="secret"):
        env = gym.make("mylab/Guess-v0", task_pack="./guess-pack")
        env.reset(options={"task_id": "bad"})


def test_plugin_errors_are_clear(folder, capsys):
    assert main(["eval", "--plugin", "missing.py", "--env", "turngym/EmbodiedSearch-v0"]) == 2
    assert "--plugin: 'missing.py' is not a file" in capsys.readouterr().err
    (folder / "broken.py").write_text("raise RuntimeError('boom')\n")
    assert main(["tasks", "validate", "--plugin", "broken.py", "embodied-search"]) == 2
    assert "--plugin: importing broken.py failed" in capsys.readouterr().err
    with pytest.raises(UnknownNameError, match="register_agent"):
        make_agent("nobody:x")
    AGENTS.register("not-an-agent", lambda arg=None, **kw: object())
    try:
        with pytest.raises(ConfigError, match="not a turngym.agents.Agent"):
            make_agent("not-an-agent")
    finally:
        del AGENTS["not-an-agent"]
