"""Fixtures for the embodied tests: a tiny two-room house whose shortest paths are easy to compute by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from turngym.envs.embodied.house import House
from turngym.envs.embodied.rooms import Receptacle, Room
from turngym.tasks import pack as tasks_pack


def tiny_house() -> House:
    """Room A (kitchen): a 4x1 corridor (0,0)..(3,0). Room B (bedroom): (0,0),(1,0),(2,0),(2,1).

    A's east door is (3,0), B's west door is (0,0), joined by a 1 m door. A fridge is reached from A(0,0), a table
    from B(2,1). Walking A(0,0) -> B(2,1): 3 cells (0.75 m) + door 1 m + 3 cells (0.75 m) = 2.5 m.
    """
    a = Room(
        "FloorPlanA",
        "kitchen",
        frozenset({(0, 0), (1, 0), (2, 0), (3, 0)}),
        [Receptacle("Fridge|a", "Fridge", (0, 0), (0.0, -1.0), 180)],
    )
    b = Room(
        "FloorPlanB",
        "bedroom",
        frozenset({(0, 0), (1, 0), (2, 0), (2, 1)}),
        [Receptacle("DiningTable|b", "DiningTable", (2, 1), (2.0, 2.0), 0)],
    )
    return House([a, b], seed=0)


def write_pack(root: Path, records: list[dict], name: str = "embodied-mini") -> Path:
    return tasks_pack.write_pack(
        root, {"name": name, "version": "0.1.0", "family": "embodied"}, {"test": records}
    )


TINY_TASK = {
    "task_id": "tiny",
    "house_seed": 0,
    "rooms": ["kitchen", "bedroom"],
    "request": "Get me my mug.",
    "target": "blue mug",
    "n_candidates": 2,
    "n_objects": 2,
    "episode": 1,
    "staleness": 0.0,
}


@pytest.fixture
def tiny_env(tmp_path):
    """An env on a one-task pack whose house is replaced by `tiny_house()` (costs then have hand-computed values)."""
    from turngym.envs.embodied.env import EmbodiedSearchEnv

    def make(**kw):
        pack = write_pack(
            tmp_path / f"pack{len(list(tmp_path.iterdir()))}", [dict(TINY_TASK, **kw.pop("task", {}))]
        )
        env = EmbodiedSearchEnv(task_pack=str(pack), split="test", **kw)
        env._houses[(0, ("kitchen", "bedroom"))] = tiny_house()
        return env

    return make
