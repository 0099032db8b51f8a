"""OTC-GRPO vs GRPO on `turngym/Coding-v0` over seeds: tool calls per solved task and success, mean ± 95% CI.

    .venv/bin/python benchmarks/otc.py --seeds 3 [--jobs 2] [-- extra examples/ablation_otc.py options]

Each seed runs `examples/ablation_otc.py --out RUNS/seed<S> --seed S` (a fresh process; ATen and MKL kernels pinned
to AVX2 unless `TURNGYM_ISA` says else): the seed changes the tiny model's initial weights, the wasteful coder's SFT
episodes, the SFT batch order, the RL task order and the sampling; the 16 HumanEval tasks are the same. A seed whose
`summary.json` holds both arms with the same options is not run again; `--aggregate-only` only rebuilds the files.

Per seed and arm it reads the greedy evaluation on the 16 tasks after RL (success, tool calls per solved task) and,
from the training rollouts, tool calls per solved task over the last 5 RL steps (sampled at the rollout
temperature: the behaviour the reward acts on). Writes `benchmarks/results/otc.json` (per seed, per arm, the paired
differences OTC − GRPO with 95% t- and bootstrap intervals, the machine and the command) and `otc.md` (the table
docs/algorithms.md and the README quote).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCRIPT = ROOT / "examples" / "ablation_otc.py"
ARMS = ("grpo", "otc")
LAST = 5  # training steps whose rollouts give the "train" tool calls per solved task


def _learning():
    """benchmarks/learning.py (its interval helpers), loaded by path: benchmarks/ is not a package."""
    spec = importlib.util.spec_from_file_location(
        "turngym_bench_learning", ROOT / "benchmarks" / "learning.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lb = _learning()


def last_mean(xs: list[float | None], k: int = LAST) -> float | None:
    """Mean of the last `k` recorded values, skipping steps that recorded none (no success in the step)."""
    vals = [x for x in xs[-k:] if x is not None]
    return sum(vals) / len(vals) if vals else None


def seed_row(summary: dict[str, Any]) -> dict[str, Any]:
    """One seed's numbers: SFT and each arm's greedy success (fraction) and tool calls per solved task, and each
    arm's training tool calls per solved task over the last steps."""
    missing = [a for a in ARMS if a not in summary.get("arms", {})]
    if missing:
        raise ValueError(f"summary has no arm(s) {missing}: the seed did not finish")
    row: dict[str, Any] = {
        "sft": {
            "success": summary["sft"]["success"],
            "tool_calls_per_success": summary["sft"]["tool_calls_per_success"],
        }
    }
    for arm in ARMS:
        r = summary["arms"][arm]
        row[arm] = {
            "success": r["final"]["success"],
            "tool_calls_per_success": r["final"]["tool_calls_per_success"],
            "train_tool_calls_per_success": last_mean(r["train_tool_calls_per_success"]),
            "train_success": last_mean(r["train_success"]),
        }
    return row


