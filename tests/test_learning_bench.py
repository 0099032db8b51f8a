"""benchmarks/learning.py and benchmarks/machines.py: the statistics over seeds and machines on hand-computed cases, and
the README and docs quoting their results."""

import json
import math
from pathlib import Path

import pytest

from tests.benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
lb = load_benchmark("learning")
mb = load_benchmark("machines")


def test_t_quantiles_match_the_table_and_approach_the_normal():
    assert lb.t975(1) == 12.706 and lb.t975(4) == 2.776 and lb.t975(30) == 2.042
    assert lb.t975(60) == pytest.approx(2.000, abs=1e-3)  # tables: 2.000
    assert lb.t975(120) == pytest.approx(1.980, abs=1e-3)  # tables: 1.980
    with pytest.raises(ValueError, match="df >= 1"):
        lb.t975(0)


def test_mean_ci_of_known_samples():
    c = lb.mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, half-width t(2) * 1 / sqrt(3)
    assert c["mean"] == 2.0 and c["sd"] == pytest.approx(1.0)
    assert c["half_width"] == pytest.approx(4.303 / math.sqrt(3))
    assert (c["low"], c["high"]) == pytest.approx((2 - 2.48434, 2 + 2.48434), abs=1e-4)
    c = lb.mean_ci([0.2, 0.4, 0.4, 0.6, 0.4])  # mean 0.4, sd sqrt(0.02), t(4) = 2.776
    assert c["half_width"] == pytest.approx(2.776 * math.sqrt(0.02) / math.sqrt(5))
    one = lb.mean_ci([0.5])
    assert one["mean"] == 0.5 and one["half_width"] is None
    with pytest.raises(ValueError, match="no values"):
        lb.mean_ci([])


def test_bootstrap_interval_on_cases_with_a_known_distribution():
    # constant differences: every resample has the same mean
    assert lb.bootstrap_ci([5.0, 5.0, 5.0]) | {} == {
        "n": 3,
        "mean": 5.0,
        "low": 5.0,
        "high": 5.0,
        "n_boot": 10_000,
    }
    # [0, 10, 20]: a resample's mean is 0 (or 20) with probability 1/27 = 3.7% > 2.5%: the ends are the extremes
    b = lb.bootstrap_ci([0.0, 10.0, 20.0])
    assert (b["mean"], b["low"], b["high"]) == (10.0, 0.0, 20.0)
    # seeded: the same interval every call; a different seed may move it but keeps it inside the data's range
    xs = [3.0, -1.0, 4.0, 1.0, 5.0, 9.0]
    assert lb.bootstrap_ci(xs) == lb.bootstrap_ci(xs)
    b = lb.bootstrap_ci(xs, seed=1)
    assert min(xs) <= b["low"] < b["mean"] < b["high"] <= max(xs)
    with pytest.raises(ValueError, match="no values"):
        lb.bootstrap_ci([])


def seed_result(sft: float, grpo: float, curve: list) -> dict:
    """A turngym.experiments.demo results.json with the fields the benchmark reads."""
    return {
        "sft_success": sft,
        "sft_valid_action_rate": 0.9,
        "sft_cost": 0.5,
        "sft_turns": 4.0,
        "runs": {
            "grpo": {
                "final_success": grpo,
                "final_valid_action_rate": 1.0,
                "final_cost": 0.25,
                "final_turns": 3.0,
                "curve": curve,
            }
        },
    }


