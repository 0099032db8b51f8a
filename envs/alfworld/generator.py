"""Deterministic generator of ALFWorld games from the scene layouts shipped with `alfworld`.

For each game: a scene (`alfworld/gen/layouts/FloorPlan*`), its receptacles at their interaction poses (the
`-openable.json` file; receptacle types the scene lists in `-objects.json` without a pose get one sampled from the
scene's reachable points in `-layout.npy`), objects of the scene's pickupable types placed in receptacles that can
hold them (ALFRED's `VAL_RECEPTACLE_OBJECTS`; 1-3 instances per type), the agent at a reachable point, and a goal of
one of the six task types from `alfworld.gen.goal_library` whose targets the scene supports (ALFRED's `GOALS_VALID`
room types, a microwave/fridge/sink for heat/cool/clean, a lamp for look-at). A game enters the pack only if it is
not already won at the start and alfworld's handcoded expert wins it on the real engine.

Run it to regenerate the built-in pack (same seed, same bytes):

    python -m turngym.envs.alfworld.generator --out tasks/alfworld-gen --seed 0
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from turngym.envs.alfworld.games import _alfworld_file, _constants, game_bytes, obj_type, task_sentence

log = logging.getLogger(__name__)

PACK_NAME = "alfworld-gen"
PACK_VERSION = "2.0.0"
# How games are checked; a pack made with other settings is not extended (its games would not be a prefix).
EXPERT = "alfworld-0.4.2 HandCodedTWAgent, move tracked as put"
# Official ALFWorld train mix (games per type), used as sampling weights.
TYPE_WEIGHTS = {
    "pick_and_place_simple": 790,
    "look_at_obj_in_light": 308,
    "pick_clean_then_place_in_recep": 650,
    "pick_heat_then_place_in_recep": 459,
    "pick_cool_then_place_in_recep": 533,
    "pick_two_obj_and_place": 813,
}
DEFAULT_COUNTS = {"train": 3500, "valid_seen": 140, "valid_unseen": 134}
LAMPS = ("DeskLamp", "FloorLamp")
LAMP_RECEPTACLES = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "TVStand")
SPECIAL = {  # task type -> (appliance receptacle type, object property)
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}


def room_type(scene: str) -> str:
    n = int(scene.removeprefix("FloorPlan"))
    return {0: "Kitchen", 2: "LivingRoom", 3: "Bedroom", 4: "Bathroom"}[n // 100]


def split_scenes(split: str) -> list[str]:
    """Training scenes for `train`/`valid_seen`, ALFRED's held-out test scenes for `valid_unseen`."""
    C = _constants()
    nums = C.TEST_SCENE_NUMBERS if split == "valid_unseen" else C.TRAIN_SCENE_NUMBERS
    return [f"FloorPlan{n}" for n in sorted(nums)]


def _thor_id(kind: str, x: float, y: float, z: float) -> str:
    return f"{kind}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"


def _loc(x: float, z: float, rot: int, hor: int) -> str:
    return f"loc|{int(round(x / 0.25))}|{int(round(z / 0.25))}|{int(rot) // 90 % 4}|{int(hor)}"


def load_scene(scene: str) -> dict[str, Any]:
    """Static facts of a scene: receptacles with their pose, the scene's object types, reachable points."""
    import numpy as np

    lay = _alfworld_file("gen/layouts")
    openable = json.loads((lay / f"{scene}-openable.json").read_text())
    types = json.loads((lay / f"{scene}-objects.json").read_text())
    points = np.load(lay / f"{scene}-layout.npy").tolist()
    return {"openable": openable, "types": sorted(set(types)), "points": points}


