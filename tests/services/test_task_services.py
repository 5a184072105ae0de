"""Task use cases: starting an export and finding its file."""

from __future__ import annotations

import pytest

from app.domain.errors import Conflict, NotFound
from app.domain.models import TaskStatus
from app.domain.stores import Stores
from app.services.projects import create_project, delete_project, get_project, set_classes
from app.services.tasks import cancel_task, export_file, start_export


async def test_starting_an_export_of_an_unknown_project_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound, match="no project"):
        await start_export(stores, "ghost")
    assert await stores.task.list() == []


async def test_an_export_task_is_queued_for_its_project(stores: Stores) -> None:
    await create_project(stores, "birds", ["gull"])
    task = await start_export(stores, "birds")
    assert (task.kind, task.status, task.dataset) == ("export", TaskStatus.QUEUED, "birds")


async def test_the_file_of_an_unfinished_export_is_refused(stores: Stores) -> None:
    await create_project(stores, "birds", ["gull"])
    task = await start_export(stores, "birds")
    with pytest.raises(Conflict, match="not finished"):
        await export_file(stores, task.id)


async def test_an_export_result_pointing_outside_exports_is_never_served(stores: Stores) -> None:
    await create_project(stores, "birds", ["gull"])
    task = await start_export(stores, "birds")
    claimed = await stores.task.claim("w")
    assert claimed is not None
    (stores.data_dir / "ydc.db").touch()
    await stores.task.finish(
        task.id, "w", status=TaskStatus.SUCCEEDED, result={"path": "../data/ydc.db"}
    )
    with pytest.raises(NotFound):
        await export_file(stores, task.id)


async def test_cancelling_a_queued_export_cancels_it_at_once(stores: Stores) -> None:
    await create_project(stores, "birds", ["gull"])
    task = await start_export(stores, "birds")
    cancelled = await cancel_task(stores, task.id)
    assert cancelled.status == TaskStatus.CANCELLED
    assert await stores.task.claim("w") is None


async def test_project_use_cases_create_rename_classes_and_delete(stores: Stores) -> None:
    await create_project(stores, "birds", ["gull", "crow"])
    classes = await set_classes(stores, "birds", ["crow", "Gull", "tern"])
    assert [(c.position, c.name) for c in classes] == [(0, "crow"), (1, "Gull"), (2, "tern")]
    await delete_project(stores, "birds")
    with pytest.raises(NotFound):
        await get_project(stores, "birds")
    with pytest.raises(NotFound):
        await delete_project(stores, "birds")
