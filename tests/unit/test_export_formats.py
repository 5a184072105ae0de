"""The export formats' pure pieces: option checks, YOLO 1.1 text files, COCO objects."""

from __future__ import annotations

import pytest

from app.domain.errors import Invalid
from app.domain.export_formats import (
    coco_annotation,
    coco_annotation_name,
    coco_categories,
    coco_head,
    coco_image,
    export_zip_name,
    obj_data_text,
    obj_names_text,
    ultralytics_yaml_dict,
    validate_export_options,
    yolo11_folder,
    yolo11_list_line,
    yolo11_list_name,
)
from app.domain.yolo import data_yaml_dict


def test_no_options_mean_every_split_in_the_ultralytics_layout() -> None:
    assert validate_export_options(None, None) == (("train", "val", "test"), "ultralytics")


def test_chosen_splits_come_back_in_split_order_without_repeats() -> None:
    assert validate_export_options(["test", "train", "test"], "coco") == (
        ("train", "test"),
        "coco",
    )


@pytest.mark.parametrize(
    ("splits", "format", "message"),
    [
        (None, "voc", "no export format 'voc'"),
        ([], "yolo11", "at least one split"),
        (["train", "validation"], None, "no split 'validation'"),
    ],
)
def test_bad_options_are_refused_with_a_message_a_person_understands(
    splits: list[str] | None, format: str | None, message: str
) -> None:
    with pytest.raises(Invalid, match=message) as raised:
        validate_export_options(splits, format)
    assert raised.value.status == 422


def test_the_zip_name_says_the_format_unless_it_is_ultralytics() -> None:
    assert export_zip_name("birds", "ultralytics") == "birds.zip"
    assert export_zip_name("birds", "yolo11") == "birds-yolo11.zip"
    assert export_zip_name("birds", "coco") == "birds-coco.zip"


def test_the_ultralytics_yaml_names_only_the_exported_splits() -> None:
    meta = ultralytics_yaml_dict(data_yaml_dict(["gull", "tern"]), ["train", "val"])
    assert meta == {
        "train": "images/train",
        "val": "images/val",
        "nc": 2,
        "names": {0: "gull", 1: "tern"},
    }


def test_obj_names_lists_one_class_per_line_in_index_order() -> None:
    assert obj_names_text(["gull", "tern", "puffin"]) == "gull\ntern\npuffin\n"


def test_obj_data_names_a_list_file_per_exported_split_as_cvat_writes_it() -> None:
    assert obj_data_text(3, ["train", "val", "test"]) == (
        "classes = 3\n"
        "train = data/train.txt\n"
        "valid = data/valid.txt\n"
        "test = data/test.txt\n"
        "names = data/obj.names\n"
        "backup = backup/\n"
    )
    assert obj_data_text(1, ["train"]) == (
        "classes = 1\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
    )


def test_yolo11_folders_and_list_files_call_val_valid() -> None:
    assert [yolo11_folder(s) for s in ("train", "val", "test")] == [
        "obj_train_data",
        "obj_valid_data",
        "obj_test_data",
    ]
    assert [yolo11_list_name(s) for s in ("train", "val", "test")] == [
        "train.txt",
        "valid.txt",
        "test.txt",
    ]
    assert yolo11_list_line("val", "a b.jpg") == "data/obj_valid_data/a b.jpg\n"


def test_coco_categories_are_numbered_from_one_in_class_order() -> None:
    assert [(c["id"], c["name"]) for c in coco_categories(["gull", "tern"])] == [
        (1, "gull"),
        (2, "tern"),
    ]
    assert coco_head(["gull"])["categories"] == coco_categories(["gull"])
    assert coco_annotation_name("val") == "annotations/instances_val.json"


def test_a_coco_image_has_its_id_file_name_and_size() -> None:
    assert coco_image(7, "a.jpg", 640, 480) == {
        "id": 7,
        "file_name": "a.jpg",
        "width": 640,
        "height": 480,
    }


def test_a_coco_box_is_its_top_left_corner_and_size_in_pixels() -> None:
    entry = coco_annotation(3, 7, (1, 0.25, 0.5, 0.1, 0.2), 640, 480)
    assert entry["bbox"] == pytest.approx([128.0, 192.0, 64.0, 96.0], abs=1e-9)
    assert entry["area"] == pytest.approx(64.0 * 96.0)
    assert (entry["id"], entry["image_id"], entry["category_id"], entry["iscrowd"]) == (
        3,
        7,
        2,
        0,
    )
