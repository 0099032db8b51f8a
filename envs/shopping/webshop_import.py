"""Convert WebShop's released data (Yao et al., 2022) into a turngym `shopping` task pack.

    turngym tasks import webshop --products items_shuffle.json --attributes items_ins_v2.json \\
        [--goals items_human_ins.json] [--reviews reviews.json] --out my-webshop

The input files are WebShop's own (`web_agent_site/utils.py` names them; `setup.sh -d all` downloads them into
WebShop's `data/`), read exactly as `web_agent_site/engine/engine.py:load_products` and `goal.py` read them:

- products (`items_shuffle.json` / `items_shuffle_1000.json`): a JSON list of objects with `asin`, `name` (the
  title), `query`, `category`, `product_category` ("A › B › C"), `full_description`, `small_description` (bullet
  points: a list or a string), `pricing` ("$12.99" or "$10.00 - $20.00"; absent: $100) and `customization_options`
  ({option name: [{"value": ..., "image": ...}] or null}). Like WebShop: asins "nan" or longer than 10 characters
  and repeated asins are skipped; option names and values are lower-cased, "/" in values becomes " | ".
- attributes (`items_ins_v2.json` / `items_ins_v2_1000.json`): {asin: {"attributes": [...], "instruction": ...,
  "instruction_attributes": [...]}}; a product without attributes gets WebShop's `["DUMMY_ATTR"]`.
- goals (`items_human_ins.json`, optional): {asin: [{"instruction", "instruction_attributes",
  "instruction_options"}]}: WebShop's human instructions (`human_goals=True`); without the file, the synthetic goals
  of `get_synthetic_goals` (one per option combination of each product whose attribute entry has an `instruction`).
- reviews (`reviews.json`, optional): [{"asin", "reviews": [{"title", "score"|"stars", "body"|"review"}],
  "average_rating"}].

The goals are WebShop's: the same instruction text, attributes, options and price bound (`price lower than X
dollars`, X drawn as `get_goals` draws it), shuffled with `random.seed(233)` as WebShop's `SimServer` does, and split
as its baselines split them (`baseline_models/env.py`): `test` = goals 0-499, `eval` = 500-1499, `train` = the rest.
A record's `task_id` is `ws-<goal index>`, the index WebShop's `fixed_<n>` sessions use. Where WebShop draws
from the unseeded global `random` (a price within a product's range, the price bound), the import draws from
`random.Random(seed)`, so an import is reproducible; the split assignment does not depend on these draws.

What a turngym pack needs that WebShop's data does not guarantee, and what the import does: a goal option is kept
as `{option name: value}` (WebShop's human goals list values only; the name is the product's option that offers the
value); a goal whose option value the product does not offer, whose attributes the product does not have (so that
buying the target itself earns less than 1), or without attributes (WebShop skips those too) is left out and
counted per reason in the manifest's `metadata.import`. The product's `name` (the type words of the reward's
title-noun lexicon) is its `query`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from turngym.envs.shopping.catalog import Catalog, Product, catalog_digest
from turngym.errors import TaskPackError

PRICE_RANGE = [10.0 * i for i in range(1, 100)]  # goal.py
SPLITS = (("test", 0, 500), ("eval", 500, 1500), ("train", 1500, None))  # baseline_models/env.py
SHUFFLE_SEED = 233  # SimServer: random.seed(233); random.shuffle(self.goals)
NO_BOUND = 1000000  # goal.py's price_upper when fewer than two bounds lie above the price
DUMMY_ATTR = "DUMMY_ATTR"


@dataclass
class ImportReport:
    """What an import made and what it left out (also written to the manifest's `metadata.import`)."""

    products: int = 0
    skipped_products: dict[str, int] = field(default_factory=dict)
    goals: dict[str, int] = field(default_factory=dict)
    dropped_goals: dict[str, dict[str, int]] = field(default_factory=dict)
    goal_source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "products": self.products,
            "skipped_products": self.skipped_products,
            "goal_source": self.goal_source,
            "goals": self.goals,
            "dropped_goals": self.dropped_goals,
        }


# ---- reading WebShop's files with errors that name file and field -------------------------------------------------
def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise TaskPackError(f"{path}: the {what} file does not exist")
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TaskPackError(f"{path}: not a valid gzip file ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TaskPackError(f"{path}:{line}: invalid UTF-8 at byte {exc.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskPackError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); WebShop's {what} file is one JSON document"
        ) from None
    except RecursionError:
        raise TaskPackError(f"{path}: JSON nested too deeply") from None


