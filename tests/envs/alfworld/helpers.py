"""Small ALFWorld packs for the tests: generated records of small scenes, and an official-format data folder."""

from __future__ import annotations

import json
from pathlib import Path

from turngym.envs.alfworld import generator as gen
from turngym.envs.alfworld.games import write_game
from turngym.tasks.pack import write_pack

SMALL_SCENES = ["FloorPlan402", "FloorPlan302", "FloorPlan203", "FloorPlan2"]


def small_records(seed: int = 7) -> list[dict]:
    """One record of every task type, drawn with the generator's sampler from small scenes, that the handcoded
    expert wins (the check every pack game passes)."""
    import random

    from turngym.envs.alfworld.engine import expert_solves

    rng = random.Random(seed)
    out = []
    for task_type in gen.TYPE_WEIGHTS:
        scenes = [s for s in SMALL_SCENES if gen.room_type(s) in _valid_rooms(task_type)]
        while True:
            rec = gen.sample_record(task_type, task_type, scenes, rng, {})
            if rec is not None and expert_solves(rec, max_steps=40):
                break
        out.append(rec)
    return out


def pack_records() -> list[dict]:
    """One small game of every task type from the built-in pack (expert-checked when the pack was made); falls back
    to `small_records()` (which runs the expert check here) for a type the pack lacks."""
    from turngym.envs.alfworld.env import ALFWorldEnv
    from turngym.tasks.pack import load_pack

    pack = load_pack("alfworld-gen", family="alfworld", fields=ALFWorldEnv.task_fields)
    every = [r for split in pack.splits for r in pack.tasks(split)]
    out = []
    for task_type in gen.TYPE_WEIGHTS:
        mine = [r for r in every if r["task_type"] == task_type]
        out.append(smallest(mine, 1)[0] if mine else None)
    if None in out:
        fallback = small_records()
        out = [r if r is not None else fallback[i] for i, r in enumerate(out)]
    return out


def _valid_rooms(task_type: str) -> set[str]:
    from alfworld.gen import constants

    return set(constants.GOALS_VALID[task_type])


def write_small_pack(root: Path, records: list[dict], name: str = "alfworld-small") -> Path:
    manifest = {"name": name, "version": "0.0.1", "family": "alfworld", "license": "MIT", "source": "tests"}
    splits = {
        split: [{**r, "task_id": f"{split}/{r['task_id']}"} for r in records]
        for split in ("train", "valid_unseen")
    }
    return write_pack(root, manifest, splits)


def write_official_folder(data: Path, records: list[dict]) -> Path:
    """An official-format ALFWorld data folder: json_2.1.1/<split>/<task>/<trial>/{traj_data.json,game.tw-pddl}.

    Also one unsolvable game and one 'movable' trajectory, which the official loader (and ours) skips.
    """
    base = data / "json_2.1.1"
    for i, r in enumerate(records):
        folder = base / "valid_unseen" / f"{r['task_type']}-{r['scene']}" / f"trial_T{i:05d}"
        write_game(r, folder)
    bad = base / "valid_unseen" / "pick_and_place_simple-unsolvable" / "trial_T99999"
    write_game(records[0], bad)
    game = json.loads((bad / "game.tw-pddl").read_text())
    game["solvable"] = False
    (bad / "game.tw-pddl").write_text(json.dumps(game))
    write_game(records[0], base / "valid_unseen" / "pick_and_place_with_movable_recep-x" / "trial_T1")
    return data


def smallest(records: list[dict], n: int) -> list[dict]:
    """The `n` records with the fewest objects + receptacles (the quickest to load and step)."""

    def size(r: dict) -> int:
        return len(r["layout"]["objects"]) + len(r["layout"]["receptacles"])

    return sorted(records, key=lambda r: (size(r), r["task_id"]))[:n]
