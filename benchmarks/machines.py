"""Does a second machine reproduce a learning benchmark? Compare two `benchmarks/learning.py` results folders.

    .venv/bin/python benchmarks/machines.py --a benchmarks/results --b benchmarks/results/intel-xeon \\
        --names abl_spa,abl_distill,abl_slim_sirl --out benchmarks/results/intel-xeon/machines \\
        [--metrics success,valid_action_rate,cost]

For each experiment NAME, reads `learning_NAME.json` from both folders (each written by `benchmarks/learning.py`, the
same command on two machines or ISA settings) and lines up, per quantity, the two means with their 95% t-intervals
over seeds: each arm's held-out success (and, with `--metrics`, its valid-action rate, cost or turns), each RL arm's
paired gain over SFT (of success; of the valid-action rate when that is compared), and each `--compare` comparison's
success difference and relative cost cut. A quantity is **reproduced** when each mean lies inside the other's
interval, **partly** when one does, **not** when neither does (an interval of width 0 — every seed gave the same
number — contains only that number). Beside it, the difference of the means B − A with its Welch 95% t-interval (the
seeds of the two machines are independent samples): an interval that contains 0 shows no difference between the
machines, which with 5 seeds is a weak test. With the ISA pinned a seed repeats bit for bit on one machine but not
across CPU vendors (MKL), so the means over seeds are what can be compared.

Writes OUT.json (every row, both machines' numerics) and OUT.md (the table).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _learning():
    """benchmarks/learning.py (its t quantiles), loaded by path: benchmarks/ is not a package."""
    spec = importlib.util.spec_from_file_location(
        "turngym_bench_learning", ROOT / "benchmarks" / "learning.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lb = _learning()


def _sd(stat: dict[str, Any]) -> float:
    """The standard deviation over seeds of a summary: its `sd`, else from its t half-width."""
    if stat.get("sd") is not None:
        return float(stat["sd"])
    n, hw = int(stat["n"]), stat.get("half_width")
    return 0.0 if n < 2 or not hw else float(hw) * math.sqrt(n) / lb.t975(n - 1)


def welch(sa: dict[str, Any], sb: dict[str, Any], scale: float = 1.0) -> tuple[float, float, float]:
    """(B − A, low, high): the difference of two means over independent seeds with its Welch 95% t-interval (the
    degrees of freedom by Welch–Satterthwaite, rounded down). Both spreads 0: the interval is the point."""
    na, nb = int(sa["n"]), int(sb["n"])
    va = (_sd(sa) * scale) ** 2 / na
    vb = (_sd(sb) * scale) ** 2 / nb
    diff = (float(sb["mean"]) - float(sa["mean"])) * scale
    if va + vb == 0.0:
        return diff, diff, diff
    df = (va + vb) ** 2 / ((va**2 / (na - 1) if na > 1 else 0.0) + (vb**2 / (nb - 1) if nb > 1 else 0.0))
    half = lb.t975(max(1, math.floor(df))) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


def _interval(stat: dict[str, Any], scale: float = 1.0) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of a learning.py summary (`mean`, `half_width`, `n`), times `scale`; one seed (half-width
    None) gives the point."""
    mean = float(stat["mean"]) * scale
    hw = float(stat.get("half_width") or 0.0) * scale
    return mean, mean - hw, mean + hw, int(stat["n"])


def verdict(a: tuple[float, float, float, int], b: tuple[float, float, float, int], tol: float = 1e-9) -> str:
    """'reproduced' when each mean lies in the other's interval, 'partly' when one does, else 'not'."""
    a_in_b = b[1] - tol <= a[0] <= b[2] + tol
    b_in_a = a[1] - tol <= b[0] <= a[2] + tol
    return "reproduced" if a_in_b and b_in_a else "partly" if a_in_b or b_in_a else "not"


# metric of a learning.py arm -> (label, unit, scale from the recorded value to the unit, the results file's key of
# its paired gain over SFT or None)
METRICS = {
    "success": ("success", "%", 100.0, "gain_points"),
    "valid_action_rate": ("valid actions", "%", 100.0, "valid_gain_points"),
    "cost": ("cost", "per episode", 1.0, None),
    "turns": ("turns", "per episode", 1.0, None),
}


def _comparisons(res: dict[str, Any]) -> list[dict[str, Any]]:
    """A results file's paired comparisons: the list `comparisons`, or the single `comparison` (one ARM)."""
    return res.get("comparisons") or ([res["comparison"]] if res.get("comparison") else [])