def _bad(path: Path, where: str, key: str, want: str, got: Any) -> TaskPackError:
    return TaskPackError(f"{path}: {where}: field {key!r}: expected {want}, got {_show(got)}")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _str(path: Path, where: str, obj: dict[str, Any], key: str, required: bool = True) -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            raise TaskPackError(f"{path}: {where}: missing field {key!r}")
        return None
    if not isinstance(obj[key], str):
        raise _bad(path, where, key, "a string", obj[key])
    return obj[key]


def _str_list(path: Path, where: str, obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, where, key, "a list of strings", value)
    return list(value)


def parse_pricing(pricing: Any, path: Path, where: str) -> list[float]:
    """WebShop's price parse: "$12.99" -> [12.99]; "$10.00 - $20.00" -> [10.0, 20.0]; empty/absent -> [100.0]."""
    if pricing is None or pricing == "" or pricing == []:
        return [100.0]
    if isinstance(pricing, list) and all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in pricing
    ):
        return [float(p) for p in pricing[:2]]  # an already-processed file (engine.py's `pricing` after load)
    if not isinstance(pricing, str):
        raise _bad(path, where, "pricing", 'a string like "$12.99" or "$10.00 - $20.00"', pricing)
    values = []
    for part in pricing.split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", part)
        try:
            values.append(float(Decimal(digits)))
        except InvalidOperation:
            raise _bad(
                path, where, "pricing", 'a string like "$12.99" or "$10.00 - $20.00"', pricing
            ) from None
    if not values:
        raise _bad(path, where, "pricing", 'a string like "$12.99" or "$10.00 - $20.00"', pricing)
    return values[:2]


def option_value(value: str) -> str:
    """engine.py's normalisation of an option value."""
    return value.strip().replace("/", " | ").lower()


def _options(path: Path, where: str, raw: Any) -> dict[str, list[str]]:
    if raw is None or raw == {} or raw == []:
        return {}
    if not isinstance(raw, dict):
        raise _bad(path, where, "customization_options", "an object {option name: [{'value': ...}]}", raw)
    options: dict[str, list[str]] = {}
    for name, contents in raw.items():
        if contents is None:
            continue
        here = f"{where}: customization_options[{name!r}]"
        if not isinstance(contents, list):
            raise TaskPackError(f"{path}: {here}: expected a list of {{'value': ...}}, got {_show(contents)}")
        values = []
        for k, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("value"), str):
                raise TaskPackError(
                    f"{path}: {here}[{k}]: expected an object with a string 'value', got {_show(content)}"
                )
            v = option_value(content["value"])
            if v and v not in values:
                values.append(v)
        if values:
            options[name.lower()] = values
    return options


def _reviews(path: Path | None) -> dict[str, tuple[list[dict[str, Any]], float]]:
    if path is None:
        return {}
    data = _read_json(path, "reviews")
    if not isinstance(data, list):
        raise TaskPackError(
            f"{path}: expected a JSON list of {{'asin', 'reviews', 'average_rating'}}, got {_show(data)}"
        )
    out: dict[str, tuple[list[dict[str, Any]], float]] = {}
    for i, entry in enumerate(data):
        where = f"review entry [{i}]"
        if not isinstance(entry, dict):
            raise TaskPackError(f"{path}: {where}: expected an object, got {_show(entry)}")
        asin = _str(path, where, entry, "asin")
        assert asin is not None
        where = f"review entry [{i}] (asin {asin})"
        items = entry.get("reviews") or []
        if not isinstance(items, list):
            raise _bad(path, where, "reviews", "a list", items)
        reviews = []
        for k, r in enumerate(items):
            if not isinstance(r, dict):
                raise TaskPackError(f"{path}: {where}: reviews[{k}]: expected an object, got {_show(r)}")
            score = r.get("score", r.get("stars"))
            try:
                score = int(round(float(score)))
            except (TypeError, ValueError):
                raise _bad(path, f"{where}: reviews[{k}]", "score", "a number (or 'stars')", score) from None
            body = r.get("body", r.get("review", "")) or ""
            title = r.get("title") or ""
            if not isinstance(body, str) or not isinstance(title, str):
                raise _bad(path, f"{where}: reviews[{k}]", "body", "a string", body)
            reviews.append({"score": score, "text": f"{title}: {body}" if title else body})
        rating = entry.get("average_rating")
        try:
            rating = float(rating) if rating not in (None, "", "N.A.") else 0.0
        except (TypeError, ValueError):
            raise _bad(path, where, "average_rating", "a number", rating) from None
        out[asin] = (reviews, rating)
    return out