def test_gain_is_paired_per_seed():
    per_seed = {
        0: seed_result(0.2, 0.5, [[0, 0.2], [5, 0.4], [10, 0.5]]),
        1: seed_result(0.3, 0.5, [[0, 0.3], [5, 0.3], [10, 0.5]]),
        2: seed_result(0.4, 0.7, [[0, 0.4], [5, 0.6], [10, 0.7]]),
    }
    s = lb.aggregate(per_seed)
    # differences 30, 20, 30 points: mean 26.67, sd 5.7735, t(2) = 4.303 -> half-width 14.34
    g = s["gain_points"]["grpo"]
    assert g["mean"] == pytest.approx(80 / 3) and g["sd"] == pytest.approx(math.sqrt(100 / 3))
    assert g["half_width"] == pytest.approx(4.303 * math.sqrt(100 / 3) / math.sqrt(3))
    # unpaired, the spread of each arm (sd 10 points) would give a wider interval than the paired one
    assert g["half_width"] < 4.303 * 10 / math.sqrt(3)
    b = s["gain_points_bootstrap"]["grpo"]
    assert (b["low"], b["high"]) == pytest.approx((20.0, 30.0))  # 1/27 of resamples are all-20 or all-30
    assert s["arms"]["sft"]["success"]["mean"] == pytest.approx(0.3)
    assert s["arms"]["grpo"]["cost"]["half_width"] == 0.0
    assert [(p["step"], round(p["mean"], 6)) for p in s["curves"]["grpo"]] == [
        (0, 0.3),
        (5, 0.433333),
        (10, 0.566667),
    ]
    table = lb.markdown_table(s)
    assert "| sft | 30.0 ± 24.8 | — | — | 90.0 ± 0.0 | — | 0.50 ± 0.00 | 4.00 ± 0.00 |" in table
    assert (
        "| grpo | 56.7 ± 28.7 | +26.7 ± 14.3 | [+20.0, +30.0] | 100.0 ± 0.0 | +10.0 ± 0.0 | 0.25 ± 0.00 | 3.00 ± 0.00 |"
        in table
    )


def test_seeds_that_ran_different_arms_are_refused():
    a = seed_result(0.2, 0.5, [[0, 0.2]])
    b = seed_result(0.2, 0.5, [[0, 0.2]])
    b["runs"]["gigpo"] = b["runs"]["grpo"]
    with pytest.raises(ValueError, match="ran arms"):
        lb.aggregate({0: a, 1: b})
    with pytest.raises(ValueError, match="no finished seed"):
        lb.aggregate({})


RESULTS = sorted((ROOT / "benchmarks" / "results").glob("learning_*.json"))
RECORDED = [r for r in RESULTS if r.stem != "learning_numerics"]


def test_untrained_arm_is_reported_but_gains_are_over_sft():
    per_seed = {s: seed_result(0.2 + 0.1 * s, 0.5, [[0, 0.2]]) for s in range(3)}
    for s, r in per_seed.items():
        r["untrained"] = {"success": 0.0, "valid_action_rate": 0.1 * s, "cost": 0.0, "turns": 5.0}
    s = lb.aggregate(per_seed)
    assert list(s["arms"]) == ["untrained", "sft", "grpo"]
    assert list(s["gain_points"]) == ["grpo"] and list(s["valid_gain_points"]) == ["grpo"]
    assert s["arms"]["untrained"]["valid_action_rate"]["mean"] == pytest.approx(0.1)
    assert s["valid_gain_points"]["grpo"]["mean"] == pytest.approx(10.0)  # 100 * (1.0 - 0.9) every seed
    assert "| untrained | 0.0 ± 0.0 | — | — | 10.0 ± 24.8 | — |" in lb.markdown_table(s)


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_the_recorded_table_is_the_results_file_and_the_readme_quotes_it(path):
    res = json.loads(path.read_text())
    summary = {
        k: res[k]
        for k in ("seeds", "arms", "gain_points", "gain_points_bootstrap", "valid_gain_points", "curves")
    }

    def seed(s: str, rows: dict) -> dict:
        r = {
            "sft_success": rows["sft"]["success"],
            "sft_valid_action_rate": rows["sft"]["valid_action_rate"],
            "sft_cost": rows["sft"]["cost"],
            "sft_turns": rows["sft"]["turns"],
            "runs": {
                arm: {
                    "final_success": r["success"],
                    "final_valid_action_rate": r["valid_action_rate"],
                    "final_cost": r["cost"],
                    "final_turns": r["turns"],
                    "curve": res["per_seed_curves"][s][arm],
                }
                for arm, r in rows.items()
                if arm not in ("sft", "untrained")
            },
        }
        if "untrained" in rows:
            r["untrained"] = rows["untrained"]
        return r

    # the recorded summary is what the per-seed numbers give
    rebuilt = lb.aggregate({int(s): seed(s, rows) for s, rows in res["per_seed"].items()})
    assert json.loads(json.dumps(rebuilt)) == summary
    table = lb.markdown_table(summary)
    assert path.with_suffix(".md").read_text() == table
    readme = (ROOT / "README.md").read_text()
    assert table.strip() in readme, (
        f"README.md's learning table differs from benchmarks/results/{path.stem}.md"
    )


