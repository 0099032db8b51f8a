"""Learning benchmark: SFT → RL arms over several seeds, with means and 95% confidence intervals.

    .venv/bin/python benchmarks/learning.py --family embodied --seeds 5 [--jobs 2] [-- extra learn_cpu options]
    .venv/bin/python benchmarks/learning.py --family demo --seeds 5        # the preset `make demo` runs

Each seed runs the whole pipeline of `examples/learn_cpu.py` (the same code and options: expert episodes → SFT →
each RL arm from the same SFT weights → greedy held-out evaluation every `--eval-every` RL steps) with `--seed S`,
which changes the model's initial weights, the expert episodes, the order of SFT batches and RL tasks, and the RL
sampling; the train and held-out tasks are the same for every seed. Runs go to `--runs/<family>/seed<S>/`; a seed
whose `results.json` exists with the same options is not run again (so a benchmark can be resumed or extended
with more seeds), and `--aggregate-only` only rebuilds the summary.

`--name NAME` keeps an experiment apart from the family's default one (runs under `--runs/NAME/`, results in
`learning_NAME.*`); `--compare BASE,ARM` adds the paired per-seed comparison of two RL arms (ARM's relative cost cut
and success difference against BASE, with 95% t- and bootstrap intervals; in the JSON as `comparison`, as a table in
`learning_NAME_comparison.md`; `--compare BASE,ARM1,ARM2,...` compares each ARM against BASE, in the JSON as the list
`comparisons` and one table per ARM in the same file), e.g. the HC-GRPO experiment of docs/algorithms.md:

    .venv/bin/python benchmarks/learning.py --name hc_grpo --compare grpo,hc_grpo --family embodied --seeds 3 \
        --jobs 3 -- --staleness 0 --max-turns 7 --max-new-tokens 20 --sft-expert scripted:wasteful \
        --sft-from "runs/hc_sft/seed{seed}" --algos grpo,hc_grpo --hc-lam 2 --rl-steps 8 ...

(`{seed}` in an extra option becomes each seed's number: there, the SFT weights each seed trained beforehand.)

Writes `benchmarks/results/learning_<family>.json` (per seed and arm: held-out success, valid-action rate, cost,
turns and the curve; per arm: mean and 95% t-interval over seeds; each RL arm's gain over SFT with the paired
95% t-interval of the per-seed differences; the machine, ISA and command), `learning_<family>.md` (the table the
README quotes) and `learning_<family>.png` (held-out success per RL step: mean over seeds and its 95% band).

The scripts pin PyTorch's kernels to AVX2 (`turngym.numerics.pin_isa`, `TURNGYM_ISA=native` to opt out): each
seed's numbers then repeat bit for bit on one machine, but not across CPU vendors (MKL's matmuls round differently on
an Intel Xeon and an AMD EPYC even when pinned), so compare machines by their means over seeds and those intervals;
the spread over seeds is what says how much a number means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# family -> the script whose pipeline one seed runs (its own defaults; extra options after `--` are appended)
FAMILIES = {
    "embodied": ROOT / "examples" / "learn_cpu.py",
    # the short preset `make demo` runs (100 expert episodes, 75 SFT steps, 12 GRPO steps of 4 x 8, 12 held-out tasks)
    "demo": ROOT / "turngym" / "experiments" / "demo.py",
    # a second env family: ShopAssistant-v0 (privileged expert's dialogues -> SFT -> GRPO; docs/trainers.md)
    "shopassistant": ROOT / "turngym" / "experiments" / "shopassistant.py",
    # a third: WebShop-v0 with a choice policy over the page's admissible actions (constrained decoding; docs/trainers.md)
    "webshop": ROOT / "turngym" / "experiments" / "webshop.py",
    # a real pretrained model: SmolLM2-135M-Instruct on MiniWoB++ click tasks (SFT warm start -> GRPO; docs/trainers.md)
    "smollm2": ROOT / "turngym" / "experiments" / "smollm2.py",
}
METRICS = ("success", "valid_action_rate", "cost", "turns")

# two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (table to 30, then a series in 1/df)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    # Cornish-Fisher expansion of the t quantile (Abramowitz & Stegun 26.7.5), exact to 1e-3 beyond df = 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(xs: list[float]) -> dict[str, Any]:
    """Mean and 95% t-interval of `xs` (n, mean, sd, half-width, low, high); one value: half-width None."""
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci of no values")
    m = sum(xs) / n
    if n == 1:
        return {"n": 1, "mean": m, "sd": None, "half_width": None, "low": None, "high": None}
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = t975(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": m, "sd": sd, "half_width": h, "low": m - h, "high": m + h}


def bootstrap_ci(xs: list[float], n_boot: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Mean of `xs` and its 95% percentile-bootstrap interval (`n_boot` resamples with replacement, seeded).

    For the paired gain (per-seed differences arm − SFT): no normality assumed, but with few seeds the interval is
    too narrow (it cannot reach past the extreme differences); the t-interval is the conservative one to quote."""
    n = len(xs)
    if n == 0:
        raise ValueError("bootstrap_ci of no values")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(xs, k=n)) / n for _ in range(n_boot))

    def quantile(q: float) -> float:  # linear interpolation between order statistics (numpy's default)
        pos = q * (n_boot - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n_boot - 1)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    return {"n": n, "mean": sum(xs) / n, "low": quantile(0.025), "high": quantile(0.975), "n_boot": n_boot}


