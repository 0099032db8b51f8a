"""`turngym tasks import webshop`: WebShop's own data files (written here in its exact format: the field names and
nesting `web_agent_site/engine/engine.py:load_products` and `goal.py` read) become a shopping pack that
`tasks validate` accepts and the text, HTTP and browser shopping envs play, the oracle winning every task."""

from __future__ import annotations

import gzip
import json
import random
import urllib.request

import gymnasium as gym
import pytest

from turngym.cli import main as cli_main
from turngym.envs.shopping.server import ShopServer
from turngym.envs.shopping.webshop_import import import_webshop
from turngym.errors import TaskPackError
from turngym.tasks.pack import load_pack, validate_pack


def _opts(name_values: dict[str, list[str]]) -> dict[str, list[dict[str, str]]]:
    # an option whose contents are null is skipped by load_products
    return {
        name: None
        if vs is None
        else [
            {"value": v, "image": f"https://m.media-amazon.com/images/I/{name}{k}.jpg"}
            for k, v in enumerate(vs)
        ]
        for name, vs in name_values.items()
    }


def _product(asin, name, query, category, product_category, pricing, options, bullets, desc):
    # the fields of an items_shuffle.json entry (plus a few that load_products drops)
    return {
        "asin": asin,
        "name": name,
        "query": query,
        "category": category,
        "product_category": product_category,
        "full_description": desc,
        "small_description": bullets,
        "pricing": pricing,
        "list_price": "",
        "brand": "Brand",
        "images": [f"https://m.media-amazon.com/images/I/{asin}.jpg"],
        "customization_options": options,
        "product_information": {},
        "Rating": 0,
    }


PRODUCTS = [
    _product(
        "B09QKP7XQL",
        "Wireless Bluetooth Headphones Over Ear with Microphone, Foldable Stereo Headset",
        "headphones",
        "electronics",
        "Electronics › Headphones, Earbuds & Accessories › Headphones › Over-Ear Headphones",
        "$39.99",
        _opts({"Color": ["Blue", "Black"]}),
        ["Bluetooth 5.0 with 40 hours of playtime", "Soft protein earmuffs"],
        "Over-ear wireless headphones with a built-in microphone.",
    ),
    _product(
        "B08HEADSET",
        "Noise Cancelling Headphones, Wired Studio Headphones for Recording",
        "headphones",
        "electronics",
        "Electronics › Headphones, Earbuds & Accessories › Headphones › Over-Ear Headphones",
        "$25.99 - $31.50",
        _opts({"Color": ["Black", "White/Gold"]}),
        "Active noise cancelling; 3.5 mm cable",
        "Studio headphones.",
    ),
    _product(
        "B07SHIRT01",
        "Men's Casual Button Down Shirt Long Sleeve Slim Fit Dress Shirts",
        "men's shirts",
        "fashion",
        "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › Casual Button-Down Shirts",
        "$19.99 - $24.99",
        _opts({"Color": ["Navy/White", "Red Plaid"], "Size": ["Large", "X-Large"], "Fit Type": None}),
        ["Machine wash", "Button closure", "Long sleeve"],
        "A slim fit long sleeve shirt for men.",
    ),
    _product(
        "B01NOATTRS",
        "Running Shoes for Women, Lightweight Walking Sneakers",
        "women's running shoes",
        "fashion",
        "Clothing, Shoes & Jewelry › Women › Shoes › Athletic › Running",
        "",
        _opts({"Size": ["7", "8", "9"]}),
        None,
        None,
    ),
    _product(
        "nan", "broken", "x", "x", "x › y", "$1.00", None, [], ""
    ),  # skipped by load_products (asin 'nan')
    _product(
        "B09QKP7XQL", "duplicate", "x", "x", "x › y", "$1.00", None, [], ""
    ),  # skipped by load_products (repeated asin)
]