ISA_DEFAULT_COMPARISONS = sorted(
    (ROOT / "benchmarks" / "results" / "isa-default").glob("learning_abl_*_comparison.md")
)


@pytest.mark.parametrize("path", ISA_DEFAULT_COMPARISONS, ids=[p.stem for p in ISA_DEFAULT_COMPARISONS])
def test_docs_quote_the_second_isa_ablation_comparisons(path):
    """docs/algorithms.md's second-ISA ablation tables are the recorded comparison files, verbatim, and every seed
    behind them ran under the portable kernels."""
    res = json.loads(path.with_name(path.name.replace("_comparison.md", ".json")).read_text())
    assert {n["aten_cpu_capability"] for n in res["numerics"].values()} == {"default"}  # every seed, that ISA
    docs = (ROOT / "docs" / "algorithms.md").read_text()
    assert path.read_text().strip() in docs, f"docs/algorithms.md does not quote {path.relative_to(ROOT)}"


def test_machine_verdicts_on_hand_made_intervals():
    # (mean, low, high, n)
    assert (
        mb.verdict((5.6, 2.9, 8.3, 5), (4.0, 1.0, 7.0, 5)) == "reproduced"
    )  # each mean in the other's interval
    assert mb.verdict((5.6, 2.9, 8.3, 5), (-4.0, -15.2, 7.2, 5)) == "partly"  # 5.6 in B's, -4.0 not in A's
    assert mb.verdict((5.6, 2.9, 8.3, 5), (-4.0, -5.0, -3.0, 5)) == "not"
    assert mb.verdict((0.0, 0.0, 0.0, 5), (0.0, 0.0, 0.0, 2)) == "reproduced"  # equal degenerate intervals
    # one seed: no interval (half-width None), the point, scaled
    assert mb._interval({"n": 1, "mean": 0.1, "half_width": None}, 100.0) == (10.0, 10.0, 10.0, 1)


