"""Task-record schema of the `web` family (MiniWoB-v0 and MiniWoB-<task>-v0).

Loading a pack checks that every record's page exists among the MiniWoB++ pages of the installed `miniwob`
package, and that a record marked `expert` has a scripted expert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turngym.errors import TaskPackError
from turngym.tasks.pack import Field, FieldError, TaskPack, TaskSchema, inside


def prepare(pack: TaskPack) -> Path:
    """The folder the records' pages are relative to (MiniWoB's html root)."""
    from turngym.envs.web.miniwob import miniwob_html_root

    return miniwob_html_root()


def check_task(task: dict[str, Any], html_root: Path) -> None:
    """Raise `FieldError` naming the field of `task` that a browser episode could not use."""
    try:
        page = inside(html_root, task["page"].lstrip("/"), "page", "the miniwob html folder")
    except TaskPackError as exc:
        raise FieldError("page", str(exc).removeprefix("page: ")) from None
    if not page.is_file():
        raise FieldError("page", f"{task['page']!r} is not a page of the miniwob package ({html_root})")
    if task.get("expert"):
        from turngym.envs.web.experts import EXPERTS

        if task["task_id"] not in EXPERTS:
            raise FieldError("expert", f"true, but there is no scripted expert for {task['task_id']!r}")
    if not 0 <= task.get("expert_success", 0) <= 1:
        raise FieldError("expert_success", f"must be in [0, 1], got {task['expert_success']}")


WEB_SCHEMA = TaskSchema(
    "web",
    {
        "page": Field(
            str,
            doc="the task page, relative to the miniwob package's html root",
            example="miniwob/click-button.html",
        ),
        "title": Field(str, required=False, doc="the page's title, for reports", example="Click Button Task"),
        "expert": Field(bool, required=False, doc="a scripted expert exists for this task_id", example=True),
        "expert_success": Field(
            float, required=False, doc="the expert's measured success rate, in [0, 1]", example=1.0
        ),
        "reload": Field(
            bool,
            required=False,
            doc="reload the page every episode (its episodes leave residue)",
            example=False,
        ),
    },
    manifest={
        "excluded": Field(
            dict,
            items=str,
            required=False,
            doc="pages left out: task → reason",
            example={"chase-circle": "..."},
        )
    },
    prepare=prepare,
    check=check_task,
    doc="`page` exists among the installed miniwob package's pages; `expert: true` has a scripted expert; "
    "`expert_success` is in [0, 1].",
)
