"""The demo's `--sft-expert`: which scripted agent's episodes SFT imitates (default: the cost-aware expert)."""

from __future__ import annotations

import json

from turngym.experiments import demo


def test_default_is_the_expert_and_the_option_parses():
    assert demo.DemoConfig().sft_expert == "expert"
    assert demo.parse([]).sft_expert == "expert"
    assert demo.parse(["--sft-expert", "scripted:wasteful"]).sft_expert == "scripted:wasteful"


def test_sft_episodes_come_from_the_chosen_agent(tmp_path):
    kw = {"train_tasks": 12, "expert_episodes": 12, "test_tasks": 20, "max_turns": 7, "hidden": 16}
    kw |= {"layers": 1, "tokenizer": "char"}  # char: no tokenizer to train
    _, _, expert, _ = demo.build(demo.DemoConfig(out=str(tmp_path / "e"), **kw))
    wasteful = demo.DemoConfig(out=str(tmp_path / "w"), sft_expert="scripted:wasteful", **kw)
    _, _, waste, _ = demo.build(wasteful)
    assert [e.task_id for e in expert] == [e.task_id for e in waste]  # the same tasks and seeds
    acts = [s.action for e in waste for s in e.steps]
    assert any(a.startswith("ask(Is it the") for a in acts)  # the wasteful expert's confirmation
    # easy tasks: the expert never asks
    assert not any(s.action.startswith("ask(") for e in expert for s in e.steps)
    cost_e, cost_w = demo.sft_data_metrics(expert)["cost"], demo.sft_data_metrics(waste)["cost"]
    assert cost_w > 1.5 * cost_e > 0


def test_the_option_is_recorded_in_results(tmp_path, one_thread):
    out = tmp_path / "run"
    argv = ["--out", str(out), "--sft-expert", "scripted:wasteful", "--algos", "", "--expert-episodes", "2"]
    argv += ["--train-tasks", "4", "--sft-epochs", "1", "--eval-episodes", "1", "--max-turns", "7"]
    argv += ["--max-new-tokens", "4", "--hidden", "16", "--layers", "1", "--vocab-size", "400"]
    assert demo.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["sft_expert"] == "scripted:wasteful" and res["args"]["sft_expert"] == "scripted:wasteful"
    assert res["sft_data"]["cost"] > 0 and res["sft_data"]["turns"] >= 3
    assert "sft_cost" in res and res["runs"] == {}
    assert demo.run_options(out).sft_expert == "scripted:wasteful"
