"""Task packs: data that defines tasks for an env family (`turngym.tasks`).

A pack is a folder with `manifest.json` and one JSONL file of task records per split. Built-in packs are the folders
beside this file; third-party packs come by path (`options={"task_pack": "/path/to/pack"}`) or through the
`turngym.tasks` entry-point group. See `turngym.tasks.pack` for the format.
"""

from turngym.tasks.pack import Field, TaskPack, find_packs, load_pack, validate_pack, write_pack

__all__ = ["Field", "TaskPack", "find_packs", "load_pack", "validate_pack", "write_pack"]