def seed_rows(res: dict[str, Any]) -> dict[str, dict[str, float]]:
    """One seed's `turngym.experiments.demo` results.json as {arm: {metric: value}} (arms: untrained when recorded,
    sft, then each RL algo)."""
    rows: dict[str, dict[str, Any]] = {}
    if "untrained" in res:
        u = res["untrained"]
        rows["untrained"] = {m: u.get(m) for m in METRICS}
    rows |= {
        "sft": {
            "success": res["sft_success"],
            "valid_action_rate": res["sft_valid_action_rate"],
            "cost": res["sft_cost"],
            "turns": res.get("sft_turns"),
        }
    }
    for algo, r in res["runs"].items():
        rows[algo] = {
            "success": r["final_success"],
            "valid_action_rate": r["final_valid_action_rate"],
            "cost": r["final_cost"],
            "turns": r.get("final_turns"),
        }
    return rows


def compare_arms(rows: dict[int, dict[str, dict[str, Any]]], base: str, arm: str) -> dict[str, Any]:
    """Arm `arm` against arm `base`, paired per seed (both start from the seed's SFT weights): the relative cost cut
    100 x (1 - cost_arm / cost_base) per seed, its mean with the 95% t-interval and the bootstrap interval, the cut
    of the mean costs over seeds, and the held-out success difference in points (arm - base) with the same
    intervals. `rows` is {seed: seed_rows(...)}."""
    seeds = sorted(rows)
    for s in seeds:
        for name in (base, arm):
            if name not in rows[s]:
                raise ValueError(f"--compare: seed {s} has no arm {name!r} (arms: {list(rows[s])})")
        if not rows[s][base]["cost"]:
            raise ValueError(f"--compare: seed {s}: arm {base!r} has zero cost, no relative cut to take")
    cuts = [100 * (1 - rows[s][arm]["cost"] / rows[s][base]["cost"]) for s in seeds]
    diffs = [100 * (rows[s][arm]["success"] - rows[s][base]["success"]) for s in seeds]
    mean_base = sum(rows[s][base]["cost"] for s in seeds) / len(seeds)
    mean_arm = sum(rows[s][arm]["cost"] for s in seeds) / len(seeds)
    return {
        "base": base,
        "arm": arm,
        "cost_cut_percent": mean_ci(cuts),
        "cost_cut_percent_bootstrap": bootstrap_ci(cuts),
        "cost_cut_of_means_percent": 100 * (1 - mean_arm / mean_base),
        "success_diff_points": mean_ci(diffs),
        "success_diff_points_bootstrap": bootstrap_ci(diffs),
        "per_seed": {
            s: {
                f"{base}_cost": rows[s][base]["cost"],
                f"{arm}_cost": rows[s][arm]["cost"],
                "cost_cut_percent": c,
                f"{base}_success": rows[s][base]["success"],
                f"{arm}_success": rows[s][arm]["success"],
                "success_diff_points": d,
            }
            for s, c, d in zip(seeds, cuts, diffs)
        },
    }


