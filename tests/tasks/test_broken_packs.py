"""A corpus of broken task packs, one per kind of mistake, for every env family.

Each pack is a small copy of a shipped pack with one thing broken. `turngym tasks validate`, `validate_pack` and an
env's `reset` must all refuse it with a `TaskPackError` naming the file (and line, record and field where there is
one); packs that are merely written differently (BOM, CRLF, gzip) must load.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from turngym.cli import main
from turngym.errors import TaskPackError
from turngym.registration import ENVS
from turngym.tasks.pack import BUILTIN_DIR, family_schema, find_packs, validate_pack

# family -> (shipped pack, split) the base packs copy their first records from
SOURCES = {
    "alfworld": [("alfworld-gen", "valid_seen")],
    "coding": [("humaneval", "test"), ("repo-repair", "test")],
    "embodied": [("embodied-search", "train")],
    "shopping": [("webshop-synth", "test")],
    "shopassistant": [("shopassistant-synth", "test")],
    "web": [("miniwob", "expert")],
}
ENV_CLASSES = {
    "alfworld": ("turngym.envs.alfworld.env", "ALFWorldEnv", {}),
    "coding": ("turngym.envs.coding.env", "CodingEnv", {}),
    "embodied": ("turngym.envs.embodied.env", "EmbodiedSearchEnv", {"image": False}),
    "shopping": ("turngym.envs.shopping.text_env", "WebShopEnv", {}),
    "shopassistant": ("turngym.envs.shopping.assistant_env", "ShopAssistantEnv", {}),
    "web": ("turngym.envs.web.miniwob", "MiniWoBEnv", {}),
}


def installed(family: str) -> bool:
    return any(e.installed() for e in ENVS if e.family == family)


@dataclass
class Draft:
    """A pack being written: its manifest, its `train` records, and raw edits made after writing."""

    root: Path
    family: str
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    after: list[Callable[[Path], None]] = field(default_factory=list)

    @property
    def split(self) -> Path:
        return self.root / "train.jsonl"

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "manifest.json").write_text(json.dumps(self.manifest, ensure_ascii=False))
        self.split.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records))
        for edit in self.after:
            edit(self.root)
        return self.root

    def append_line(self, raw: bytes) -> None:
        self.after.append(lambda root: open(root / "train.jsonl", "ab").write(raw + b"\n"))


def _shipped(pack: str, split: str, n: int) -> list[dict[str, Any]]:
    path = (
        BUILTIN_DIR / pack / json.loads((BUILTIN_DIR / pack / "manifest.json").read_text())["splits"][split]
    )
    opener = gzip.open if path.name.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def draft(tmp_path: Path, family: str) -> Draft:
    sources = SOURCES[family]
    records = []
    for pack, split in sources:
        records += _shipped(pack, split, 2 // len(sources))
    manifest = json.loads((BUILTIN_DIR / sources[0][0] / "manifest.json").read_text())
    manifest.update(name=f"broken-{family}", splits={"train": "train.jsonl"})
    return Draft(tmp_path / "pack", family, manifest, records)


def first_required(family: str) -> str:
    return next(n for n, f in family_schema(family).fields.items() if f.required)


def rec_error(d: Draft, line: int, fld: str, what: str = "") -> str:
    tid = d.records[line - 1]["task_id"]
    return rf"train\.jsonl:{line}: record {re.escape(repr(tid))}: field '{fld}': .*{what}"


# ---- mistakes any pack can make ------------------------------------------------------------------------------------
def bad_utf8_record(d: Draft) -> str:
    d.append_line(b'{"task_id": "u", "x": "caf\xe9"}')
    return r"train\.jsonl:3: not valid UTF-8 \(byte 0xe9 at column 27\)"


def bad_utf8_manifest(d: Draft) -> str:
    def edit(root: Path) -> None:
        raw = (root / "manifest.json").read_bytes()
        (root / "manifest.json").write_bytes(raw.replace(b'"version"', b'"v\xffersion"'))

    d.after.append(edit)
    return r"manifest\.json: not valid UTF-8 \(byte 0xff at column \d+\)"


def deep_record(d: Draft) -> str:
    d.append_line(b'{"task_id": "d", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}")
    return r"train\.jsonl:3: nested too deeply"


def deep_but_parseable(d: Draft) -> str:
    d.append_line(b'{"task_id": "d", "x": ' + b"[" * 40 + b"]" * 40 + b"}")
    return r"train\.jsonl:3: nested too deeply"


def deep_manifest(d: Draft) -> str:
    d.manifest["metadata"] = json.loads("[" * 50 + "]" * 50)
    return r"manifest\.json: nested too deeply"


def not_gzip(d: Draft) -> str:
    d.manifest["splits"]["train"] = "train.jsonl.gz"
    d.after.append(lambda root: (root / "train.jsonl").rename(root / "train.jsonl.gz"))
    return r"train\.jsonl\.gz: not a valid gzip file"


def truncated_gzip(d: Draft) -> str:
    def edit(root: Path) -> None:
        raw = gzip.compress((root / "train.jsonl").read_bytes())
        (root / "train.jsonl.gz").write_bytes(raw[: len(raw) - 12])

    d.manifest["splits"]["train"] = "train.jsonl.gz"
    d.after.append(edit)
    return r"train\.jsonl\.gz: not a valid gzip file"


def empty_split(d: Draft) -> str:
    d.after.append(lambda root: (root / "train.jsonl").write_text(""))
    return r"train\.jsonl: split 'train' of task pack 'broken-\w+' has no task records"


def empty_gzip(d: Draft) -> str:
    d.manifest["splits"]["train"] = "train.jsonl.gz"
    d.after.append(lambda root: (root / "train.jsonl.gz").write_bytes(b""))
    return r"train\.jsonl\.gz: split 'train' .* has no task records"


def split_is_folder(d: Draft) -> str:
    d.manifest["splits"]["train"] = "folder.jsonl"
    d.after.append(lambda root: (root / "folder.jsonl").mkdir())
    return r"folder\.jsonl: is a folder, not a file"


def manifest_is_folder(d: Draft) -> str:
    def edit(root: Path) -> None:
        (root / "manifest.json").unlink()
        (root / "manifest.json").mkdir()

    d.after.append(edit)
    return r"manifest\.json: is a folder, not a file"


def missing_split_file(d: Draft) -> str:
    d.manifest["splits"]["train"] = "nope.jsonl"
    return r"nope\.jsonl: does not exist"


def record_is_array(d: Draft) -> str:
    d.append_line(b'["task_id", "a"]')
    return r"train\.jsonl:3: a task record must be a JSON object, got list"


def record_is_number(d: Draft) -> str:
    d.append_line(b"42")
    return r"train\.jsonl:3: a task record must be a JSON object, got int"


def absolute_split(d: Draft) -> str:
    d.manifest["splits"]["train"] = "/etc/hostname"
    return r"manifest\.json: field 'splits\.train': '/etc/hostname' is absolute"


def dotdot_split(d: Draft) -> str:
    d.manifest["splits"]["train"] = "../outside.jsonl"
    d.after.append(
        lambda root: (root.parent / "outside.jsonl").write_text((root / "train.jsonl").read_text())
    )
    return r"manifest\.json: field 'splits\.train': '\.\./outside\.jsonl' leaves the task pack folder"


def symlink_split(d: Draft) -> str:
    def edit(root: Path) -> None:
        (root.parent / "outside.jsonl").write_text((root / "train.jsonl").read_text())
        (root / "train.jsonl").unlink()
        os.symlink(root.parent / "outside.jsonl", root / "train.jsonl")

    d.after.append(edit)
    return r"field 'splits\.train': 'train\.jsonl' leaves the task pack folder"


def split_not_jsonl(d: Draft) -> str:
    d.manifest["splits"]["train"] = "train.csv"
    return r"field 'splits\.train': 'train\.csv' is not a \.jsonl or \.jsonl\.gz file"


def schema_version_bool(d: Draft) -> str:
    d.manifest["schema_version"] = True
    return r"manifest\.json: field 'schema_version': expected integer, got bool"


def name_not_string(d: Draft) -> str:
    d.manifest["name"] = 5
    return r"manifest\.json: field 'name': expected string, got int"


def splits_not_object(d: Draft) -> str:
    d.manifest["splits"] = ["train.jsonl"]
    return r"manifest\.json: field 'splits': expected object, got list"


def split_file_not_string(d: Draft) -> str:
    d.manifest["splits"] = {"train": 3}
    return r"manifest\.json: field 'splits': key 'train': expected string, got int"


def misspelled_manifest_field(d: Draft) -> str:
    d.manifest["licence"] = "MIT"
    return r"manifest\.json: unknown field 'licence' \(did you mean 'license'\?\); manifest fields are \["


def misspelled_record_field(d: Draft) -> str:
    name = first_required(d.family)
    typo = name[:-2] + name[-1] + name[-2]
    d.records[1][typo] = d.records[1].pop(name)
    tid = re.escape(repr(d.records[1]["task_id"]))
    return rf"train\.jsonl:2: record {tid}: unknown field '{typo}' \(did you mean '{name}'\?\); \w+ record fields are \["


def missing_record_field(d: Draft) -> str:
    name = first_required(d.family)
    del d.records[1][name]
    tid = re.escape(repr(d.records[1]["task_id"]))
    return rf"train\.jsonl:2: record {tid}: missing field '{name}'"


def wrong_type_record_field(d: Draft) -> str:
    name = first_required(d.family)
    d.records[1][name] = 5 if isinstance(d.records[1][name], str) else "five"
    return rec_error(d, 2, name, "expected")


def json_error_column(d: Draft) -> str:
    line = '{"task_id": "c", "x": "' + "a" * 640 + '", oops}'
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(line)
    assert info.value.colno > 600
    d.append_line(line.encode())
    return rf"train\.jsonl:3: not valid JSON \(.* at column {info.value.colno}\)"


def manifest_json_error(d: Draft) -> str:
    def edit(root: Path) -> None:
        text = json.dumps(d.manifest, indent=2)
        (root / "manifest.json").write_text(text.replace('"version":', '"version"', 1))

    d.after.append(edit)
    return r"manifest\.json: not valid JSON \(Expecting ':' delimiter at line \d+ column \d+\)"


def nan_value(d: Draft) -> str:
    d.append_line(b'{"task_id": "n", "x": NaN}')
    return r"train\.jsonl:3: not valid JSON \(NaN is not valid JSON\)"


def duplicate_key(d: Draft) -> str:
    d.append_line(b'{"task_id": "k", "task_id": "k2"}')
    return r"train\.jsonl:3: not valid JSON \(key 'task_id' appears twice in one object\)"


def duplicate_task_id(d: Draft) -> str:
    d.records[1]["task_id"] = d.records[0]["task_id"]
    return r"train\.jsonl:2: record .*: duplicate task_id \(first on line 1\)"


GENERIC = [
    bad_utf8_record,
    bad_utf8_manifest,
    deep_record,
    deep_but_parseable,
    deep_manifest,
    not_gzip,
    truncated_gzip,
    empty_split,
    empty_gzip,
    split_is_folder,
    manifest_is_folder,
    missing_split_file,
    record_is_array,
    record_is_number,
    absolute_split,
    dotdot_split,
    symlink_split,
    split_not_jsonl,
    schema_version_bool,
    name_not_string,
    splits_not_object,
    split_file_not_string,
    misspelled_manifest_field,
    misspelled_record_field,
    missing_record_field,
    wrong_type_record_field,
    json_error_column,
    manifest_json_error,
    nan_value,
    duplicate_key,
    duplicate_task_id,
]


# ---- mistakes of one family -------------------------------------------------------------------------------------
def embodied_room_missing(d: Draft) -> str:
    d.records[1]["rooms"] = ["kitchen", "FloorPlan999"]
    return rec_error(d, 2, "rooms", r"item 1: 'FloorPlan999' is neither a room kind")


def embodied_room_kind_unknown(d: Draft) -> str:
    d.records[1]["rooms"] = ["garage"]
    return rec_error(d, 2, "rooms", "item 0: 'garage'")


def embodied_room_not_string(d: Draft) -> str:
    d.records[1]["rooms"] = ["kitchen", 3]
    return rec_error(d, 2, "rooms", "item 1: expected string, got int")


def embodied_no_rooms(d: Draft) -> str:
    d.records[1]["rooms"] = []
    return rec_error(d, 2, "rooms", "a house needs at least one room")


def embodied_target(d: Draft) -> str:
    d.records[1]["target"] = "mug"
    return rec_error(d, 2, "target", "object 'mug' must be '<colour> <type>'")


def embodied_request(d: Draft) -> str:
    d.records[1]["request"] = "Get me that thing."
    return rec_error(d, 2, "request", r".* does not name the target's type")


def embodied_range(d: Draft) -> str:
    d.records[1]["staleness"] = 1.5
    return rec_error(d, 2, "staleness", r"must be a probability in \[0, 1\]")


def embodied_episodes(d: Draft) -> str:
    d.records[1]["episode"] = 10**9
    return rec_error(d, 2, "episode", "must be 0..")


def _catalog_file(d: Draft, lines: list[str]) -> None:
    d.manifest["catalog"] = {"file": "products.jsonl"}
    d.after.append(lambda root: (root / "products.jsonl").write_text("".join(x + "\n" for x in lines)))


def _product() -> dict[str, Any]:
    return {
        "asin": "B1",
        "title": "Acme Mug - Blue",
        "name": "mug",
        "product_category": "Home › Kitchen › Mugs",
        "attributes": ["blue"],
        "price": 9.99,
    }


def shop_catalog_not_object(d: Draft) -> str:
    d.manifest["catalog"] = [1]
    return r"manifest\.json: field 'catalog': expected object, got list"


def shop_no_catalog(d: Draft) -> str:
    del d.manifest["catalog"]
    return r"manifest\.json: missing field 'catalog'"


def shop_catalog_keys(d: Draft) -> str:
    d.manifest["catalog"] = {"generator": {"n": 10000, "seed": 0}, "file": "x.jsonl"}
    return r"manifest\.json: field 'catalog': needs exactly one of 'file' and 'generator'"


def shop_catalog_generator_type(d: Draft) -> str:
    d.manifest["catalog"] = {"generator": {"n": "many"}}
    return r"manifest\.json: field 'catalog'\.generator: field 'n': expected integer, got str"


def shop_catalog_digest(d: Draft) -> str:
    d.manifest["catalog"]["digest"] = "0" * 64
    return r"manifest\.json: field 'catalog': catalog .* has digest"


def shop_catalog_missing_file(d: Draft) -> str:
    d.manifest["catalog"] = {"file": "assets/products.jsonl"}
    return r"manifest\.json: field 'catalog': .*products\.jsonl: does not exist"


def shop_catalog_outside(d: Draft) -> str:
    d.manifest["catalog"] = {"file": "../products.jsonl"}
    return r"manifest\.json: field 'catalog'\.file: '\.\./products\.jsonl' leaves the task pack folder"


def shop_catalog_broken_product(d: Draft) -> str:
    _catalog_file(d, [json.dumps(_product()), json.dumps({**_product(), "asin": "B2", "price": "cheap"})])
    return r"products\.jsonl:2: product 'B2': field 'price': expected number, got str"


def shop_catalog_bad_json(d: Draft) -> str:
    _catalog_file(d, [json.dumps(_product()), '{"asin": "B2",'])
    return r"products\.jsonl:2: not valid JSON"


def shop_catalog_unknown_field(d: Draft) -> str:
    _catalog_file(d, [json.dumps({**_product(), "colour": "blue"})])
    return r"products\.jsonl:1: product 'B1': unknown field 'colour'"


def shop_asin(d: Draft) -> str:
    d.records[1]["asin"] = "B000000000"
    return rec_error(d, 2, "asin", r"'B000000000' is not in the catalog")


def shop_option_value(d: Draft) -> str:
    opts = d.records[1]["goal_options"]
    name = next(iter(opts))
    opts[name] = "neon plaid"
    return rec_error(d, 2, "goal_options", rf"product \w+ offers {name} \[.*\], not 'neon plaid'")


def shop_option_name(d: Draft) -> str:
    d.records[1]["goal_options"]["flavour of the month"] = "vanilla"
    return rec_error(d, 2, "goal_options", r"product \w+ has no option 'flavour of the month'")


def shop_price(d: Draft) -> str:
    d.records[1]["price_upper"] = 0.5
    return rec_error(d, 2, "price_upper", r"buying the target with the goal options earns 0\.\d+, not 1")


def shop_attribute(d: Draft) -> str:
    d.records[1]["attributes"] = ["zzzz qqqq"]
    return rec_error(d, 2, "attributes", r"earns 0\.\d+, not 1")


def shop_attribute_type(d: Draft) -> str:
    d.records[1]["attributes"] = "4 tier"
    return rec_error(d, 2, "attributes", "expected list, got str")


def assist_asin(d: Draft) -> str:
    d.records[1]["asin"] = "B000000000"
    return rec_error(d, 2, "asin", "is not in the catalog")


def assist_preference(d: Draft) -> str:
    prefs = d.records[1]["preferences"]
    prefs[next(iter(prefs))] = "neon plaid"
    return rec_error(d, 2, "preferences", "offers")


def assist_budget(d: Draft) -> str:
    d.records[1]["budget"] = 0.5
    return rec_error(d, 2, "budget", "is below the target's price")


def assist_change(d: Draft) -> str:
    d.records[1]["change"] = {"option": "color"}
    return rec_error(d, 2, "change", r"expected \{\} or")


def assist_must_have(d: Draft) -> str:
    d.records[1]["must_have"] = ["zzzz qqqq"]
    return rec_error(d, 2, "must_have", "does not have 'zzzz qqqq'")


def assist_query(d: Draft) -> str:
    d.records[1]["query"] = "spaceship"
    return rec_error(d, 2, "query", "is not the target's type")


def coding_no_entry_point(d: Draft) -> str:
    del d.records[0]["entry_point"]
    return rec_error(d, 1, "entry_point", "required when grader is 'humaneval'")


def coding_entry_point_undefined(d: Draft) -> str:
    d.records[0]["entry_point"] = "no_such_function"
    return rec_error(d, 1, "entry_point", "'no_such_function' is not defined")


def coding_no_check(d: Draft) -> str:
    d.records[0]["hidden_tests"] = {"hidden_test.py": "def test():\n    pass\n"}
    return rec_error(d, 1, "hidden_tests", r"calls check\(candidate\)")


def coding_path_escapes(d: Draft) -> str:
    d.records[1]["files"]["../evil.py"] = "x = 1\n"
    return rec_error(d, 2, "files", r"path '\.\./evil\.py' must be relative")


def coding_absolute_path(d: Draft) -> str:
    d.records[1]["solution"]["/etc/evil.py"] = "x = 1\n"
    return rec_error(d, 2, "solution", "path '/etc/evil.py' must be relative")


def coding_syntax(d: Draft) -> str:
    d.records[0]["solution"] = {"solution.py": "def f(:\n"}
    return rec_error(d, 1, "solution", "solution.py line 1 is not valid Python")


def coding_test_id(d: Draft) -> str:
    d.records[1]["fail_to_pass"] = ["tests.test_nothing.T.test_missing"]
    return rec_error(d, 2, "fail_to_pass", "'tests.test_nothing.T.test_missing' is not a test method")


def coding_file_not_text(d: Draft) -> str:
    d.records[1]["files"]["data.bin"] = [1, 2]
    return rec_error(d, 2, "files", "key 'data.bin': expected string, got list")


def coding_grader(d: Draft) -> str:
    d.records[1]["grader"] = "pytest"
    return rec_error(d, 2, "grader", r"expected one of \['humaneval', 'unittest'\]")


def alf_object_nowhere(d: Draft) -> str:
    d.records[1]["layout"]["objects"][0][1] = "Nowhere|+00.00|+00.00|+00.00"
    return rec_error(d, 2, "layout", "which is not among the receptacles")


def alf_goal_not_in_layout(d: Draft) -> str:
    d.records[1]["pddl_params"]["object_target"] = "Spaceship"
    return rec_error(d, 2, "pddl_params", "object_target 'Spaceship' is not in the layout")


def alf_params_type(d: Draft) -> str:
    d.records[1]["pddl_params"]["parent_target"] = 3
    return rec_error(d, 2, "pddl_params", "field 'parent_target': expected string")


def alf_no_game(d: Draft) -> str:
    del d.records[1]["layout"]
    return rec_error(d, 2, "layout", "a record needs 'game'")


def alf_game_missing(d: Draft) -> str:
    d.records[1]["game"] = "games/x/game.tw-pddl"
    return rec_error(d, 2, "game", "does not exist")


def alf_game_outside(d: Draft) -> str:
    d.records[1]["game"] = "../../etc/passwd"
    return rec_error(d, 2, "game", "leaves the data folder")


def alf_task_type(d: Draft) -> str:
    d.records[1]["task_type"] = "make_coffee"
    return rec_error(d, 2, "task_type", "expected one of")


def web_page_missing(d: Draft) -> str:
    d.records[1]["page"] = "miniwob/no-such-task.html"
    return rec_error(d, 2, "page", "is not a page of the miniwob package")


def web_page_outside(d: Draft) -> str:
    d.records[1]["page"] = "../../../../etc/passwd"
    return rec_error(d, 2, "page", "leaves the miniwob html folder")


def web_expert(d: Draft) -> str:
    d.records[1].update(task_id="my-own-task", expert=True)
    return rec_error(d, 2, "expert", "there is no scripted expert")


def web_excluded_type(d: Draft) -> str:
    d.manifest["excluded"] = ["chase-circle"]
    return r"manifest\.json: field 'excluded': expected object, got list"


FAMILY = {
    "embodied": [
        embodied_room_missing,
        embodied_room_kind_unknown,
        embodied_room_not_string,
        embodied_no_rooms,
        embodied_target,
        embodied_request,
        embodied_range,
        embodied_episodes,
    ],
    "shopping": [
        shop_catalog_not_object,
        shop_no_catalog,
        shop_catalog_keys,
        shop_catalog_generator_type,
        shop_catalog_digest,
        shop_catalog_missing_file,
        shop_catalog_outside,
        shop_catalog_broken_product,
        shop_catalog_bad_json,
        shop_catalog_unknown_field,
        shop_asin,
        shop_option_value,
        shop_option_name,
        shop_price,
        shop_attribute,
        shop_attribute_type,
    ],
    "shopassistant": [
        shop_no_catalog,
        shop_catalog_not_object,
        shop_catalog_missing_file,
        assist_asin,
        assist_preference,
        assist_budget,
        assist_change,
        assist_must_have,
        assist_query,
    ],
    "coding": [
        coding_no_entry_point,
        coding_entry_point_undefined,
        coding_no_check,
        coding_path_escapes,
        coding_absolute_path,
        coding_syntax,
        coding_test_id,
        coding_file_not_text,
        coding_grader,
    ],
    "alfworld": [
        alf_object_nowhere,
        alf_goal_not_in_layout,
        alf_params_type,
        alf_no_game,
        alf_game_missing,
        alf_game_outside,
        alf_task_type,
    ],
    "web": [web_page_missing, web_page_outside, web_expert, web_excluded_type],
}
CASES = [
    pytest.param(family, mistake, id=f"{family}-{mistake.__name__}")
    for family in SOURCES
    for mistake in GENERIC + FAMILY[family]
]


def broken(tmp_path: Path, family: str, mistake: Callable[[Draft], str]) -> tuple[Path, str]:
    if not installed(family):
        pytest.skip(f"the {family} family's extra is not installed")
    d = draft(tmp_path, family)
    d.manifest = copy.deepcopy(d.manifest)
    pattern = mistake(d)
    return d.write(), pattern


@pytest.mark.parametrize("family, mistake", CASES)
def test_validate_refuses(tmp_path, capsys, family, mistake):
    root, pattern = broken(tmp_path, family, mistake)
    with pytest.raises(TaskPackError) as info:
        validate_pack(root)
    assert re.search(pattern, str(info.value)), str(info.value)
    assert main(["tasks", "validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("turngym: error: ") and re.search(pattern, err), err
    assert "Traceback" not in err


_ENVS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def family_envs():
    yield _ENVS
    for env in _ENVS.values():
        env.close()
    _ENVS.clear()


def _env(family: str) -> Any:
    if family not in _ENVS:
        import importlib

        module, cls, kwargs = ENV_CLASSES[family]
        _ENVS[family] = getattr(importlib.import_module(module), cls)(**kwargs)
    return _ENVS[family]


@pytest.mark.parametrize(
    "family, mistake",
    [
        pytest.param(*p.values, marks=[pytest.mark.browser] if p.values[0] == "web" else [], id=p.id)
        for p in CASES
    ],
)
def test_reset_refuses(tmp_path, family_envs, family, mistake):
    root, pattern = broken(tmp_path, family, mistake)
    env = _env(family)
    with pytest.raises(TaskPackError) as info:
        env.reset(seed=0, options={"task_pack": str(root), "split": "train"})
    assert re.search(pattern, str(info.value)), str(info.value)


@pytest.mark.parametrize("family", list(SOURCES))
def test_written_differently_still_loads(tmp_path, family):
    """A BOM, CRLF line ends, blank lines and gzip are accepted: the pack validates with its records."""
    if not installed(family):
        pytest.skip(f"the {family} family's extra is not installed")
    d = draft(tmp_path, family)
    n = len(d.records)

    def edit(root: Path) -> None:
        raw = (root / "train.jsonl").read_bytes().replace(b"\n", b"\r\n\r\n")
        (root / "train.jsonl.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + raw))
        (root / "train.jsonl").unlink()
        mf = (root / "manifest.json").read_bytes().replace(b"\n", b"\r\n")
        (root / "manifest.json").write_bytes(b"\xef\xbb\xbf" + mf)

    d.manifest["splits"]["train"] = "train.jsonl.gz"
    d.after.append(edit)
    assert validate_pack(d.write()) == {"train": n}


@pytest.mark.parametrize("name", sorted(p.parent.name for p in BUILTIN_DIR.glob("*/manifest.json")))
def test_every_shipped_pack_validates(capsys, name):
    family = json.loads((BUILTIN_DIR / name / "manifest.json").read_text())["family"]
    if not installed(family):
        pytest.skip(f"the {family} family's extra is not installed")
    assert name in find_packs()
    assert main(["tasks", "validate", name]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {name} v")


def test_unknown_family_is_refused(tmp_path, capsys):
    d = draft(tmp_path, "embodied")
    d.manifest["family"] = "embodid"
    root = d.write()
    assert main(["tasks", "validate", str(root)]) == 2
    assert re.search(r"unknown env family 'embodid'; known families: \[.*'embodied'", capsys.readouterr().err)


def test_other_familys_pack_is_refused_before_its_fields(tmp_path, family_envs):
    """A shopping pack given to the coding env names the family mismatch, not the shopping-only manifest fields."""
    root = draft(tmp_path, "shopping").write()
    with pytest.raises(TaskPackError, match="is for the env family 'shopping', not 'coding'"):
        _env("coding").reset(seed=0, options={"task_pack": str(root), "split": "train"})
