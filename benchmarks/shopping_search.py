"""Product search, tantivy vs SQLite FTS5, side by side: `python benchmarks/shopping_search.py`.

For each catalog size (`--sizes`, default 100k and 1M generated products) and each backend, in a forked child
process so memory is measured per backend:
- index build time, peak RSS added by the build, index size on disk (tantivy), load time from the disk cache;
- CPU time (`time.process_time`) and wall time per query, p50/p95, for WebShop-style instruction texts (the worst
  case: long OR queries) and short `<type> <attributes>` queries; each query is made distinct so the result cache
  never hits;
- queries/s from 1 thread and from 16 threads on one shared index;
- top-50 lists of `--overlap` plain instructions: the parent reports the overlap between backends and how often the
  instruction's target product is in each backend's top 50.
Then the HTTP store (`python -m turngym.envs.shopping.server`, the 10k `webshop-synth` catalog) under each backend:
16 client threads, each with its own session, sending distinct search requests; requests/s, latency, and the
server's CPU time per request. Writes one JSON (`--out`) and prints it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from turngym.envs.shopping.catalog import Catalog, generate_catalog
from turngym.envs.shopping.goals import webshop_goal
from turngym.envs.shopping.search import TOP_K, FTS5Index, TantivyIndex
from turngym.tasks.pack import load_pack

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6


def _time_queries(idx, queries: list[str]) -> dict:
    lat, cpu = [], []
    for i, q in enumerate(queries):
        s, c = time.perf_counter(), time.process_time()
        idx.search(f"{q} {i}", TOP_K)  # the number makes every query distinct: no result-cache hits
        lat.append((time.perf_counter() - s) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {
        "n": len(queries),
        "cpu_p50_ms": round(pct(cpu, 0.5), 3),
        "cpu_p95_ms": round(pct(cpu, 0.95), 3),
        "wall_p50_ms": round(pct(lat, 0.5), 3),
        "wall_p95_ms": round(pct(lat, 0.95), 3),
    }


def _qps(idx, queries: list[str], threads: int, tag: str) -> float:
    """Queries per second over all `queries` split across `threads` threads sharing `idx` (no cache hits)."""
    chunks = [queries[k::threads] for k in range(threads)]
    start = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        start.wait()
        for i, q in enumerate(chunks[k]):
            idx.search(f"{q} {tag} {k} {i}", TOP_K)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return round(len(queries) / (time.perf_counter() - t0), 1)


def _child(backend: str, cat: Catalog, goals: list[dict], args, conn) -> None:
    out: dict = {"backend": backend}
    exact_peak = _reset_peak_rss()
    rss0 = _status_kb("VmRSS")
    cache = Path(tempfile.mkdtemp(prefix="search-bench-"))
    t0 = time.perf_counter()
    c0 = time.process_time()
    idx = FTS5Index(cat) if backend == "fts5" else TantivyIndex(cat, cache_dir=cache)
    out["build_s"] = round(time.perf_counter() - t0, 2)
    out["build_cpu_s"] = round(time.process_time() - c0, 2)
    out["build_peak_rss_mb"] = round((_status_kb("VmHWM") - rss0) / 1e3, 1) if exact_peak else None
    out["rss_after_build_mb"] = round((_status_kb("VmRSS") - rss0) / 1e3, 1)
    if backend == "tantivy":
        out["index_on_disk_mb"] = round(_dir_mb(idx.path), 1)
        idx.close()
        t0 = time.perf_counter()
        idx = TantivyIndex(cat, cache_dir=cache)
        assert idx.loaded
        out["load_from_cache_s"] = round(time.perf_counter() - t0, 3)
    many = len(cat) >= 1_000_000 and backend == "fts5"
    nq = min(len(goals), args.fts5_queries_large) if many else len(goals)
    out["instruction"] = _time_queries(idx, [g["instruction_text"] for g in goals[:nq]])
    out["short"] = _time_queries(idx, [f"{g['query']} {' '.join(g['attributes'])}" for g in goals[:nq]])
    qs = [g["instruction_text"] for g in goals[: min(nq, 400)]]
    out["qps_1_thread"] = _qps(idx, qs, 1, "a")
    out["qps_16_threads"] = _qps(idx, qs, 16, "b")
    out["rss_after_queries_mb"] = round((_status_kb("VmRSS") - rss0) / 1e3, 1)
    tops = [idx.search(g["instruction_text"], TOP_K) for g in goals[: args.overlap]]
    idx.close()
    shutil.rmtree(cache, ignore_errors=True)
    conn.send((out, tops))
    conn.close()


def bench_size(n: int, args) -> dict:
    t0 = time.perf_counter()
    cat = Catalog(generate_catalog(n, seed=0))
    res: dict = {"products": n, "generate_s": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    cat.digest()  # the tantivy cache key; computed once per catalog, kept out of the build time
    res["digest_s"] = round(time.perf_counter() - t0, 1)
    rng = random.Random(0)
    goals = [webshop_goal(rng, rng.choice(cat.products), str(i)) for i in range(args.queries)]
    tops = {}
    ctx = mp.get_context("fork")
    for backend in ("fts5", "tantivy"):
        a, b = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(backend, cat, goals, args, b))
        p.start()
        out, tops[backend] = a.recv()
        p.join()
        res[backend] = out
        print(json.dumps({"products": n, **out}), file=sys.stderr, flush=True)
    k = len(tops["fts5"])
    f, t = tops["fts5"], tops["tantivy"]
    res["agreement"] = {
        "queries": k,
        "overlap_at_50": round(sum(len(set(x) & set(y)) / max(1, len(x)) for x, y in zip(f, t)) / k, 3),
        "overlap_at_10": round(sum(len(set(x[:10]) & set(y[:10])) / 10 for x, y in zip(f, t)) / k, 3),
        "same_top1": round(sum(x[:1] == y[:1] for x, y in zip(f, t)) / k, 3),
        "target_in_top50_fts5": round(sum(g["asin"] in x for g, x in zip(goals, f)) / k, 3),
        "target_in_top50_tantivy": round(sum(g["asin"] in y for g, y in zip(goals, t)) / k, 3),
    }
    return res


# ---- the HTTP store -------------------------------------------------------------------------------------------
def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_http(backend: str, args) -> dict:
    cache = tempfile.mkdtemp(prefix="shop-")
    env = {**os.environ, "TURNGYM_SEARCH_BACKEND": backend, "TURNGYM_CACHE": cache}
    cmd = [sys.executable, "-m", "turngym.envs.shopping.server", "--port", "0", "--split", "test"]
    t0 = time.perf_counter()
    srv = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = None
        for line in srv.stderr:
            m = re.search(r"(http://[\d.]+:\d+)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            raise RuntimeError(f"the store did not start: {srv.stderr.read()}")
        threading.Thread(target=srv.stderr.read, daemon=True).start()
        startup = time.perf_counter() - t0
        test = load_pack("webshop-synth", family="shopping").tasks("test")
        lat: list[float] = []
        errors: list[str] = []
        start = threading.Barrier(args.sessions + 1)

        def session(k: int) -> None:
            task, rng = test[k % len(test)], random.Random(k)
            body = json.dumps({"task_id": task["task_id"]}).encode()
            req = urllib.request.Request(f"{url}/api/sessions", data=body, method="POST")
            with urllib.request.urlopen(req) as r:
                sid = json.loads(r.read())["session_id"]
            start.wait()
            for j in range(args.http_requests):
                q = urllib.parse.quote(f"{test[rng.randrange(len(test))]['instruction_text']} {k} {j}")
                s = time.perf_counter()
                try:
                    with urllib.request.urlopen(f"{url}/{sid}/search?q={q}&page=1") as r:
                        r.read()
                        if r.status != 200:
                            errors.append(str(r.status))
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(repr(exc))
                lat.append((time.perf_counter() - s) * 1000)

        ts = [threading.Thread(target=session, args=(k,)) for k in range(args.sessions)]
        for t in ts:
            t.start()
        start.wait()
        cpu0, t0 = _proc_cpu_s(srv.pid), time.perf_counter()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        cpu = _proc_cpu_s(srv.pid) - cpu0
        return {
            "backend": backend,
            "sessions": args.sessions,
            "requests": len(lat),
            "errors": len(errors),
            "startup_s": round(startup, 2),
            "requests_per_s": round(len(lat) / wall, 1),
            "latency_p50_ms": round(pct(lat, 0.5), 1),
            "latency_p95_ms": round(pct(lat, 0.95), 1),
            "server_cpu_ms_per_request": round(cpu / len(lat) * 1000, 2),
        }
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--fts5-queries-large", type=int, default=200, help="FTS5 queries at >= 1M products")
    ap.add_argument("--overlap", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--http-requests", type=int, default=40, help="search requests per session")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "shopping_search.json"))
    args = ap.parse_args()
    import tantivy

    out = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "tantivy": tantivy.__version__,
        "cpus": os.cpu_count(),
        "load_avg_1m_start": os.getloadavg()[0],
        "sizes": [bench_size(n, args) for n in args.sizes],
        "http": [bench_http(b, args) for b in ("fts5", "tantivy")],
        "load_avg_1m_end": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
