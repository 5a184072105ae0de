"""Unit of work contract: several store calls commit together, and a unit left without a commit
undoes its rows and the files it created (and never deletes what it did not commit)."""

from __future__ import annotations

import asyncio
import contextvars
import io

import pytest

from app.domain.stores import Stores
from tests.contract.support import (
    CLASSES,
    box,
    children,
    files_under,
    image_file,
    label_file,
    line,
    png,
    project_dir,
    projects_dir,
    tmp_files,
    upload,
)


class Boom(Exception):
    """Raised inside a unit to make it fail."""


async def test_a_unit_that_fails_after_writing_a_file_leaves_neither_row_nor_file(
    stores: Stores, project: str
) -> None:
    with pytest.raises(Boom):
        async with stores.unit_of_work():
            info = await upload(stores, "a.png", seed=1)
            assert image_file(stores, "train", info.filename).exists()
            raise Boom

    assert await stores.image.list(project) == []
    assert await stores.image.exists(project, "train", "a.png") is False
    assert not image_file(stores, "train", "a.png").exists()
    assert files_under(project_dir(stores) / "images") == set()
    assert tmp_files(stores) == set()
    await upload(stores, "a.png", seed=1)  # not a duplicate: nothing of it was kept


async def test_leaving_a_unit_without_commit_rolls_it_back(stores: Stores) -> None:
    async with stores.unit_of_work():
        await stores.dataset.create("draft", ["cat"])
        await stores.task.enqueue("export")

    assert await stores.dataset.get("draft") is None
    assert await stores.task.list() == []
    assert children(projects_dir(stores)) == []
    assert tmp_files(stores) == set()


async def test_calling_rollback_undoes_the_units_writes(stores: Stores, project: str) -> None:
    async with stores.unit_of_work() as uow:
        await upload(stores, "a.png", seed=1)
        await uow.rollback()

    assert await stores.image.list(project) == []
    assert not image_file(stores, "train", "a.png").exists()


async def test_two_store_calls_in_one_committed_unit_both_persist(stores: Stores) -> None:
    async with stores.unit_of_work() as uow:
        await stores.dataset.create("both", list(CLASSES))
        await stores.image.save_file("both", "val", "a.png", io.BytesIO(png(1)))
        await stores.label.save("both", "val", "a.png", [box(1)])
        await uow.commit()

    assert (await stores.dataset.get("both")) is not None
    assert [i.filename for i in await stores.image.list("both", "val")] == ["a.png"]
    assert image_file(stores, "val", "a.png", "both").read_bytes() == png(1)
    assert label_file(stores, "val", "a.png", "both").read_text() == line(1)
    assert (project_dir(stores, "both") / "data.yaml").is_file()
    assert tmp_files(stores) == set()


async def test_a_project_deleted_inside_a_failed_unit_keeps_its_rows_and_folder(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])
    before = files_under(project_dir(stores))

    with pytest.raises(Boom):
        async with stores.unit_of_work():
            assert await stores.dataset.delete(project) is True
            raise Boom

    assert await stores.dataset.get(project) is not None
    assert [i.filename for i in await stores.image.list(project)] == ["a.png"]
    assert files_under(project_dir(stores)) == before
    assert image_file(stores, "train", "a.png").read_bytes() == png(1)


async def test_an_image_deleted_inside_a_failed_unit_keeps_its_files(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])

    with pytest.raises(Boom):
        async with stores.unit_of_work():
            await stores.image.delete(project, "train", "a.png")
            raise Boom

    assert await stores.image.exists(project, "train", "a.png") is True
    assert image_file(stores, "train", "a.png").read_bytes() == png(1)
    assert label_file(stores, "train", "a.png").read_text() == line(0)


async def test_a_move_inside_a_failed_unit_leaves_the_files_where_they_were(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])

    with pytest.raises(Boom):
        async with stores.unit_of_work():
            await stores.image.move(project, "a.png", "train", "val")
            raise Boom

    info = await stores.image.get(project, "a.png")
    assert (info.split, info.split_pinned) == ("train", False)
    assert image_file(stores, "train", "a.png").exists()
    assert label_file(stores, "train", "a.png").read_text() == line(0)
    assert not image_file(stores, "val", "a.png").exists()


async def test_a_label_save_inside_a_failed_unit_leaves_the_labels_and_mirror(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])
    version = (await stores.image.get(project, "a.png")).version

    with pytest.raises(Boom):
        async with stores.unit_of_work():
            await stores.label.save(project, "train", "a.png", [box(2, x=0.3)])
            raise Boom

    assert [a.class_id for a in await stores.label.load(project, "train", "a.png")] == [0]
    assert label_file(stores, "train", "a.png").read_text() == line(0)
    assert (await stores.image.get(project, "a.png")).version == version
    assert tmp_files(stores) == set()


async def test_a_class_change_inside_a_failed_unit_leaves_data_yaml_and_labels(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(2)])
    yaml_before = (project_dir(stores) / "data.yaml").read_bytes()

    with pytest.raises(Boom):
        async with stores.unit_of_work():
            await stores.dataset.update_classes(project, ["bird", "cat"])
            raise Boom

    assert [c.name for c in await stores.dataset.get_classes(project)] == list(CLASSES)
    assert (project_dir(stores) / "data.yaml").read_bytes() == yaml_before
    assert label_file(stores, "train", "a.png").read_text() == line(2)
    assert tmp_files(stores) == set()


async def test_a_store_call_inside_a_unit_sees_the_units_earlier_writes(
    stores: Stores,
) -> None:
    async with stores.unit_of_work() as uow:
        await stores.dataset.create("seen", ["cat"])
        assert await stores.dataset.get("seen") is not None
        await stores.image.save_file("seen", "train", "a.png", io.BytesIO(png(1)))
        assert [i.filename for i in await stores.image.list("seen")] == ["a.png"]
        await uow.commit()

    assert [i.filename for i in await stores.image.list("seen")] == ["a.png"]


async def test_writes_inside_a_unit_are_invisible_elsewhere_until_it_commits(
    stores: Stores, project: str
) -> None:
    async def outside() -> list[str]:
        # A fresh context: the reader does not join the open unit.
        task = asyncio.create_task(stores.image.list(project), context=contextvars.Context())
        return [i.filename for i in await task]

    async with stores.unit_of_work() as uow:
        await upload(stores, "a.png", seed=1)
        assert await outside() == []
        await uow.commit()

    assert await outside() == ["a.png"]


async def test_a_store_call_after_the_unit_committed_is_its_own_unit(
    stores: Stores, project: str
) -> None:
    async with stores.unit_of_work() as uow:
        first = await upload(stores, "a.png", seed=1)
        await uow.commit()
        # Joining the committed unit would lose this write when the block closes.
        second = await upload(stores, "b.png", seed=2)

    names = {i.filename for i in await stores.image.list(project)}
    assert names == {first.filename, second.filename}
    assert image_file(stores, "train", second.filename).exists()
