"""The pure rules of an import: one YOLO line, one pixel box, a label file, what bytes are, where
files lie in an export, class matching and the report."""

from __future__ import annotations

import random

import pytest

from app.domain.errors import Invalid
from app.domain.import_rules import (
    EXAMPLES_PER_REASON,
    Group,
    ImportReport,
    Listing,
    Reason,
    class_mapping,
    clean_parts,
    dataset_yaml_splits,
    group_of,
    list_file_entries,
    notes_json_names,
    pixel_box,
    read_darknet_data,
    read_names_file,
    read_yolo_labels,
    read_yolo_line,
    remap,
    split_of_path,
    split_word,
    true_suffix,
    yolo_label_candidates,
)
from tests.contract.support import jpg, png


def line(text: str, *, names: int = 3, width: int = 640, height: int = 480):  # type: ignore[no-untyped-def]
    return read_yolo_line(text.split(), num_names=names, width=width, height=height)


def near(box: object, expected: tuple[float, ...]) -> bool:
    assert isinstance(box, tuple)
    return box[0] == expected[0] and box[1:] == pytest.approx(expected[1:], abs=1e-9)


# --- one line -----------------------------------------------------------------------------


def test_a_box_line_is_kept_exactly_as_written() -> None:
    read = line("2 0.123457 0.5 0.2 0.333333")
    assert read.box == (2, 0.123457, 0.5, 0.2, 0.333333)
    assert read.notes == ()
    assert read.refusal is None


def test_a_sixth_value_is_a_confidence_and_the_box_is_kept() -> None:
    read = line("1 0.5 0.5 0.2 0.2 0.93")
    assert read.box == (1, 0.5, 0.5, 0.2, 0.2)
    assert read.notes == (Reason.CONFIDENCE,)


def test_four_corners_are_read_as_their_box() -> None:
    read = line("0 0.2 0.25 0.6 0.25 0.6 0.75 0.2 0.75")
    assert near(read.box, (0, 0.4, 0.5, 0.4, 0.5))
    assert read.notes == (Reason.CORNERS,)


@pytest.mark.parametrize(
    "text",
    ["0 0.1 0.1 0.5 0.2 0.3 0.6", "0 0.1 0.1 0.5 0.2 0.3 0.6 0.2 0.5 0.15 0.3"],
    ids=["triangle", "pentagon"],
)
def test_a_polygon_is_read_as_its_bounding_box(text: str) -> None:
    read = line(text)
    assert near(read.box, (0, 0.3, 0.35, 0.4, 0.5))
    assert read.notes == (Reason.POLYGON,)


@pytest.mark.parametrize(
    "text",
    [
        "0 0.5 0.5 0.2",  # four values
        "0 0.1 0.1 0.5 0.2 0.3 0.4 0.5",  # an odd count of coordinates
        "cat 0.5 0.5 0.2 0.2",
        "0 0.5 0.5 0.2 abc",
        "0.5 0.5 0.5 0.2 0.2",  # a class that is no whole number
        "0 nan 0.5 0.2 0.2",
        "0 inf 0.5 0.2 0.2",
        "0 0.5 0.5 0 0.2",
        "0 0.5 0.5 0.2 -0.2",
    ],
)
def test_a_line_that_is_no_box_is_malformed(text: str) -> None:
    read = line(text)
    assert read.box is None
    assert read.refusal == Reason.MALFORMED


@pytest.mark.parametrize("class_id", ["3", "-1", "99"])
def test_a_class_the_names_do_not_list_is_refused_not_guessed(class_id: str) -> None:
    read = line(f"{class_id} 0.5 0.5 0.2 0.2")
    assert (read.box, read.refusal) == (None, Reason.UNNAMED_CLASS)
    assert f"class {class_id}" in read.detail


def test_with_no_names_every_class_is_refused() -> None:
    read = line("0 0.5 0.5 0.2 0.2", names=0)
    assert (read.box, read.refusal) == (None, Reason.UNNAMED_CLASS)
    assert "named: none" in read.detail


def test_a_box_up_to_one_percent_out_is_clamped_exactly() -> None:
    read = line("0 0.5 0.5 1.02 0.5")  # -0.01 .. 1.01
    assert near(read.box, (0, 0.5, 0.5, 1.0, 0.5))
    assert read.notes == (Reason.CLAMPED,)
    read = line("0 0.05 0.96 0.1 0.1")  # bottom 1.01, left 0
    assert near(read.box, (0, 0.05, 0.955, 0.1, 0.09))
    assert read.notes == (Reason.CLAMPED,)


def test_a_box_further_out_is_refused() -> None:
    read = line("0 0.5 0.5 1.03 0.5")  # -0.015 .. 1.015
    assert (read.box, read.refusal) == (None, Reason.OUTSIDE)