def comparison_table(comp: dict[str, Any]) -> str:
    """The paired comparison of `compare_arms` as a markdown table: per seed, then the mean ± 95% t half-width and
    the bootstrap interval."""
    b, a = comp["base"], comp["arm"]
    lines = [
        f"| seed | {b} cost | {a} cost | cost cut, % | {b} success, % | {a} success, % | success diff, points |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s, r in comp["per_seed"].items():
        lines.append(
            f"| {s} | {r[f'{b}_cost']:.3f} | {r[f'{a}_cost']:.3f} | {r['cost_cut_percent']:+.1f} | "
            f"{100 * r[f'{b}_success']:.1f} | {100 * r[f'{a}_success']:.1f} | {r['success_diff_points']:+.1f} |"
        )
    cb, sb = comp["cost_cut_percent_bootstrap"], comp["success_diff_points_bootstrap"]
    lines.append(
        f"| mean (paired t; bootstrap) | | | {_pm(comp['cost_cut_percent'], sign=True)} "
        f"[{cb['low']:+.1f}, {cb['high']:+.1f}] | | | {_pm(comp['success_diff_points'], sign=True)} "
        f"[{sb['low']:+.1f}, {sb['high']:+.1f}] |"
    )
    lines.append(f"\nCut of the mean costs over seeds: {comp['cost_cut_of_means_percent']:+.1f}%.")
    return "\n".join(lines) + "\n"


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per arm and metric: mean and 95% t-interval over seeds; per RL arm: its gain in held-out success points over
    SFT with the paired t-interval (of the per-seed differences: SFT and the arm share each seed's SFT weights);
    per arm: the held-out success curve per RL step, mean and interval over seeds."""
    if not per_seed:
        raise ValueError("no finished seed to aggregate")
    rows = {s: seed_rows(r) for s, r in per_seed.items()}
    arms = list(next(iter(rows.values())))
    for s, r in rows.items():
        if list(r) != arms:
            raise ValueError(
                f"seed {s} ran arms {list(r)}, seed {next(iter(rows))} ran {arms}: rerun with one --algos"
            )
    seeds = sorted(rows)
    arm_stats = {
        arm: {
            m: mean_ci([rows[s][arm][m] for s in seeds])
            for m in METRICS
            if all(rows[s][arm][m] is not None for s in seeds)
        }
        for arm in arms
    }
    rl_arms = arms[arms.index("sft") + 1 :]

    def paired(metric: str) -> dict[str, list[float]]:
        """Per RL arm: each seed's difference to SFT in `metric`, in points."""
        return {
            arm: [100 * (rows[s][arm][metric] - rows[s]["sft"][metric]) for s in seeds] for arm in rl_arms
        }

    diffs = paired("success")
    gains = {arm: mean_ci(d) for arm, d in diffs.items()}
    valid_gains = {arm: mean_ci(d) for arm, d in paired("valid_action_rate").items()}
    gains_boot = {arm: bootstrap_ci(d) for arm, d in diffs.items()}
    curves = {}
    for arm in rl_arms:
        steps = sorted({int(st) for s in seeds for st, _ in per_seed[s]["runs"][arm]["curve"]})
        pts = []
        for st in steps:
            vals = [v for s in seeds for k, v in per_seed[s]["runs"][arm]["curve"] if int(k) == st]
            if len(vals) == len(seeds):
                pts.append({"step": st, **mean_ci(vals)})
        curves[arm] = pts
    return {
        "seeds": seeds,
        "arms": arm_stats,
        "gain_points": gains,
        "gain_points_bootstrap": gains_boot,
        "valid_gain_points": valid_gains,
        "curves": curves,
    }


def _pm(c: dict[str, Any], scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
    """`mean ± half-width` of a `mean_ci` result (just the mean for one value)."""
    m = f"{scale * c['mean']:{'+' if sign else ''}.{digits}f}"
    return m if c["half_width"] is None else f"{m} ± {scale * c['half_width']:.{digits}f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The results table (the README quotes it verbatim): one row per arm, mean ± 95% t half-width over seeds; the
    gain over SFT (paired per seed) also with its 95% bootstrap interval."""
    n = len(summary["seeds"])
    lines = [
        f"| arm ({n} seeds) | held-out success, % | gain over SFT, points (paired t) | gain, bootstrap 95% CI | "
        "valid actions, % | valid-action gain over SFT, points | cost | turns |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, st in summary["arms"].items():
        gain = _pm(summary["gain_points"][arm], sign=True) if arm in summary["gain_points"] else "—"
        b = summary.get("gain_points_bootstrap", {}).get(arm)
        boot = f"[{b['low']:+.1f}, {b['high']:+.1f}]" if b else "—"
        v = summary.get("valid_gain_points", {}).get(arm)
        vgain = _pm(v, sign=True) if v else "—"
        lines.append(
            f"| {arm} | {_pm(st['success'], 100)} | {gain} | {boot} | {_pm(st['valid_action_rate'], 100)} | "
            f"{vgain} | {_pm(st['cost'], 1, 2)} | {_pm(st['turns'], 1, 2) if 'turns' in st else '—'} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    """Held-out success per RL step for each RL arm: the mean over seeds and its 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, pts in summary["curves"].items():
        xs = [p["step"] for p in pts]
        ms = [p["mean"] for p in pts]
        ax.plot(xs, ms, marker="o", label=arm)
        if all(p["low"] is not None for p in pts):
            ax.fill_between(xs, [p["low"] for p in pts], [p["high"] for p in pts], alpha=0.2)
    sft = summary["arms"]["sft"]["success"]["mean"]
    ax.axhline(sft, color="grey", linestyle="--", label="SFT (mean)")
    ax.set_xlabel("RL step")
    ax.set_ylabel("held-out success")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def code_state() -> dict[str, Any]:
    """The commit a seed ran from and the code files that differed from it (uncommitted edits)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "uncommitted": [f for f in dirty if f.endswith(".py")],
    }


def seed_options(extra: list[str], seed: int) -> list[str]:
    """The extra options of one seed: `{seed}` in an option becomes the seed (e.g. `--sft-from runs/sft/seed{seed}`
    reuses each seed's own SFT weights from an earlier run)."""
    return [x.replace("{seed}", str(seed)) for x in extra]


def run_seed(script: Path, out: Path, seed: int, extra: list[str], log: Path) -> float:
    """Runs one seed (a fresh process: ISA pinned, its own threads) and returns its wall time."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "code.json").write_text(json.dumps(code_state(), indent=1))
    cmd = [sys.executable, str(script), "--out", str(out), "--seed", str(seed), *seed_options(extra, seed)]
    t0 = time.time()
    with open(log, "w") as fh:
        rc = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy()
        ).returncode
    if rc != 0:
        raise RuntimeError(f"seed {seed} failed (exit {rc}): see {log}")
    return time.time() - t0


def finished(out: Path, extra: list[str]) -> dict[str, Any] | None:
    """The seed's results.json if it finished with the same extra options, else None."""
    path = out / "results.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    argv = res.get("argv") or []
    return res if argv[len(argv) - len(extra) :] == extra or not extra else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="embodied", help=f"one of: {', '.join(FAMILIES)}")
    ap.add_argument(
        "--name",
        default="",
        help="the experiment's name (default: the family): runs go to --runs/<name>, results to learning_<name>.*",
    )
    ap.add_argument(
        "--compare",
        default="",
        help="BASE,ARM: also the paired per-seed comparison of ARM against BASE (relative cost cut, success "
        "difference, each with 95%% intervals), in the JSON as `comparison` and in learning_<name>_comparison.md; "
        "BASE,ARM1,ARM2,...: each ARM against BASE, in the JSON as the list `comparisons`",
    )
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (or --seed-list)")
    ap.add_argument("--seed-list", default="", help="comma-separated seeds (overrides --seeds)")
    ap.add_argument(
        "--jobs", type=int, default=1, help="seeds run at the same time (each uses one torch thread)"
    )
    ap.add_argument("--runs", default="runs/learning", help="folder of the per-seed runs")
    ap.add_argument("--results", default=str(RESULTS), help="where learning_<family>.{json,md,png} go")
    ap.add_argument("--aggregate-only", action="store_true", help="only summarise the seeds that finished")
    ap.add_argument(
        "extra", nargs="*", help="after `--`: options appended to every seed's command (`{seed}`: the seed)"
    )
    a = ap.parse_args(argv)
    if a.family not in FAMILIES:
        ap.error(f"--family {a.family!r}: known families: {', '.join(FAMILIES)}")
    if a.seeds < 1 or a.jobs < 1:
        ap.error("--seeds and --jobs must be >= 1")
    try:
        seeds = [int(s) for s in a.seed_list.split(",") if s.strip()] if a.seed_list else list(range(a.seeds))
    except ValueError:
        ap.error(f"--seed-list {a.seed_list!r}: expected comma-separated integers")
    compare = [x.strip() for x in a.compare.split(",") if x.strip()]
    if a.compare and (len(compare) < 2 or len(set(compare)) != len(compare)):
        ap.error(
            f"--compare {a.compare!r}: expected BASE,ARM[,ARM...] (distinct arm names, e.g. grpo,hc_grpo)"
        )
    name = a.name or a.family
    script = FAMILIES[a.family]
    runs = Path(a.runs) / name
    runs.mkdir(parents=True, exist_ok=True)
    seconds: dict[int, float] = {}
    todo = [s for s in seeds if finished(runs / f"seed{s}", seed_options(a.extra, s)) is None]
    if todo and not a.aggregate_only:
        print(f"running seeds {todo} ({a.jobs} at a time) under {runs}", flush=True)
        with ThreadPoolExecutor(a.jobs) as pool:
            futs = {
                s: pool.submit(run_seed, script, runs / f"seed{s}", s, a.extra, runs / f"seed{s}.log")
                for s in todo
            }
            for s, f in futs.items():
                seconds[s] = f.result()
                print(f"seed {s}: {seconds[s]:.0f} s", flush=True)
    per_seed = {
        s: r for s in seeds if (r := finished(runs / f"seed{s}", seed_options(a.extra, s))) is not None
    }
    missing = [s for s in seeds if s not in per_seed]
    summary = aggregate(per_seed)
    if compare:
        comps = [
            compare_arms({s: seed_rows(per_seed[s]) for s in summary["seeds"]}, compare[0], arm)
            for arm in compare[1:]
        ]
        # one pair: `comparison` (as before); several arms: the list `comparisons`, in --compare's order
        summary["comparison" if len(comps) == 1 else "comparisons"] = comps[0] if len(comps) == 1 else comps
    first = per_seed[summary["seeds"][0]]
    out = {
        "family": a.family,
        **({"name": a.name} if a.name else {}),
        "env": first["env"],
        "command": "python benchmarks/learning.py"
        + (f" --name {a.name}" if a.name else "")
        + (f" --compare {a.compare}" if compare else "")
        + f" --family {a.family} --seed-list "
        + ",".join(map(str, summary["seeds"]))
        + (" -- " + " ".join(a.extra) if a.extra else ""),
        "pipeline": f"{script.relative_to(ROOT)} (argv of seed {summary['seeds'][0]}: {first['argv']})",
        "seeds_missing": missing,
        "eval_tasks": first["eval_tasks"],
        "numerics": {s: per_seed[s].get("numerics") for s in summary["seeds"]},
        "seconds": {s: per_seed[s]["total_seconds"] for s in summary["seeds"]},
        "concurrent_seed_jobs": a.jobs,
        **summary,
        "per_seed": {s: seed_rows(per_seed[s]) for s in summary["seeds"]},
        "per_seed_curves": {
            s: {k: v["curve"] for k, v in per_seed[s]["runs"].items()} for s in summary["seeds"]
        },
    }
    res_dir = Path(a.results)
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / f"learning_{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    table = markdown_table(summary)
    (res_dir / f"learning_{name}.md").write_text(table)  # the table alone (the README quotes it verbatim)
    if compare:
        cmp_md = (
            comparison_table(summary["comparison"])
            if "comparison" in summary
            else "\n".join(
                f"{c['arm']} vs {c['base']}:\n\n{comparison_table(c)}" for c in summary["comparisons"]
            )
        )
        table += "\n" + cmp_md
        (res_dir / f"learning_{name}_comparison.md").write_text(cmp_md)
    plot(
        summary,
        res_dir / f"learning_{name}.png",
        f"{first['env']}: held-out success, {len(per_seed)} seeds",
    )
    print(table)
    if missing:
        print(f"seeds not finished (not in the summary): {missing}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
