"""Product search: tantivy vs FTS5 results, thread safety, the on-disk index cache, and injection-proof queries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from turngym.envs.shopping.catalog import Catalog, Product, generate_catalog, generated
from turngym.envs.shopping.search import (
    MANIFEST,
    FTS5Index,
    TantivyIndex,
    index_for,
    open_index,
    query_tokens,
    tokenize,
)
from turngym.envs.shopping.text_env import TASK_FIELDS
from turngym.errors import ConfigError
from turngym.tasks.pack import load_pack

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("search-cache")


@pytest.fixture(scope="module")
def default_indexes(cache):
    cat = generated()
    tv, fts = TantivyIndex(cat, cache_dir=cache), FTS5Index(cat)
    yield cat, tv, fts
    tv.close()
    fts.close()


def _tasks(split: str = "test", step: int = 4) -> list[dict]:
    return load_pack("webshop-synth", family="shopping", fields=TASK_FIELDS).tasks(split)[::step]


def _product(asin: str, title: str, name: str = "widget", attrs: tuple[str, ...] = ()) -> Product:
    return Product(asin, title, name, name, "C", "C › D › E", list(attrs), {}, 10.0, 0.0, "", [])


# ---- same kinds of results ------------------------------------------------------------------------------------
def test_instructions_find_their_products_like_fts5(default_indexes):
    cat, tv, fts = default_indexes
    tasks = _tasks()
    found = {"tantivy": 0, "fts5": 0}
    overlap = 0.0
    for t in tasks:
        a, b = tv.search(t["instruction_text"]), fts.search(t["instruction_text"])
        assert len(a) == 50 and len(set(a)) == 50 and all(x in cat for x in a)
        found["tantivy"] += t["asin"] in a
        found["fts5"] += t["asin"] in b
        overlap += len(set(a) & set(b)) / 50
        # every result shares a word with the instruction
        words = set(query_tokens(t["instruction_text"]))
        for asin in a[:10]:
            p = cat[asin]
            assert words & set(tokenize(" ".join([p.title, *p.attributes, p.name, p.product_category])))
    n = len(tasks)
    # measured on these 50 instructions: target in the top 50 for 38 (tantivy) and 39 (FTS5); overlap 0.79
    assert found["tantivy"] >= 0.6 * n and found["fts5"] >= 0.6 * n
    assert overlap / n >= 0.6


def test_exact_titles_rank_first_ten(default_indexes):
    cat, tv, _ = default_indexes
    for p in cat.products[::499]:
        assert p.asin in tv.search(p.title)[:10]


@pytest.mark.parametrize("backend", ["tantivy", "fts5"])
def test_ties_break_by_catalog_position_and_top_k_cuts(backend, tmp_path):
    prods = [_product(f"B{i:02d}", "Acme Widget - Blue") for i in range(12)]
    prods.insert(5, _product("BX", "Acme Blue Widget Widget - Blue"))
    idx = open_index(Catalog(prods), backend, cache_dir=tmp_path)
    res = idx.search("blue widget")
    assert res[0] == "BX"
    assert res[1:] == [p.asin for p in prods if p.asin != "BX"]
    assert idx.search("blue widget", top_k=3) == res[:3]


def test_tokens_are_indexed_as_tokenize_cuts_them(tmp_path):
    long_word = "x" * 60
    prods = [
        _product("B1", f"Gizmo 3.5% c++ 16x16 50.00 {long_word}"),
        _product("B2", "Gizmo 3 5 c 16 x16 50 00 plain"),
    ]
    idx = TantivyIndex(Catalog(prods), cache_dir=tmp_path)
    for tok in ("3.5%", "c+", "16x16", "50.00", long_word):
        assert tok in tokenize(prods[0].title)
        assert idx.search(tok) == ["B1"], tok
    assert set(idx.search("gizmo")) == {"B1", "B2"}
    assert idx.search("the of and") == []  # stop words only


# ---- concurrency ----------------------------------------------------------------------------------------------
def test_concurrent_searches_match_serial(default_indexes):
    cat, tv, _ = default_indexes
    queries = [t["instruction_text"] for t in _tasks(step=5)]
    queries += [cat.products[i].title for i in range(0, 4000, 200)]
    serial = {q: tv._rank(query_tokens(q), 50) for q in queries}
    # through search() and its result cache: distinct strings per thread, answers computed serially first
    own = {
        (q, k): [cat.products[i].asin for i in tv._rank(query_tokens(f"{q} w{k}"), 50)]
        for q in queries[::3]
        for k in range(16)
    }
    errors: list[BaseException] = []
    mismatches: list[str] = []
    start = threading.Barrier(16)

    def worker(k: int) -> None:
        try:
            start.wait()
            for q in queries[k:] + queries[:k]:  # every thread in its own order, all at once, no result cache
                if tv._rank(query_tokens(q), 50) != serial[q]:
                    mismatches.append(q)
            for q in queries[::3]:
                if tv.search(f"{q} w{k}") != own[q, k] or tv.search(f"{q} w{k}") != own[q, k]:
                    mismatches.append(f"search: {q} w{k}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches


# ---- the disk cache -------------------------------------------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in folder.iterdir()}


def test_second_open_loads_and_digest_change_rebuilds(tmp_path):
    prods = generate_catalog(200, seed=3)
    first = TantivyIndex(Catalog(prods), cache_dir=tmp_path)
    assert not first.loaded and (first.path / MANIFEST).is_file()
    before = _snapshot(first.path)
    again = TantivyIndex(Catalog(generate_catalog(200, seed=3)), cache_dir=tmp_path)
    assert again.loaded and again.path == first.path and _snapshot(first.path) == before
    q = prods[7].title
    assert again.search(q) == first.search(q)

    changed = list(prods)
    changed[7] = _product(prods[7].asin, "Zanzibar Quokka Lamp")
    other = TantivyIndex(Catalog(changed), cache_dir=tmp_path)
    assert not other.loaded and other.path != first.path
    assert other.search("zanzibar quokka")[0] == prods[7].asin
    assert first.search("zanzibar quokka") == []
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == sorted(
        [first.path.name, other.path.name]
    )


def _flip_segment_bytes(folder: Path) -> None:
    seg = max((f for f in folder.iterdir() if f.suffix == ".idx"), key=lambda f: f.stat().st_size)
    data = bytearray(seg.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    seg.write_bytes(bytes(data))


DAMAGE = {
    "flipped segment bytes": _flip_segment_bytes,
    "truncated meta.json": lambda d: (d / "meta.json").write_text((d / "meta.json").read_text()[:40]),
    "deleted segment file": lambda d: next(f for f in d.iterdir() if f.suffix == ".term").unlink(),
    "manifest not JSON": lambda d: (d / MANIFEST).write_text("{not json"),
    "manifest missing": lambda d: (d / MANIFEST).unlink(),
    "manifest of another catalog": lambda d: (d / MANIFEST).write_text(
        json.dumps({**json.loads((d / MANIFEST).read_text()), "catalog_digest": "0" * 64})
    ),
    "index folder is a file": lambda d: (__import__("shutil").rmtree(d), d.write_text("x")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_is_rebuilt(damage, tmp_path, caplog):
    prods = generate_catalog(150, seed=5)
    built = TantivyIndex(Catalog(prods), cache_dir=tmp_path)
    want = {p.asin: built.search(p.title) for p in prods[::15]}
    built.close()
    DAMAGE[damage](built.path)
    with caplog.at_level("WARNING"):
        again = TantivyIndex(Catalog(prods), cache_dir=tmp_path)
    assert not again.loaded
    assert {p.asin: again.search(p.title) for p in prods[::15]} == want
    assert "rebuilding" in caplog.text
    assert TantivyIndex(Catalog(prods), cache_dir=tmp_path).loaded  # the rebuilt copy is valid


@pytest.mark.slow
def test_two_processes_building_at_once_share_one_index(tmp_path):
    code = (
        "import sys, json\n"
        "from turngym.envs.shopping.catalog import Catalog, generate_catalog\n"
        "from turngym.envs.shopping.search import TantivyIndex\n"
        "cat = Catalog(generate_catalog(3000, seed=11))\n"
        "idx = TantivyIndex(cat, cache_dir=sys.argv[1])\n"
        "print(json.dumps({'loaded': idx.loaded, 'top': idx.search(cat.products[42].title)[:3]}))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    assert sorted(o["loaded"] for o in outs) == [
        False,
        True,
        True,
    ]  # one built it, the others waited and loaded
    assert len({json.dumps(o["top"]) for o in outs}) == 1
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and left[1] == left[0] + ".lock", (
        left
    )  # the index folder and its lock: no temp folders
    assert TantivyIndex(Catalog(generate_catalog(3000, seed=11)), cache_dir=tmp_path).loaded


def test_unusable_cache_dir_falls_back_to_memory(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with caplog.at_level("WARNING"):
        idx = TantivyIndex(Catalog(generate_catalog(100, seed=1)), cache_dir=blocker / "sub")
    assert "in memory" in caplog.text and not idx.loaded
    assert idx.search(idx.catalog.products[3].title)[0] == idx.catalog.products[3].asin


def test_cache_dir_follows_turngym_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    idx = TantivyIndex(Catalog(generate_catalog(60, seed=2)))
    assert idx.path.parent == tmp_path / "search" and (idx.path / MANIFEST).is_file()


# ---- injection-proof queries ----------------------------------------------------------------------------------
NASTY = [
    "",
    "   ",
    '"',
    '"running shoes"~2',
    "title:boots",
    'title:"boots" OR name:*',
    "(running OR socks) AND NOT shoes",
    "running AND socks",
    "running -shoes +socks",
    "shoe*",
    "*",
    "?unning",
    "runn~1 shoes^10",
    "[a TO z]",
    "{* TO *}",
    "IN [running shoes]",
    "\\",
    'a\\:b c\\"d',
    "NEAR(running shoes, 2)",
    "running NEAR socks",
    "'; DROP TABLE docs; --",
    "\x00running\x00",
    "🏃 shoes ✨ ümlaut Ｒｕｎｎｉｎｇ İstanbul \u212aelvin ﬁre",
    "бег обувь 跑鞋",
    "running " * 2000,
    "shoes " + "(" * 5000,
    "x" * 10_000,
    " ".join(f"w{i}" for i in range(3000)),
]


@pytest.mark.parametrize("backend", ["tantivy", "fts5"])
def test_user_text_never_acts_as_query_syntax(backend, tmp_path):
    prods = [
        _product("B1", "Acme Rain Boots - Waterproof", "rain boots", ("waterproof",)),
        _product("B2", "Acme Running Shoes - Lightweight", "running shoes", ("lightweight",)),
        _product("B3", "Zentro Running Socks - Cushioned", "running socks", ("cushioned",)),
        _product("B4", "Shoe Rack - Metal Frame", "shoe rack", ("metal frame",)),
        _product("B5", "Title Name Near And Not Or To", "w7", ("kelvin",)),
    ]
    words = {
        p.asin: set(tokenize(" ".join([p.title, *p.attributes, p.name, p.product_category]))) for p in prods
    }
    idx = open_index(Catalog(prods), backend, cache_dir=tmp_path)
    for q in NASTY:
        # exactly the products sharing a plain word with the query: operators, fields, wildcards are just text
        want = {a for a, ws in words.items() if ws & set(query_tokens(q))}
        assert set(idx.search(q)) == want, q
    assert idx.search("running -shoes")[0] == "B2"  # not an exclusion
    assert idx.search("title:boots")[0] == "B1"
    assert set(idx.search("running AND NOT shoes")) == {"B2", "B3"}
    assert idx.search("shoe*") == ["B4"]  # not a prefix query: only the token 'shoe'
    assert idx.search("*") == [] and idx.search("") == [] and idx.search("🏃 ✨") == []
    assert idx.search("socks " + "running " * 5000)[0] == "B3"


def test_long_queries_keep_their_first_32_words():
    words = [f"w{i}" for i in range(100)]
    assert query_tokens(" ".join(words)) == tuple(words[:32])
    assert query_tokens("The Running running RUNNING shoes of") == ("running", "shoes")
    assert query_tokens("x" * 10_000) == ("x" * 10_000,)


@pytest.mark.parametrize("backend", ["tantivy", "fts5"])
def test_bad_arguments_are_clear_errors(backend, tmp_path):
    idx = open_index(Catalog([_product("B1", "Widget")]), backend, cache_dir=tmp_path)
    for bad in (0, -1, True, 2.5, "50"):
        with pytest.raises(ConfigError, match="top_k"):
            idx.search("widget", top_k=bad)
    for bad in (None, b"widget", 3, ["widget"]):
        with pytest.raises(ConfigError, match="must be a string"):
            idx.search(bad)


def test_backend_choice(monkeypatch):
    cat = generated()
    with pytest.raises(ConfigError, match="unknown search backend 'lucene'"):
        open_index(cat, "lucene")
    monkeypatch.setenv("TURNGYM_SEARCH_BACKEND", "fts5")
    assert isinstance(index_for(cat), FTS5Index)
    monkeypatch.setenv("TURNGYM_SEARCH_BACKEND", "nope")
    with pytest.raises(ConfigError, match="TURNGYM_SEARCH_BACKEND|unknown search backend"):
        index_for(cat)
    monkeypatch.delenv("TURNGYM_SEARCH_BACKEND")
    assert os.environ.get("TURNGYM_SEARCH_BACKEND") is None
    assert index_for(cat) is index_for(cat, "tantivy")
