"""benchmarks/otc.py: OTC vs GRPO over seeds on hand-made summaries, and the docs quoting its results file."""

import json
import math
from pathlib import Path

import pytest

from tests.benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
ob = load_benchmark("otc")


def summary(seed: int, sft: tuple, grpo: tuple, otc: tuple, **args) -> dict:
    """A seed's summary.json as examples/ablation_otc.py writes it: (success, tool calls per solved task, training
    tool calls per solved task per step, training success per step) per arm."""

    def arm(x):
        return {
            "final": {"success": x[0], "tool_calls_per_success": x[1], "tool_calls": 0, "invalid_actions": 0},
            "train_tool_calls_per_success": x[2],
            "train_success": x[3],
        }

    a = vars(ob._script_args(["--seed", str(seed), *args.get("argv", [])]))
    return {
        "args": a,
        "sft": {"success": sft[0], "tool_calls_per_success": sft[1]},
        "arms": {"grpo": arm(grpo), "otc": arm(otc)},
    }


def test_last_mean_skips_steps_without_a_success():
    assert ob.last_mean([9.0, 3.0, None, 2.0, 4.0, None], k=5) == pytest.approx(3.0)
    assert ob.last_mean([None, None]) is None
    assert ob.last_mean([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == pytest.approx(5.0)  # the last 5


def test_aggregate_pairs_otc_with_grpo_per_seed():
    per_seed = {
        s: ob.seed_row(summary(s, (1.0, 3.0), g, o))
        for s, g, o in [
            (
                0,
                (1.0, 3.0, [3.0] * 5, [0.2] * 5),
                (1.0, 2.0, [2.0] * 5, [0.3] * 5),
            ),  # OTC: -1 call, +0 success
            (
                1,
                (0.9375, 3.0, [3.5] * 5, [0.2] * 5),
                (1.0, 3.0, [3.0] * 5, [0.2] * 5),
            ),  # 0 calls, +6.25 points
            (
                2,
                (1.0, 2.0, [2.5] * 5, [0.2] * 5),
                (0.9375, 3.0, [2.5] * 5, [0.1] * 5),
            ),  # +1 call, -6.25 points
        ]
    }
    agg = ob.aggregate(per_seed)
    d = agg["otc_minus_grpo"]["tool_calls_per_success"]["t"]
    # differences -1, 0, +1: mean 0, sd 1, half-width t(2) / sqrt(3)
    assert d["mean"] == pytest.approx(0.0) and d["half_width"] == pytest.approx(4.303 / math.sqrt(3))
    tr = agg["otc_minus_grpo"]["train_tool_calls_per_success"]["t"]
    assert tr["mean"] == pytest.approx((-1.0 - 0.5 + 0.0) / 3)
    su = agg["otc_minus_grpo"]["success"]
    assert su["t"]["mean"] == pytest.approx(0.0)
    assert su["bootstrap"]["low"] <= 0.0 <= su["bootstrap"]["high"]
    assert agg["arms"]["grpo"]["success"]["mean"] == pytest.approx((1.0 + 0.9375 + 1.0) / 3)
    table = ob.markdown_table(agg, per_seed)
    assert "| 0 | +0.0 | -1.00 | -1.00 |" in table and "| 1 | +6.2 | +0.00 | -0.50 |" in table
    assert table.count("\n| mean (paired t; bootstrap) | +0.0 ± ") == 1


def test_an_unfinished_seed_is_named():
    s = summary(0, (1.0, 3.0), (1.0, 3.0, [], []), (1.0, 2.0, [], []))
    del s["arms"]["otc"]
    with pytest.raises(ValueError, match=r"no arm\(s\) \['otc'\]"):
        ob.seed_row(s)


def test_finished_reuses_a_seed_only_with_the_same_options(tmp_path):
    out = tmp_path / "seed1"
    out.mkdir()
    s = summary(1, (1.0, 3.0), (1.0, 3.0, [], []), (1.0, 2.0, [], []))
    s["args"]["out"] = "elsewhere/seed1"  # where it ran does not matter
    (out / "summary.json").write_text(json.dumps(s))
    assert ob.finished(out, []) == s
    assert ob.finished(out, ["--lr", "3e-4"]) is None  # other options: run again
    del s["arms"]["grpo"]
    (out / "summary.json").write_text(json.dumps(s))
    assert ob.finished(out, []) is None
    assert ob.finished(tmp_path / "none", []) is None


RESULT = ROOT / "benchmarks" / "results" / "otc.json"


@pytest.mark.skipif(not RESULT.is_file(), reason="benchmarks/results/otc.json not recorded yet")
def test_the_recorded_otc_table_is_its_results_file_and_the_docs_quote_it():
    res = json.loads(RESULT.read_text())
    per_seed = {int(s): r for s, r in res["per_seed"].items()}
    agg = ob.aggregate(per_seed)
    assert json.loads(json.dumps(agg)) == {k: res[k] for k in ("seeds", "arms", "otc_minus_grpo")}
    table = ob.markdown_table(agg, per_seed)
    assert RESULT.with_suffix(".md").read_text() == table
    assert table.strip() in (ROOT / "docs" / "algorithms.md").read_text(), (
        "docs/algorithms.md's OTC table differs from benchmarks/results/otc.md"
    )
