"""The kinds of task a worker can run. Each job gets the context and the stores, returns a
JSON-able result, and reports progress through ``ctx.progress`` (which raises on cancel)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.domain.export_formats import ULTRALYTICS
from app.domain.models import SPLITS
from app.domain.stores import Stores
from app.tasks.context import TaskContext

Job = Callable[[TaskContext, Stores], Awaitable[dict[str, Any]]]


async def export_project(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Zip the project's chosen splits in the chosen format (the task's ``splits`` and
    ``format`` params; an older task without them exports all in the Ultralytics layout) into
    ``exports/task-<id>/``."""
    name = ctx.task.dataset
    if name is None:
        raise ValueError("The export task names no project.")
    folder = stores.data_dir / "exports" / f"task-{ctx.task.id}"
    splits = ctx.task.params.get("splits")
    fmt = ctx.task.params.get("format")
    await ctx.progress(0.0, "exporting")
    result = await stores.dataset.export(
        name, folder, progress=ctx.progress, splits=splits, format=fmt
    )
    return {
        "format": fmt or ULTRALYTICS,
        "splits": splits or list(SPLITS),
        "path": result.path.relative_to(stores.data_dir).as_posix(),
        "filename": result.path.name,
        "bytes": result.path.stat().st_size,
        "images": result.images,
        "labels": result.labels,
        "left_out": {reason: len(names) for reason, names in result.left_out.items()},
        "left_out_examples": {reason: names[:20] for reason, names in result.left_out.items()},
    }


async def rebalance_project(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Redraw the splits of the project's unpinned images, a chunk at a time; a cancel stops
    between chunks (the chunks done stay done: running it again finishes the redraw)."""
    name = ctx.task.dataset
    if name is None:
        raise ValueError("The rebalance task names no project.")
    await ctx.progress(0.0, "drawing the splits")
    counts = await stores.image.rebalance(name, progress=ctx.progress)
    return {"num_images": counts}


async def reconcile_storage(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Reconcile every project beside the running server (other processes may be writing:
    temp files younger than an hour are left alone)."""
    report = await stores.storage.reconcile(
        deep=bool(ctx.task.params.get("deep")), progress=ctx.progress
    )
    return report.to_dict()


async def sync_storage(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """sync-from-disk beside the running server."""
    report = await stores.storage.sync_from_disk(
        prefer_disk=bool(ctx.task.params.get("prefer_disk")), progress=ctx.progress
    )
    return report.to_dict()


JOBS: dict[str, Job] = {
    "export": export_project,
    "rebalance": rebalance_project,
    "reconcile": reconcile_storage,
    "sync": sync_storage,
}
