"""Task-record schema of the `embodied` family (EmbodiedSearch-v0 and its AI2-THOR twin).

Loading a pack checks every record the way an episode will read it: the target is a known '<colour> <type>', every
room is a room kind or an iTHOR scene that exists, the request names the target's type, and the numbers are in range.
"""

from __future__ import annotations

import re
from typing import Any

from turngym.envs.embodied.house import COLOURS, PRIORS, parse_object
from turngym.envs.embodied.rooms import KINDS, scenes
from turngym.errors import ConfigError
from turngym.tasks.pack import Field, FieldError, TaskSchema

MAX_CANDIDATES = 8
MAX_EPISODES = 100  # earlier episodes replayed to make the memory


def check_task(task: dict[str, Any], context: Any = None) -> None:
    """Raise `FieldError` naming the field of `task` an episode could not be set up from."""
    try:
        target = parse_object(task["target"])
    except ConfigError as exc:
        raise FieldError("target", str(exc)) from None
    if not task["rooms"]:
        raise FieldError("rooms", "a house needs at least one room")
    known = set(scenes())
    for i, room in enumerate(task["rooms"]):
        if room not in KINDS and room not in known:
            raise FieldError(
                "rooms",
                f"item {i}: {room!r} is neither a room kind {list(KINDS)} nor an iTHOR scene "
                "(FloorPlan1-30, 201-230, 301-330, 401-430)",
            )
    if not re.search(rf"\b{re.escape(target.type)}s?\b", task["request"].lower()):
        raise FieldError(
            "request",
            f"{task['request']!r} does not name the target's type {target.type!r}, so no agent could know what "
            "to look for",
        )
    n_cand = task.get("n_candidates", 1)
    n_obj = task.get("n_objects", 6)
    most = n_cand + (len(PRIORS) - 1) * len(COLOURS)
    staleness = task.get("staleness", 0.0)
    if not 1 <= n_cand <= MAX_CANDIDATES:
        raise FieldError("n_candidates", f"must be 1..{MAX_CANDIDATES}, got {n_cand}")
    if not n_cand <= n_obj <= most:
        raise FieldError("n_objects", f"must be n_candidates ({n_cand})..{most}, got {n_obj}")
    if not 0 <= task.get("episode", 1) <= MAX_EPISODES:
        raise FieldError("episode", f"must be 0..{MAX_EPISODES}, got {task['episode']}")
    if not 0 <= staleness <= 1:
        raise FieldError("staleness", f"must be a probability in [0, 1], got {staleness}")


EMBODIED_SCHEMA = TaskSchema(
    "embodied",
    {
        "house_seed": Field(
            int,
            doc="seed of the house: which iTHOR scenes fill the room kinds, which receptacles",
            example=7693,
        ),
        "rooms": Field(
            list,
            items=str,
            doc="room kinds west to east (kitchen, living room, bedroom, bathroom) or iTHOR scenes 'FloorPlanN'",
            example=["kitchen", "living room"],
        ),
        "request": Field(
            str, doc="what the person says; names the target's type", example="Please find my blue pen."
        ),
        "target": Field(str, doc="the object the person means: '<colour> <type>'", example="blue pen"),
        "difficulty": Field(
            str, required=False, choices=("easy", "medium", "hard"), doc="label for reports", example="easy"
        ),
        "n_candidates": Field(
            int,
            required=False,
            doc=f"objects of the target's type, 1..{MAX_CANDIDATES} (>1: a vague request is ambiguous; default 1)",
            example=2,
        ),
        "n_objects": Field(int, required=False, doc="objects in the house in all (default 6)", example=4),
        "episode": Field(
            int,
            required=False,
            doc=f"earlier episodes in this house, 0..{MAX_EPISODES} (memory source; default 1)",
            example=1,
        ),
        "staleness": Field(
            float,
            required=False,
            doc="chance each object moved since the last episode (default 0)",
            example=0.0,
        ),
        "fetch": Field(
            bool,
            required=False,
            doc="the agent must pick the object up before done (default false)",
            example=False,
        ),
        "seed": Field(int, required=False, doc="seed of object placement (default 0)", example=0),
    },
    check=check_task,
    doc="`target` is a known colour and type, every room is a room kind or an existing iTHOR scene, `request` names "
    "the target's type, and the numbers are in range.",
)
