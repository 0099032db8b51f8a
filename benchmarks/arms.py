"""What the method-arm benchmarks share (method_arms.py, arm_uis1.py, arm_hints_spear.py, arm_ssb_csb.py).

Each script measures one or more methods against plain GRPO (or OPD) from the same start over several seeds:
`begin()` pins the instruction set before torch loads and builds the common options (`--seeds`, `--steps`, `--work`,
`--out`), `run_seeds` runs and prints one seed at a time, `versus` gives an arm's mean and its paired difference
to the baseline with 95% t-intervals, and `write` stores the result with the CPU model, the numerics settings and
the command that made it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent


def begin(
    doc: str | None, seeds: int, steps: int, work: str, out: str | None, out_help: str
) -> argparse.ArgumentParser:
    """Pin ATen's kernels (`turngym.numerics.pin_isa`, before torch is imported) and one torch thread; the parser
    with the options every arm benchmark has (add your own, then `parse_args`)."""
    from turngym.numerics import pin_isa

    pin_isa()
    import torch

    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=seeds)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--work", default=work, help="folder of the runs' metrics")
    p.add_argument("--out", default=out, help=out_help)
    return p


def run_seeds(run_seed: Callable[[int], dict[str, Any]], seeds: int) -> list[dict[str, Any]]:
    """`run_seed(s)` for s in 0..seeds-1, each result printed as a JSON line as it comes."""
    out = []
    for s in range(seeds):
        out.append(run_seed(s))
        print(json.dumps({"seed": s, **out[-1]}), flush=True)
    return out


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and 95% Student-t interval (the learning benchmark's)."""
    sys.path.insert(0, str(ROOT))
    from learning import mean_ci as ci

    return ci(values)


def versus(per_seed: list[dict[str, Any]], arm: str, base: str, key: str) -> tuple[dict, dict]:
    """The arm's `key` over seeds, and its paired difference to `base` (same seed, same start), 95% t-intervals."""
    return (
        mean_ci([r[arm][key] for r in per_seed]),
        mean_ci([r[arm][key] - r[base][key] for r in per_seed]),
    )


def write(out: Path, result: dict[str, Any], script: str, t0: float, wall_key: str = "wall_s") -> None:
    """Write `result` with the wall time since `t0`, the CPU, the numerics settings and the command line."""
    from turngym.numerics import cpu_model, numerics_info

    result = {
        **result,
        wall_key: round(time.time() - t0, 1),
        "cpu": cpu_model(),
        "numerics": numerics_info(),
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