def test_machine_rows_line_up_arms_gains_and_comparisons(tmp_path):
    def results(sft, arm, gain, diff, cut, cpu):
        stat = lambda m, hw: {"n": 3, "mean": m, "half_width": hw}  # noqa: E731
        return {
            "seeds": [0, 1, 2],
            "numerics": {"0": {"cpu_model": cpu, "aten_cpu_capability": "avx2"}},
            "arms": {
                "untrained": {"success": stat(0, 0)},
                "sft": {"success": stat(*sft)},
                "x": {"success": stat(*arm)},
            },
            "gain_points": {"x": stat(*gain)},
            "comparisons": [
                {
                    "base": "sft",
                    "arm": "x",
                    "success_diff_points": stat(*diff),
                    "cost_cut_percent": stat(*cut),
                }
            ],
        }

    for folder, cpu, vals in (
        ("a", "AMD EPYC", ((0.10, 0.05), (0.20, 0.04), (10.0, 3.0), (10.0, 3.0), (40.0, 20.0))),
        ("b", "Intel Xeon", ((0.12, 0.05), (0.10, 0.02), (-2.0, 3.0), (4.0, 8.0), (45.0, 10.0))),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "learning_e.json").write_text(json.dumps(results(*vals, cpu)))
    out = mb.main(
        ["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--names", "e", "--out", str(tmp_path / "m")]
    )
    got = {r["quantity"]: r["verdict"] for r in out["rows"]}
    assert got == {
        "sft: held-out success": "reproduced",  # 10 ± 5 % and 12 ± 5 %
        "x: held-out success": "not",  # 20 ± 4 % and 10 ± 2 %
        "x − SFT: success gain": "not",  # +10 ± 3 and -2 ± 3
        "x − sft: success difference": "partly",  # 10 in [-4, 12]; 4 not in [7, 13]
        "x vs sft: cost cut": "reproduced",
    }
    assert {k: v for k, v in out["counts"].items() if k != "welch_contains_0"} == {
        "reproduced": 2,
        "partly": 1,
        "not": 2,
    }
    assert out["machines"]["e"]["a"] == "AMD EPYC, ATen avx2"
    md = (tmp_path / "m.md").read_text()
    assert "| e | x: held-out success, % | +20.0 ± 4.0 (n=3) | +10.0 ± 2.0 (n=3) | not | -10.0 [" in md
    with pytest.raises(SystemExit):
        mb.main(
            [
                "--a",
                str(tmp_path / "a"),
                "--b",
                str(tmp_path / "b"),
                "--names",
                "missing",
                "--out",
                str(tmp_path / "x"),
            ]
        )


def test_machine_rows_of_more_metrics(tmp_path):
    """--metrics adds per arm the valid-action rate (percent, with its paired gain over SFT) and the cost (two
    decimals); an arm that lacks a metric gives no row for it; an unknown metric is refused by name."""

    def results(sft_valid, x_valid, x_cost, valid_gain):
        stat = lambda m, hw: {"n": 5, "mean": m, "half_width": hw}  # noqa: E731
        return {
            "seeds": [0, 1, 2, 3, 4],
            "numerics": {"0": {"cpu_model": "cpu", "aten_cpu_capability": "avx2"}},
            "arms": {
                "sft": {"success": stat(0, 0), "valid_action_rate": stat(*sft_valid)},
                "x": {"success": stat(0, 0), "valid_action_rate": stat(*x_valid), "cost": stat(*x_cost)},
            },
            "gain_points": {"x": stat(0, 0)},
            "valid_gain_points": {"x": stat(*valid_gain)},
        }

    for folder, vals in (
        ("a", ((0.50, 0.10), (0.30, 0.05), (0.125, 0.02), (-20.0, 5.0))),
        ("b", ((0.55, 0.10), (0.60, 0.05), (0.25, 0.02), (5.0, 5.0))),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "learning_e.json").write_text(json.dumps(results(*vals)))
    a, b, m = (str(tmp_path / x) for x in "abm")
    args = ["--a", a, "--b", b, "--names", "e", "--out", m]
    only_success = mb.main(args)
    assert [r["quantity"] for r in only_success["rows"]] == [
        "sft: held-out success",
        "x: held-out success",
        "x − SFT: success gain",
    ]
    out = mb.main([*args, "--metrics", "success,valid_action_rate,cost"])
    got = {r["quantity"]: (r["unit"], r["verdict"]) for r in out["rows"]}
    assert got == {
        "sft: held-out success": ("%", "reproduced"),
        "x: held-out success": ("%", "reproduced"),
        "x − SFT: success gain": ("points", "reproduced"),
        "sft: held-out valid actions": ("%", "reproduced"),  # 50 ± 10 and 55 ± 10
        "x: held-out valid actions": ("%", "not"),  # 30 ± 5 and 60 ± 5
        "x − SFT: valid actions gain": ("points", "not"),  # -20 ± 5 and +5 ± 5
        "x: held-out cost": ("per episode", "not"),  # 0.125 ± 0.02 and 0.25 ± 0.02; sft has no cost: no row
    }
    assert out["metrics"] == ["success", "valid_action_rate", "cost"]
    md = (tmp_path / "m.md").read_text()
    cost = "| e | x: held-out cost, per episode | +0.12 ± 0.02 (n=5) | +0.25 ± 0.02 (n=5) | not | +0.12 ["
    assert cost in md
    assert "| e | x: held-out valid actions, % | +30.0 ± 5.0 (n=5) | +60.0 ± 5.0 (n=5) | not | +30.0 [" in md
    with pytest.raises(SystemExit):
        mb.main([*args, "--metrics", "success,reward"])


