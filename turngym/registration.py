"""Every environment id turngym provides, registered with Gymnasium when `turngym` is imported.

Registering is cheap: entry points are strings, so no env module (nor its heavy dependencies) is imported until
`gym.make` is called. A new env family adds its lines to `ENVS` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from turngym.optional import is_available

NAMESPACE = "turngym"


@dataclass(frozen=True)
class EnvEntry:
    """One registered id: `turngym/<name>-v0`."""

    name: str  # e.g. "ALFWorld-v0"
    entry_point: str  # "module:Class"
    family: str  # env family, which also names the task-pack family
    modality: str  # "text" or "text+image"
    extra: str  # the pip extra that provides its dependencies
    needs: tuple[str, ...] = ()  # importable modules that the extra provides
    default_pack: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None  # turn limits live in the env (max_turns), not a TimeLimit wrapper

    @property
    def id(self) -> str:
        return f"{NAMESPACE}/{self.name}"

    def installed(self) -> bool:
        return all(is_available(m) for m in self.needs)


# One entry (or a few) per env family, the entries of a family next to each other.
ENVS: list[EnvEntry] = [
    # embodied: find objects for a person in houses of real iTHOR rooms (docs/embodied.md)
    EnvEntry(
        name="EmbodiedSearch-v0",
        entry_point="turngym.envs.embodied.env:EmbodiedSearchEnv",
        family="embodied",
        modality="text+image",
        extra="embodied",
        default_pack="embodied-search",
    ),
    EnvEntry(
        name="EmbodiedSearchTHOR-v0",
        entry_point="turngym.envs.embodied.thor:EmbodiedSearchTHOREnv",
        family="embodied",
        modality="text+image",
        extra="thor",
        needs=("ai2thor",),
        default_pack="embodied-search",
    ),
    EnvEntry(
        name="ShopAssistant-v0",
        entry_point="turngym.envs.shopping.assistant_env:ShopAssistantEnv",
        family="shopassistant",
        modality="text",
        extra="shopping",
        default_pack="shopassistant-synth",
    ),
    EnvEntry(
        name="WebShop-v0",
        entry_point="turngym.envs.shopping.text_env:WebShopEnv",
        family="shopping",
        modality="text",
        extra="shopping",
        default_pack="webshop-synth",
    ),
    EnvEntry(
        name="WebShopBrowser-v0",
        entry_point="turngym.envs.web.webshop:WebShopBrowserEnv",
        family="webshopbrowser",  # the web env's browser on the shopping store (envs/web/webshop.py)
        modality="text+image",
        extra="web",
        needs=("playwright",),
        default_pack="webshop-synth",
    ),
    EnvEntry(
        name="Coding-v0",
        entry_point="turngym.envs.coding.env:CodingEnv",
        family="coding",
        modality="text",
        extra="coding",
        default_pack="humaneval",  # or task_pack="repo-repair"
    ),
    EnvEntry(
        name="ALFWorld-v0",
        entry_point="turngym.envs.alfworld.env:ALFWorldEnv",
        family="alfworld",
        modality="text",
        extra="alfworld",
        needs=("alfworld", "textworld"),
        default_pack="alfworld-gen",
    ),
]


def add(entry: EnvEntry) -> None:
    ENVS.append(entry)


# web: MiniWoB++ on Chromium (envs/web, docs/web.md). `MiniWoB-v0` samples every task of the `miniwob` pack;
# `MiniWoB-<task>-v0` fixes one task (BrowserGym's `browsergym/miniwob.<task>`). Ids come from the pack's records.
def _miniwob_tasks() -> list[str]:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tasks" / "miniwob" / "train.jsonl"
    if not path.is_file():  # installed (non-editable): the pack sits in the turngym.tasks package
        from turngym.tasks.pack import BUILTIN_DIR

        path = BUILTIN_DIR / "miniwob" / "train.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["task_id"] for line in f if line.strip()]


_WEB = dict(
    entry_point="turngym.envs.web.miniwob:MiniWoBEnv",
    family="web",
    modality="text+image",
    extra="web",
    needs=("playwright", "miniwob"),
    default_pack="miniwob",
)
add(EnvEntry("MiniWoB-v0", **_WEB))
for _task in _miniwob_tasks():
    add(EnvEntry(f"MiniWoB-{_task}-v0", kwargs={"task": _task}, **_WEB))


def register_all() -> None:
    """Register every entry with Gymnasium (idempotent)."""
    for e in ENVS:
        if e.id in gym.registry:
            continue
        gym.register(
            id=e.id,
            entry_point=e.entry_point,
            kwargs=dict(e.kwargs),
            disable_env_checker=True,
            order_enforce=True,
            max_episode_steps=e.max_episode_steps,
        )


def entry(env_id: str) -> EnvEntry:
    """The entry for an id, accepting `turngym/X-v0`, `turngym:turngym/X-v0` or `X-v0`."""
    from turngym.errors import UnknownNameError

    name = env_id.split(":", 1)[-1]
    name = name.split("/", 1)[-1]
    for e in ENVS:
        if e.name == name:
            return e
    known = ", ".join(e.id for e in ENVS)
    raise UnknownNameError(f"unknown environment id {env_id!r}; known ids: {known}")


def families() -> dict[str, list[EnvEntry]]:
    out: dict[str, list[EnvEntry]] = {}
    for e in ENVS:
        out.setdefault(e.family, []).append(e)
    return out
