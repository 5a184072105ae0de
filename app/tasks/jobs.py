"""The kinds of task a worker can run. Each job gets the context and the stores, returns a
JSON-able result, and reports progress through ``ctx.progress`` (which raises on cancel)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.domain.export_formats import ULTRALYTICS
from app.domain.models import SPLITS
from app.domain.stores import Stores
from app.services.system import disk_full_guard
from app.tasks.autolabel import autolabel_project
from app.tasks.capture import capture_video
from app.tasks.capture_folder import capture_folder
from app.tasks.context import TaskContext
from app.tasks.evaluation import evaluate_model
from app.tasks.feed import capture_stream
from app.tasks.onnx_export import export_model_onnx
from app.tasks.training import train_project  # torch and Ultralytics only when it runs
from app.tasks.try_model import try_model
from app.tasks.versions import build_version

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
    with disk_full_guard(stores.data_dir, stores.disk_reserve, outcome="The export stopped."):
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


async def import_dataset(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Import a zip or server folder into the task's project (creating it first when asked:
    a retry finds it made and goes on, the images already in coming up as duplicates). An
    uploaded zip is removed once the import has ended, whatever the outcome, except a crash
    (the retry needs it)."""
    params = ctx.task.params
    name = params.get("project") or ctx.task.dataset
    if not name:
        raise ValueError("The import task names no project.")
    source = Path(params["source"])
    try:
        await ctx.progress(0.0, "reading the dataset's files")
        # Chunks already in stay in (each is whole); the rest is not imported.
        with disk_full_guard(stores.data_dir, stores.disk_reserve, outcome="The import stopped."):
            report = await stores.dataset.import_dataset(
                name,
                source,
                create=bool(params.get("create")),
                add_classes=bool(params.get("add_classes", True)),
                allowed_links=[] if params.get("uploaded") else ctx.import_roots,
                progress=ctx.progress,
            )
        report.source = str(params.get("label") or source.name)
        return report.to_dict()
    finally:
        # Not reached when the worker dies: then the retry still finds its zip.
        if params.get("uploaded"):
            await asyncio.to_thread(source.unlink, missing_ok=True)


JOBS: dict[str, Job] = {
    "export": export_project,
    "import": import_dataset,
    "rebalance": rebalance_project,
    "reconcile": reconcile_storage,
    "sync": sync_storage,
    "train": train_project,
    "evaluate": evaluate_model,
    "try_model": try_model,
    "export_onnx": export_model_onnx,
    "capture_video": capture_video,
    "capture_folder": capture_folder,
    "capture_stream": capture_stream,
    "autolabel": autolabel_project,
    "build_version": build_version,
}