def test_a_box_smaller_than_a_pixel_is_refused() -> None:
    read = line("0 0.5 0.5 0.001 0.2", width=640)  # 0.64 px
    assert (read.box, read.refusal) == (None, Reason.TOO_SMALL)
    assert line("0 0.5 0.5 0.0015625 0.2", width=640).box is not None  # one pixel


def test_a_box_touching_the_edge_at_six_decimals_is_kept_as_written() -> None:
    """Rounded to six decimals, a box touching the edge reaches past it by up to 1e-6: that is
    the file's precision, not a box outside the image (ydc's own exports write such lines)."""
    rng = random.Random(7)
    for _ in range(500):
        w = rng.uniform(0.05, 0.9)
        x, y = f"{1 - w / 2:.6f}", f"{w / 2:.6f}"
        parts = ["1", x, y, f"{w:.6f}", f"{w:.6f}"]
        read = read_yolo_line(parts, num_names=3, width=640, height=480)
        assert read.notes == (), parts
        assert read.box == (1, *(float(p) for p in parts[1:])), parts


# --- pixel boxes --------------------------------------------------------------------------


def test_a_pixel_box_is_normalised_by_the_declared_frame() -> None:
    read = pixel_box(1, (36, 23, 226, 166), frame=(256, 256), width=256, height=256)
    assert near(read.box, (1, (36 + 95) / 256, (23 + 71.5) / 256, 190 / 256, 143 / 256))
    # Declared 320x640 for an image stored at 32x64: the same fractions.
    read = pixel_box(0, (40, 80, 120, 240), frame=(320, 640), width=32, height=64)
    assert near(read.box, (0, 0.25, 0.25, 0.25, 0.25))


def test_an_empty_pixel_box_is_malformed() -> None:
    read = pixel_box(0, (10, 10, 10, 20), frame=(100, 100), width=100, height=100)
    assert read.refusal == Reason.MALFORMED


# --- a label file -------------------------------------------------------------------------


def test_a_label_file_is_read_line_by_line_with_line_numbers() -> None:
    text = (
        "\ufeff0 0.5 0.5 0.2 0.2\r\n"
        "\r\n"
        "1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6 0.05 0.3   \r\n"
        "9 0.5 0.5 0.2 0.2\r\n"
        "2 0.5 0.5 0.1 0.1"
    )
    read = read_yolo_labels(text.lstrip("\ufeff"), where="a.txt", num_names=3, width=64, height=48)
    assert read.boxes[0] == (0, 0.5, 0.5, 0.2, 0.2)
    assert near(read.boxes[1], (1, 0.275, 0.35, 0.45, 0.5))
    assert read.boxes[2] == (2, 0.5, 0.5, 0.1, 0.1)
    assert read.notes == [
        (Reason.POLYGON, "a.txt:3"),
        (Reason.UNNAMED_CLASS, "a.txt:4 (class 9 (named: 0..2))"),
    ]
    assert not read.empty


def test_only_a_file_with_no_lines_at_all_is_empty() -> None:
    assert read_yolo_labels("", where="a", num_names=1, width=9, height=9).empty
    assert read_yolo_labels(" \n\r\n", where="a", num_names=1, width=9, height=9).empty
    refused = read_yolo_labels("5 0.5 0.5 0.2 0.2", where="a", num_names=1, width=9, height=9)
    assert not refused.empty
    assert refused.boxes == []


# --- what bytes are -----------------------------------------------------------------------


def test_the_true_suffix_is_given_only_when_the_name_says_another_type() -> None:
    assert true_suffix(png(1)[:16], "a.jpg") == ".png"
    assert true_suffix(jpg(1)[:16], "a.png") == ".jpg"
    assert true_suffix(jpg(1)[:16], "a.JPEG") is None
    assert true_suffix(jpg(1)[:16], "a.jpg") is None
    assert true_suffix(png(1)[:16], "a.PNG") is None
    assert true_suffix(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a.jpg") == ".webp"
    assert true_suffix(b"not an image at all", "a.jpg") is None


# --- where things lie ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "split"),
    [
        ("train", "train"),
        ("valid", "val"),
        ("Validation", "val"),
        ("train2017", "train"),
        ("obj_train_data", "train"),
        ("instances_val2017", "val"),
        ("test", "test"),
        ("images", None),
        ("training-notes", None),
    ],
)
def test_split_words(part: str, split: str | None) -> None:
    assert split_word(part) == split


def test_the_split_of_a_path_is_its_nearest_folder_that_names_one() -> None:
    assert split_of_path("train/images/a.jpg") == "train"
    assert split_of_path("data/images/val/a.jpg") == "val"
    assert split_of_path("images/a.jpg") is None
    assert split_of_path("valid.jpg") is None  # the file's own name is no folder


