"""Image grid use cases: a filtered page with its cursor and count, bulk move and delete, and the
previous/next image under a filter. (Rebalancing is a task:
``app/services/tasks.py``.)"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from app.domain.errors import Invalid
from app.domain.models import ImageFilter, ImageInfo
from app.domain.stores import Stores

DEFAULT_PAGE = 100
MAX_PAGE = 500
MAX_BULK = 10_000  # names in one move or delete


@dataclass
class ImagePage:
    """One page of the grid: its images, the cursor of the next page (``None`` on the last one)
    and how many images match the filter in all."""

    items: list[ImageInfo]
    next_cursor: int | None
    count: int


async def list_images(
    stores: Stores,
    project: str,
    filters: ImageFilter | None = None,
    cursor: int | None = None,
    limit: int = DEFAULT_PAGE,
) -> ImagePage:
    """The images after ``cursor`` (an image id, keyset order) that match every filter."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"A page holds 1 to {MAX_PAGE} images (limit was {limit}).")
    if filters is not None and filters.name is not None and not filters.name.strip():
        filters = replace(filters, name=None)
    # One more than asked says whether a next page exists without asking for an empty one.
    found = await stores.image.search(project, filters, after_id=cursor, limit=limit + 1)
    items = found[:limit]
    next_cursor = items[-1].id if len(found) > limit else None
    count = await stores.image.count(project, filters)
    return ImagePage(items, next_cursor, count)


async def neighbours(
    stores: Stores, project: str, filename: str, filters: ImageFilter | None = None
) -> tuple[str | None, str | None]:
    """The images before and after ``filename`` in grid order among those matching
    ``filters`` (``None`` at either end). The image itself need not match: once labelled it
    leaves an "unlabelled" filter, and the annotator still moves on from it. ``NotFound``."""
    image = await stores.image.get(project, filename)
    before = await stores.image.search(project, filters, before_id=image.id, limit=1)
    after = await stores.image.search(project, filters, after_id=image.id, limit=1)
    return (before[0].filename if before else None, after[0].filename if after else None)


async def get_image(stores: Stores, project: str, filename: str) -> ImageInfo:
    """One image by name, in any split. ``NotFound``."""
    return await stores.image.get(project, filename)


def _names(filenames: list[str]) -> list[str]:
    if len(filenames) > MAX_BULK:
        raise Invalid(f"At most {MAX_BULK} images can be changed at once ({len(filenames)} given).")
    return list(dict.fromkeys(filenames))


async def move_images(stores: Stores, project: str, filenames: list[str], split: str) -> int:
    """Move the images (with their label files) to ``split`` and pin them there, all or none;
    returns how many changed split."""
    return await stores.image.move_many(project, _names(filenames), split)


async def delete_images(stores: Stores, project: str, filenames: list[str]) -> int:
    """Delete the images with their labels and files, all or none; returns how many."""
    return await stores.image.delete_many(project, _names(filenames))


async def thumbnail(stores: Stores, project: str, filename: str) -> Path:
    """The image's thumbnail file, made again if it is missing. ``NotFound``."""
    return await stores.image.thumbnail(project, filename)