ATTRIBUTES = {  # items_ins_v2.json
    "B09QKP7XQL": {
        "attributes": ["wireless bluetooth", "stereo", "foldable"],
        "instruction": "i need foldable wireless bluetooth headphones",
        "instruction_attributes": ["wireless bluetooth", "foldable"],
    },
    "B08HEADSET": {
        "attributes": ["noise cancelling", "wired"],
        "instruction": "i want noise cancelling headphones",
        "instruction_attributes": ["noise cancelling"],
    },
    "B07SHIRT01": {
        "attributes": ["machine wash", "long sleeve", "slim fit", "button closure"],
        "instruction": "find me a slim fit long sleeve shirt for men",
        "instruction_attributes": ["slim fit", "long sleeve"],
    },
}

HUMAN = {  # items_human_ins.json
    "B09QKP7XQL": [
        {
            "asin": "B09QKP7XQL",
            "instruction": "i'm looking for blue foldable wireless bluetooth headphones.",
            "instruction_attributes": ["wireless bluetooth", "foldable"],
            "instruction_options": ["blue"],
            "assignment_id": "3A1",
            "worker_id": "W1",
        },
        {  # the product offers no red: left out
            "asin": "B09QKP7XQL",
            "instruction": "i want red wireless headphones",
            "instruction_attributes": ["wireless bluetooth"],
            "instruction_options": ["red"],
        },
        {  # no attributes: WebShop skips it
            "asin": "B09QKP7XQL",
            "instruction": "headphones please",
            "instruction_attributes": [],
            "instruction_options": [],
        },
    ],
    "B08HEADSET": [
        {
            "instruction": "i need white/gold noise cancelling headphones",
            "instruction_attributes": ["noise cancelling"],
            "instruction_options": ["White/Gold"],
        },
        {  # the product is not waterproof: buying it earns less than 1, left out
            "instruction": "i need waterproof noise cancelling headphones",
            "instruction_attributes": ["noise cancelling", "waterproof"],
            "instruction_options": [],
        },
    ],
    "B07SHIRT01": [
        {
            "instruction": "find me a slim fit long sleeve men's shirt in navy/white, size x-large",
            "instruction_attributes": ["slim fit", "long sleeve"],
            "instruction_options": ["navy/white", "x-large"],
        }
    ],
    "B01NOATTRS": [
        {
            "instruction": "lightweight women's running shoes in size 8",
            "instruction_attributes": ["lightweight"],
            "instruction_options": ["8"],
        }
    ],
}

REVIEWS = [  # reviews.json
    {
        "asin": "B09QKP7XQL",
        "average_rating": 4.5,
        "reviews": [
            {"title": "Great", "stars": "5", "review": "Good sound."},
            {"title": "", "score": 4, "body": "Comfortable"},
        ],
    }
]


