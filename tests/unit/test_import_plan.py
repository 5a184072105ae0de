"""Telling exports apart and planning their import, on listings the tests write (no disk)."""

from __future__ import annotations

import json

import pytest
import yaml

from app.domain.errors import Invalid
from app.domain.import_plan import (
    COCO,
    CVAT,
    LABEL_STUDIO,
    PLAIN_YOLO,
    ROBOFLOW,
    ULTRALYTICS,
    VOC,
    ImportPlan,
    PlannedImage,
    plan_import,
)
from app.domain.import_rules import Reason

IMAGE = b"\x89PNG\r\n\x1a\n"  # only the planner's eyes: it never reads images


def plan(files: dict[str, str | bytes]) -> ImportPlan:
    def read(path: str) -> bytes:
        data = files[path]
        return data.encode() if isinstance(data, str) else data

    return plan_import(list(files), read)


def images(result: ImportPlan) -> dict[str, tuple[str | None, str | None]]:
    """Image path → (split, label file)."""
    return {i.path: (i.split, i.label_path) for i in result.images}


def test_an_ultralytics_yaml_with_folders() -> None:
    result = plan(
        {
            "ds/data.yaml": yaml.safe_dump(
                {"path": "/elsewhere", "train": "images/train", "val": "images/val",
                 "names": {0: "cat", 1: "dog"}, "download": "https://example.invalid/x.zip"}
            ),
            "ds/images/train/a.jpg": IMAGE,
            "ds/images/val/b.jpg": IMAGE,
            "ds/labels/train/a.txt": "0 0.5 0.5 0.1 0.1",
            "ds/labels/val/b.txt": "",
            "ds/labels/val/gone.txt": "",
        }
    )  # fmt: skip
    assert (result.format, result.classes) == (ULTRALYTICS, ["cat", "dog"])
    assert images(result) == {
        "ds/images/train/a.jpg": ("train", "ds/labels/train/a.txt"),
        "ds/images/val/b.jpg": ("val", "ds/labels/val/b.txt"),
    }
    assert result.findings == [(Reason.ORPHAN_LABEL, "ds/labels/val/gone.txt")]


def test_list_files_name_the_split_of_each_image_and_missing_ones_are_reported() -> None:
    result = plan(
        {
            "data.yaml": yaml.safe_dump({"train": "train.txt", "val": "val.txt", "names": ["a"]}),
            "train.txt": "./images/x.jpg\n/home/me/ds/images/y.jpg\n./images/lost.jpg\n",
            "val.txt": "images/z.jpg\n",
            "images/x.jpg": IMAGE,
            "images/y.jpg": IMAGE,
            "images/z.jpg": IMAGE,
        }
    )
    assert images(result) == {
        "images/x.jpg": ("train", None),
        "images/y.jpg": ("train", None),
        "images/z.jpg": ("val", None),
    }
    assert result.findings == [(Reason.NOT_FOUND, "./images/lost.jpg (train.txt)")]


def test_a_roboflow_yaml_with_the_authors_absolute_paths() -> None:
    result = plan(
        {
            "data.yaml": yaml.safe_dump(
                {"train": "/Users/t/sharks/train/images", "val": "../valid/images",
                 "test": "../test/images", "names": ["fish"], "roboflow": {"version": 1}}
            ),
            "README.roboflow.txt": "hello",
            "train/images/a.jpg": IMAGE,
            "train/labels/a.txt": "",
            "valid/images/b.jpg": IMAGE,
            "test/images/c.jpg": IMAGE,
        }
    )  # fmt: skip
    assert result.format == ROBOFLOW
    assert images(result) == {
        "train/images/a.jpg": ("train", "train/labels/a.txt"),
        "valid/images/b.jpg": ("val", None),
        "test/images/c.jpg": ("test", None),
    }
    assert result.findings == []


def test_cvat_yolo_1_1() -> None:
    result = plan(
        {
            "obj.data": "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n",
            "obj.names": "cat\ndog\n",
            "train.txt": "data/obj_train_data/a.jpg\n",
            "obj_train_data/a.jpg": IMAGE,
            "obj_train_data/a.txt": "1 0.5 0.5 0.1 0.1\n",
        }
    )
    assert (result.format, result.classes) == (CVAT, ["cat", "dog"])
    assert images(result) == {"obj_train_data/a.jpg": ("train", "obj_train_data/a.txt")}


def test_label_studio_yolo() -> None:
    notes = {"categories": [{"id": 0, "name": "fox"}, {"id": 1, "name": "cat"}]}
    result = plan(
        {
            "classes.txt": "fox\ncat\n",
            "notes.json": json.dumps(notes),
            "images/a.jpg": IMAGE,
            "labels/a.txt": "0 0.5 0.5 0.1 0.1\n",
        }
    )
    assert (result.format, result.classes) == (LABEL_STUDIO, ["fox", "cat"])
    assert images(result) == {"images/a.jpg": (None, "labels/a.txt")}


