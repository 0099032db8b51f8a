"""`make demo`: the main job on a fresh machine.

1. Evaluates the scripted expert and a random agent on one env of every installed family (reports under runs/demo/).
2. Runs the short training demo when the trainers are installed (`turngym.experiments.demo`).

    python -m turngym.demo [--episodes 8] [--out runs/demo] [--no-train]
"""

from __future__ import annotations

import argparse
import importlib
import logging
import time
from pathlib import Path

from turngym.registration import families

log = logging.getLogger("turngym.demo")

# Per-family evaluation options: MiniWoB's `expert` split holds the tasks that have a scripted expert.
DEMO_SPLITS = {"web": "expert"}


def evaluate_families(episodes: int, out: Path) -> list[dict]:
    from turngym.agents.evaluate import evaluate

    rows = []
    for family, entries in families().items():
        entry = next((e for e in entries if e.installed()), None)
        if entry is None:
            log.warning(
                "skipping family %s: its extra is not installed (pip install 'turngym[%s]')",
                family,
                entries[0].extra,
            )
            continue
        for agent in ("expert", "random"):
            t0 = time.time()
            res = evaluate(
                entry.id,
                agent,
                episodes=episodes,
                seed=0,
                out=out / entry.name / agent,
                num_envs=4,
                split=DEMO_SPLITS.get(family),
            )
            s = res.summary
            rows.append(
                {
                    "env": entry.id,
                    "agent": agent,
                    "success": s["success_rate"],
                    "ci": s["success_ci95"],
                    "turns": s["mean_turns"],
                    "invalid": s["invalid_action_rate"],
                    "cost": s["mean_cost"],
                    "seconds": time.time() - t0,
                    "report": str(res.report_path),
                }
            )
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="turngym demo: scripted agents on every env family")
    for col in ("env", "agent", "success (95% CI)", "turns", "invalid", "seconds"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["env"],
            r["agent"],
            f"{r['success']:.2f} ({r['ci'][0]:.2f}-{r['ci'][1]:.2f})",
            f"{r['turns']:.1f}",
            f"{r['invalid']:.2f}",
            f"{r['seconds']:.1f}",
        )
    console = Console(width=120)
    console.print(t)
    for r in rows:
        console.print(f"report: {r['report']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="turngym.demo", description=__doc__)
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--no-train", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    t0 = time.time()
    try:
        return _run(args.episodes, out, train=not args.no_train)
    finally:
        print(f"demo wall time: {time.time() - t0:.0f} s (reports under {out})")


def _run(episodes: int, out: Path, train: bool) -> int:
    rows = evaluate_families(episodes, out)
    print_table(rows)
    if not rows:
        log.error("no env family is installed")
        return 1
    if train:
        try:
            train_demo = importlib.import_module("turngym.experiments.demo")
        except ModuleNotFoundError as exc:
            if exc.name != "turngym.experiments.demo":
                raise
            log.info("training demo not available in this version")
        else:
            return int(train_demo.main(["--out", str(out / "train")]) or 0)
    return 0


if __name__ == "__main__":
    from turngym.numerics import pin_isa

    pin_isa()  # the training demo's numbers: ATEN_CPU_CAPABILITY=avx2 unless TURNGYM_ISA / ATEN_CPU_CAPABILITY say else
    raise SystemExit(main())
