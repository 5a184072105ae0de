"""VersionStore contract: a version is registered building, put in place whole by ``finish``
(only then ready), failed or cancelled builds leave nothing on disk, deleting one removes its
folder and never the projects' images, and ``sources`` gives the labelled images on disk with
their accepted boxes."""

from __future__ import annotations

import pytest

from app.domain.errors import AlreadyExists, Conflict, Invalid, NotFound
from app.domain.stores import Stores
from app.domain.versions import BUILDING, FAILED, READY
from tests.contract.support import CLASSES, PROJECT, box, upload

RECIPE = {"seed": 3}
SOURCES = {"projects": [PROJECT], "choices": {}}


async def test_a_new_version_is_building_and_listed(stores: Stores) -> None:
    made = await stores.version.create("v1", RECIPE, SOURCES)

    assert made.status == BUILDING
    assert made.recipe == RECIPE and made.projects == [PROJECT]
    assert made.path == stores.data_dir / "versions" / "v1"
    assert [v.name for v in await stores.version.list()] == ["v1"]
    got = await stores.version.get("V1")  # names ignore case
    assert got is not None and got.name == "v1"


async def test_a_taken_name_or_a_bad_one_is_refused(stores: Stores) -> None:
    await stores.version.create("Cars", RECIPE, SOURCES)

    with pytest.raises(AlreadyExists):
        await stores.version.create("cars", RECIPE, SOURCES)
    for bad in ("", "a/b", "../up", "with space", ".hidden"):
        with pytest.raises(Invalid):
            await stores.version.create(bad, RECIPE, SOURCES)
    assert [v.name for v in await stores.version.list()] == ["Cars"]


async def test_a_folder_already_in_storage_is_not_taken_over(stores: Stores) -> None:
    (stores.data_dir / "versions" / "old").mkdir(parents=True)

    with pytest.raises(AlreadyExists):
        await stores.version.create("old", RECIPE, SOURCES)


async def test_finish_puts_the_built_folder_in_place_then_says_ready(stores: Stores) -> None:
    await stores.version.create("v1", RECIPE, SOURCES)
    building = await stores.version.building_folder("v1")
    assert not building.exists()
    (building / "images" / "train").mkdir(parents=True)
    (building / "data.yaml").write_text("names: {0: car}\n")

    ready = await stores.version.finish("v1", ["car"], {"images": {"train": 0}})

    assert ready.status == READY and ready.classes == ["car"]
    assert ready.counts == {"images": {"train": 0}}
    assert (ready.path / "data.yaml").read_text() == "names: {0: car}\n"
    assert not building.exists()
    with pytest.raises(Conflict):
        await stores.version.finish("v1", ["car"], {})
    with pytest.raises(Conflict):
        await stores.version.building_folder("v1")


async def test_building_again_removes_what_an_interrupted_build_left(stores: Stores) -> None:
    made = await stores.version.create("v1", RECIPE, SOURCES)
    building = await stores.version.building_folder("v1")
    (building / "images").mkdir(parents=True)
    made.path.mkdir(parents=True)  # renamed into place, then a crash before the commit

    again = await stores.version.building_folder("v1")

    assert again == building and not again.exists() and not made.path.exists()


async def test_a_failed_build_keeps_its_row_with_the_reason_and_no_files(stores: Stores) -> None:
    await stores.version.create("v1", RECIPE, SOURCES)
    building = await stores.version.building_folder("v1")
    (building / "images").mkdir(parents=True)

    await stores.version.fail("v1", "a file could not be decoded")

    failed = await stores.version.get("v1")
    assert failed is not None and failed.status == FAILED
    assert failed.error == "a file could not be decoded"
    assert not building.exists()


async def test_a_cancelled_build_leaves_no_row_and_no_files(stores: Stores) -> None:
    await stores.version.create("v1", RECIPE, SOURCES)
    building = await stores.version.building_folder("v1")
    (building / "images").mkdir(parents=True)

    await stores.version.fail("v1", None)

    assert await stores.version.get("v1") is None and not building.exists()
    await stores.version.fail("v1", None)  # quiet once gone


async def test_deleting_a_version_removes_its_folder_not_the_projects_images(
    stores: Stores, project: str
) -> None:
    image = await upload(stores, "a.png")
    await stores.label.save(PROJECT, "train", "a.png", [box(0)])
    await stores.version.create("v1", RECIPE, SOURCES)
    building = await stores.version.building_folder("v1")
    (building / "images" / "train").mkdir(parents=True)
    linked = building / "images" / "train" / "proj__a.png"
    linked.hardlink_to(image.path)
    ready = await stores.version.finish("v1", list(CLASSES), {})

    assert await stores.version.delete("v1") is True

    assert not ready.path.exists()
    assert image.path.is_file() and image.path.stat().st_nlink == 1
    assert await stores.version.get("v1") is None
    assert await stores.version.delete("v1") is False


async def test_sources_are_the_labelled_images_on_disk_with_their_accepted_boxes(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await upload(stores, "b.png", seed=2, split="val")
    await upload(stores, "c.png", seed=3)  # unlabelled: left out
    await upload(stores, "d.png", seed=4)
    await stores.label.save(PROJECT, "train", "a.png", [box(2, 0.5, 0.5, 0.2, 0.2), box(0)])
    await stores.label.set_no_objects(PROJECT, "b.png", True)
    await stores.label.save(PROJECT, "train", "d.png", [box(1)])
    (stores.data_dir / "projects" / PROJECT / "images" / "train" / "d.png").unlink()
    await stores.storage.reconcile()  # d.png is missing now: left out

    found = await stores.version.sources(PROJECT)

    assert found.classes == list(CLASSES)
    assert [(i.stem, i.suffix, i.split) for i in found.images] == [
        ("a", ".png", "train"),
        ("b", ".png", "val"),
    ]
    assert [b.class_id for b in found.images[0].boxes] == [2, 0]
    assert found.images[0].boxes[0].width == pytest.approx(0.2)
    assert found.images[1].boxes == []
    assert found.images[0].path.is_file() and len(found.images[0].sha256) == 64
    assert found.left_out == 2
    with pytest.raises(NotFound):
        await stores.version.sources("nope")