def test_clean_parts_drop_what_only_says_where_the_author_kept_it() -> None:
    assert clean_parts("../train/images") == ("train", "images")
    assert clean_parts("./images/a.jpg") == ("images", "a.jpg")
    assert clean_parts("/Users/x/data/train/images") == ("Users", "x", "data", "train", "images")
    assert clean_parts("C:\\data\\a.jpg") == ("data", "a.jpg")


def test_a_listing_resolves_author_paths_by_their_longest_tail() -> None:
    listing = Listing(
        [
            "sharks/data.yaml",
            "sharks/train/images/a.jpg",
            "sharks/valid/images/b.jpg",
            "other/train/images/a.jpg",
        ]
    )
    assert listing.resolve("/Users/tony/sharks/train/images", base="sharks", folder=True) == (
        "sharks/train/images"
    )
    assert listing.resolve("../valid/images", base="sharks", folder=True) == "sharks/valid/images"
    assert listing.resolve("train/images/a.jpg", base="sharks") == "sharks/train/images/a.jpg"
    assert listing.resolve("train/images/a.jpg", base="other") == "other/train/images/a.jpg"
    assert listing.resolve("nowhere/z.jpg") is None
    assert listing.images_under("sharks/valid") == ["sharks/valid/images/b.jpg"]


def test_label_candidates_swap_the_last_images_folder_then_look_beside() -> None:
    assert yolo_label_candidates("ds/images/train/a.b.jpg") == [
        "ds/labels/train/a.b.txt",
        "ds/images/train/a.b.txt",
    ]
    assert yolo_label_candidates("obj_train_data/a.jpg") == ["obj_train_data/a.txt"]


def test_dataset_yaml_splits_take_strings_and_lists_never_path_or_download() -> None:
    raw = {
        "path": "../datasets/x",
        "download": "https://example.invalid/x.zip",
        "train": ["a/images", "b.txt"],
        "valid": "v/images",
        "test": "",
        "names": ["cat"],
    }
    assert dataset_yaml_splits(raw) == {"train": ["a/images", "b.txt"], "val": ["v/images"]}


def test_darknet_names_notes_and_list_files() -> None:
    assert read_darknet_data("classes = 2\ntrain  =  data/train.txt\n# x\n") == {
        "classes": "2",
        "train": "data/train.txt",
    }
    assert read_names_file("cat\r\n dog \n\n\n") == ["cat", "dog"]
    assert read_names_file("") == []
    assert notes_json_names({"categories": [{"id": 1, "name": "b"}, {"id": 0, "name": "a"}]}) == [
        "a",
        "b",
    ]
    assert notes_json_names({"info": {}}) is None
    with pytest.raises(Invalid, match=r"0\.\.n-1"):
        notes_json_names({"categories": [{"id": 1, "name": "b"}]})
    assert list_file_entries("./a.jpg\n\n# c\n  b.jpg  \n") == ["./a.jpg", "b.jpg"]


# --- classes ------------------------------------------------------------------------------


def test_classes_match_by_name_ignoring_case_and_spaces() -> None:
    mapping, missing = class_mapping([" Cat ", "bird", "DOG", "Bird "], ["cat", "dog"])
    assert mapping == {0: 0, 2: 1}
    assert missing == ["bird"]
    boxes, dropped = remap([(0, 0.5, 0.5, 0.1, 0.1), (1, 0.5, 0.5, 0.1, 0.1)], mapping)
    assert (boxes, dropped) == ([(0, 0.5, 0.5, 0.1, 0.1)], 1)


# --- the report ---------------------------------------------------------------------------


def test_the_report_counts_everything_keeps_a_few_examples_and_survives_json() -> None:
    report = ImportReport(project="p", format="COCO JSON", source="x.zip", classes=["cat"])
    for n in range(EXAMPLES_PER_REASON + 5):
        report.add(Reason.MALFORMED, f"a.txt:{n}")
    report.add(Reason.IMAGES, count=3)
    report.add(Reason.POLYGON, "b.txt:1")
    report.add(Reason.BOXES, count=0)

    assert report.count(Reason.MALFORMED) == EXAMPLES_PER_REASON + 5
    assert len(report.examples[Reason.MALFORMED]) == EXAMPLES_PER_REASON
    assert report.count(Reason.BOXES) == 0
    assert report.skipped == EXAMPLES_PER_REASON + 5
    assert report.rows(Group.CHANGED) == [(Reason.POLYGON, 1, ["b.txt:1"])]
    assert group_of(Reason.DUPLICATE) == Group.SKIPPED
    assert group_of(Reason.FILLED) == Group.IMPORTED
    again = ImportReport.from_dict(report.to_dict())
    assert again.counts == report.counts
    assert again.examples == report.examples
    assert (again.project, again.format, again.classes) == ("p", "COCO JSON", ["cat"])
