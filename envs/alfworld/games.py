"""Compact ALFWorld task records -> the files the official games are made of (`game.tw-pddl`, `traj_data.json`).

A generated record holds only what varies between games: the scene, the receptacles and their locations, the
objects and the receptacle each starts in, the agent's start location, the task type, its `pddl_params` and the
task sentence. `write_game` expands it into a folder laid out like the official ALFWorld data, with the PDDL problem
written in the `alfred` domain that ships with the `alfworld` package, so one loader (and alfworld's handcoded expert,
which reads `traj_data.json`) serves generated and official games alike. The expansion is a pure function of the
record and the installed alfworld files: the same record always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from turngym.optional import require

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"


def _alfworld_file(relative: str) -> Path:
    alfworld = require("alfworld", extra="alfworld", purpose="the ALFWorld environment")
    return Path(alfworld.__file__).resolve().parent / relative


@lru_cache(maxsize=1)
def game_logic() -> tuple[str, str]:
    """The PDDL domain and the text grammar shipped with the `alfworld` package."""
    return (
        _alfworld_file("data/alfred.pddl").read_text(encoding="utf-8"),
        _alfworld_file("data/alfred.twl2").read_text(encoding="utf-8"),
    )


def pddl_name(thor_id: str) -> str:
    """ALFRED's mangling of a THOR object id into a PDDL name (`Apple|+01.00|...` -> `Apple_bar__plus_01_dot_00...`)."""
    out = thor_id
    for a, b in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        out = out.replace(a, b)
    return out


def obj_type(thor_id: str) -> str:
    """`Sink|...|SinkBasin` -> `SinkBasin`; `Apple|...` -> `Apple`."""
    parts = thor_id.split("|")
    return parts[-1] if len(parts) == 5 else parts[0]


def _constants() -> Any:
    return require("alfworld.gen.constants", extra="alfworld")


def task_sentence(task_type: str, params: dict[str, Any], template: int) -> str:
    """ALFWorld's templated task sentence (`alfworld.gen.goal_library`), `template` picking one of its phrasings."""
    glib = require("alfworld.gen.goal_library", extra="alfworld")
    templates = glib.gdict[task_type]["templates"]
    return templates[template % len(templates)].format(
        obj=params["object_target"].lower(),
        recep=params["parent_target"].lower(),
        toggle=params["toggle_target"].lower(),
        mrecep=params["mrecep_target"].lower(),
    )


def goal_pddl(task_type: str, params: dict[str, Any]) -> str:
    glib = require("alfworld.gen.goal_library", extra="alfworld")
    goal = glib.gdict[task_type]["pddl"].format(
        obj=params["object_target"],
        recep=params["parent_target"],
        toggle=params["toggle_target"],
        mrecep=params["mrecep_target"],
    )
    return goal.replace("#", "-")


def problem_pddl(record: dict[str, Any]) -> str:
    """The PDDL problem of a generated record, in the `alfred` domain."""
    C = _constants()
    lay = record["layout"]
    receps: list[list[Any]] = lay["receptacles"]  # [thor_id, loc]
    objects: list[list[str]] = lay["objects"]  # [thor_id, recep thor_id]
    loc_of = {rid: loc for rid, loc in receps}
    rtypes = sorted({obj_type(rid) for rid, _ in receps})
    otypes = sorted({obj_type(oid) for oid, _ in objects})
    locs = sorted({loc for _, loc in receps} | {lay["agent"]})
    act = C.VAL_ACTION_OBJECTS
    lines = [
        "(define (problem alfworld_turngym)",
        "    (:domain alfred)",
        "    (:objects",
        "        agent1 - agent",
    ]
    lines += [f"        {t}Type - otype" for t in otypes]
    lines += [f"        {t}Type - rtype" for t in rtypes]
    lines += [f"        {pddl_name(oid)} - object" for oid, _ in objects]
    lines += [f"        {pddl_name(rid)} - receptacle" for rid, _ in receps]
    lines += [f"        {pddl_name(loc)} - location" for loc in locs]
    lines += ["    )", "    (:init", f"        (atLocation agent1 {pddl_name(lay['agent'])})"]
    for rid, loc in receps:
        n, t = pddl_name(rid), obj_type(rid)
        lines.append(f"        (receptacleType {n} {t}Type)")
        lines.append(f"        (receptacleAtLocation {n} {pddl_name(loc)})")
        if t in C.OPENABLE_CLASS_SET:
            lines.append(f"        (openable {n})")
    for rt in rtypes:
        for ot in otypes:
            if ot in C.VAL_RECEPTACLE_OBJECTS.get(rt, ()):
                lines.append(f"        (canContain {rt}Type {ot}Type)")
    for oid, rid in objects:
        n, t = pddl_name(oid), obj_type(oid)
        lines.append(f"        (objectType {n} {t}Type)")
        lines.append(f"        (inReceptacle {n} {pddl_name(rid)})")
        lines.append(f"        (objectAtLocation {n} {pddl_name(loc_of[rid])})")
        if t not in act["Toggleable"]:
            lines.append(f"        (pickupable {n})")
        if t in C.MOVABLE_RECEPTACLES_SET:
            lines.append(f"        (isReceptacleObject {n})")
        for prop, key in (
            ("cleanable", "Cleanable"),
            ("heatable", "Heatable"),
            ("coolable", "Coolable"),
            ("toggleable", "Toggleable"),
            ("sliceable", "Sliceable"),
        ):
            if t in act[key]:
                lines.append(f"        ({prop} {n})")
    lines.append("    )")
    return "\n".join(lines) + "\n" + goal_pddl(record["task_type"], record["pddl_params"]).strip("\n") + "\n"


def traj_data(record: dict[str, Any]) -> dict[str, Any]:
    """The subset of ALFRED's `traj_data.json` that ALFWorld's loaders and handcoded expert read."""
    return {
        "task_id": record["task_id"],
        "task_type": record["task_type"],
        "scene": {"floor_plan": record["scene"]},
        "pddl_params": dict(record["pddl_params"]),
        "turk_annotations": {"anns": [{"task_desc": record["task_desc"]}]},
    }


def game_json(record: dict[str, Any]) -> dict[str, Any]:
    domain, grammar = game_logic()
    return {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", record["task_desc"]),
        "pddl_problem": problem_pddl(record),
        "solvable": True,
    }


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8")


def game_bytes(record: dict[str, Any]) -> dict[str, bytes]:
    """The files of one generated game, by name."""
    return {GAME_FILE: _dump(game_json(record)), TRAJ_FILE: _dump(traj_data(record))}


def record_digest(record: dict[str, Any]) -> str:
    blob = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def cache_root() -> Path:
    """Where generated games are written: `$TURNGYM_CACHE/alfworld` (default `~/.cache/turngym/alfworld`)."""
    base = os.environ.get("TURNGYM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "turngym"
    )
    return Path(base) / "alfworld"


def write_game(record: dict[str, Any], folder: Path) -> Path:
    """Write the game files of `record` into `folder` (atomically, file by file); returns the game file path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in game_bytes(record).items():
        path = folder / name
        if path.is_file() and path.read_bytes() == data:
            continue
        tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"  # unique per writer thread
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return folder / GAME_FILE


def materialize(record: dict[str, Any], pack_name: str) -> Path:
    """The game file of a generated record, written into the cache on first use (keyed by the record's content)."""
    folder = cache_root() / pack_name / f"{record['task_id']}-{record_digest(record)}"
    game = folder / GAME_FILE
    if game.is_file() and (folder / TRAJ_FILE).is_file():
        return game
    return write_game(record, folder)
