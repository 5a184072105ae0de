"""Pure rules of sync-from-disk: layouts, data.yaml names, ydc.json, prompts, label lines, which
files join a project, and a model folder's training record."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from app.domain.errors import Invalid
from app.domain.splits import DEFAULT_RATIOS
from app.domain.sync_rules import (
    MAP50_COLUMN,
    Admissions,
    ProjectMeta,
    choose_classes,
    class_names,
    image_home,
    is_ydc_data_yaml,
    parse_label_file,
    pick_weights,
    read_meta,
    read_prompts,
    read_training,
    stem,
)
from app.domain.yolo import data_yaml_dict


@pytest.mark.parametrize(
    ("folder", "split", "labels", "canonical"),
    [
        (("images", "train"), "train", ("labels", "train"), True),
        (("images", "val"), "val", ("labels", "val"), True),
        (("images", "valid"), "val", ("labels", "valid"), False),
        (("train", "images"), "train", ("train", "labels"), False),
        (("valid", "images"), "val", ("valid", "labels"), False),
        (("test", "images"), "test", ("test", "labels"), False),
        (("images",), None, ("labels",), False),
    ],
)
def test_each_layout_people_copy_in_has_a_split_and_a_label_folder(
    folder: tuple[str, ...], split: str | None, labels: tuple[str, ...], canonical: bool
) -> None:
    home = image_home(folder)

    assert home is not None
    assert (home.split, home.labels, home.canonical) == (split, labels, canonical)


@pytest.mark.parametrize(
    "folder", [("thumbs",), ("images", "extra"), ("models", "images"), ("a", "b", "c")]
)
def test_other_folders_hold_no_images_to_register(folder: tuple[str, ...]) -> None:
    assert image_home(folder) is None


@pytest.mark.parametrize(
    "raw",
    [
        {"names": ["cat", "dog"]},
        {"names": {0: "cat", 1: "dog"}},
        {"names": {"1": "dog", "0": "cat"}},  # keys as text, out of order
    ],
)
def test_class_names_come_from_a_list_or_a_mapping_of_index_to_name(raw: object) -> None:
    assert class_names(raw) == ["cat", "dog"]


@pytest.mark.parametrize(
    "name", ["a.jpg", "a.b.PNG", ".hidden", ".a.jpg", "..jpg", "a.", "noext", "x.tar.gz"]
)
def test_a_stem_is_what_pathlib_calls_the_stem(name: str) -> None:
    assert stem(name) == PurePosixPath(name).stem


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"nc": 2}, "no 'names'"),
        ("just text", "no 'names'"),
        ({"names": {0: "a", 2: "b"}}, "run 0..1"),
        ({"names": {"x": "a"}}, "whole numbers"),
        ({"names": "a b"}, "list or a mapping"),
        ({"names": ["cat", "Cat"]}, "given twice"),
        ({"names": ["cat", None]}, "empty"),
    ],
)
def test_unusable_class_names_are_refused_with_the_reason(raw: object, fragment: str) -> None:
    with pytest.raises(Invalid, match=fragment):
        class_names(raw)


def test_without_a_data_yaml_the_classes_come_from_ydc_json() -> None:
    meta = read_meta({"classes": [{"name": "cat", "colour": "#112233"}, {"name": "dog"}]})

    assert choose_classes(None, meta, has_label_files=True) == ["cat", "dog"]
    assert choose_classes({"names": ["x"]}, meta, has_label_files=True) == ["x"]


def test_label_files_with_no_class_names_anywhere_are_refused() -> None:
    with pytest.raises(Invalid, match=r"no data\.yaml"):
        choose_classes(None, ProjectMeta(), has_label_files=True)
    assert choose_classes(None, ProjectMeta(), has_label_files=False) == []


def test_only_ydc_s_own_data_yaml_counts_as_ydc_s() -> None:
    assert is_ydc_data_yaml(data_yaml_dict(["a", "b"]), ["a", "b"])
    assert not is_ydc_data_yaml({"path": "x", **data_yaml_dict(["a", "b"])}, ["a", "b"])
    assert not is_ydc_data_yaml({"names": ["a", "b"]}, ["a", "b"])


def test_ydc_json_gives_description_ratios_created_time_and_colours() -> None:
    meta = read_meta(
        {
            "description": "pets",
            "created_at": 1700000000.5,
            "split_ratios": {"train": 0.7, "val": 0.2, "test": 0.1},
            "classes": [{"name": "Cat", "colour": "#AABBCC"}],
        }
    )

    assert meta.description == "pets"
    assert meta.created_at == 1700000000.5
    assert meta.ratios == {"train": 0.7, "val": 0.2, "test": 0.1}
    assert meta.colour("cat") == "#aabbcc"


def test_a_malformed_ydc_json_falls_back_to_the_defaults_part_by_part() -> None:
    meta = read_meta(
        {
            "description": 5,
            "created_at": "yesterday",
            "split_ratios": {"train": 0.9, "val": 0.9, "test": 0.9},
            "classes": [{"name": "cat", "colour": "red"}, "dog"],
        }
    )

    assert meta.description == ""
    assert meta.created_at is None
    assert meta.ratios == DEFAULT_RATIOS
    assert meta.colour("cat") is None
    assert meta.class_names == ["cat"]
    assert read_meta(["not", "a", "mapping"]) == ProjectMeta()


def test_prompts_are_read_by_class_position_and_bad_ones_are_reported() -> None:
    prompts, problems = read_prompts(
        {0: ["a cat", "kitten"], "1": ["a dog"], 5: ["x"], 2: "not a list", "z": []},
        ["cat", "dog", "bird"],
    )

    assert prompts == {0: ["a cat", "kitten"], 1: ["a dog"]}
    assert len(problems) == 3
    assert any("out of range" in p for p in problems)
    assert read_prompts(None, ["cat"]) == ({}, [])


def test_label_lines_are_kept_or_left_out_one_by_one_with_the_reason() -> None:
    text = "0 0.5 0.5 0.2 0.2\n\n7 0.5 0.5 0.1 0.1\n1 a b c d\n1 0.5 0.5 0.2\n0 0.95 0.5 0.2 0.2\n"

    found = parse_label_file(text, num_classes=2, width=100, height=100)

    assert found.boxes == [(0, 0.5, 0.5, 0.2, 0.2)]
    assert [line for line, _ in found.problems] == [3, 4, 5, 6]
    reasons = dict(found.problems)
    assert "out of range" in reasons[3]
    assert "not numbers" in reasons[4]
    assert "got 4 values" in reasons[5]
    assert "outside the image" in reasons[6]
    assert found.lossy and not found.no_objects


def test_a_polygon_line_becomes_its_bounding_box() -> None:
    found = parse_label_file("1 0.1 0.2 0.5 0.2 0.5 0.6\n", num_classes=2, width=10, height=10)

    ((cls, x, y, w, h),) = found.boxes
    assert (cls, round(x, 6), round(y, 6), round(w, 6), round(h, 6)) == (1, 0.3, 0.4, 0.4, 0.4)
    assert found.polygons == 1 and found.lossy


def test_a_box_under_one_pixel_or_not_finite_is_left_out() -> None:
    found = parse_label_file(
        "0 0.5 0.5 0.001 0.5\n0 nan 0.5 0.1 0.1\n", num_classes=1, width=100, height=100
    )

    assert found.boxes == []
    assert "smaller than one pixel" in found.problems[0][1]
    assert "finite" in found.problems[1][1]


@pytest.mark.parametrize("text", ["", "\n", "  \n\n"])
def test_an_empty_label_file_means_no_objects(text: str) -> None:
    found = parse_label_file(text, num_classes=3, width=10, height=10)

    assert found.no_objects and not found.lossy


def test_the_first_file_with_a_stem_or_with_some_bytes_wins() -> None:
    admissions = Admissions({"old": "images/train/old.jpg"}, {"aaa": "images/train/old.jpg"})

    assert admissions.refusal("new.jpg", "bbb") is None
    admissions.admit("new.jpg", "bbb", "images/val/new.jpg")

    assert "duplicate of images/train/old.jpg" in (admissions.refusal("x.png", "aaa") or "")
    assert "clashes with images/val/new.jpg" in (admissions.refusal("NEW.png", "ccc") or "")
    assert "clashes with images/train/old.jpg" in (admissions.refusal("Old.bmp", "ddd") or "")


@pytest.mark.parametrize(
    ("names", "chosen"),
    [
        (["last.pt", "best.pt", "args.yaml"], "best.pt"),
        (["last.pt", "epoch10.pt"], "last.pt"),
        (["custom.pt", "results.csv"], "custom.pt"),
        (["a.pt", "b.pt"], None),
        (["results.csv"], None),
    ],
)
def test_a_model_folder_s_weights_are_best_then_last_then_the_only_one(
    names: list[str], chosen: str | None
) -> None:
    assert pick_weights(names) == chosen


def test_the_training_record_comes_from_args_yaml_and_results_csv() -> None:
    results = (
        f"                  epoch,   train/box_loss,  {MAP50_COLUMN}\n"
        "                      1,           1.5,      0.25\n"
        "                      2,           1.2,      0.5\n"
        "                      3,           1.1,      0.4\n"
    )

    record = read_training({"model": "yolov8n.pt", "epochs": 100}, results)

    assert record.base_model == "yolov8n.pt"
    assert record.epochs_completed == 3  # the epochs that ran, not the 100 asked for
    assert record.best_map50 == 0.5
    assert record.epochs[0] == {"epoch": 1, "train/box_loss": 1.5, MAP50_COLUMN: 0.25}
    assert record.metrics["best_map50"] == 0.5


def test_without_results_the_training_record_says_what_args_yaml_says() -> None:
    assert read_training({"model": "yolo11s.yaml", "epochs": 5}, None).epochs_completed == 5
    record = read_training(None, None)
    assert (record.base_model, record.epochs_completed, record.best_map50) == ("unknown", 0, None)
    assert record.metrics == {"epochs": []}
