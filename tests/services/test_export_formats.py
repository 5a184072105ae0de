"""Export options: the splits and the format (Ultralytics, CVAT's YOLO 1.1, COCO JSON) of a
project made through the stores, checked by opening the zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from app.domain.errors import Invalid
from app.domain.models import ImageInfo
from app.domain.stores import Stores
from app.services.projects import create_project
from app.services.tasks import start_export
from app.tasks.jobs import export_project
from tests.contract.support import CLASSES, box, jpg, line, png, upload

PROJECT = "proj"
WIDTH, HEIGHT = 80, 60


async def _project(stores: Stores) -> tuple[dict[str, bytes], dict[str, ImageInfo]]:
    """cat (train, two boxes), dog (val, one box), empty (test, "no objects"), u (train,
    unlabelled); returns the bytes and the stored images by name."""
    await create_project(stores, PROJECT, list(CLASSES))
    data = {
        "cat.jpg": jpg(1, WIDTH, HEIGHT),
        "dog.png": png(2, WIDTH, HEIGHT),
        "empty.png": png(3, WIDTH, HEIGHT),
        "u.png": png(4, WIDTH, HEIGHT),
    }
    splits = {"cat.jpg": "train", "dog.png": "val", "empty.png": "test", "u.png": "train"}
    infos = {
        name: await upload(stores, name, split=splits[name], data=payload)
        for name, payload in data.items()
    }
    await stores.label.save(PROJECT, "train", "cat.jpg", [box(0, x=0.25), box(2, x=0.75)])
    await stores.label.save(PROJECT, "val", "dog.png", [box(1, 0.5, 0.5, 0.5, 0.125)])
    await stores.label.set_no_objects(PROJECT, "empty.png", True)
    return data, infos


async def test_the_default_export_is_unchanged_ultralytics(stores: Stores, tmp_path: Path) -> None:
    data, _ = await _project(stores)

    result = await stores.dataset.export(PROJECT, tmp_path)

    assert result.path.name == f"{PROJECT}.zip"
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "data.yaml",
            "images/test/empty.png",
            "images/train/cat.jpg",
            "images/val/dog.png",
            "labels/test/empty.txt",
            "labels/train/cat.txt",
            "labels/val/dog.txt",
        ]
        assert archive.read("images/train/cat.jpg") == data["cat.jpg"]


async def test_an_ultralytics_export_of_some_splits_holds_only_those(
    stores: Stores, tmp_path: Path
) -> None:
    data, _ = await _project(stores)

    result = await stores.dataset.export(PROJECT, tmp_path, splits=["val", "test"])

    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "data.yaml",
            "images/test/empty.png",
            "images/val/dog.png",
            "labels/test/empty.txt",
            "labels/val/dog.txt",
        ]
        text = archive.read("data.yaml").decode()
        assert "images/train" not in text
        assert "val: images/val" in text
        assert archive.read("labels/val/dog.txt").decode() == line(1, w=0.5, h=0.125)
        assert archive.read("images/val/dog.png") == data["dog.png"]
    assert (result.images, result.labels) == (2, 1)
    assert result.left_out == {"unlabelled": [], "missing": []}


async def test_a_yolo11_export_is_cvats_layout(stores: Stores, tmp_path: Path) -> None:
    data, _ = await _project(stores)

    result = await stores.dataset.export(PROJECT, tmp_path, format="yolo11")

    assert result.path.name == f"{PROJECT}-yolo11.zip"
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "obj.data",
            "obj.names",
            "obj_test_data/empty.png",
            "obj_test_data/empty.txt",
            "obj_train_data/cat.jpg",
            "obj_train_data/cat.txt",
            "obj_valid_data/dog.png",
            "obj_valid_data/dog.txt",
            "test.txt",
            "train.txt",
            "valid.txt",
        ]
        assert archive.read("obj.names").decode() == "cat\ndog\nbird\n"
        assert archive.read("obj.data").decode() == (
            "classes = 3\ntrain = data/train.txt\nvalid = data/valid.txt\n"
            "test = data/test.txt\nnames = data/obj.names\nbackup = backup/\n"
        )
        assert archive.read("train.txt").decode() == "data/obj_train_data/cat.jpg\n"
        assert archive.read("valid.txt").decode() == "data/obj_valid_data/dog.png\n"
        assert archive.read("test.txt").decode() == "data/obj_test_data/empty.png\n"
        assert archive.read("obj_train_data/cat.txt").decode() == line(0, x=0.25) + line(2, x=0.75)
        assert archive.read("obj_test_data/empty.txt") == b""
        for folder, name in [
            ("obj_train_data", "cat.jpg"),
            ("obj_valid_data", "dog.png"),
            ("obj_test_data", "empty.png"),
        ]:
            assert archive.read(f"{folder}/{name}") == data[name]
    assert result.left_out["unlabelled"] == ["u.png"]


async def test_a_yolo11_export_of_the_training_split_alone(stores: Stores, tmp_path: Path) -> None:
    await _project(stores)

    result = await stores.dataset.export(PROJECT, tmp_path, splits=["train"], format="yolo11")

    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "obj.data",
            "obj.names",
            "obj_train_data/cat.jpg",
            "obj_train_data/cat.txt",
            "train.txt",
        ]
        assert "valid" not in archive.read("obj.data").decode()


def _coco(archive: zipfile.ZipFile, split: str) -> Any:
    return json.loads(archive.read(f"annotations/instances_{split}.json"))


async def test_a_coco_export_has_a_json_per_split_with_pixel_boxes(
    stores: Stores, tmp_path: Path
) -> None:
    data, infos = await _project(stores)

    result = await stores.dataset.export(PROJECT, tmp_path, format="coco")

    assert result.path.name == f"{PROJECT}-coco.zip"
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "annotations/instances_test.json",
            "annotations/instances_train.json",
            "annotations/instances_val.json",
            "images/test/empty.png",
            "images/train/cat.jpg",
            "images/val/dog.png",
        ]
        for split, name in [("train", "cat.jpg"), ("val", "dog.png"), ("test", "empty.png")]:
            assert archive.read(f"images/{split}/{name}") == data[name]
        train, val, test = (_coco(archive, s) for s in ("train", "val", "test"))
    categories = [(c["id"], c["name"]) for c in train["categories"]]
    assert categories == [(1, "cat"), (2, "dog"), (3, "bird")]
    assert train["images"] == [
        {"id": infos["cat.jpg"].id, "file_name": "cat.jpg", "width": WIDTH, "height": HEIGHT}
    ]
    cat_id = infos["cat.jpg"].id
    got = [(a["image_id"], a["category_id"], a["iscrowd"]) for a in train["annotations"]]
    assert got == [(cat_id, 1, 0), (cat_id, 3, 0)]
    # 0.25 wide and high boxes centred at (0.25, 0.5) and (0.75, 0.5) of 80 x 60.
    assert train["annotations"][0]["bbox"] == pytest.approx([10.0, 22.5, 20.0, 15.0], abs=1e-3)
    assert train["annotations"][1]["bbox"] == pytest.approx([50.0, 22.5, 20.0, 15.0], abs=1e-3)
    assert train["annotations"][0]["area"] == pytest.approx(300.0, abs=1e-3)
    assert [a["bbox"] for a in val["annotations"]] == [
        pytest.approx([20.0, 26.25, 40.0, 7.5], abs=1e-3)
    ]
    ids = [a["id"] for a in train["annotations"] + val["annotations"]]
    assert len(set(ids)) == 3
    assert [i["file_name"] for i in test["images"]] == ["empty.png"]
    assert test["annotations"] == []
    assert result.left_out["unlabelled"] == ["u.png"]


async def test_a_coco_export_of_one_split_writes_only_its_json(
    stores: Stores, tmp_path: Path
) -> None:
    await _project(stores)

    result = await stores.dataset.export(PROJECT, tmp_path, splits=["test"], format="coco")

    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "annotations/instances_test.json",
            "images/test/empty.png",
        ]
        assert _coco(archive, "test")["annotations"] == []


async def test_an_empty_split_still_gets_its_coco_file_and_list_file(
    stores: Stores, tmp_path: Path
) -> None:
    await create_project(stores, PROJECT, list(CLASSES))

    coco = await stores.dataset.export(PROJECT, tmp_path / "c", splits=["val"], format="coco")
    yolo = await stores.dataset.export(PROJECT, tmp_path / "y", splits=["val"], format="yolo11")

    with zipfile.ZipFile(coco.path) as archive:
        assert _coco(archive, "val")["images"] == []
    with zipfile.ZipFile(yolo.path) as archive:
        assert archive.read("valid.txt") == b""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "voc"}, "no export format"),
        ({"splits": []}, "at least one split"),
        ({"splits": ["training"]}, "no split 'training'"),
    ],
)
async def test_bad_export_options_queue_nothing(
    stores: Stores, options: dict[str, Any], message: str
) -> None:
    await create_project(stores, PROJECT, list(CLASSES))
    with pytest.raises(Invalid, match=message):
        await start_export(stores, PROJECT, **options)
    assert await stores.task.list() == []


async def test_the_export_task_carries_its_options_to_the_job(stores: Stores) -> None:
    await _project(stores)
    task = await start_export(stores, PROJECT, splits=["val", "train"], format="coco")
    assert task.params == {"splits": ["train", "val"], "format": "coco"}
    claimed = await stores.task.claim("w")
    assert claimed is not None

    class Context:
        def __init__(self) -> None:
            self.task = claimed

        async def progress(self, fraction: float, message: str = "") -> None:
            return None

    result = await export_project(Context(), stores)  # type: ignore[arg-type]

    assert result["filename"] == f"{PROJECT}-coco.zip"
    assert (result["format"], result["splits"], result["images"]) == (
        "coco",
        ["train", "val"],
        2,
    )
    with zipfile.ZipFile(stores.data_dir / result["path"]) as archive:
        assert "annotations/instances_test.json" not in archive.namelist()
