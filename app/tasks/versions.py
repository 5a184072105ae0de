"""The version build job: read the source projects' labelled images through the stores, map
their classes to the version's, write the folder (``app.tasks.version_build``) in a fixed
order (project order, then image id), then put it in place and mark the version ready.

A cancel (``ctx.progress`` raises) or an error removes the half-made folder: a cancelled
version's row goes too, a failed one keeps its row with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

from app.domain.box_geometry import YoloBox
from app.domain.errors import Cancelled, Invalid
from app.domain.stores import Stores
from app.domain.versions import SourceImage, map_classes, validate_recipe
from app.services.system import disk_full_guard, disk_refusal
from app.tasks.context import TaskContext
from app.tasks.version_build import build_folder


def _mapped(image: SourceImage, index_of: dict[int, int | None]) -> SourceImage:
    boxes = []
    for box in image.boxes:
        target = index_of.get(box.class_id)
        if target is not None:
            boxes.append(YoloBox(target, box.x, box.y, box.width, box.height))
    return replace(image, boxes=boxes)


async def build_version(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Build the version the task names (``params.name``)."""
    name = ctx.task.params.get("name")
    if not isinstance(name, str):
        raise Invalid("The version task names no version.")
    version = await stores.version.get(name)
    if version is None:
        raise Invalid(f"Version {name!r} is gone: it was deleted before it was built.")
    try:
        refusal = await asyncio.to_thread(
            disk_refusal, stores.data_dir, stores.disk_reserve, outcome="The version stopped."
        )
        if refusal is not None:
            raise refusal
        with disk_full_guard(stores.data_dir, stores.disk_reserve, outcome="The version stopped."):
            return await _build(ctx, stores, version.name, version.recipe, version.sources)
    except Cancelled:
        with contextlib.suppress(Exception):
            await stores.version.fail(version.name, None)
        raise
    except Exception as error:
        with contextlib.suppress(Exception):
            await stores.version.fail(version.name, str(error) or type(error).__name__)
        raise


async def _build(
    ctx: TaskContext,
    stores: Stores,
    name: str,
    raw_recipe: dict[str, Any],
    sources: dict[str, Any],
) -> dict[str, Any]:
    recipe = validate_recipe(raw_recipe)
    await ctx.progress(0.0, "reading the projects")
    gathered = [await stores.version.sources(p) for p in sources.get("projects", [])]
    mapping = map_classes({g.project: g.classes for g in gathered}, sources.get("choices") or {})
    images = [_mapped(i, mapping.index_of[g.project]) for g in gathered for i in g.images]
    left_out = {g.project: g.left_out for g in gathered}
    folder = await stores.version.building_folder(name)

    async def progress(fraction: float, message: str) -> None:
        # Augmented copies can write many times the sources: stop at the reserve, not at a
        # full disk (statvfs every few images is cheap).
        refusal = await asyncio.to_thread(
            disk_refusal, stores.data_dir, stores.disk_reserve, outcome="The version stopped."
        )
        if refusal is not None:
            raise refusal
        await ctx.progress(fraction, message)

    counts = await build_folder(folder, mapping.names, images, len(images), recipe, progress)
    summary = {**counts.to_dict(), "unlabelled_left_out": left_out}
    await ctx.progress(1.0, "putting the version in place")
    ready = await stores.version.finish(name, mapping.names, summary)
    return {
        "version": ready.name,
        "classes": ready.classes,
        "images": counts.images,
        "boxes": counts.boxes,
        "linked": counts.linked,
        "written": counts.written,
        "dropped_empty": counts.dropped_empty,
        "unlabelled_left_out": left_out,
    }