def _ci(xs: list[float]) -> dict[str, Any]:
    return {"t": lb.mean_ci(xs), "bootstrap": lb.bootstrap_ci(xs)}


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% intervals per arm and metric, and the paired per-seed differences OTC − GRPO."""
    seeds = sorted(per_seed)
    metrics = ("success", "tool_calls_per_success", "train_tool_calls_per_success", "train_success")
    arms: dict[str, Any] = {}
    for arm in ("sft", *ARMS):
        arms[arm] = {}
        for m in metrics:
            xs = [per_seed[s][arm].get(m) for s in seeds]
            if all(x is not None for x in xs):
                arms[arm][m] = lb.mean_ci(xs)
    diff: dict[str, Any] = {}
    for m in metrics:
        pairs = [(per_seed[s]["otc"].get(m), per_seed[s]["grpo"].get(m)) for s in seeds]
        if all(a is not None and b is not None for a, b in pairs):
            diff[m] = _ci([a - b for a, b in pairs])
    return {"seeds": seeds, "arms": arms, "otc_minus_grpo": diff}


def _pm(c: dict[str, Any] | None, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    if not c:
        return "—"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    m = f.format(c["mean"] * scale)
    return m if c.get("half_width") is None else f"{m} ± {c['half_width'] * scale:.{digits}f}"


def markdown_table(agg: dict[str, Any], per_seed: dict[int, dict[str, Any]]) -> str:
    """Per arm: greedy success and tool calls per solved task, training tool calls per solved task (mean ± 95% t);
    then OTC − GRPO per seed and paired."""
    n = len(agg["seeds"])
    lines = [
        f"| arm ({n} seeds) | greedy success, % | tool calls per solved task, greedy | "
        f"tool calls per solved task, training (last {LAST} steps) | training success, % |",
        "| --- | --- | --- | --- | --- |",
    ]
    for arm in ("sft", *ARMS):
        a = agg["arms"][arm]
        lines.append(
            f"| {arm} | {_pm(a.get('success'), 100, 1)} | {_pm(a.get('tool_calls_per_success'))} | "
            f"{_pm(a.get('train_tool_calls_per_success'))} | {_pm(a.get('train_success'), 100, 1)} |"
        )
    lines += [
        "",
        "| seed | success diff OTC − GRPO, points | tool calls per solved task diff, greedy | "
        "tool calls per solved task diff, training |",
        "| --- | --- | --- | --- |",
    ]

    def d(s: int, m: str, scale: float = 1.0, digits: int = 2) -> str:
        a, b = per_seed[s]["otc"].get(m), per_seed[s]["grpo"].get(m)
        return "—" if a is None or b is None else f"{(a - b) * scale:+.{digits}f}"

    for s in agg["seeds"]:
        lines.append(
            f"| {s} | {d(s, 'success', 100, 1)} | {d(s, 'tool_calls_per_success')} | "
            f"{d(s, 'train_tool_calls_per_success')} |"
        )
    diff = agg["otc_minus_grpo"]

    def both(m: str, scale: float = 1.0, digits: int = 2) -> str:
        if m not in diff:
            return "—"
        b = diff[m]["bootstrap"]
        return (
            f"{_pm(diff[m]['t'], scale, digits, sign=True)} "
            f"[{b['low'] * scale:+.{digits}f}, {b['high'] * scale:+.{digits}f}]"
        )

    lines.append(
        f"| mean (paired t; bootstrap) | {both('success', 100, 1)} | {both('tool_calls_per_success')} | "
        f"{both('train_tool_calls_per_success')} |"
    )
    return "\n".join(lines) + "\n"


def finished(out: Path, extra: list[str]) -> dict[str, Any] | None:
    """The seed's summary.json if both arms finished with the same extra options (as parsed args), else None."""
    path = out / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if any(a not in summary.get("arms", {}) for a in ARMS):
        return None
    want = vars(_script_args(["--out", str(out), "--seed", str(summary["args"]["seed"]), *extra]))
    same = {k: v for k, v in summary["args"].items() if k != "out"} == {
        k: v for k, v in want.items() if k != "out"
    }
    return summary if same else None


def _script_args(argv: list[str]) -> argparse.Namespace:
    """examples/ablation_otc.py's parsed options for `argv` (its own parser, so defaults are compared too)."""
    spec = importlib.util.spec_from_file_location("turngym_ablation_otc", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once (one torch thread each)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "otc_seeds"))
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--aggregate-only", action="store_true", help="only rebuild the files from finished seeds")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.jobs < 1:
        p.error(f"--seeds and --jobs must be >= 1 (got {a.seeds}, {a.jobs})")
    runs = Path(a.runs)
    todo = [s for s in range(a.seeds) if finished(runs / f"seed{s}", extra) is None]
    if todo and a.aggregate_only:
        p.error(f"--aggregate-only: seeds {todo} have not finished under {runs} with these options")
    with ThreadPoolExecutor(a.jobs) as ex:
        for s, secs in zip(
            todo,
            ex.map(lambda s: lb.run_seed(SCRIPT, runs / f"seed{s}", s, extra, runs / f"seed{s}.log"), todo),
        ):
            print(f"seed {s}: {secs:.0f} s", flush=True)
    summaries = {s: finished(runs / f"seed{s}", extra) for s in range(a.seeds)}
    bad = [s for s, v in summaries.items() if v is None]
    if bad:  # e.g. `-- --arms grpo`: this benchmark compares both arms
        p.error(f"seeds {bad} under {runs} hold no finished {' and '.join(ARMS)} arms with these options")
    per_seed = {s: seed_row(summaries[s]) for s in summaries}
    agg = aggregate(per_seed)
    info = summaries[0].get("numerics", {})
    out = {
        "command": "python benchmarks/otc.py " + " ".join([*argv, *(["--", *extra] if extra else [])]),
        "script_args": {s: summaries[s]["args"] for s in summaries},
        "numerics": info,
        "seconds": {s: summaries[s].get("seconds") for s in summaries},
        "per_seed": {str(s): r for s, r in per_seed.items()},
        **agg,
    }
    res = Path(a.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / "otc.json").write_text(json.dumps(out, indent=1) + "\n")
    table = markdown_table(agg, per_seed)
    (res / "otc.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
