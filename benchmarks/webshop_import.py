"""Time `turngym tasks import webshop` at catalog scale and play the imported pack with the oracle.

WebShop's files cannot be downloaded here, so the benchmark writes them: the generated 10,000-product catalog in
WebShop's own format (items_shuffle.json with `name`, `query`, `pricing` strings, `customization_options` lists of
{"value", "image"}, `small_description`, `full_description`; items_ins_v2.json with `attributes`; items_human_ins.json
with one instruction per product from the built-in pack's goals). Then, per repeat: import (read, convert, check
every goal can be won, write), `validate_pack`, and the oracle on the first `--episodes` tasks of `test`.

    python benchmarks/webshop_import.py [--products 10000] [--repeats 3] [--episodes 50] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path


def write_webshop_files(folder: Path, n: int) -> dict[str, Path]:
    from turngym.envs.shopping.catalog import generated
    from turngym.tasks.pack import load_pack

    catalog = generated(n, 0)
    goals_by_asin: dict[str, list] = {}
    if n == 10_000:  # the built-in pack's goals are over this catalog
        for rec in load_pack("webshop-synth").tasks("train"):
            goals_by_asin.setdefault(rec["asin"], []).append(rec)
    products, attributes, human = [], {}, {}
    for p in catalog.products:
        products.append(
            {
                "asin": p.asin,
                "name": p.title,
                "query": p.query,
                "category": p.category,
                "product_category": p.product_category,
                "full_description": p.description,
                "small_description": p.features,
                "pricing": f"${p.price:.2f}",
                "images": [f"https://example.invalid/{p.asin}.jpg"],
                "customization_options": {
                    name: [{"value": v, "image": None} for v in values] for name, values in p.options.items()
                },
            }
        )
        attributes[p.asin] = {"attributes": p.attributes}
        for g in goals_by_asin.get(p.asin, [])[:1]:
            human[p.asin] = [
                {
                    "asin": p.asin,
                    "instruction": g["instruction_text"].split(", and price lower than")[0],
                    "instruction_attributes": g["attributes"],
                    "instruction_options": list(g["goal_options"].values()),
                }
            ]
    paths = {}
    for key, name, data in (
        ("products", "items_shuffle.json", products),
        ("attributes", "items_ins_v2.json", attributes),
        ("goals", "items_human_ins.json", human),
    ):
        paths[key] = folder / name
        paths[key].write_text(json.dumps(data))
    return paths


def main() -> None:
    import gymnasium as gym

    import turngym  # noqa: F401
    from turngym.envs.shopping.webshop_import import import_webshop
    from turngym.tasks.pack import load_pack, validate_pack

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_webshop_files(Path(tmp), a.products)
        for r in range(a.repeats):
            out = Path(tmp) / f"pack{r}"
            c0, w0 = time.process_time(), time.perf_counter()
            report = import_webshop(**paths, out=out, seed=r)
            c1, w1 = time.process_time(), time.perf_counter()
            counts = validate_pack(str(out))
            w2 = time.perf_counter()
            env = gym.make("turngym/WebShop-v0", task_pack=str(out), split="test")
            wins = 0
            ids = load_pack(str(out)).task_ids("test")[: a.episodes]
            for tid in ids:
                env.reset(seed=0, options={"task_id": tid})
                for _ in range(env.unwrapped.max_turns):
                    *_, reward, term, trunc, info = env.step(env.unwrapped.expert_action())
                    if term or trunc:
                        break
                wins += int(info["success"])
            env.close()
            rows.append(
                {
                    "import_cpu_s": c1 - c0,
                    "import_wall_s": w1 - w0,
                    "validate_wall_s": w2 - w1,
                    "goals": counts,
                    "dropped": report.dropped_goals,
                    "oracle": [wins, len(ids)],
                }
            )
            print(rows[-1])

    def mean_ci(xs: list[float]) -> str:
        m = statistics.mean(xs)
        if len(xs) < 2:
            return f"{m:.2f}"
        t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78}.get(len(xs), 2.0)
        return f"{m:.2f} ± {t * statistics.stdev(xs) / len(xs) ** 0.5:.2f}"

    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "products": a.products,
        "repeats": a.repeats,
        "import_cpu_s": mean_ci([r["import_cpu_s"] for r in rows]),
        "import_wall_s": mean_ci([r["import_wall_s"] for r in rows]),
        "validate_wall_s": mean_ci([r["validate_wall_s"] for r in rows]),
        "oracle_wins": [sum(r["oracle"][0] for r in rows), sum(r["oracle"][1] for r in rows)],
        "runs": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