def _write(folder, products=PRODUCTS, attributes=ATTRIBUTES, human=HUMAN, reviews=REVIEWS):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, name, data in (
        ("products", "items_shuffle_1000.json", products),
        ("attributes", "items_ins_v2_1000.json", attributes),
        ("goals", "items_human_ins.json", human),
        ("reviews", "reviews.json", reviews),
    ):
        paths[key] = folder / name
        paths[key].write_text(json.dumps(data, indent=1), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def human_pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("webshop")
    paths = _write(root / "data")
    report = import_webshop(**paths, out=root / "pack", name="webshop-real-sample")
    return root / "pack", report


def test_products_and_human_goals_keep_webshops_fields(human_pack):
    out, report = human_pack
    assert report.products == 4
    assert report.skipped_products == {"asin 'nan' or longer than 10 characters": 1, "repeated asin": 1}
    with gzip.open(out / "assets/products.jsonl.gz", "rt") as f:
        products = {p["asin"]: p for p in map(json.loads, f)}
    head = products["B09QKP7XQL"]
    assert head["title"].startswith("Wireless Bluetooth Headphones") and head["query"] == "headphones"
    assert head["price"] == 39.99 and head["options"] == {"color": ["blue", "black"]}
    assert head["attributes"] == ["wireless bluetooth", "stereo", "foldable"]
    assert head["rating"] == 4.5
    assert head["reviews"] == [
        {"score": 5, "text": "Great: Good sound."},
        {"score": 4, "text": "Comfortable"},
    ]
    assert 25.99 <= products["B08HEADSET"]["price"] <= 31.50  # a draw within the "$25.99 - $31.50" range
    assert products["B08HEADSET"]["options"]["color"] == ["black", "white | gold"]  # engine.py: '/' -> ' | '
    assert products["B08HEADSET"]["features"] == ["Active noise cancelling; 3.5 mm cable"]
    shirt = products["B07SHIRT01"]
    assert shirt["options"] == {"color": ["navy | white", "red plaid"], "size": ["large", "x-large"]}
    shoes = products["B01NOATTRS"]
    assert shoes["attributes"] == ["DUMMY_ATTR"] and shoes["price"] == 100.0 and shoes["description"] == ""

    pack = load_pack(str(out))
    assert pack.splits == ["test"]  # 4 goals: all among WebShop's first 500
    records = {r["asin"]: r for r in pack.tasks("test")}
    assert set(records) == {"B09QKP7XQL", "B08HEADSET", "B07SHIRT01", "B01NOATTRS"}
    r = records["B09QKP7XQL"]
    assert r["goal_options"] == {"color": "blue"} and r["attributes"] == ["wireless bluetooth", "foldable"]
    assert r["name"] == head["title"] and r["category"] == "electronics"
    assert r["product_category"] == head["product_category"]
    # goal.py: the instruction without its final '.', then the price bound drawn from the next four multiples of 10
    assert r["instruction_text"].startswith(
        "i'm looking for blue foldable wireless bluetooth headphones, and price"
    )
    assert r["price_upper"] in (50.0, 60.0, 70.0) and r["instruction_text"].endswith(
        f"price lower than {r['price_upper']:.2f} dollars"
    )
    assert records["B07SHIRT01"]["goal_options"] == {"color": "navy | white", "size": "x-large"}
    assert report.dropped_goals == {
        "test": {
            "an instruction option the product does not offer": 1,
            "the target lacks a goal attribute": 1,
        },
        "before splitting": {"no instruction_attributes (WebShop skips these too)": 1},
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metadata"]["import"]["goals"] == {"test": 4, "eval": 0, "train": 0}
    assert manifest["metadata"]["import"]["files"]["goals"]["name"] == "items_human_ins.json"
    assert validate_pack(str(out)) == {"test": 4}


def test_the_same_files_and_seed_give_the_same_pack(human_pack, tmp_path):
    out, _ = human_pack
    again = tmp_path / "again"
    import_webshop(**_write(tmp_path / "data"), out=again, name="webshop-real-sample")
    for f in ("test.jsonl", "assets/products.jsonl.gz"):
        assert (again / f).read_bytes() == (out / f).read_bytes()


def _play(env, task_id, split="test"):
    obs, info = env.reset(seed=0, options={"task_id": task_id, "split": split})
    for _ in range(env.unwrapped.max_turns):
        obs, reward, term, trunc, info = env.step(env.unwrapped.expert_action())
        assert not info["invalid_action"], info.get("error")
        if term or trunc:
            return reward, info
    raise AssertionError("the oracle did not finish")


def test_text_env_plays_the_imported_pack_and_the_oracle_wins_every_task(human_pack):
    out, _ = human_pack
    env = gym.make("turngym/WebShop-v0", task_pack=str(out), split="test")
    try:
        ids = load_pack(str(out)).task_ids("test")
        for tid in ids:
            reward, info = _play(env, tid)
            assert reward == 1.0 and info["success"], (tid, info)
        # a wrong buy is scored by WebShop's formula, not 1: the shirt bought in the wrong colour and size
        shirt = next(r["task_id"] for r in load_pack(str(out)).tasks("test") if r["asin"] == "B07SHIRT01")
        env.reset(options={"task_id": shirt})
        for action in (
            "search[men's shirt slim fit long sleeve]",
            "click[b07shirt01]",
            "click[red plaid]",
            "click[large]",
            "click[buy now]",
        ):
            obs, reward, term, trunc, info = env.step(action)
        assert term and reward == pytest.approx(3 / 5)  # 2 attributes + price of 2 + 2 + 1
    finally:
        env.close()


def test_http_store_serves_the_imported_pack(human_pack):
    out, _ = human_pack
    with ShopServer(str(out), split="test") as shop:
        task = next(t for t in shop.tasks if t["asin"] == "B08HEADSET")
        req = urllib.request.Request(
            f"{shop.url}/api/sessions", data=json.dumps({"task_id": task["task_id"]}).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            sess = json.loads(r.read())
        sid = sess["session_id"]
        with urllib.request.urlopen(
            f"{shop.url}/{sid}/search?q=noise+cancelling+headphones", timeout=30
        ) as r:
            assert "B08HEADSET" in r.read().decode()
        buy = urllib.request.Request(
            f"{shop.url}/{sid}/buy/B08HEADSET?opt=color:white+%7C+gold", method="POST"
        )
        urllib.request.urlopen(buy, timeout=30).read()
        with urllib.request.urlopen(f"{shop.url}/api/sessions/{sid}", timeout=30) as r:
            state = json.loads(r.read())
        assert state["success"] and state["reward"] == 1.0


@pytest.mark.browser
def test_browser_env_plays_the_imported_pack(human_pack):
    from tests.envs.web.conftest import needs_browser

    if needs_browser.args[0]:
        pytest.skip(needs_browser.kwargs["reason"])
    out, _ = human_pack
    env = gym.make("turngym/WebShopBrowser-v0", task_pack=str(out), split="test")
    try:
        tid = load_pack(str(out)).task_ids("test")[0]
        reward, info = _play(env, tid)
        assert reward == 1.0 and info["success"]
    finally:
        env.close()


def test_synthetic_goals_are_split_as_webshop_splits_them(tmp_path):
    # 20 products x 8 colours x 10 sizes = 1600 synthetic goals (get_synthetic_goals: one per option combination),
    # shuffled by random.seed(233) and split test 0-499 / eval 500-1499 / train 1500+ (baseline_models/env.py)
    colours = ["red", "blue", "green", "black", "white", "grey", "pink", "navy"]
    sizes = [str(s) for s in range(5, 15)]
    products, attributes = [], {}
    for i in range(20):
        asin = f"B0SOCK{i:04d}"
        products.append(
            _product(
                asin,
                f"Cotton Crew Socks Model {i}, Cushioned Athletic Socks",
                "socks",
                "fashion",
                "Clothing, Shoes & Jewelry › Men › Clothing › Socks",
                f"${5 + i}.99",
                _opts({"Color": colours, "Size": sizes}),
                ["Cotton blend"],
                "Cushioned socks.",
            )
        )
        attributes[asin] = {
            "attributes": ["cotton", "cushioned"],
            "instruction": f"i need cushioned cotton socks model {i}",
            "instruction_attributes": ["cushioned", "cotton"],
        }
    paths = _write(tmp_path / "data", products=products, attributes=attributes)
    report = import_webshop(paths["products"], paths["attributes"], tmp_path / "pack")
    assert report.goals == {"test": 500, "eval": 1000, "train": 100} and not report.dropped_goals
    # WebShop's own order: products in file order, option combinations over sorted option names, then the shuffle
    order = [(p["asin"], c, s) for p in products for c in colours for s in sizes]
    random.seed(233)
    random.shuffle(order)
    pack = load_pack(str(tmp_path / "pack"))
    for split, lo in (("test", 0), ("eval", 500), ("train", 1500)):
        recs = pack.tasks(split)
        for k, rec in enumerate(recs):
            index = int(rec["task_id"].removeprefix("ws-"))
            assert index == lo + k
            asin, colour, size = order[index]
            assert (rec["asin"], rec["goal_options"]) == (asin, {"color": colour, "size": size})
            assert f" with color: {colour}, and size: {size}, and price lower than" in rec["instruction_text"]
    env = gym.make("turngym/WebShop-v0", task_pack=str(tmp_path / "pack"), split="train")
    try:
        for tid in pack.task_ids("train")[:5]:
            reward, _ = _play(env, tid, split="train")
            assert reward == 1.0
    finally:
        env.close()


def test_cli_import_then_validate(tmp_path, capsys):
    paths = _write(tmp_path / "data")
    argv = ["tasks", "import", "webshop", "--out", str(tmp_path / "pack")]
    for key in ("products", "attributes", "goals"):
        argv += [f"--{key}", str(paths[key])]
    assert cli_main(argv) == 0
    assert "4 products" in capsys.readouterr().out
    assert cli_main(["tasks", "validate", str(tmp_path / "pack")]) == 0
    assert "ok:" in capsys.readouterr().out
    assert cli_main(argv) == 2  # the folder is not empty now
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, where, match",
    [
        (
            lambda d: d["products"][0].update(pricing=12.5),
            "items_shuffle",
            r"product \[0\] \(asin B09QKP7XQL\): field 'pricing'",
        ),
        (lambda d: d["products"][1].update(pricing="$abc"), "items_shuffle", r"product \[1\].*'pricing'"),
        (
            lambda d: d["products"][2].pop("name"),
            "items_shuffle",
            r"product \[2\] \(asin B07SHIRT01\): missing field 'name'",
        ),
        (
            lambda d: d["products"][2].update(customization_options={"Color": "red"}),
            "items_shuffle",
            r"customization_options\['Color'\]",
        ),
        (
            lambda d: d["products"][2].update(customization_options={"Color": [{"image": "x"}]}),
            "items_shuffle",
            r"customization_options\['Color'\]\[0\]: expected an object with a string 'value'",
        ),
        (
            lambda d: d["products"][0].update(small_description=[1, 2]),
            "items_shuffle",
            r"field 'small_description'",
        ),
        (lambda d: d["products"][0].update(asin=7), "items_shuffle", r"product \[0\]: field 'asin'"),
        (lambda d: d.update(products={"B0": {}}), "items_shuffle", r"must be a JSON list of products"),
        (
            lambda d: d["attributes"]["B09QKP7XQL"].update(attributes="stereo"),
            "items_ins_v2",
            r"asin B09QKP7XQL: field 'attributes': expected a list of strings",
        ),
        (lambda d: d.update(attributes=[]), "items_ins_v2", r"must be a JSON object"),
        (
            lambda d: d["human"]["B07SHIRT01"][0].update(instruction_options="x-large"),
            "items_human_ins",
            r"asin B07SHIRT01: instruction \[0\]: field 'instruction_options'",
        ),
        (
            lambda d: d["human"]["B07SHIRT01"][0].pop("instruction"),
            "items_human_ins",
            r"missing field 'instruction'",
        ),
        (
            lambda d: d["human"].update(B07SHIRT01="find a shirt"),
            "items_human_ins",
            r"asin B07SHIRT01: expected a list of instructions",
        ),
        (
            lambda d: d["reviews"][0]["reviews"][0].update(stars="five"),
            "reviews",
            r"reviews\[0\]: field 'score'",
        ),
    ],
)
def test_bad_files_name_file_and_field(tmp_path, edit, where, match):
    data = json.loads(
        json.dumps({"products": PRODUCTS, "attributes": ATTRIBUTES, "human": HUMAN, "reviews": REVIEWS})
    )
    edit(data)
    paths = _write(tmp_path / "data", **data)
    with pytest.raises(TaskPackError, match=match) as exc:
        import_webshop(**paths, out=tmp_path / "pack")
    assert where in str(exc.value)
    assert not (tmp_path / "pack").exists()  # nothing half-written


def test_unreadable_files_are_named(tmp_path):
    paths = _write(tmp_path / "data")
    paths["products"].write_text('[{"asin": "B1",\n "name": }]')
    with pytest.raises(TaskPackError, match=r"items_shuffle_1000.json:2:10: not valid JSON"):
        import_webshop(**paths, out=tmp_path / "pack")
    paths["products"].write_bytes(b'[{"asin": "\xff"}]')
    with pytest.raises(TaskPackError, match=r"items_shuffle_1000.json:1: invalid UTF-8"):
        import_webshop(**paths, out=tmp_path / "pack")
    paths["products"].unlink()
    with pytest.raises(TaskPackError, match=r"items_shuffle_1000.json: the products file does not exist"):
        import_webshop(**paths, out=tmp_path / "pack")
    # goals that no product in the file has
    paths = _write(tmp_path / "data2", human={"B000000000": HUMAN["B07SHIRT01"]})
    with pytest.raises(TaskPackError, match="no goal for any of the 4 products"):
        import_webshop(**paths, out=tmp_path / "pack")
