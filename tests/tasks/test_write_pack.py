"""`write_pack`: what it writes is a pack that loads, with the manifest in the format's field order."""

import json

from tests.conftest import LockEnv
from turngym.tasks import load_pack, write_pack
from turngym.tasks.pack import read_manifest


def test_written_pack_loads_with_its_splits_and_records(tmp_path):
    records = {"train": [{"task_id": "a", "code": "12"}, {"task_id": "b", "code": "7"}], "test": []}
    # `splits` given in the manifest is replaced by the files written; the fields come in the format's order
    manifest = {
        "family": "lock",
        "metadata": {"x": 1},
        "name": "mine",
        "version": "1.0.0",
        "splits": {"old": "x.jsonl"},
    }
    root = write_pack(tmp_path / "pack", manifest, records)
    assert root == tmp_path / "pack"
    text = (root / "manifest.json").read_text()
    assert text.endswith("}\n") and list(json.loads(text)) == [
        "name",
        "version",
        "family",
        "splits",
        "metadata",
    ]
    assert read_manifest(root)["splits"] == {"train": "train.jsonl", "test": "test.jsonl"}
    assert (
        root / "train.jsonl"
    ).read_text() == '{"task_id": "a", "code": "12"}\n{"task_id": "b", "code": "7"}\n'
    assert (root / "test.jsonl").read_text() == ""
    pack = load_pack(root, fields=LockEnv.task_fields)
    assert [t["task_id"] for t in pack.tasks("train")] == ["a", "b"]


def test_rewriting_replaces_the_records_and_takes_any_iterable(tmp_path):
    manifest = {"name": "mine", "version": "1.0.0", "family": "lock"}
    write_pack(tmp_path, manifest, {"train": [{"task_id": "a", "code": "1"}]})
    write_pack(tmp_path, manifest, {"train": ({"task_id": f"t{i}", "code": str(i)} for i in range(3))})
    pack = load_pack(tmp_path, fields=LockEnv.task_fields, fresh=True)
    assert [t["task_id"] for t in pack.tasks("train")] == ["t0", "t1", "t2"]
