"""benchmarks/learning.py's paired arm comparison (`--compare BASE,ARM`) and experiment names (`--name`), on
hand-made per-seed tables."""

from __future__ import annotations

import json
import math

import pytest

from tests.test_learning_bench import lb  # benchmarks/learning.py, loaded once for both test files

# per seed: (grpo success, grpo cost, hc_grpo success, hc_grpo cost)
TABLE = {0: (0.5, 0.4, 0.5, 0.2), 1: (0.6, 0.5, 0.5, 0.25), 2: (0.4, 0.2, 0.5, 0.15)}


def result(grpo_s: float, grpo_c: float, hc_s: float, hc_c: float, seed: int, extra: list[str]) -> dict:
    """A turngym.experiments.demo results.json with the fields the benchmark reads."""

    def arm(s: float, c: float) -> dict:
        return {
            "final_success": s,
            "final_valid_action_rate": 1.0,
            "final_cost": c,
            "final_turns": 5.0,
            "curve": [[0, 0.5], [20, s]],
        }

    return {
        "env": "turngym/EmbodiedSearch-v0",
        "eval_tasks": 50,
        "total_seconds": 1.0,
        "argv": ["--seed", str(seed), *extra],
        "sft_success": 0.5,
        "sft_valid_action_rate": 0.9,
        "sft_cost": 0.45,
        "sft_turns": 6.0,
        "runs": {"grpo": arm(grpo_s, grpo_c), "hc_grpo": arm(hc_s, hc_c)},
    }


def test_compare_arms_on_a_hand_made_table():
    rows = {s: lb.seed_rows(result(*r, s, [])) for s, r in TABLE.items()}
    c = lb.compare_arms(rows, "grpo", "hc_grpo")
    # cuts 100 x (1 - 0.2/0.4, 1 - 0.25/0.5, 1 - 0.15/0.2) = 50, 50, 25: mean 41.67, sd sqrt(625/3) = 14.43
    cut = c["cost_cut_percent"]
    assert [c["per_seed"][s]["cost_cut_percent"] for s in (0, 1, 2)] == pytest.approx([50, 50, 25])
    assert cut["mean"] == pytest.approx(125 / 3) and cut["sd"] == pytest.approx(math.sqrt(625 / 3))
    assert cut["half_width"] == pytest.approx(4.303 * math.sqrt(625 / 3) / math.sqrt(3))
    # the mean costs: grpo 1.1/3, hc 0.6/3: the cut of the means is 100 x (1 - 6/11) = 45.45%
    assert c["cost_cut_of_means_percent"] == pytest.approx(100 * 5 / 11)
    # success differences 0, -10, +10 points: mean 0, sd 10
    d = c["success_diff_points"]
    assert [c["per_seed"][s]["success_diff_points"] for s in (0, 1, 2)] == pytest.approx([0, -10, 10])
    assert d["mean"] == pytest.approx(0) and d["half_width"] == pytest.approx(4.303 * 10 / math.sqrt(3))
    b = c["cost_cut_percent_bootstrap"]
    assert 25 <= b["low"] <= b["mean"] <= b["high"] <= 50
    assert c["per_seed"][1] == pytest.approx(
        {
            "grpo_cost": 0.5,
            "hc_grpo_cost": 0.25,
            "cost_cut_percent": 50,
            "grpo_success": 0.6,
            "hc_grpo_success": 0.5,
            "success_diff_points": -10,
        }
    )
    table = lb.comparison_table(c)
    assert "| 2 | 0.200 | 0.150 | +25.0 | 40.0 | 50.0 | +10.0 |" in table
    assert "+41.7 ± 35.9" in table and "+45.5%" in table
    with pytest.raises(ValueError, match="no arm 'gigpo'"):
        lb.compare_arms(rows, "grpo", "gigpo")


