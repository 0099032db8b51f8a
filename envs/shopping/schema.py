"""Task-record schemas of the shopping families: `shopping` (WebShop-v0, WebShopBrowser-v0) and `shopassistant`.

Both read a product catalog named by the manifest's `catalog` field. Loading a pack loads the catalog (a missing
file, a broken product or a digest mismatch is an error) and checks every record against it: the target `asin`
exists, every goal option is one the product offers, and buying (or recommending) the target with the goal's
options succeeds, so the scripted expert can always win.
"""

from __future__ import annotations

from typing import Any

from turngym.envs.shopping.catalog import Catalog, Product, load_catalog
from turngym.envs.shopping.reward import attribute_matches, webshop_reward
from turngym.envs.shopping.vocab import TYPES
from turngym.errors import TaskPackError
from turngym.tasks.pack import MANIFEST, Field, FieldError, TaskPack, TaskSchema, check_fields

CATALOG_FIELD = Field(
    dict,
    doc='the products: `{"file": PATH}` (JSON Lines inside the pack, `.jsonl` or `.jsonl.gz`) or '
    '`{"generator": {"n": N, "seed": S}}`; optional `"digest"` (sha256 the catalog must have)',
    example={"file": "assets/products.jsonl.gz"},
)
_CATALOG_SPEC = {
    "file": Field(str, required=False),
    "generator": Field(dict, required=False),
    "digest": Field(str, required=False),
}
_GENERATOR_SPEC = {"n": Field(int, required=False), "seed": Field(int, required=False)}


def prepare_catalog(pack: TaskPack) -> tuple[Catalog, frozenset[str]]:
    """The pack's catalog and its product-type lexicon (the reward's title-noun vocabulary)."""
    from turngym.envs.shopping.text_env import lexicon_for

    where = f"{pack.root / MANIFEST}: field 'catalog'"
    spec = pack.manifest["catalog"]
    check_fields(spec, _CATALOG_SPEC, where, "catalog")
    if ("file" in spec) == ("generator" in spec):
        raise TaskPackError(f"{where}: needs exactly one of 'file' and 'generator', got keys {sorted(spec)}")
    if "file" in spec:
        pack.path(spec["file"], f"{where}.file")
    else:
        gen = spec["generator"]
        check_fields(gen, _GENERATOR_SPEC, f"{where}.generator", "catalog generator")
        if gen.get("n", len(TYPES)) < len(TYPES):
            raise TaskPackError(f"{where}.generator: n must be at least {len(TYPES)} (one product per type)")
    try:
        catalog = load_catalog(spec, pack.root)
    except TaskPackError as exc:
        raise TaskPackError(f"{where}: {exc}") from None
    return catalog, lexicon_for(catalog)


def _target(record: dict[str, Any], catalog: Catalog) -> Product:
    asin = record["asin"]
    if asin not in catalog:
        raise FieldError(
            "asin", f"{asin!r} is not in the catalog ({catalog.source}, {len(catalog)} products)"
        )
    return catalog[asin]


def _offered(product: Product, options: dict[str, Any], field: str) -> None:
    for name, value in options.items():
        if name not in product.options:
            raise FieldError(
                field,
                f"product {product.asin} has no option {name!r}; its options are {sorted(product.options)}",
            )
        if value not in product.options[name]:
            raise FieldError(
                field, f"product {product.asin} offers {name} {product.options[name]}, not {value!r}"
            )


def check_webshop(record: dict[str, Any], context: tuple[Catalog, frozenset[str]]) -> None:
    """The target exists, offers the goal options, and buying it with them earns reward 1."""
    catalog, lexicon = context
    product = _target(record, catalog)
    _offered(product, record["goal_options"], "goal_options")
    reward, parts = webshop_reward(product, record, record["goal_options"], lexicon)
    if reward >= 1.0 - 1e-9:
        return
    if not parts["r_price"]:
        field, why = "price_upper", f"the target costs {product.price}"
    elif parts["n_attr"] < len(record["attributes"]):
        field, why = "attributes", f"the target {product.asin} matches {parts['n_attr']} of them"
    else:
        field, why = (
            "query",
            f"the target does not match the goal's type (query, name, product_category: {parts})",
        )
    raise FieldError(field, f"buying the target with the goal options earns {reward:.2f}, not 1: {why}")


