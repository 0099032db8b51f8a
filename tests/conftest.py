"""Shared fixtures: a small real env family defined here (a lock with a numeric code) to test the contract itself."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

from turngym.envs.core import Outcome, TurnEnv
from turngym.tasks import pack as tasks_pack
from turngym.tasks.pack import Field


class LockEnv(TurnEnv):
    """Guess a lock's digits one position at a time: `try N` at the current position; `open` when all are set."""

    family = "lock"
    task_fields = {"code": Field(str, doc="the digits"), "hint": Field(bool, required=False)}
    action_format = "Actions: `try D` (a digit 0-9) or `open`."
    default_max_turns = 30

    def _start(self, task):
        self.code = task["code"]
        self.pos = 0
        return Outcome(
            text=f"A lock with {len(self.code)} digits. Position 1.",
            state=(0,),
            admissible_actions=self._adm(),
        )

    def _adm(self):
        return [f"try {d}" for d in range(10)] + ["open"]

    def _act(self, action):
        a = action.strip()
        if a == "open":
            ok = self.pos == len(self.code)
            return Outcome(
                text="The lock opens." if ok else "It stays shut.",
                reward=1.0 if ok else 0.0,
                terminated=ok,
                success=ok,
                score=1.0 if ok else 0.0,
                state=(self.pos, "open"),
                admissible_actions=self._adm(),
                cost={"tries": 0.0},
            )
        if a.startswith("try ") and a[4:].isdigit() and len(a[4:]) == 1:
            if self.pos < len(self.code) and a[4:] == self.code[self.pos]:
                self.pos += 1
                return Outcome(
                    text=f"Click. Position {self.pos + 1}.",
                    state=(self.pos,),
                    admissible_actions=self._adm(),
                    cost={"tries": 1.0},
                )
            return Outcome(
                text="Nothing.", state=(self.pos,), admissible_actions=self._adm(), cost={"tries": 1.0}
            )
        return Outcome(
            text=f"Invalid action {a[:40]!r}. {self.action_format}",
            invalid_action=True,
            error="expected `try D` or `open`",
            state=(self.pos,),
            admissible_actions=self._adm(),
        )

    def expert_action(self):
        return "open" if self.pos == len(self.code) else f"try {self.code[self.pos]}"


def write_pack(root: Path, name: str = "lock-basic", family: str = "lock", n: int = 6) -> Path:
    manifest = {"name": name, "version": "1.0.0", "family": family, "license": "CC0", "source": "tests"}
    splits = {
        split: [{"task_id": f"{split}-{i}", "code": str(1000 + off + i * 7)} for i in range(n)]
        for split, off in (("train", 0), ("test", 100))
    }
    return tasks_pack.write_pack(root, manifest, splits)


@pytest.fixture
def lock_pack(tmp_path) -> Path:
    return write_pack(tmp_path / "lock-basic")


@pytest.fixture
def lock_id(lock_pack) -> str:
    env_id = "turngymtest/Lock-v0"
    if env_id in gym.registry:
        del gym.registry[env_id]
    gym.register(env_id, entry_point=LockEnv, kwargs={"task_pack": str(lock_pack)}, disable_env_checker=True)
    yield env_id
    del gym.registry[env_id]