def test_named_experiment_writes_its_own_files_with_the_comparison(tmp_path):
    extra = ["--sft-from", "runs/sft/seed{seed}", "--algos", "grpo,hc_grpo"]
    for s, r in TABLE.items():
        out = tmp_path / "runs" / "hc" / f"seed{s}"
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(result(*r, s, lb.seed_options(extra, s))))
    res = tmp_path / "results"
    argv = ["--name", "hc", "--compare", "grpo,hc_grpo", "--family", "embodied", "--seeds", "3"]
    argv += ["--runs", str(tmp_path / "runs"), "--results", str(res), "--aggregate-only", "--", *extra]
    assert lb.main(argv) == 0
    names = ["learning_hc.json", "learning_hc.md", "learning_hc.png", "learning_hc_comparison.md"]
    assert sorted(p.name for p in res.iterdir()) == names
    got = json.loads((res / "learning_hc.json").read_text())
    assert got["name"] == "hc" and got["seeds"] == [0, 1, 2] and got["seeds_missing"] == []
    head = "python benchmarks/learning.py --name hc --compare grpo,hc_grpo --family embodied"
    assert got["command"].startswith(head)
    assert got["command"].endswith("-- --sft-from runs/sft/seed{seed} --algos grpo,hc_grpo")
    assert got["comparison"]["cost_cut_percent"]["mean"] == pytest.approx(125 / 3)
    assert got["arms"]["hc_grpo"]["cost"]["mean"] == pytest.approx(0.2)  # per-arm mean cost with its interval
    assert got["arms"]["hc_grpo"]["cost"]["half_width"] > 0
    # the arms' table alone in learning_hc.md (the README quotes it), the comparison beside it
    assert (res / "learning_hc.md").read_text() == lb.markdown_table(got)
    cmp_md = (res / "learning_hc_comparison.md").read_text()
    assert cmp_md == lb.comparison_table(got["comparison"])
    assert "| seed | grpo cost | hc_grpo cost |" in cmp_md
    # each seed's own {seed}: a seed run with another seed's options is not taken
    assert lb.seed_options(extra, 2)[1] == "runs/sft/seed2"
    assert lb.finished(tmp_path / "runs" / "hc" / "seed1", lb.seed_options(extra, 0)) is None


def test_default_outputs_carry_no_comparison(tmp_path):
    for s, r in TABLE.items():
        out = tmp_path / "runs" / "embodied" / f"seed{s}"
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(result(*r, s, [])))
    res = tmp_path / "results"
    argv = ["--family", "embodied", "--seeds", "3", "--runs", str(tmp_path / "runs"), "--results", str(res)]
    assert lb.main([*argv, "--aggregate-only"]) == 0
    got = json.loads((res / "learning_embodied.json").read_text())
    assert "comparison" not in got and "name" not in got
    assert got["command"] == "python benchmarks/learning.py --family embodied --seed-list 0,1,2"
    assert (res / "learning_embodied.md").read_text() == lb.markdown_table(got)  # the table alone, as before


def test_compare_several_arms_against_one_base(tmp_path):
    extra = ["--algos", "grpo,hc_grpo,spa"]
    for s, r in TABLE.items():
        res = result(*r, s, lb.seed_options(extra, s))
        res["runs"]["spa"] = {**res["runs"]["grpo"], "final_success": r[0] + 0.1 * (s - 1)}
        out = tmp_path / "runs" / "abl" / f"seed{s}"
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(res))
    res_dir = tmp_path / "results"
    argv = ["--name", "abl", "--compare", "grpo,hc_grpo,spa", "--runs", str(tmp_path / "runs")]
    assert lb.main([*argv, "--seeds", "3", "--results", str(res_dir), "--aggregate-only", "--", *extra]) == 0
    got = json.loads((res_dir / "learning_abl.json").read_text())
    assert "comparison" not in got and [c["arm"] for c in got["comparisons"]] == ["hc_grpo", "spa"]
    assert got["comparisons"][0]["cost_cut_percent"]["mean"] == pytest.approx(125 / 3)  # as the pair gives
    # spa: grpo's costs, success differences -10, 0, +10 points
    assert got["comparisons"][1]["success_diff_points"]["mean"] == pytest.approx(0)
    assert got["comparisons"][1]["cost_cut_percent"]["mean"] == pytest.approx(0)
    cmp_md = (res_dir / "learning_abl_comparison.md").read_text()
    assert cmp_md.startswith("hc_grpo vs grpo:\n\n| seed | grpo cost | hc_grpo cost |")
    assert "spa vs grpo:\n\n| seed | grpo cost | spa cost |" in cmp_md
    for bad in ("grpo", "grpo,grpo"):
        with pytest.raises(SystemExit):
            lb.main(["--compare", bad, "--aggregate-only", "--runs", str(tmp_path / "runs")])