def test_plain_yolo_folders_with_a_classes_file() -> None:
    result = plan({"classes.txt": "cat\n", "a.jpg": IMAGE, "a.txt": "0 0.5 0.5 0.1 0.1"})
    assert (result.format, result.classes) == (PLAIN_YOLO, ["cat"])
    assert images(result) == {"a.jpg": (None, "a.txt")}


def test_coco_json_maps_categories_by_name_and_drops_crowds() -> None:
    coco = {
        "categories": [{"id": 5, "name": "dog"}, {"id": 9, "name": "cat"}],
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "b.jpg", "width": 100, "height": 50},
            {"id": 3, "file_name": "gone.jpg", "width": 100, "height": 50},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 0, 100, 50], "iscrowd": 1},
        ],
    }
    result = plan(
        {
            "train/_annotations.coco.json": json.dumps(coco),
            "train/a.jpg": IMAGE,
            "train/b.jpg": IMAGE,
            "train/extra.jpg": IMAGE,
        }
    )
    assert (result.format, result.classes) == (COCO, ["dog", "cat"])
    by_path = {i.path: i for i in result.images}
    a, b = by_path["train/a.jpg"], by_path["train/b.jpg"]
    assert a.split == "train"
    assert a.pixels is not None and a.pixels.boxes == [(1, (10, 10, 30, 30))]
    assert (a.pixels.frame, a.pixels.annotated) == ((100, 50), True)
    assert b.pixels is not None and (b.pixels.boxes, b.pixels.annotated) == ([], False)
    assert by_path["train/extra.jpg"] == PlannedImage("train/extra.jpg", "train")
    reasons = [r for r, _ in result.findings]
    assert sorted(reasons) == sorted([Reason.CROWD, Reason.NOT_FOUND])


def test_pascal_voc_with_image_sets() -> None:
    def xml(name: str, label: str) -> str:
        return (
            f"<annotation><filename>{name}</filename><size><width>10</width>"
            f"<height>10</height></size><object><name>{label}</name><bndbox><xmin>1.5</xmin>"
            "<ymin>2</ymin><xmax>8</xmax><ymax>9.5</ymax></bndbox></object></annotation>"
        )

    result = plan(
        {
            "Annotations/a.xml": xml("a.jpg", "Dog"),
            "Annotations/b.xml": xml("b.jpg", "cat"),
            "JPEGImages/a.jpg": IMAGE,
            "JPEGImages/b.jpg": IMAGE,
            "ImageSets/Main/train.txt": "a\n",
            "ImageSets/Main/val.txt": "b\n",
        }
    )
    assert (result.format, result.classes) == (VOC, ["cat", "Dog"])
    by_path = {i.path: i for i in result.images}
    assert by_path["JPEGImages/a.jpg"].split == "train"
    assert by_path["JPEGImages/b.jpg"].split == "val"
    pixels = by_path["JPEGImages/a.jpg"].pixels
    assert pixels is not None and pixels.boxes == [(1, (1.5, 2.0, 8.0, 9.5))]


def test_a_voc_export_with_another_xml_file_first_is_still_voc() -> None:
    result = plan(
        {
            "Annotations/a.xml": (
                "<annotation><filename>a.jpg</filename><size><width>10</width><height>10"
                "</height></size></annotation>"
            ),
            "JPEGImages/a.jpg": IMAGE,
            "A-config.xml": "<config/>",
        }
    )
    assert result.format == VOC


def test_a_broken_yaml_beside_the_dataset_yaml_is_left_out() -> None:
    result = plan(
        {
            "data.yaml": yaml.safe_dump({"train": "images", "names": ["cat"]}),
            ".github/ci.yml": "key: [unclosed",
            "images/a.jpg": IMAGE,
        }
    )
    assert (result.format, result.classes) == (ULTRALYTICS, ["cat"])


def test_a_broken_dataset_yaml_refuses_the_import_with_its_error() -> None:
    with pytest.raises(Invalid, match=r"data\.yaml is not valid YAML"):
        plan({"data.yaml": "names: [unclosed", "images/a.jpg": IMAGE})


def test_a_source_without_images_is_refused() -> None:
    with pytest.raises(Invalid, match="No images found"):
        plan({"data.yaml": "names: [a]", "labels/a.txt": "0 0.5 0.5 0.1 0.1"})


def test_pictures_of_a_type_ydc_does_not_store_are_reported_not_left_out_unseen() -> None:
    result = plan(
        {
            "classes.txt": "cat\n",
            "images/a.jpg": IMAGE,
            "images/b.HEIC": b"....ftypheic",
            "images/c.gif": b"GIF89a",
            "README.md": "# hello",
        }
    )
    assert [i.path for i in result.images] == ["images/a.jpg"]
    assert [(r, e.split(" ")[0]) for r, e in result.findings] == [
        (Reason.NOT_IMAGE, "images/b.HEIC"),
        (Reason.NOT_IMAGE, "images/c.gif"),
    ]
