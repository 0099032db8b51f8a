"""The package itself: light import, registration, missing extras, the CLI."""

import json
import subprocess
import sys

import pytest

import turngym
from turngym.errors import MissingExtraError
from turngym.optional import require


def test_import_is_light():
    code = (
        "import sys, turngym; import gymnasium as gym; gym.register_envs(turngym); "
        "bad = [m for m in ('torch', 'playwright', 'alfworld', 'textworld', 'transformers') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_entry_registered():
    import gymnasium as gym

    for e in turngym.ENVS:
        assert e.id in gym.registry and e.id.startswith("turngym/")
    assert turngym.list_envs() == [e.id for e in turngym.ENVS]


def test_missing_extra_message():
    with pytest.raises(MissingExtraError, match=r"pip install 'turngym\[web\]'"):
        require("surely_not_a_module_xyz", extra="web")


def test_cli_tasks_validate_and_errors(lock_id, lock_pack, tmp_path):
    from turngym.cli import main

    assert main(["tasks", "validate", str(lock_pack)]) == 0
    (lock_pack / "test.jsonl").write_text('{"task_id": 5}\n')
    assert main(["tasks", "validate", str(lock_pack)]) == 2
    assert main(["tasks", "list"]) == 0


def test_cli_eval_writes_report(lock_id, tmp_path, capsys):
    from turngym.cli import main

    out = tmp_path / "eval"
    assert (
        main(["eval", "--env", lock_id, "--agent", "expert", "--episodes", "4", "--out", str(out), "--quiet"])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 4 and summary["success_rate"] == 1.0 and summary["mean_turns"] == 5.0
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<details") == 4 and "try 1" in html
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4
    assert "success 1.000" in capsys.readouterr().out


def test_cli_play_reads_actions_from_stdin(lock_id, monkeypatch, capsys):
    import io

    from turngym.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("dance\nexpert\nexpert\nexpert\nexpert\nexpert\n"))
    assert main(["play", lock_id, "--task-id", "train-0"]) == 0
    out = capsys.readouterr().out
    assert "INVALID: expected `try D` or `open`" in out
    assert "(expert) try 1" in out and "The lock opens." in out and "episode ended: terminated" in out
