"""Project and class use cases."""

from __future__ import annotations

from app.domain.errors import NotFound
from app.domain.models import ClassInfo, DatasetInfo
from app.domain.stores import Stores


async def create_project(
    stores: Stores, name: str, classes: list[str], description: str = ""
) -> DatasetInfo:
    """Create a project with its ordered classes (validated by the store)."""
    return await stores.dataset.create(name, classes, description=description)


async def get_project(stores: Stores, name: str) -> DatasetInfo:
    """The project, or ``NotFound``."""
    info = await stores.dataset.get(name)
    if info is None:
        raise NotFound(f"There is no project named {name!r}.")
    return info


async def delete_project(stores: Stores, name: str) -> None:
    if not await stores.dataset.delete(name):
        raise NotFound(f"There is no project named {name!r}.")


async def set_classes(stores: Stores, name: str, classes: list[str]) -> list[ClassInfo]:
    """Replace the ordered class list (matching names keep their labels)."""
    await stores.dataset.update_classes(name, classes)
    return await stores.dataset.get_classes(name)