def _dict_of(path: Path, data: Any, what: str, example: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TaskPackError(f"{path}: the {what} file must be a JSON object {example}, got {_show(data)}")
    return data


def read_products(
    products_path: Path,
    attributes_path: Path,
    reviews_path: Path | None = None,
    num_products: int | None = None,
    seed: int = 0,
) -> tuple[list[Product], dict[str, dict[str, Any]], dict[str, int]]:
    """WebShop's `load_products`: the catalog, the raw product entries by asin, and the skip counts."""
    data = _read_json(products_path, "products")
    if not isinstance(data, list):
        raise TaskPackError(
            f"{products_path}: the products file (items_shuffle.json) must be a JSON list of products, got {_show(data)}"
        )
    attributes = _dict_of(
        attributes_path,
        _read_json(attributes_path, "attributes"),
        "attributes",
        '{asin: {"attributes": [...], "instruction": ..., "instruction_attributes": [...]}}',
    )
    reviews = _reviews(reviews_path)
    rng = random.Random(seed)
    if num_products is not None:
        data = data[:num_products]  # engine.py: the file is already shuffled
    products: list[Product] = []
    raw_by_asin: dict[str, dict[str, Any]] = {}
    skipped: Counter[str] = Counter()
    for i, p in enumerate(data):
        where = f"product [{i}]"
        if not isinstance(p, dict):
            raise TaskPackError(f"{products_path}: {where}: expected an object, got {_show(p)}")
        asin = p.get("asin")
        if not isinstance(asin, str):
            raise _bad(products_path, where, "asin", "a string", asin)
        where = f"product [{i}] (asin {asin})"
        if asin == "nan" or len(asin) > 10:
            skipped["asin 'nan' or longer than 10 characters"] += 1
            continue
        if asin in raw_by_asin:
            skipped["repeated asin"] += 1
            continue
        title = _str(products_path, where, p, "name")
        query = _str(products_path, where, p, "query")
        category = _str(products_path, where, p, "category")
        product_category = _str(products_path, where, p, "product_category")
        description = _str(products_path, where, p, "full_description", required=False) or ""
        bullets = p.get("small_description")
        if bullets is None:
            features: list[str] = []
        elif isinstance(bullets, str):
            features = [bullets]
        elif isinstance(bullets, list) and all(isinstance(b, str) for b in bullets):
            features = list(bullets)
        else:
            raise _bad(products_path, where, "small_description", "a string or a list of strings", bullets)
        pricing = parse_pricing(p.get("pricing"), products_path, where)
        # generate_product_prices: one price, or a uniform draw within the range
        price = pricing[0] if len(pricing) == 1 else rng.uniform(pricing[0], pricing[1])
        options = _options(products_path, where, p.get("customization_options"))
        entry = attributes.get(asin)
        if entry is not None and not isinstance(entry, dict):
            raise TaskPackError(f"{attributes_path}: asin {asin}: expected an object, got {_show(entry)}")
        attrs = _str_list(attributes_path, f"asin {asin}", entry or {}, "attributes") or [DUMMY_ATTR]
        revs, rating = reviews.get(asin, ([], 0.0))
        assert (
            title is not None and query is not None and category is not None and product_category is not None
        )
        products.append(
            Product(
                asin=asin,
                title=title,
                name=query.lower().strip(),
                query=query.lower().strip(),
                category=category,
                product_category=product_category,
                attributes=attrs,
                options=options,
                price=round(float(price), 2),
                rating=rating,
                description=description,
                features=features,
                reviews=revs,
            )
        )
        raw_by_asin[asin] = entry or {}
    if not products:
        raise TaskPackError(f"{products_path}: no usable products (skipped: {dict(skipped)})")
    return products, raw_by_asin, dict(skipped)


def _price_bound(rng: random.Random, price: float) -> tuple[float, str]:
    above = [p for p in PRICE_RANGE if p > price][:4]
    if len(above) >= 2:
        _, upper = sorted(rng.sample(above, 2))
        return upper, f", and price lower than {upper:.2f} dollars"
    return float(NO_BOUND), ""


def human_goals(
    catalog: Catalog, goals_path: Path, rng: random.Random
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """`get_human_goals`: one goal per human instruction, in catalog order (goal options as a list of values)."""
    data = _dict_of(
        goals_path,
        _read_json(goals_path, "goals"),
        "goals (items_human_ins.json)",
        '{asin: [{"instruction", "instruction_attributes", "instruction_options"}]}',
    )
    goals: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for p in catalog.products:
        items = data.get(p.asin)
        if items is None:
            continue
        if not isinstance(items, list):
            raise TaskPackError(
                f"{goals_path}: asin {p.asin}: expected a list of instructions, got {_show(items)}"
            )
        for k, ins in enumerate(items):
            where = f"asin {p.asin}: instruction [{k}]"
            if not isinstance(ins, dict):
                raise TaskPackError(f"{goals_path}: {where}: expected an object, got {_show(ins)}")
            text = _str(goals_path, where, ins, "instruction")
            attrs = _str_list(goals_path, where, ins, "instruction_attributes")
            opts = _str_list(goals_path, where, ins, "instruction_options")
            if not attrs:
                dropped["no instruction_attributes (WebShop skips these too)"] += 1
                continue
            upper, price_text = _price_bound(rng, p.price)
            assert text is not None
            goals.append(_goal(p, text.strip(".") + price_text, attrs, upper, opts))
    return goals, dropped


def synthetic_goals(
    catalog: Catalog, raw: dict[str, dict[str, Any]], attributes_path: Path, rng: random.Random
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """`get_synthetic_goals`: for each product with an `instruction`, one goal per combination of its options."""
    goals: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for p in catalog.products:
        entry = raw.get(p.asin) or {}
        text = _str(attributes_path, f"asin {p.asin}", entry, "instruction", required=False)
        if text is None:
            continue
        attrs = _str_list(attributes_path, f"asin {p.asin}", entry, "instruction_attributes")
        if not attrs:
            dropped["no instruction_attributes (WebShop asserts there are some)"] += 1
            continue
        upper, price_text = _price_bound(rng, p.price)
        names = sorted(p.options)
        for combination in itertools.product(*(p.options[n] for n in names)):
            goal_options = dict(zip(names, combination))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = " with " + option_text if option_text else ""
            goals.append(_goal(p, f"{text}{option_text}{price_text}", attrs, upper, goal_options))
    return goals, dropped


def _goal(
    p: Product, instruction_text: str, attrs: list[str], upper: float, goal_options: Any
) -> dict[str, Any]:
    """One goal record, as WebShop's goal builders make it."""
    return {
        "asin": p.asin,
        "category": p.category,
        "query": p.query,
        "name": p.title,
        "product_category": p.product_category,
        "instruction_text": instruction_text,
        "attributes": attrs,
        "price_upper": upper,
        "goal_options": goal_options,
    }


def _named_options(product: Product, values: list[str] | dict[str, str]) -> dict[str, str] | str:
    """{option name: value} for a goal's option values, or the reason it cannot be expressed."""
    if isinstance(values, dict):
        return dict(values)
    named: dict[str, str] = {}
    for raw in values:
        v = option_value(raw)
        names = [n for n, vs in product.options.items() if v in vs]
        if not names:
            return "an instruction option the product does not offer"
        if names[0] in named:
            return "two instruction options for the same product option"
        named[names[0]] = v
    return named


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def _sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_webshop(
    products: str | Path,
    attributes: str | Path,
    out: str | Path,
    goals: str | Path | None = None,
    reviews: str | Path | None = None,
    name: str | None = None,
    num_products: int | None = None,
    seed: int = 0,
    force: bool = False,
) -> ImportReport:
    """Write a `shopping` task pack to `out` from WebShop's data files (see the module docstring)."""
    from turngym.envs.shopping.reward import type_lexicon, webshop_reward

    products_path, attributes_path = Path(products), Path(attributes)
    goals_path = Path(goals) if goals is not None else None
    reviews_path = Path(reviews) if reviews is not None else None
    out = Path(out)
    if num_products is not None and (isinstance(num_products, bool) or num_products < 1):
        raise TaskPackError(f"num_products must be a positive int, got {num_products!r}")
    if out.exists() and any(out.iterdir()) and not force:
        raise TaskPackError(f"{out}: the output folder exists and is not empty (pass force=True / --force)")
    catalog_products, raw, skipped = read_products(
        products_path, attributes_path, reviews_path, num_products, seed
    )
    catalog = Catalog(catalog_products, source=str(products_path))
    rng = random.Random(seed + 1)
    if goals_path is not None:
        goal_list, dropped_pre = human_goals(catalog, goals_path, rng)
    else:
        goal_list, dropped_pre = synthetic_goals(catalog, raw, attributes_path, rng)
    if not goal_list:
        what = (
            f"{goals_path} (human instructions)"
            if goals_path
            else f"{attributes_path} ('instruction' entries)"
        )
        raise TaskPackError(
            f"{what}: no goal for any of the {len(catalog)} products (dropped: {dict(dropped_pre)})"
        )
    random.Random(SHUFFLE_SEED).shuffle(goal_list)  # SimServer's random.seed(233); random.shuffle(goals)
    lexicon = type_lexicon(catalog)
    report = ImportReport(
        products=len(catalog),
        skipped_products=skipped,
        goal_source="human (items_human_ins.json)" if goals_path else "synthetic (get_synthetic_goals)",
    )
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, lo, hi in SPLITS:
        kept: list[dict[str, Any]] = []
        dropped: Counter[str] = Counter()
        for index in range(lo, len(goal_list) if hi is None else min(hi, len(goal_list))):
            goal = goal_list[index]
            product = catalog[goal["asin"]]
            options = _named_options(product, goal["goal_options"])
            if isinstance(options, str):
                dropped[options] += 1
                continue
            record = {"task_id": f"ws-{index}", **goal, "goal_options": options}
            reward, parts = webshop_reward(product, record, options, lexicon)
            if reward < 1.0 - 1e-9:
                reason = (
                    "the target lacks a goal attribute"
                    if parts["n_attr"] < len(record["attributes"])
                    else "buying the target earns less than 1"
                )
                dropped[reason] += 1
                continue
            kept.append(record)
        if kept:
            splits[split] = kept
        report.goals[split] = len(kept)
        if dropped:
            report.dropped_goals[split] = dict(sorted(dropped.items()))
    if dropped_pre:
        report.dropped_goals["before splitting"] = dict(sorted(dropped_pre.items()))
    if not splits:
        raise TaskPackError(
            f"none of the {len(goal_list)} goals can be won by buying its target: {report.dropped_goals}"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    catalog_file = "assets/products.jsonl.gz"
    _write_jsonl(out / catalog_file, [p.to_json() for p in catalog.products])
    files = {}
    for split, records in splits.items():
        files[split] = f"{split}.jsonl.gz" if len(records) > 500 else f"{split}.jsonl"
        _write_jsonl(out / files[split], records)
    manifest = {
        "name": name or out.resolve().name,
        "version": "1.0.0",
        "family": "shopping",
        "schema_version": 1,
        "splits": files,
        "license": "WebShop's data license (see https://github.com/princeton-nlp/WebShop)",
        "source": "turngym tasks import webshop",
        "description": f"WebShop's released data: {len(catalog)} products, {report.goal_source} goals, split as "
        "WebShop's baselines split them (test: goals 0-499, eval: 500-1499, train: the rest).",
        "catalog": {"file": catalog_file, "digest": catalog_digest(catalog.products)},
        "metadata": {
            "import": {
                **report.to_json(),
                "seed": seed,
                "num_products": num_products,
                "files": {
                    k: {"name": p.name, "sha256": _sha256(p)}
                    for k, p in (
                        ("products", products_path),
                        ("attributes", attributes_path),
                        ("goals", goals_path),
                        ("reviews", reviews_path),
                    )
                    if p is not None
                },
            }
        },
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


def register_cli(sub: Any) -> None:
    """`turngym tasks import webshop ...` (sub: the `tasks import` subparsers)."""
    p = sub.add_parser(
        "webshop",
        help="convert WebShop's data files (items_shuffle, items_ins_v2, items_human_ins) into a shopping pack",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--products", required=True, help="items_shuffle.json (or items_shuffle_1000.json)")
    p.add_argument("--attributes", required=True, help="items_ins_v2.json (or items_ins_v2_1000.json)")
    p.add_argument(
        "--goals", default=None, help="items_human_ins.json (human goals; default: synthetic goals)"
    )
    p.add_argument("--reviews", default=None, help="reviews.json (optional)")
    p.add_argument("--out", required=True, help="folder of the new pack")
    p.add_argument("--name", default=None, help="pack name (default: the folder name)")
    p.add_argument(
        "--num-products", type=int, default=None, help="use the first N products (as WebShop's --num)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the price draws WebShop leaves unseeded")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.set_defaults(import_fn=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from turngym.tasks.pack import validate_pack

    report = import_webshop(
        args.products,
        args.attributes,
        args.out,
        goals=args.goals,
        reviews=args.reviews,
        name=args.name,
        num_products=args.num_products,
        seed=args.seed,
        force=args.force,
    )
    counts = validate_pack(args.out)
    print(
        f"wrote {args.out}: {report.products} products, goals "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
        + (f"; left out: {report.dropped_goals}" if report.dropped_goals else "")
    )
    return 0
