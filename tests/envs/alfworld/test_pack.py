"""The built-in generated pack: valid records, bit-for-bit regeneration, expert-solvable games, check_env on it."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.envs.alfworld.helpers import smallest
from turngym.envs import check_env
from turngym.envs.alfworld import generator as gen
from turngym.envs.alfworld.env import ALFWorldEnv
from turngym.envs.alfworld.games import TASK_TYPES, game_bytes, materialize
from turngym.tasks.pack import load_pack

ENV_ID = "turngym/ALFWorld-v0"


@pytest.fixture(scope="module")
def pack():
    return load_pack("alfworld-gen", family="alfworld", fields=ALFWorldEnv.task_fields)


def test_manifest_matches_the_splits(pack):
    assert set(pack.splits) == {"train", "valid_seen", "valid_unseen"}
    types = set()
    for split in pack.splits:
        recs = pack.tasks(split)
        stats = pack.manifest["stats"][split]
        assert stats["games"] == len(recs)
        assert stats["task_types"] == dict(
            sorted(__import__("collections").Counter(r["task_type"] for r in recs).items())
        )
        types |= {r["task_type"] for r in recs}
        scenes = set(gen.split_scenes(split))
        assert all(r["scene"] in scenes for r in recs), f"{split}: a game outside the split's scenes"
    assert types == set(TASK_TYPES)
    train = {r["scene"] for r in pack.tasks("train")}
    assert not train & {r["scene"] for r in pack.tasks("valid_unseen")}  # unseen scenes are unseen


def test_regenerating_a_sample_gives_the_same_records_and_bytes(pack, tmp_path):
    seed = pack.manifest["generator"]["seed"]
    for split in pack.splits:
        recs = pack.tasks(split)
        sample = recs[:3] + recs[-1:]
        for rec in sample:
            index = int(rec["task_id"].rsplit("-", 1)[1])
            again = gen.candidate(seed, split, index, rec["gen_attempt"])
            assert json.dumps(again, sort_keys=True) == json.dumps(rec, sort_keys=True), rec["task_id"]
        for tid, hashes in pack.manifest["stats"][split]["sample_sha256"].items():
            rec = pack.get(tid, split)
            files = game_bytes(rec)
            assert {k: hashlib.sha256(v).hexdigest() for k, v in files.items()} == hashes, tid
            folder = materialize(rec, pack.name).parent  # what the env plays: the same bytes on disk
            assert {k: (folder / k).read_bytes() for k in files} == files


@pytest.mark.slow
def test_expert_wins_a_sample_of_every_split(pack):
    env = ALFWorldEnv()
    try:
        for split in pack.splits:
            for rec in smallest(pack.tasks(split), 2):
                env.reset(seed=0, options={"split": split, "task_id": rec["task_id"]})
                for _ in range(50):
                    *_, term, trunc, info = env.step(env.expert_action())
                    if term or trunc:
                        break
                assert info["success"], (split, rec["task_id"], rec["task_type"])
    finally:
        env.close()


@pytest.mark.slow
def test_registered_id_passes_check_env_on_the_builtin_pack(pack):
    import turngym  # noqa: F401

    rec = smallest(pack.tasks("valid_unseen"), 1)[0]
    check_env(ENV_ID, steps=5, options={"split": "valid_unseen", "task_id": rec["task_id"]})


def test_extending_a_pack_keeps_its_games_and_equals_a_fresh_run(tmp_path):
    # check=False keeps this fast; the prefix logic is the same with the expert check.
    small, ext, fresh = tmp_path / "small", tmp_path / "ext", tmp_path / "fresh"
    gen.write_pack(small, {"valid_unseen": 2}, seed=3, check=False)
    ext.mkdir()
    for f in small.iterdir():
        (ext / f.name).write_bytes(f.read_bytes())
    gen.write_pack(ext, {"valid_unseen": 4}, seed=3, check=False)
    gen.write_pack(fresh, {"valid_unseen": 4}, seed=3, check=False)
    assert {f.name: f.read_bytes() for f in ext.iterdir()} == {
        f.name: f.read_bytes() for f in fresh.iterdir()
    }
    first = gen.read_records(small / "valid_unseen.jsonl")
    assert gen.read_records(ext / "valid_unseen.jsonl")[:2] == first


def test_a_prefix_from_another_seed_is_refused():
    recs, _ = gen.generate_split("valid_unseen", 2, seed=3, check=False)
    with pytest.raises(ValueError, match="not made by seed"):
        gen.generate_split("valid_unseen", 3, seed=4, check=False, prefix=recs)
    again, rejected = gen.generate_split("valid_unseen", 2, seed=3, check=False, prefix=recs)
    assert again == recs and rejected == {}


@pytest.mark.slow  # two spawned workers import TextWorld and play 3 games: ~20 s, more under load
def test_parallel_generation_equals_the_committed_games(pack, tmp_path):
    # games 3-5 of valid_seen played by two worker processes, with the expert check; game 5 was accepted at its
    # second attempt (the first is rejected again), so the parallel path reproduces rejections too
    committed = pack.tasks("valid_seen")
    assert committed[5]["gen_attempt"] == 1
    saved = []
    recs, rejected = gen.generate_split(
        "valid_seen",
        6,
        seed=0,
        prefix=committed[:3],
        workers=2,
        checkpoint=lambda r: saved.append(len(r)),
        checkpoint_every=2,
    )
    assert recs == committed[:6]
    assert rejected == {committed[5]["task_type"]: 1}
    assert saved == [5]  # every 2 new games (3 -> 5); the caller writes the final state
    assert gen.records_digest(recs) == hashlib.sha256(gen.records_bytes(recs)).hexdigest()


def test_split_files_match_the_digests_in_the_manifest(pack):
    # the generator records each split's file and the sha256 of its records (one canonical JSON line each);
    # `python -m turngym.envs.alfworld.generator` recomputes them, and extending re-derives every kept record
    for split in pack.splits:
        stats = pack.manifest["stats"][split]
        assert stats["records_file"] == pack.manifest["splits"][split]
        assert stats["records_sha256"] == gen.records_digest(pack.tasks(split))
        assert stats["games"] == len(pack.tasks(split))
