"""Project and class use cases."""

from __future__ import annotations

from app.domain.errors import NotFound
from app.domain.models import ClassInfo, ClassUsage, DatasetInfo, ProjectUsage
from app.domain.splits import validate_ratios
from app.domain.stores import Stores
from app.services import preferences as preference_service


async def create_project(
    stores: Stores,
    name: str,
    classes: list[str],
    description: str = "",
    *,
    ratios: dict[str, float] | None = None,
) -> DatasetInfo:
    """Create a project with its ordered classes (validated by the store) and its split ratios:
    ``ratios``, or the default ratios of the preferences when not given. One unit: a refused
    ratio leaves no project behind."""
    chosen = validate_ratios(dict(ratios)) if ratios is not None else None
    if chosen is None:
        chosen = await preference_service.default_ratios(stores)
    async with stores.unit_of_work() as uow:
        info = await stores.dataset.create(name, classes, description=description)
        await stores.dataset.set_split_ratios(info.name, chosen)
        await uow.commit()
    return info


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


async def add_class(
    stores: Stores, name: str, class_name: str, colour: str | None = None
) -> ClassInfo:
    return await stores.dataset.add_class(name, class_name, colour=colour)


async def update_class(
    stores: Stores,
    name: str,
    class_id: int,
    *,
    new_name: str | None = None,
    colour: str | None = None,
    position: int | None = None,
) -> ClassInfo:
    """Rename, recolour and/or move a class in one unit of work: all of it or nothing."""
    async with stores.unit_of_work() as uow:
        if new_name is not None:
            await stores.dataset.rename_class(name, class_id, new_name)
        if colour is not None:
            await stores.dataset.set_class_colour(name, class_id, colour)
        if position is not None:
            await stores.dataset.move_class(name, class_id, position)
        await uow.commit()
    return find_class(name, await stores.dataset.get_classes(name), class_id)


def find_class(name: str, classes: list[ClassInfo], class_id: int) -> ClassInfo:
    """The class with that stable id, or ``NotFound`` saying it may have just been deleted."""
    found = next((c for c in classes if c.id == class_id), None)
    if found is None:
        raise NotFound(
            f"Project {name!r} has no class with id {class_id} (it may have been deleted "
            "meanwhile): reload to see the current classes."
        )
    return found


async def project_usage(stores: Stores, name: str) -> ProjectUsage:
    """What deleting the project would take with it (shown before the user confirms)."""
    project = await get_project(stores, name)
    usages = [await stores.dataset.class_usage(name, c.id) for c in project.class_details]
    models = await stores.model.list(dataset=project.name)
    return ProjectUsage(
        images=sum(project.num_images.values()),
        labels=sum(u.labels for u in usages),
        suggestions=sum(u.suggestions for u in usages),
        models=len(models),
    )


async def rename_class(stores: Stores, name: str, class_id: int, new_name: str) -> ClassInfo:
    return await stores.dataset.rename_class(name, class_id, new_name)


async def recolour_class(stores: Stores, name: str, class_id: int, colour: str) -> ClassInfo:
    return await stores.dataset.set_class_colour(name, class_id, colour)


async def move_class(stores: Stores, name: str, class_id: int, position: int) -> list[ClassInfo]:
    return await stores.dataset.move_class(name, class_id, position)


async def class_usage(stores: Stores, name: str, class_id: int) -> ClassUsage:
    """What deleting the class would take with it (shown before the user confirms)."""
    return await stores.dataset.class_usage(name, class_id)


async def merge_classes(stores: Stores, name: str, source_id: int, target_id: int) -> ClassUsage:
    return await stores.dataset.merge_class(name, source_id, target_id)


async def delete_class(stores: Stores, name: str, class_id: int) -> ClassUsage:
    return await stores.dataset.delete_class(name, class_id)