def rows_for(
    name: str, a: dict[str, Any], b: dict[str, Any], metrics: tuple[str, ...] = ("success",)
) -> list[dict[str, Any]]:
    """The compared quantities of one experiment, present in both results files: per arm each of `metrics` (and
    the paired gain over SFT of success and of the valid-action rate), then each `--compare` comparison."""
    out: list[dict[str, Any]] = []

    def add(quantity: str, unit: str, sa: dict[str, Any], sb: dict[str, Any], scale: float = 1.0) -> None:
        ia, ib = _interval(sa, scale), _interval(sb, scale)
        out.append(
            {
                "experiment": name,
                "quantity": quantity,
                "unit": unit,
                "a": ia,
                "b": ib,
                "verdict": verdict(ia, ib),
                "b_minus_a": welch(sa, sb, scale),
            }
        )

    for metric in metrics:
        label, unit, scale, gains = METRICS[metric]
        for arm, stats in a["arms"].items():
            if arm == "untrained" or arm not in b["arms"] or metric not in stats:
                continue
            add(f"{arm}: held-out {label}", unit, stats[metric], b["arms"][arm][metric], scale)
        for arm, stat in a.get(gains, {}).items() if gains else ():
            if arm in b.get(gains, {}):
                add(f"{arm} − SFT: {label} gain", "points", stat, b[gains][arm])
    comps_b = {(c["base"], c["arm"]): c for c in _comparisons(b)}
    for c in _comparisons(a):
        other = comps_b.get((c["base"], c["arm"]))
        if other is None:
            continue
        add(
            f"{c['arm']} − {c['base']}: success difference",
            "points",
            c["success_diff_points"],
            other["success_diff_points"],
        )
        add(f"{c['arm']} vs {c['base']}: cost cut", "%", c["cost_cut_percent"], other["cost_cut_percent"])
    return out


def machine(results: dict[str, Any]) -> str:
    """'CPU model, ATen <isa>' from a results file's per-seed numerics (the first seed's)."""
    num = next(iter(results.get("numerics", {}).values()), {})
    return f"{num.get('cpu_model', '?')}, ATen {num.get('aten_cpu_capability', '?')}"


def fmt(i: tuple[float, float, float, int], digits: int = 1) -> str:
    mean, low, high, n = i
    return f"{mean:+.{digits}f} ± {(high - low) / 2:.{digits}f} (n={n})"


def table_row(r: dict[str, Any]) -> str:
    """One markdown row; 1 decimal for percent and points, 2 for per-episode cost and turns."""
    d = 2 if r["unit"] == "per episode" else 1
    diff, low, high = r["b_minus_a"]
    return (
        f"| {r['experiment']} | {r['quantity']}, {r['unit']} | {fmt(r['a'], d)} | {fmt(r['b'], d)} "
        f"| {r['verdict']} | {diff:+.{d}f} [{low:+.{d}f}, {high:+.{d}f}] |"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="results folder of the first machine (its learning_NAME.json)")
    ap.add_argument("--b", required=True, help="results folder of the second machine")
    ap.add_argument("--names", required=True, help="comma-separated experiment names (learning_NAME.json)")
    ap.add_argument("--out", required=True, help="output path without suffix: OUT.json and OUT.md")
    ap.add_argument(
        "--metrics",
        default="success",
        help=f"comma-separated per-arm quantities compared, of: {', '.join(METRICS)} (default: success)",
    )
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if not names:
        ap.error("--names is empty")
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in metrics if m not in METRICS]
    if not metrics or unknown:
        ap.error(f"--metrics {args.metrics!r}: expected some of {', '.join(METRICS)}")
    rows, machines = [], {}
    for name in names:
        files = [Path(folder) / f"learning_{name}.json" for folder in (args.a, args.b)]
        for f in files:
            if not f.is_file():
                ap.error(
                    f"{f} does not exist (run benchmarks/learning.py --name {name} for that machine first)"
                )
        a, b = (json.loads(f.read_text()) for f in files)
        machines[name] = {"a": machine(a), "b": machine(b), "seeds_a": a["seeds"], "seeds_b": b["seeds"]}
        rows += rows_for(name, a, b, metrics)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("reproduced", "partly", "not")}
    zero = sum(r["b_minus_a"][1] <= 0.0 <= r["b_minus_a"][2] for r in rows)
    counts["welch_contains_0"] = zero
    lines = [
        f"A = `{args.a}`, B = `{args.b}`; mean ± 95% t half-width over seeds.",
        "",
        *(
            f"- {n}: A {m['a']}, seeds {m['seeds_a']}; B {m['b']}, seeds {m['seeds_b']}"
            for n, m in machines.items()
        ),
        "",
        "| experiment | quantity | A | B | verdict | B − A (Welch 95%) |",
        "| --- | --- | --- | --- | --- | --- |",
        *(table_row(r) for r in rows),
        "",
        f"{counts['reproduced']} of {len(rows)} reproduced (each mean inside the other's interval), "
        f"{counts['partly']} partly, {counts['not']} not; the Welch interval of B − A contains 0 in {zero} of {len(rows)}.",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "a": args.a,
        "b": args.b,
        "metrics": list(metrics),
        "machines": machines,
        "rows": rows,
        "counts": counts,
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
