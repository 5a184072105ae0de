"""Dataset versions end to end below HTTP: the service queues a build, the job runs in this
process on the real stores, and the folder, the row and the counts are what the recipe says.
Acceptance: two projects whose classes are ``Car`` and ``car `` make one class with both
projects' labels; the same recipe and seed build the same files twice."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from app.config import Settings
from app.domain.errors import AlreadyExists, Cancelled, Conflict, Invalid
from app.domain.models import Annotation
from app.domain.stores import Stores
from app.domain.versions import FAILED, READY
from app.services import versions as version_service
from app.tasks.context import TaskContext
from app.tasks.versions import build_version
from tests.conftest import encode, make_image

RECIPE: dict[str, Any] = {
    "seed": 7,
    "augmentation": {"outputs": 2, "flip_horizontal": True, "brightness": 0.2},
}


async def add_image(
    stores: Stores, project: str, filename: str, split: str, seed: int, boxes: list[Annotation]
) -> Path:
    data = encode(make_image(80, 60, seed), ".png")
    info = await stores.image.save_file(project, split, filename, io.BytesIO(data))
    if boxes:
        await stores.label.save(project, split, info.filename, boxes)
    return info.path


@pytest.fixture
async def two_projects(stores: Stores) -> dict[str, Path]:
    """``north`` (Car, person) and ``south`` (car , dog): each with labelled train and val
    images and one unlabelled image."""
    await stores.dataset.create("north", ["Car", "person"])
    await stores.dataset.create("south", ["car ", "dog"])
    paths = {
        "north/a": await add_image(
            stores, "north", "a.png", "train", 1, [Annotation(0, 0.5, 0.5, 0.2, 0.2)]
        ),
        "north/b": await add_image(
            stores, "north", "b.png", "val", 2, [Annotation(1, 0.3, 0.3, 0.2, 0.2)]
        ),
        "south/c": await add_image(
            stores,
            "south",
            "c.png",
            "train",
            3,
            [Annotation(0, 0.4, 0.4, 0.2, 0.2), Annotation(1, 0.7, 0.7, 0.2, 0.2)],
        ),
        "south/d": await add_image(
            stores, "south", "d.png", "val", 4, [Annotation(0, 0.6, 0.6, 0.1, 0.1)]
        ),
    }
    await add_image(stores, "south", "e.png", "train", 5, [])  # unlabelled: left out
    return paths


async def run_build(stores: Stores, settings: Settings, task_id: int) -> dict[str, Any]:
    """Claim the queued build and run its job here, as a worker would."""
    claimed = await stores.task.claim("test-worker", kinds=["build_version"])
    assert claimed is not None and claimed.id == task_id
    ctx = TaskContext(claimed, "test-worker", stores.task, settings.task_heartbeat_s)
    async with ctx:
        result = await build_version(ctx, stores)
    await stores.task.finish(task_id, "test-worker", status="succeeded", result=result)
    return result


def labels_of(folder: Path) -> dict[str, list[list[str]]]:
    return {
        path.relative_to(folder).as_posix(): [row.split() for row in path.read_text().splitlines()]
        for path in sorted((folder / "labels").rglob("*.txt"))
    }


def hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def test_car_and_car_with_a_space_become_one_class_keeping_both_projects_labels(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    overview = await version_service.class_overview(stores, ["north", "south"])
    assert [(r.name, r.unmatched) for r in overview.rows] == [
        ("Car", False),
        ("person", True),
        ("dog", True),
    ]

    _, task = await version_service.start_version(
        stores, "cars-v1", ["north", "south"], {"seed": 1}
    )
    result = await run_build(stores, settings, task.id)

    ready = await version_service.get_version(stores, "cars-v1")
    assert ready.status == READY and ready.classes == ["Car", "person", "dog"]
    assert result["images"] == {"train": 2, "val": 2, "test": 0}
    assert ready.counts["boxes"]["train"] == {"Car": 2, "dog": 1}
    assert ready.counts["boxes"]["val"] == {"person": 1, "Car": 1}
    assert ready.counts["unlabelled_left_out"] == {"north": 0, "south": 1}
    labels = labels_of(ready.path)
    assert [row[0] for row in labels["labels/train/north__a.txt"]] == ["0"]
    assert [row[0] for row in labels["labels/train/south__c.txt"]] == ["0", "2"]
    assert [row[0] for row in labels["labels/val/south__d.txt"]] == ["0"]
    assert labels["labels/val/south__d.txt"][0][1:] == ["0.600000"] * 2 + ["0.100000"] * 2
    described = yaml.safe_load((ready.path / "data.yaml").read_text())
    assert described["names"] == {0: "Car", 1: "person", 2: "dog"}
    # Unchanged images are hard links to the projects' own files.
    linked = ready.path / "images" / "train" / "north__a.png"
    assert linked.stat().st_ino == two_projects["north/a"].stat().st_ino


async def test_the_mapping_screen_choices_merge_rename_and_drop(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    choices = {"south": {"dog": None}, "north": {"person": "pedestrian"}}
    _, task = await version_service.start_version(
        stores, "mapped", ["north", "south"], {"seed": 1}, choices
    )
    await run_build(stores, settings, task.id)

    ready = await version_service.get_version(stores, "mapped")
    assert ready.classes == ["Car", "pedestrian"]
    assert ready.counts["boxes"]["train"] == {"Car": 2}  # the dog box dropped with its class
    assert [row[0] for row in labels_of(ready.path)["labels/train/south__c.txt"]] == ["0"]


async def test_the_same_recipe_and_seed_build_identical_versions(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    built = []
    for name in ("same-1", "same-2"):
        _, task = await version_service.start_version(stores, name, ["north", "south"], RECIPE)
        result = await run_build(stores, settings, task.id)
        assert result["images"]["train"] == 2 * 3  # each train image and two copies
        built.append(hashes((await version_service.get_version(stores, name)).path))

    assert built[0] == built[1]
    assert any("_aug2" in name for name in built[0])


async def test_bad_input_is_refused_before_anything_is_queued(
    stores: Stores, two_projects: dict[str, Path]
) -> None:
    cases: list[tuple[str, list[str], dict[str, Any], dict[str, Any] | None, str]] = [
        ("v", [], {}, None, "at least one project"),
        ("v", ["north", "North"], {}, None, "chosen twice"),
        ("v", ["north"], {"seed": -1}, None, "seed"),
        ("v", ["north"], {"augmentation": {"outputs": 2}}, None, "at least one operation"),
        ("v", ["north"], {"colour": 1}, None, "unknown setting colour"),
        ("v", ["north"], {}, {"north": {"truck": "car"}}, "no class 'truck'"),
        ("v", ["north"], {}, {"north": {"Car": None, "person": None}}, "Every class is dropped"),
        ("a b", ["north"], {}, None, "spaces"),
    ]
    for name, projects, recipe, choices, message in cases:
        with pytest.raises(Invalid, match=message):
            await version_service.start_version(stores, name, projects, recipe, choices)
    assert await stores.task.list(kinds=["build_version"]) == []
    assert await stores.version.list() == []


async def test_a_cancelled_build_leaves_no_folder_and_no_version(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    await version_service.start_version(stores, "gone", ["north"], {})
    claimed = await stores.task.claim("test-worker", kinds=["build_version"])
    assert claimed is not None
    ctx = TaskContext(claimed, "test-worker", stores.task, settings.task_heartbeat_s)
    ctx.cancel_requested = True

    with pytest.raises(Cancelled):
        await build_version(ctx, stores)

    assert await stores.version.get("gone") is None
    versions = stores.data_dir / "versions"
    assert not versions.exists() or list(versions.iterdir()) == []


async def test_a_build_cancelled_before_it_ran_is_settled_when_listed(
    stores: Stores, two_projects: dict[str, Path]
) -> None:
    _, task = await version_service.start_version(stores, "never", ["north"], {})
    await stores.task.request_cancel(task.id)

    assert await version_service.list_versions(stores) == []


async def test_a_failed_build_keeps_its_row_with_the_reason(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    resize = {"preprocessing": {"resize": 64}}  # decoded, not linked
    await version_service.start_version(stores, "broken", ["north"], resize)
    two_projects["north/a"].write_bytes(b"not an image any more")
    claimed = await stores.task.claim("test-worker", kinds=["build_version"])
    assert claimed is not None
    ctx = TaskContext(claimed, "test-worker", stores.task, settings.task_heartbeat_s)

    with pytest.raises(Invalid, match="cannot be decoded"):
        await build_version(ctx, stores)

    failed = await stores.version.get("broken")
    assert failed is not None and failed.status == FAILED and "decoded" in (failed.error or "")
    assert not failed.path.exists()
    assert list((stores.data_dir / "versions").iterdir()) == []


async def test_deleting_a_version_keeps_the_projects_images_and_is_refused_while_in_use(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    _, task = await version_service.start_version(stores, "v1", ["north", "south"], RECIPE)
    with pytest.raises(Conflict, match="being built"):
        await version_service.delete_version(stores, "v1")
    await run_build(stores, settings, task.id)
    with pytest.raises(AlreadyExists):
        await version_service.start_version(stores, "V1", ["north"], {})
    training = await stores.task.enqueue(
        "train", {"epochs": 1, "version": "v1"}, dataset="north", max_attempts=1
    )
    with pytest.raises(Conflict, match=f"training task {training.id}"):
        await version_service.delete_version(stores, "v1")
    await stores.task.request_cancel(training.id)
    folder = (await version_service.get_version(stores, "v1")).path

    await version_service.delete_version(stores, "v1")

    assert not folder.exists()
    for path in two_projects.values():
        assert path.is_file() and path.stat().st_nlink == 1


async def test_a_version_zips_in_the_ultralytics_layout_stored_not_deflated(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    _, task = await version_service.start_version(stores, "zipped", ["north", "south"], {})
    await run_build(stores, settings, task.id)
    folder = (await version_service.get_version(stores, "zipped")).path

    data = b"".join(version_service.zip_chunks(folder))

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
        assert archive.read("images/train/north__a.png") == two_projects["north/a"].read_bytes()
        assert archive.read("data.yaml") == (folder / "data.yaml").read_bytes()
    assert set(names) == set(hashes(folder))
    assert "labels/val/south__d.txt" in names


async def test_tiling_in_a_build_keeps_the_boxes_each_tile_holds_enough_of(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("tiles", ["thing"])
    width, height = 1500, 1000
    data = encode(make_image(width, height, 9), ".png")
    await stores.image.save_file("tiles", "train", "big.png", io.BytesIO(data))
    boxes = [(100, 100, 300, 200), (500, 300, 700, 500)]  # pixels: x1, y1, x2, y2
    await stores.label.save(
        "tiles",
        "train",
        "big.png",
        [
            Annotation(
                0,
                (x1 + x2) / 2 / width,
                (y1 + y2) / 2 / height,
                (x2 - x1) / width,
                (y2 - y1) / height,
            )
            for x1, y1, x2, y2 in boxes
        ],
    )
    recipe = {
        "preprocessing": {
            "tile": 640,
            "tile_overlap": 0.2,
            "tile_min_visible": 0.6,
            "drop_empty": True,
        }
    }
    _, task = await version_service.start_version(stores, "tiled", ["tiles"], recipe)

    result = await run_build(stores, settings, task.id)

    folder = (await version_service.get_version(stores, "tiled")).path
    rows = {
        name: [[float(v) for v in row[1:]] for row in lines]
        for name, lines in labels_of(folder).items()
    }
    # Stride 512; the last column starts at 860 and the last row at 360 (flush, no padding).
    # The second box keeps 70 % of itself in t0x0, 94 % in t512x0, 66 % in t512x360 and 49 %
    # in t0x360 (below 60 %: dropped, and that tile is then empty).
    assert sorted(rows) == [
        "labels/train/tiles__big_t0x0.txt",
        "labels/train/tiles__big_t512x0.txt",
        "labels/train/tiles__big_t512x360.txt",
    ]
    expected = {
        "labels/train/tiles__big_t0x0.txt": [
            [200 / 640, 150 / 640, 200 / 640, 100 / 640],
            [570 / 640, 400 / 640, 140 / 640, 200 / 640],
        ],
        "labels/train/tiles__big_t512x0.txt": [[94 / 640, 400 / 640, 188 / 640, 200 / 640]],
        "labels/train/tiles__big_t512x360.txt": [[94 / 640, 70 / 640, 188 / 640, 140 / 640]],
    }
    for name, boxes_in_tile in expected.items():
        assert rows[name] == [pytest.approx(b, abs=2e-6) for b in boxes_in_tile], name
    assert result["dropped_empty"] == 3 and result["written"] == 3 and result["linked"] == 0
    tile = cv2.imread(str(folder / "images" / "train" / "tiles__big_t512x360.png"))
    assert tile.shape == (640, 640, 3)


async def test_redrawn_splits_follow_the_ratios(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    recipe = {"split_mode": "redraw", "ratios": {"train": 0.0, "val": 1.0, "test": 0.0}}
    _, task = await version_service.start_version(stores, "all-val", ["north", "south"], recipe)

    result = await run_build(stores, settings, task.id)

    assert result["images"] == {"train": 0, "val": 4, "test": 0}


async def test_reconcile_and_sync_from_disk_leave_a_version_alone(
    settings: Settings, stores: Stores, two_projects: dict[str, Path]
) -> None:
    _, task = await version_service.start_version(stores, "kept", ["north", "south"], RECIPE)
    await run_build(stores, settings, task.id)
    folder = (await version_service.get_version(stores, "kept")).path
    before = hashes(folder)

    report = await stores.storage.reconcile()
    synced = await stores.storage.sync_from_disk()

    assert not [f for f in report.findings if "versions" in f.path]
    assert "versions" not in json.dumps(synced.to_dict())
    assert hashes(folder) == before
    assert [p.name for p in await stores.dataset.list()] == ["north", "south"]