def test_welch_difference_of_means_by_hand():
    # A: n=5, sd 2.6077 (mean -1.6); B: every seed 0. Var of the difference 2.6077^2/5 = 1.3600, all from A, so
    # Welch's df = 4 (A's own), t = 2.776, half-width 2.776 * 1.1662 = 3.237
    a = {"n": 5, "mean": -1.6, "sd": 2.6077}
    b = {"n": 5, "mean": 0.0, "sd": 0.0}
    d, lo, hi = mb.welch(a, b)
    assert (
        d == pytest.approx(1.6)
        and lo == pytest.approx(1.6 - 3.237, abs=1e-3)
        and hi == pytest.approx(4.837, abs=1e-3)
    )
    # equal spreads and sizes: df = 2(n-1) = 8, t = 2.306; var = 2 * 4/5 = 1.6 -> half-width 2.306 * 1.2649 = 2.917
    d, lo, hi = mb.welch({"n": 5, "mean": 10.0, "sd": 2.0}, {"n": 5, "mean": 7.0, "sd": 2.0}, scale=1.0)
    assert d == pytest.approx(-3.0) and hi - d == pytest.approx(2.917, abs=1e-3)
    # scale applies to both the difference and the spread (fractions -> percent)
    d, lo, hi = mb.welch({"n": 5, "mean": 0.10, "sd": 0.02}, {"n": 5, "mean": 0.07, "sd": 0.02}, scale=100.0)
    assert d == pytest.approx(-3.0) and hi - d == pytest.approx(2.917, abs=1e-3)
    assert mb.welch({"n": 3, "mean": 0.0, "sd": 0.0}, {"n": 3, "mean": 0.0, "sd": 0.0}) == (0.0, 0.0, 0.0)


def test_docs_quote_the_second_machine_comparison(tmp_path):
    """docs/algorithms.md's second-machine table is benchmarks/results/intel-xeon/machines.md verbatim, which is what
    benchmarks/machines.py computes from the recorded files; the Intel files ran on an Intel CPU with the AVX2 pin,
    the AMD files they are compared with on an AMD one."""
    folder = ROOT / "benchmarks" / "results" / "intel-xeon"
    recorded = (folder / "machines.md").read_text()
    assert recorded.strip() in (ROOT / "docs" / "algorithms.md").read_text()
    res = json.loads((folder / "machines.json").read_text())
    for name in res["machines"]:
        intel = json.loads((folder / f"learning_{name}.json").read_text())
        amd = json.loads((ROOT / "benchmarks" / "results" / f"learning_{name}.json").read_text())
        assert all(
            "Intel" in n["cpu_model"] and n["aten_cpu_capability"] == "avx2"
            for n in intel["numerics"].values()
        )
        assert all(
            "AMD" in n["cpu_model"] and n["aten_cpu_capability"] == "avx2" for n in amd["numerics"].values()
        )
    args = ["--a", str(ROOT / res["a"]), "--b", str(ROOT / res["b"]), "--names", ",".join(res["machines"])]
    args += ["--metrics", ",".join(res.get("metrics", ["success"]))]
    mb.main([*args, "--out", str(tmp_path / "m")])
    again = (tmp_path / "m.md").read_text().replace(str(ROOT) + "/", "")
    assert again == recorded
