import json

import pytest

from turngym.envs.shopping.catalog import (
    Catalog,
    Product,
    catalog_digest,
    generate_catalog,
    generated,
    load_catalog,
    read_catalog,
    save_catalog,
)
from turngym.envs.shopping.search import open_index
from turngym.envs.shopping.vocab import TYPES
from turngym.errors import ConfigError, TaskPackError
from turngym.tasks.pack import load_pack


def test_generator_is_bit_for_bit_reproducible():
    a, b = generate_catalog(300, seed=7), generate_catalog(300, seed=7)
    assert catalog_digest(a) == catalog_digest(b)
    assert catalog_digest(a) != catalog_digest(generate_catalog(300, seed=8))
    # the committed packs pin the default catalog's digest: a change to the generator must fail here
    manifest = load_pack("webshop-synth").manifest
    assert manifest["catalog"]["digest"] == generated().digest()


def test_default_catalog_is_large_and_varied():
    cat = generated()
    assert len(cat) >= 10_000
    assert {p.name for p in cat.products} == {t.name for t in TYPES}
    assert len({p.category for p in cat.products}) >= 5
    # near-duplicates: same type and brand line, different specs
    heads = {}
    dups = 0
    for p in cat.products:
        key = (p.name, p.title.split(" ")[0])
        dups += key in heads
        heads[key] = p
    assert dups > 1000
    assert all(p.options for p in cat.products if p.name == "running shoes")


def test_save_and_read_roundtrip(tmp_path):
    prods = generate_catalog(50, seed=1)
    path = tmp_path / "products.jsonl.gz"
    save_catalog(prods, path)
    back = read_catalog(path)
    assert catalog_digest(back) == catalog_digest(prods)
    cat = load_catalog({"file": "products.jsonl.gz", "digest": catalog_digest(prods)}, root=tmp_path)
    assert len(cat) == 50


def test_bad_catalogs_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"asin": "B1", "title": "x"}) + "\n")
    with pytest.raises(TaskPackError, match=r"lacks field\(s\)"):
        read_catalog(bad)
    with pytest.raises(TaskPackError, match="digest"):
        load_catalog({"generator": {"n": 40, "seed": 0}, "digest": "0" * 64})
    with pytest.raises(TaskPackError, match="'generator' or 'file'"):
        load_catalog({"url": "x"})
    with pytest.raises(ConfigError, match="n >="):
        generate_catalog(3)


def _mini() -> Catalog:
    def p(asin, title, name, attrs):
        return Product(asin, title, name, name, "C", "C › D › E", attrs, {}, 10.0, 0.0, "", [])

    return Catalog(
        [
            p("B01", "Acme Rain Boots - Waterproof", "rain boots", ["waterproof"]),
            p("B02", "Acme Running Shoes - Lightweight", "running shoes", ["lightweight"]),
            p("B03", "Zentro Running Socks - Cushioned", "running socks", ["cushioned"]),
            p("B04", "Shoe Rack - Metal Frame", "shoe rack", ["metal frame"]),
        ]
    )


@pytest.mark.parametrize("backend", ["tantivy", "fts5"])
def test_bm25_ranks_and_is_injection_safe(backend, tmp_path):
    idx = open_index(_mini(), backend, cache_dir=tmp_path)
    try:
        assert idx.search("running shoes")[0] == "B02"
        assert idx.search("socks running cushioned")[0] == "B03"
        assert set(idx.search("running")) == {"B02", "B03"}
        assert idx.search("waterproof boots", top_k=1) == ["B01"]
        for nasty in ['"', "AND (", "NEAR(x y)", "*", "-", "title:boots", ""]:
            idx.search(nasty)  # never raises: tokens are quoted
        assert idx.search("") == [] and idx.search("!!!") == []
        assert idx.search('title:"boots"')[0] == "B01"
    finally:
        idx.close()


def test_search_finds_exact_titles_in_default_catalog():
    from turngym.envs.shopping.search import index_for

    cat = generated()
    idx = index_for(cat)
    for p in cat.products[::997]:
        assert p.asin in idx.search(p.title)[:10]
