"""The product catalog: its schema, a deterministic generator, and JSONL load/save.

A product has the fields WebShop's reward reads (its `items_shuffle.json` names in brackets): `asin`, `title`
[Title], `name` [name, the product type], `query` [query], `category` [category], `product_category`
[product_category, "A › B › C"], `attributes` [Attributes], `options` [options: name -> values], `price`, `rating`,
`description` [Description], `features` [BulletPoints] and `reviews`. A user holding the real WebShop files can
convert them to this schema (one JSON object per line) and point a task pack's manifest at the file.

`generate_catalog(n, seed)` is bit-for-bit reproducible: the same `(n, seed)` gives the same products (and the same
`catalog_digest`) on every machine and Python version, because it only draws from one `random.Random(seed)` and
never iterates over sets or hashes strings.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from turngym.envs.shopping.vocab import BRANDS, REVIEW_PHRASES, TYPES, ProductType
from turngym.errors import ConfigError, TaskPackError
from turngym.tasks.pack import Field, check_fields, parse_json, read_lines

DEFAULT_N_PRODUCTS = 10_000
DEFAULT_SEED = 0


@dataclass
class Product:
    asin: str
    title: str
    name: str
    query: str
    category: str
    product_category: str
    attributes: list[str]
    options: dict[str, list[str]]
    price: float
    rating: float
    description: str
    features: list[str]
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_json(cls, rec: dict[str, Any], where: str = "") -> Product:
        missing = [f for f, spec in PRODUCT_FIELDS.items() if spec.required and f not in rec]
        if missing:
            raise TaskPackError(
                f"{where}: product record lacks field(s) {missing} (asin={rec.get('asin')!r})"
            )
        check_fields(rec, PRODUCT_FIELDS, f"{where}: product {rec.get('asin')!r}", "catalog product")
        return cls(
            asin=rec["asin"],
            title=rec["title"],
            name=rec["name"],
            query=rec.get("query", rec["name"]),
            category=rec.get("category", rec["product_category"].split("›")[0].strip()),
            product_category=rec["product_category"],
            attributes=list(rec["attributes"]),
            options={k: list(vs) for k, vs in (rec.get("options") or {}).items()},
            price=float(rec["price"]),
            rating=float(rec.get("rating", 0.0)),
            description=rec.get("description", ""),
            features=list(rec.get("features", [])),
            reviews=list(rec.get("reviews", [])),
        )


_FIELDS = tuple(f.name for f in fields(Product))
PRODUCT_FIELDS = {
    "asin": Field(str),
    "title": Field(str),
    "name": Field(str),
    "query": Field(str, required=False),
    "category": Field(str, required=False),
    "product_category": Field(str),
    "attributes": Field(list, items=str),
    "options": Field(dict, required=False, items=list),
    "price": Field(float),
    "rating": Field(float, required=False),
    "description": Field(str, required=False),
    "features": Field(list, required=False, items=str),
    "reviews": Field(list, required=False, items=dict),
}


class Catalog:
    """Products by asin, in a stable order."""

    def __init__(self, products: list[Product], source: str = ""):
        self.products = products
        self.by_asin = {p.asin: p for p in products}
        if len(self.by_asin) != len(products):
            raise TaskPackError(f"catalog {source!r} has duplicate asins")
        self.source = source
        self._digest: str | None = None

    def __len__(self) -> int:
        return len(self.products)

    def __getitem__(self, asin: str) -> Product:
        return self.by_asin[asin]

    def __contains__(self, asin: object) -> bool:
        return asin in self.by_asin

    def digest(self) -> str:
        """`catalog_digest` of the products, computed once (the products are not meant to be mutated)."""
        if self._digest is None:
            self._digest = catalog_digest(self.products)
        return self._digest


def catalog_digest(products: list[Product]) -> str:
    """sha256 over the canonical JSON lines of the products (the reproducibility fingerprint)."""
    h = hashlib.sha256()
    for p in products:
        h.update(json.dumps(p.to_json(), sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


# ---- generation -----------------------------------------------------------------------------------------------
_ALNUM = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _asin(rng: random.Random) -> str:
    return "B0" + "".join(rng.choice(_ALNUM) for _ in range(8))


def _round_price(x: float) -> float:
    return float(f"{max(1.0, round(x)) - 0.01:.2f}")


def _make_product(rng: random.Random, ptype: ProductType, asin: str, base: Product | None) -> Product:
    """A product of `ptype`; when `base` is given, a near-duplicate of it (same brand line, tweaked specs)."""
    if base is not None:
        brand = base.title.split(" ")[0]
        attrs = list(base.attributes)
        # swap one attribute, or drop one: near-duplicates differ in exactly what a careful shopper checks
        pool = [a for a in ptype.attributes if a not in attrs]
        if pool and (len(attrs) < 3 or rng.random() < 0.6):
            attrs[rng.randrange(len(attrs))] = rng.choice(pool)
        elif len(attrs) > 1:
            attrs.pop(rng.randrange(len(attrs)))
        price = base.price * rng.uniform(0.8, 1.25)
    else:
        brand = rng.choice(BRANDS)
        k = rng.randint(2, min(4, len(ptype.attributes)))
        attrs = rng.sample(list(ptype.attributes), k)
        lo, hi = ptype.price
        price = rng.uniform(lo, hi)
    options: dict[str, list[str]] = {}
    for oname, values in ptype.options.items():
        k = rng.randint(min(2, len(values)), min(6, len(values)))
        idx = sorted(rng.sample(range(len(values)), k))
        options[oname] = [values[i] for i in idx]
    adj = rng.choice(ptype.adjectives) if ptype.adjectives and rng.random() < 0.7 else ""
    noun = ptype.name if rng.random() < 0.75 else rng.choice(ptype.synonyms)
    head = " ".join(w for w in (brand, adj, noun) if w)
    title_attrs = attrs[: rng.randint(1, len(attrs))]
    title = f"{head.title()} - {', '.join(a.title() for a in title_attrs)}"
    if ptype.name not in title.lower():
        title += f" {ptype.name.title()}"
    features = [f"{a.upper() if len(a) <= 4 else a.capitalize()}: designed for everyday use." for a in attrs]
    features.append(f"What you get: 1 x {ptype.name}, {brand} customer support.")
    description = (
        f"The {brand} {adj + ' ' if adj else ''}{ptype.name} is "
        f"{' and '.join(attrs[:2])}. A {rng.choice(['reliable', 'popular', 'practical', 'stylish'])} choice "
        f"from our {ptype.category.split('›')[-1].strip().lower()} range."
    )
    n_rev = rng.randint(0, 3)
    reviews = []
    for _ in range(n_rev):
        score = rng.choices([5, 4, 3, 2, 1], weights=[5, 3, 1, 1, 1])[0]
        reviews.append({"score": score, "text": rng.choice(REVIEW_PHRASES[score])})
    rating = round(sum(r["score"] for r in reviews) / n_rev, 1) if reviews else 0.0
    return Product(
        asin=asin,
        title=title,
        name=ptype.name,
        query=ptype.name,
        category=ptype.category.split("›")[0].strip(),
        product_category=ptype.category,
        attributes=attrs,
        options=options,
        price=_round_price(price),
        rating=rating,
        description=description,
        features=features,
        reviews=reviews,
    )


def generate_catalog(n: int = DEFAULT_N_PRODUCTS, seed: int = DEFAULT_SEED) -> list[Product]:
    """`n` products over every type in `vocab.TYPES`; about a quarter are near-duplicates of an earlier product."""
    if not isinstance(n, int) or n < len(TYPES):
        raise ConfigError(f"a generated catalog needs n >= {len(TYPES)} products (one per type), got {n!r}")
    rng = random.Random(seed)
    products: list[Product] = []
    seen: set[str] = set()
    per_type: list[list[int]] = [[] for _ in TYPES]
    for i in range(n):
        ti = i if i < len(TYPES) else rng.randrange(len(TYPES))
        asin = _asin(rng)
        while asin in seen:
            asin = _asin(rng)
        seen.add(asin)
        base = None
        if per_type[ti] and rng.random() < 0.25:
            base = products[rng.choice(per_type[ti])]
        products.append(_make_product(rng, TYPES[ti], asin, base))
        per_type[ti].append(i)
    return products


# ---- load / save ----------------------------------------------------------------------------------------------
def save_catalog(products: list[Product], path: str | Path) -> None:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for p in products:
            f.write(json.dumps(p.to_json(), sort_keys=True) + "\n")


def read_catalog(path: str | Path) -> list[Product]:
    """The products of a JSON Lines catalog file (`.jsonl` or `.jsonl.gz`), each checked against `PRODUCT_FIELDS`."""
    path = Path(path)
    out = []
    for lineno, line in read_lines(path):
        where = f"{path}:{lineno}"
        rec = parse_json(line, where)
        if not isinstance(rec, dict):
            raise TaskPackError(f"{where}: a product must be a JSON object, got {type(rec).__name__}")
        product = Product.from_json(rec, where)
        for name, values in product.options.items():
            if not values or not all(isinstance(v, str) for v in values):
                raise TaskPackError(
                    f"{where}: product {product.asin!r}: option {name!r} needs a non-empty list of strings"
                )
        out.append(product)
    if not out:
        raise TaskPackError(f"catalog file {path} holds no products")
    return out


@lru_cache(maxsize=4)
def generated(n: int = DEFAULT_N_PRODUCTS, seed: int = DEFAULT_SEED) -> Catalog:
    """The generated catalog, built once per process (about a second for 10,000 products)."""
    return Catalog(generate_catalog(n, seed), source=f"generated(n={n}, seed={seed})")


@lru_cache(maxsize=4)
def _from_file(path: str) -> Catalog:
    return Catalog(read_catalog(path), source=path)


def load_catalog(spec: dict[str, Any] | None, root: Path | None = None) -> Catalog:
    """The catalog a pack's manifest names: `{"generator": {"n": N, "seed": S}, "digest": ...}` or
    `{"file": "assets/products.jsonl.gz"}` (relative to the pack folder). None gives the default generated one."""
    spec = dict(spec or {"generator": {"n": DEFAULT_N_PRODUCTS, "seed": DEFAULT_SEED}})
    if "file" in spec:
        path = Path(spec["file"])
        if root is not None and not path.is_absolute():
            path = root / path
        cat = _from_file(str(path.resolve()))
    elif "generator" in spec:
        g = spec["generator"]
        if not isinstance(g, dict):
            raise TaskPackError(
                f"catalog.generator must be an object like {{'n': 10000, 'seed': 0}}, got {g!r}"
            )
        cat = generated(int(g.get("n", DEFAULT_N_PRODUCTS)), int(g.get("seed", DEFAULT_SEED)))
    else:
        raise TaskPackError(f"the manifest's 'catalog' needs 'generator' or 'file', got keys {sorted(spec)}")
    want = spec.get("digest")
    if want and want != cat.digest():
        raise TaskPackError(
            f"catalog {cat.source} has digest {cat.digest()[:16]}..., the task pack expects {str(want)[:16]}...: "
            "the pack was built from a different catalog (regenerate the pack or fix the catalog spec)"
        )
    return cat