def build_layout(scene: str, info: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Receptacles, object placements and the agent's start for one game."""
    C = _constants()
    static = set(C.RECEPTACLES) - set(C.MOVABLE_RECEPTACLES)
    receps: list[list[Any]] = []
    for rid in sorted(info["openable"]):
        if obj_type(rid) not in static:
            continue
        x, z, rot, hor = info["openable"][rid]
        receps.append([rid, _loc(x, z, rot, hor)])
    have = {obj_type(r) for r, _ in receps}
    points = info["points"]
    for t in info["types"]:  # receptacles the scene has but whose pose the layout files do not record
        if t in static and t not in have:
            x, z = points[rng.randrange(len(points))]
            # ALFRED names a basin after the object it belongs to (`Sink|x|y|z|SinkBasin`); alfworld's demangler
            # relies on it (an id starting `SinkBasin|` would read "sinkbasinbasin 1").
            rid = _thor_id(t, x, 0.9, z) if not t.endswith("Basin") else f"{_thor_id(t[:-5], x, 0.9, z)}|{t}"
            receps.append([rid, _loc(x, z, rng.randrange(4) * 90, 30)])
            have.add(t)
    receps.sort()
    rtypes = {obj_type(r) for r, _ in receps}
    pickable = set().union(*C.VAL_RECEPTACLE_OBJECTS.values()) - static
    objects: list[list[str]] = []
    used: set[str] = set()
    for t in info["types"]:
        if t in LAMPS:
            homes = [r for r, _ in receps if obj_type(r) in LAMP_RECEPTACLES]
            count = 1
        elif t in pickable and "Sliced" not in t:
            homes = [r for r, _ in receps if t in C.VAL_RECEPTACLE_OBJECTS.get(obj_type(r), ())]
            count = rng.randint(1, C.MAX_NUM_OF_OBJ_INSTANCES)
        else:
            continue
        if not homes:
            continue
        for _ in range(count):
            home = rng.choice(homes)
            parts = home.split("|")
            while True:
                oid = _thor_id(
                    t,
                    float(parts[1]) + rng.uniform(-0.4, 0.4),
                    float(parts[2]) + rng.uniform(0.0, 0.3),
                    float(parts[3]) + rng.uniform(-0.4, 0.4),
                )
                if oid not in used:
                    break
            used.add(oid)
            objects.append([oid, home])
    objects.sort()
    # The agent starts away from every receptacle, as in the official games: a start at a receptacle's pose makes
    # the first observation "You are facing the X" instead of the room's list of receptacles, which the
    # handcoded expert (and a policy) reads its map from.
    taken = {loc for _, loc in receps}
    while True:
        x, z = points[rng.randrange(len(points))]
        agent = _loc(x, z, rng.randrange(4) * 90, 30)
        if agent not in taken:
            break
    return {"receptacles": receps, "objects": objects, "agent": agent, "_rtypes": sorted(rtypes)}


def goal_candidates(task_type: str, scene: str, layout: dict[str, Any]) -> list[dict[str, Any]]:
    """Every `pddl_params` of `task_type` this layout supports and that is not already satisfied at the start."""
    C = _constants()
    if room_type(scene) not in C.GOALS_VALID[task_type]:
        return []
    rtypes = set(layout["_rtypes"])
    counts = Counter(obj_type(o) for o, _ in layout["objects"])
    where: dict[str, set[str]] = {}
    for o, r in layout["objects"]:
        where.setdefault(obj_type(o), set()).add(obj_type(r))
    out = []
    base = {
        "object_sliced": False,
        "mrecep_target": "",
        "toggle_target": "",
        "object_target": "",
        "parent_target": "",
    }
    movable = set(C.MOVABLE_RECEPTACLES)
    objs = sorted(t for t in counts if t not in LAMPS)
    if task_type == "look_at_obj_in_light":
        for lamp in sorted(t for t in counts if t in LAMPS):
            for o in objs:
                out.append({**base, "object_target": o, "toggle_target": lamp})
        return out
    need_two = task_type == "pick_two_obj_and_place"
    appliance, prop = SPECIAL.get(task_type, (None, None))
    if appliance and appliance not in rtypes:
        return []
    for o in objs:
        if need_two and counts[o] < 2:
            continue
        if prop and o not in C.VAL_ACTION_OBJECTS[prop]:
            continue
        if o in movable and task_type != "pick_and_place_simple":
            continue
        for r in sorted(rtypes):
            if r == appliance or r in ("SinkBasin", "BathtubBasin") and prop:
                continue
            if o not in C.VAL_RECEPTACLE_OBJECTS.get(r, ()):
                continue
            if not prop and r in where[o]:  # already satisfied (or half-satisfied) at the start
                continue
            out.append({**base, "object_target": o, "parent_target": r})
    return out


def sample_record(task_id: str, task_type: str, scenes: list[str], rng: random.Random, cache: dict[str, Any]):
    """One record of `task_type` from a scene of `scenes` that supports it (None when none does).

    Scenes are drawn at random (20 draws); when all 20 miss, every scene is tried once in an order drawn from `rng`,
    so a type that some scene supports always gets a record. The fallback starts only after the 20 draws, so a
    record that the draws found is the same as before the fallback existed (packs stay byte-identical).
    """
    for scene in _scene_draws(scenes, rng):
        if scene not in cache:
            cache[scene] = load_scene(scene)
        layout = build_layout(scene, cache[scene], rng)
        goals = goal_candidates(task_type, scene, layout)
        if not goals:
            continue
        params = rng.choice(goals)
        layout.pop("_rtypes")
        template = rng.randrange(2)
        return {
            "task_id": task_id,
            "task_type": task_type,
            "scene": scene,
            "pddl_params": params,
            "task_desc": task_sentence(task_type, params, template),
            "layout": layout,
        }
    return None


def _scene_draws(scenes: list[str], rng: random.Random) -> Iterator[str]:
    """20 random draws, then every scene once in a random order (lazy: each draw happens when it is asked for, so
    the rng calls interleave with the layout built for the previous scene exactly as a plain loop's would)."""
    for _ in range(20):
        yield rng.choice(scenes)
    yield from rng.sample(scenes, len(scenes))


def game_type(seed: int, split: str, index: int) -> str:
    """The task type of game `index`: drawn by `TYPE_WEIGHTS` (the official train mix) from its own seed."""
    rng = random.Random(f"{seed}/{split}/{index}")
    return rng.choices(list(TYPE_WEIGHTS), list(TYPE_WEIGHTS.values()))[0]


def candidate(seed: int, split: str, index: int, attempt: int, cache: dict[str, Any] | None = None):
    """Attempt `attempt` at game `index` of a split: a pure function of its arguments (and alfworld's files).

    Every game has its own seed, so a split of N games is the prefix of a longer one, and any game can be
    regenerated alone from (seed, split, index, attempt); the record keeps `attempt` for that.
    """
    rng = random.Random(f"{seed}/{split}/{index}/{attempt}")
    task_type = game_type(seed, split, index)
    rec = sample_record(
        f"{split}-{index:05d}", task_type, split_scenes(split), rng, {} if cache is None else cache
    )
    if rec is None:
        raise RuntimeError(f"no scene of split {split!r} supports task type {task_type!r}")
    rec["gen_attempt"] = attempt
    return rec


def solve_game(seed: int, split: str, index: int, check: bool = True, max_steps: int = 50, cache=None):
    """Game `index` of a split: the first attempt the expert wins (every attempt when `check` is False keeps
    attempt 0). Returns (record, rejected attempts); all attempts of a game share its task type."""
    from turngym.envs.alfworld.engine import expert_solves

    attempt = 0
    while True:
        rec = candidate(seed, split, index, attempt, cache)
        if not check or expert_solves(rec, max_steps=max_steps):
            return rec, attempt
        attempt += 1


_WORKER_CACHE: dict[str, Any] = {}


def _solve_in_worker(args: tuple[int, str, int, bool, int]) -> tuple[dict[str, Any], int]:
    seed, split, index, check, max_steps = args
    return solve_game(seed, split, index, check, max_steps, _WORKER_CACHE)


def _solved(
    seed: int, split: str, indices: range, check: bool, max_steps: int, workers: int
) -> Iterator[tuple[dict[str, Any], int]]:
    """(record, rejected) of each game of `indices`, in order; with `workers` > 1 the games are played in that many
    processes (each game is a pure function of its index, so the results equal a serial run)."""
    if workers <= 1:
        cache: dict[str, Any] = {}
        for i in indices:
            yield solve_game(seed, split, i, check, max_steps, cache)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    todo = iter(indices)
    window: deque[Any] = deque()
    # spawn: the workers import only this module (no forked copy of the caller's threads or engines)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            while True:
                while len(window) < 4 * workers:  # a bounded look-ahead keeps results in order and stops fast
                    i = next(todo, None)
                    if i is None:
                        break
                    window.append(pool.submit(_solve_in_worker, (seed, split, i, check, max_steps)))
                if not window:
                    return
                yield window.popleft().result()
        finally:
            for fut in window:
                fut.cancel()


def generate_split(
    split: str,
    count: int,
    seed: int,
    check: bool = True,
    max_steps: int = 50,
    max_seconds: float | None = None,
    prefix: list[dict[str, Any]] | None = None,
    workers: int = 1,
    progress: bool = False,
    checkpoint: Callable[[list[dict[str, Any]]], None] | None = None,
    checkpoint_every: int = 100,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`count` records of `split` that alfworld's handcoded expert wins within `max_steps` (the env's default
    turn budget). A check stops as soon as the expert gives up or cycles (`engine.expert_run`), so a rejected
    candidate costs a few steps, not the whole budget. With `max_seconds`, stops early with the games made so far
    (a prefix of the full split).

    `prefix`: records of this split made before with the same seed (e.g. the committed file); they are kept and
    generation goes on after them. Game `i` is a pure function of (seed, split, i, attempt) and attempts
    0..gen_attempt-1 were rejected, so the result (records and rejection counts) equals a run from scratch, with
    any number of `workers` (processes playing games in parallel). `progress` shows a progress bar;
    `checkpoint(records)` is called every `checkpoint_every` new games with the prefix made so far.
    """
    cache: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    rejected: Counter[str] = Counter()
    # Each kept record must be what (seed, split, i, gen_attempt) gives: no expert play, milliseconds a record.
    for i, rec in enumerate((prefix or [])[:count]):
        if rec.get("task_id") != f"{split}-{i:05d}" or rec != candidate(
            seed, split, i, rec.get("gen_attempt", 0), cache
        ):
            raise ValueError(
                f"prefix record {i} of {split!r} was not made by seed {seed}: {rec.get('task_id')}"
            )
        records.append(rec)
        if rec["gen_attempt"]:
            rejected[rec["task_type"]] += int(rec["gen_attempt"])
    if records:
        log.info("%s: keeping %d games made before", split, len(records))
    t0 = time.time()
    start = len(records)
    bar = None
    if progress and start < count:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        bar.start()
        task = bar.add_task(f"ALFWorld {split} games", total=count, completed=start)
    try:
        for rec, attempts in _solved(seed, split, range(start, count), check, max_steps, workers):
            records.append(rec)
            if attempts:
                rejected[rec["task_type"]] += attempts
            n = len(records)
            if bar is not None:
                bar.update(task, completed=n)
            if checkpoint is not None and (n - start) % checkpoint_every == 0:
                checkpoint(records)
            if max_seconds is not None and time.time() - t0 > max_seconds:
                log.info("%s: time budget reached after %d games", split, n)
                break
            if n % 50 == 0:
                log.info("%s: %d/%d games (%.0f s)", split, n, count, time.time() - t0)
    finally:
        if bar is not None:
            bar.stop()
    return records, dict(rejected)


def records_digest(records: list[dict[str, Any]]) -> str:
    """sha256 of a split's records as the pack stores them (one sorted-key compact JSON object per line)."""
    return hashlib.sha256(records_bytes(records)).hexdigest()


def records_bytes(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records).encode()


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a split file (`.jsonl` or `.jsonl.gz`); [] when it does not exist."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def generator_settings(seed: int, check: bool) -> dict[str, Any]:
    from turngym.envs.alfworld.engine import STUCK_REPEATS

    return {
        "seed": seed,
        "version": PACK_VERSION,
        "expert_checked": check,
        "expert": EXPERT,
        "expert_max_steps": 50,
        "stuck_repeats": STUCK_REPEATS,
    }


def write_pack(
    out: Path,
    counts: dict[str, int],
    seed: int,
    check: bool = True,
    max_seconds: float | None = None,
    resume: bool = True,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Write (or extend) the pack in `out`. With `resume`, the games already in `out` made with the same seed
    and check are kept as the prefix of each split and generation goes on after them. `workers` processes play
    the games (same bytes as one); the split file and manifest are rewritten every 100 new games."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "name": PACK_NAME,
        "version": PACK_VERSION,
        "family": "alfworld",
        "schema_version": 1,
        "splits": {},
        "license": "MIT (generated from the ALFWorld/ALFRED scene layouts shipped in the alfworld package)",
        "source": f"python -m turngym.envs.alfworld.generator --seed {seed}",
        "description": "ALFWorld text games generated from the iTHOR scene layouts: six task types, "
        "train/valid_seen on training scenes, valid_unseen on held-out scenes; every game won by "
        "alfworld's handcoded expert on the TextWorld engine.",
        "generator": generator_settings(seed, check),
        "stats": {},
    }
    old = out / "manifest.json"
    prev_ok = False
    if old.is_file():  # regenerating some splits keeps the others
        prev = json.loads(old.read_text())
        prev_ok = prev.get("generator") == generator_settings(seed, check)
        if prev_ok:
            manifest["splits"], manifest["stats"] = prev["splits"], prev["stats"]
    for split, n in counts.items():
        prefix = None
        if prev_ok and resume and split in manifest["splits"]:
            prefix = read_records(out / manifest["splits"][split])

        def save(records: list[dict[str, Any]], split: str = split, n: int = n) -> None:
            _write_split(out, manifest, split, n, records)

        records, _ = generate_split(
            split,
            n,
            seed,
            check=check,
            max_seconds=max_seconds,
            prefix=prefix,
            workers=workers,
            progress=progress,
            checkpoint=save,
        )
        save(records)
    return manifest


def _write_split(
    out: Path, manifest: dict[str, Any], split: str, n: int, records: list[dict[str, Any]]
) -> None:
    """Write a split's records (gzipped above 500 games) and its stats, then the manifest (each file atomically:
    an interrupted run leaves the last checkpoint, a valid prefix)."""
    name = f"{split}.jsonl.gz" if n > 500 else f"{split}.jsonl"
    if split in manifest["splits"] and manifest["splits"][split] != name:
        (out / manifest["splits"][split]).unlink(missing_ok=True)
    data = records_bytes(records)
    digest = hashlib.sha256(data).hexdigest()
    if name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    _atomic_write(out / name, data)
    rejected: Counter[str] = Counter()
    for r in records:  # attempts 0..gen_attempt-1 of a game were rejected, all of the game's type
        if r.get("gen_attempt"):
            rejected[r["task_type"]] += int(r["gen_attempt"])
    manifest["splits"][split] = name
    manifest["stats"][split] = {
        "games": len(records),
        "task_types": dict(sorted(Counter(r["task_type"] for r in records).items())),
        "scenes": len({r["scene"] for r in records}),
        "rejected_unsolved": dict(sorted(rejected.items())),
        "records_file": name,
        "records_sha256": digest,
        "sample_sha256": {
            r["task_id"]: {k: hashlib.sha256(v).hexdigest() for k, v in game_bytes(r).items()}
            for r in records[:3]
        },
    }
    _atomic_write(out / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    for split, n in DEFAULT_COUNTS.items():
        p.add_argument(f"--{split.replace('_', '-')}", type=int, default=n, dest=split)
    p.add_argument("--max-seconds", type=float, help="per split: stop early, keeping the games made so far")
    p.add_argument(
        "--fresh", action="store_true", help="regenerate every game instead of extending the existing splits"
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip the expert solvability check (not for packs)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes playing games in parallel (default: every core; the output does not depend on it)",
    )
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error(f"--workers must be >= 1, got {a.workers}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    counts = {s: getattr(a, s) for s in DEFAULT_COUNTS if getattr(a, s) > 0}
    write_pack(
        a.out,
        counts,
        a.seed,
        check=not a.no_check,
        max_seconds=a.max_seconds,
        resume=not a.fresh,
        workers=a.workers,
        progress=not a.no_progress,
    )


if __name__ == "__main__":
    main()
