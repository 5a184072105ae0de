"""Task use cases: start an export or a rebalance, cancel, look tasks up, find a finished
export's file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from app.domain.errors import Conflict, NotFound
from app.domain.export_formats import validate_export_options
from app.domain.models import TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.services.projects import get_project
from app.services.session_settle import settle_after_task
from app.services.system import ensure_disk_room

# How many times a kind may be attempted before a silent worker makes it fail for good
# (training will get 1: a second attempt would start it over).
MAX_ATTEMPTS: dict[str, int] = {"export": 3, "rebalance": 3}


async def start_export(
    stores: Stores,
    name: str,
    *,
    splits: Sequence[str] | None = None,
    format: str | None = None,
) -> TaskInfo:
    """Queue an export of the project's splits (default all) as a zip in the format
    (default Ultralytics). ``Invalid`` for an unknown format or split or no split, ``NotFound``
    for an unknown project."""
    chosen, fmt = validate_export_options(splits, format)
    project = await get_project(stores, name)
    params = {"splits": list(chosen), "format": fmt}
    await ensure_disk_room(stores, outcome="The export was not queued.")
    return await stores.task.enqueue(
        "export", params, dataset=project.name, max_attempts=MAX_ATTEMPTS["export"]
    )


async def start_rebalance(stores: Stores, project: str) -> TaskInfo:
    """Queue a redraw of the splits of the project's unpinned images (``ImageStore.rebalance``);
    its result is the images per split afterwards. ``NotFound`` for an unknown project."""
    found = await get_project(stores, project)
    return await stores.task.enqueue(
        "rebalance", {}, dataset=found.name, max_attempts=MAX_ATTEMPTS["rebalance"]
    )


async def cancel_task(stores: Stores, task_id: int) -> TaskInfo:
    """Cancel a queued task at once, ask a running one to stop; a finished one stays as it is.
    A capture task cancelled before it ran ends its session (nothing else would)."""
    task = await stores.task.request_cancel(task_id)
    await settle_after_task(stores, task)
    return task


async def get_task(stores: Stores, task_id: int) -> TaskInfo:
    """The task; ``NotFound`` for an unknown id."""
    return await stores.task.get(task_id)


async def recent_tasks(
    stores: Stores, *, limit: int = 25, before_id: int | None = None
) -> tuple[list[TaskInfo], int | None]:
    """One page of tasks, newest first, and the ``before_id`` of the next older page (``None``
    when this page is the last)."""
    tasks = await stores.task.list(limit=limit + 1, before_id=before_id)
    older = tasks[limit - 1].id if len(tasks) > limit else None
    return tasks[:limit], older


async def export_file(stores: Stores, task_id: int) -> Path:
    """The zip a succeeded export task wrote; ``NotFound``/``Conflict`` otherwise."""
    task = await stores.task.get(task_id)
    if task.kind != "export":
        raise NotFound(f"Task {task_id} is not an export.")
    if task.status != TaskStatus.SUCCEEDED or not task.result:
        raise Conflict(f"Export task {task_id} has not finished ({task.status}).")
    exports = (stores.data_dir / "exports").resolve()
    path = (stores.data_dir / str(task.result.get("path", ""))).resolve()
    if not path.is_relative_to(exports) or not path.is_file():
        raise NotFound(f"The file of export task {task_id} is gone.")
    return path
