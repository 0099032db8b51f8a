"""Task-record schema of the `alfworld` family (ALFWorld-v0).

A record is either a generated game (`layout` + `task_desc` + `scene`, written to a TextWorld game on first use) or
an official one (`game`, a file under the manifest's `data_root` or the pack folder). Loading a pack checks that
the game can be made: the goal's objects are in the layout, every object sits in a receptacle of the layout, and an
official game file exists inside its data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turngym.envs.alfworld.games import TASK_TYPES, obj_type
from turngym.errors import TaskPackError
from turngym.tasks.pack import Field, FieldError, TaskPack, TaskSchema, check_fields, inside

PDDL_PARAMS = {
    "object_target": Field(str, doc="the object type to act on", example="SoapBar"),
    "parent_target": Field(str, doc="the receptacle type to put it in ('' for none)", example="CounterTop"),
    "toggle_target": Field(str, doc="the lamp type (look_at_obj_in_light)", example=""),
    "mrecep_target": Field(str, doc="the movable receptacle type ('' for none)", example=""),
    "object_sliced": Field(bool, required=False, doc="the object must be sliced", example=False),
}
_LAYOUT = {
    "agent": Field(str, doc="the agent's start location"),
    "receptacles": Field(list, items=list, doc="[receptacle THOR id, location]"),
    "objects": Field(list, items=list, doc="[object THOR id, receptacle THOR id]"),
}


def _data_root(pack: TaskPack) -> Path:
    return Path(pack.manifest.get("data_root") or pack.root)


def check_task(task: dict[str, Any], pack: TaskPack) -> None:
    """Raise `FieldError` naming the field of `task` from which no game could be made."""
    params = task["pddl_params"]
    try:
        check_fields({k: v for k, v in params.items() if k in PDDL_PARAMS}, PDDL_PARAMS, "", "pddl_params")
    except TaskPackError as exc:
        raise FieldError("pddl_params", str(exc).removeprefix(": ")) from None
    if "game" in task:
        try:
            game = inside(_data_root(pack), task["game"], "game", "the data folder")
        except TaskPackError as exc:
            raise FieldError("game", str(exc).removeprefix("game: ")) from None
        if not game.is_file():
            raise FieldError("game", f"{str(game)!r} does not exist")
        return
    missing = [f for f in ("layout", "task_desc", "scene") if f not in task]
    if missing:
        raise FieldError(
            missing[0], "a record needs 'game' (an official game file) or 'layout', 'task_desc', 'scene'"
        )
    layout = task["layout"]
    try:
        check_fields(layout, _LAYOUT, "", "layout")
    except TaskPackError as exc:
        raise FieldError("layout", str(exc).removeprefix(": ")) from None
    for key in ("receptacles", "objects"):
        for i, pair in enumerate(layout[key]):
            if len(pair) != 2 or not all(isinstance(x, str) and x for x in pair):
                raise FieldError(
                    "layout",
                    f"{key}[{i}]: expected [THOR id, {'location' if key == 'receptacles' else 'receptacle id'}], got {pair!r:.80}",
                )
    receptacles = {rid for rid, _ in layout["receptacles"]}
    for oid, rid in layout["objects"]:
        if rid not in receptacles:
            raise FieldError("layout", f"object {oid!r} is in {rid!r}, which is not among the receptacles")
    types = {obj_type(oid) for oid, _ in layout["objects"]} | {obj_type(rid) for rid in receptacles}
    for key in ("object_target", "parent_target", "toggle_target", "mrecep_target"):
        if params[key] and params[key] not in types:
            raise FieldError(
                "pddl_params", f"{key} {params[key]!r} is not in the layout (it has {sorted(types)})"
            )


ALFWORLD_SCHEMA = TaskSchema(
    "alfworld",
    {
        "task_type": Field(
            str,
            choices=TASK_TYPES,
            doc="one of the six ALFWorld task types",
            example="pick_clean_then_place_in_recep",
        ),
        "pddl_params": Field(
            dict,
            doc="ALFRED's goal parameters: object_target, parent_target, toggle_target, mrecep_target (strings), "
            "object_sliced",
            example={
                "object_target": "SoapBar",
                "parent_target": "CounterTop",
                "toggle_target": "",
                "mrecep_target": "",
            },
        ),
        "scene": Field(
            str,
            required=False,
            doc="the iTHOR floor plan (generated games: required)",
            example="FloorPlan425",
        ),
        "task_desc": Field(
            str,
            required=False,
            doc="the task sentence (generated games: required)",
            example="clean some soapbar and put it in countertop",
        ),
        "layout": Field(
            dict,
            required=False,
            doc="generated games: {agent: location, receptacles: [[id, location]], objects: [[id, receptacle id]]}",
            example={"agent": "loc|-2|9|1|30", "receptacles": [["..."]], "objects": [["..."]]},
        ),
        "game": Field(
            str,
            required=False,
            doc="official games: path of a game.tw-pddl under the manifest's data_root (or the pack folder)",
            example="valid_seen/pick_and_place_simple-.../trial_T2019.../game.tw-pddl",
        ),
        "gen_attempt": Field(
            int,
            required=False,
            doc="generated games: which generation attempt of this slot was kept",
            example=0,
        ),
    },
    manifest={
        "data_root": Field(
            str, required=False, doc="folder that `game` paths are relative to", example="/data/json_2.1.1"
        ),
        "generator": Field(
            dict, required=False, doc="settings of the generator that made the pack", example={"seed": 0}
        ),
        "stats": Field(dict, required=False, doc="counts per split, for reports", example={}),
    },
    prepare=lambda pack: pack,
    check=check_task,
    doc="`game` exists under `data_root` (or the pack folder); without it, `layout`, `task_desc` and `scene` are "
    "given, every object sits in a receptacle of the layout, and the goal's object types are in the layout.",
)