def check_assistant(record: dict[str, Any], context: tuple[Catalog, frozenset[str]]) -> None:
    """The target exists and a customer with this profile accepts it with the wanted options."""
    product = _target(record, context[0])
    if record["query"] != product.query:
        raise FieldError("query", f"{record['query']!r} is not the target's type {product.query!r}")
    if record["budget"] < product.price:
        raise FieldError("budget", f"{record['budget']} is below the target's price {product.price}")
    for attr in record["must_have"]:
        if attribute_matches(product, [attr]) == 0:
            raise FieldError("must_have", f"the target {product.asin} does not have {attr!r}")
    extra = [a for a in record["revealed"] if a not in record["must_have"]]
    if extra:
        raise FieldError("revealed", f"{extra} are not in must_have {record['must_have']}")
    _offered(product, record["preferences"], "preferences")
    change = record["change"]
    if change:
        if sorted(change) != ["option", "to"] or not all(isinstance(v, str) for v in change.values()):
            raise FieldError(
                "change", f"expected {{}} or {{'option': NAME, 'to': VALUE}}, got {change!r:.80}"
            )
        _offered(product, {change["option"]: change["to"]}, "change")
    if record["patience"] < 1:
        raise FieldError("patience", f"must be at least 1, got {record['patience']}")


WEBSHOP_SCHEMA = TaskSchema(
    "shopping",
    {
        "asin": Field(str, doc="the target product's asin (in the catalog)", example="B07PN9NWZ3"),
        "instruction_text": Field(
            str,
            doc="the instruction shown to the agent",
            example="i am looking for 4 tier shoe rack, in grey color, under 90.00 dollars",
        ),
        "query": Field(str, doc="the target's product type (for the type reward)", example="shoe rack"),
        "name": Field(
            str,
            doc="the target's title (for the title-noun overlap)",
            example="Everlane Entryway Shoe Rack - Bamboo, 4 Tier",
        ),
        "product_category": Field(
            str,
            doc="the target's category path 'A › B › C'",
            example="Home & Kitchen › Storage & Organization",
        ),
        "attributes": Field(list, items=str, doc="goal attributes the target has", example=["4 tier"]),
        "goal_options": Field(
            dict, items=str, doc="option name → value the target offers", example={"color": "grey"}
        ),
        "price_upper": Field(float, doc="price bound in dollars (<= 0: none)", example=90.0),
        "category": Field(
            str, required=False, doc="top-level category, for reports", example="Home & Kitchen"
        ),
    },
    manifest={"catalog": CATALOG_FIELD},
    prepare=prepare_catalog,
    check=check_webshop,
    doc="the manifest's catalog loads (file inside the pack, every product well-formed, digest equal); `asin` is "
    "in it; every goal option is one the product offers; buying the target with the goal options earns reward 1, "
    "so the oracle can win.",
)

ASSISTANT_SCHEMA = TaskSchema(
    "shopassistant",
    {
        "asin": Field(str, doc="a product that satisfies the profile (in the catalog)", example="B003CXH9ET"),
        "query": Field(str, doc="the wanted product type (the target's `query`)", example="usb c cable"),
        "noun": Field(str, doc="how the customer names it", example="charger cord"),
        "opening": Field(
            str, doc="the customer's first message", example="Hi! I'm looking for 60w charger cord."
        ),
        "must_have": Field(list, items=str, doc="attributes the product must have", example=["60w"]),
        "revealed": Field(list, items=str, doc="must-haves stated in the opening", example=["60w"]),
        "preferences": Field(
            dict,
            items=str,
            doc="option name → wanted value (offered by the target)",
            example={"color": "grey"},
        ),
        "budget": Field(float, doc="maximum price in dollars (at least the target's)", example=50.0),
        "change": Field(
            dict,
            items=str,
            doc="{} or {'option', 'to'}: a change of mind at the first recommendation",
            example={"option": "color", "to": "black"},
        ),
        "patience": Field(int, doc="rejections before the customer leaves (>= 1)", example=3),
    },
    manifest={"catalog": CATALOG_FIELD},
    prepare=prepare_catalog,
    check=check_assistant,
    doc="the manifest's catalog loads; `asin` is in it, `query` is its type, `budget` covers its price, it has "
    "every `must_have`; `revealed` is part of `must_have`; `preferences` and `change` name options it offers; "
    "`patience` >= 1.",
)
