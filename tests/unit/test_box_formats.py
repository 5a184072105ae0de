"""The pure readers of COCO JSON and Pascal VOC XML boxes, on documents the tests build."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from app.domain.box_formats import (
    CROWD,
    MALFORMED_BOX,
    MAX_VOC_BYTES,
    NO_CLASS_NAME,
    UNKNOWN_CATEGORY,
    UNKNOWN_IMAGE,
    CocoDataset,
    PixelBox,
    looks_like_coco,
    read_coco,
    read_labelmap,
    read_voc,
)
from app.domain.errors import Invalid
from tests.conftest import TEST_DATA

SHARKS_COCO = Path("roboflow-sharks-tiny-coco") / "train" / "_annotations.coco.json"


def coco(
    categories: list[Any] | None = None,
    images: list[Any] | None = None,
    annotations: list[Any] | None = None,
) -> dict[str, Any]:
    """A COCO document: one category ``cat`` (id 1) and one image ``a.jpg`` (id 1) unless told."""
    return {
        "categories": [{"id": 1, "name": "cat"}] if categories is None else categories,
        "images": (
            [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}]
            if images is None
            else images
        ),
        "annotations": [] if annotations is None else annotations,
    }


def ann(
    ann_id: int, bbox: object, *, image_id: object = 1, category_id: object = 1, **extra: Any
) -> dict[str, Any]:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


def read(raw: object) -> CocoDataset:
    return read_coco(raw, where="train.json")


# --- COCO -------------------------------------------------------------------------------------


def test_a_coco_bbox_becomes_a_pixel_box_from_its_corner_and_size() -> None:
    dataset = read(coco(annotations=[ann(1, [10, 20.5, 30, 40])]))
    [image] = dataset.images
    assert image.file_name == "a.jpg"
    assert (image.width, image.height) == (640, 480)
    assert image.boxes == [PixelBox("cat", 10.0, 20.5, 40.0, 60.5)]
    assert image.annotated is True
    assert image.skipped == []
    assert dataset.classes == ["cat"]
    assert dataset.skipped == []
    assert dataset.dropped_categories == []


def test_roboflows_dataset_named_placeholder_category_is_dropped() -> None:
    categories = [
        {"id": 0, "name": "sharks", "supercategory": "none"},
        {"id": 1, "name": "fish", "supercategory": "sharks"},
        {"id": 2, "name": "shark", "supercategory": "sharks"},
    ]
    dataset = read(
        coco(categories, annotations=[ann(1, [0, 0, 5, 5], category_id=2)]),
    )
    assert dataset.classes == ["fish", "shark"]
    assert dataset.dropped_categories == ["sharks"]
    assert dataset.images[0].boxes[0].category == "shark"


def test_a_placeholder_named_like_a_real_class_leaves_the_real_class() -> None:
    # A Roboflow project called "shark" whose one class is "shark".
    categories = [
        {"id": 0, "name": "shark", "supercategory": "none"},
        {"id": 1, "name": "shark", "supercategory": "shark"},
    ]
    dataset = read(coco(categories, annotations=[ann(1, [0, 0, 5, 5])]))
    assert dataset.classes == ["shark"]
    assert dataset.dropped_categories == ["shark"]
    assert dataset.images[0].boxes == [PixelBox("shark", 0, 0, 5, 5)]


def test_a_supercategory_with_annotations_is_kept_as_a_class() -> None:
    categories = [
        {"id": 1, "name": "animal", "supercategory": "none"},
        {"id": 2, "name": "dog", "supercategory": "animal"},
    ]
    dataset = read(coco(categories, annotations=[ann(1, [0, 0, 5, 5], category_id=1)]))
    assert dataset.classes == ["animal", "dog"]
    assert dataset.dropped_categories == []


def test_an_unused_category_nobody_names_as_supercategory_is_kept() -> None:
    categories = [{"id": 1, "name": "cat", "supercategory": "cat"}, {"id": 2, "name": "dog"}]
    dataset = read(coco(categories))
    assert dataset.classes == ["cat", "dog"]
    assert dataset.dropped_categories == []


def test_category_ids_need_not_be_contiguous_and_classes_come_in_id_order() -> None:
    categories = [
        {"id": 17, "name": "zebra"},
        {"id": 3, "name": "ant"},
        {"id": -2, "name": "bee"},
    ]
    annotations = [
        ann(1, [0, 0, 1, 1], category_id=17),
        ann(2, [0, 0, 1, 1], category_id=3),
        ann(3, [0, 0, 1, 1], category_id=-2),
    ]
    dataset = read(coco(categories, annotations=annotations))
    assert dataset.classes == ["bee", "ant", "zebra"]
    assert [b.category for b in dataset.images[0].boxes] == ["zebra", "ant", "bee"]


def test_categories_with_the_same_name_ignoring_case_and_spaces_are_merged_into_the_first() -> None:
    categories = [
        {"id": 5, "name": " Cat"},
        {"id": 2, "name": "cat"},
        {"id": 9, "name": "dog"},
        {"id": 7, "name": "CAT "},
    ]
    annotations = [ann(i, [0, 0, 1, 1], category_id=c) for i, c in enumerate((5, 2, 9, 7))]
    dataset = read(coco(categories, annotations=annotations))
    assert dataset.classes == ["cat", "dog"]
    assert [b.category for b in dataset.images[0].boxes] == ["cat", "cat", "dog", "cat"]


def test_category_names_are_kept_as_written_and_made_text() -> None:
    categories = [{"id": 1, "name": " Big Fish "}, {"id": 2, "name": 7}]
    dataset = read(coco(categories))
    assert dataset.classes == [" Big Fish ", "7"]


def test_crowd_annotations_are_skipped_and_counted_never_boxes() -> None:
    annotations = [
        ann(1, [0, 0, 5, 5], iscrowd=1),
        ann(2, [0, 0, 5, 5], iscrowd=True),
        ann(3, [0, 0, 5, 5], iscrowd=0),
    ]
    [image] = read(coco(annotations=annotations)).images
    assert image.boxes == [PixelBox("cat", 0, 0, 5, 5)]
    assert image.skipped == [
        (CROWD, "annotation 1 of a.jpg"),
        (CROWD, "annotation 2 of a.jpg"),
    ]


def test_an_image_with_only_crowd_annotations_counts_as_annotated() -> None:
    [image] = read(coco(annotations=[ann(1, [0, 0, 5, 5], iscrowd=1)])).images
    assert image.boxes == []
    assert image.annotated is True


def test_annotations_of_an_image_the_file_does_not_list_are_skipped_on_the_dataset() -> None:
    annotations = [ann(1, [0, 0, 5, 5], image_id=99), ann(2, [0, 0, 5, 5], image_id=None)]
    dataset = read(coco(annotations=annotations))
    assert dataset.skipped == [
        (UNKNOWN_IMAGE, "annotation 1 of image id 99"),
        (UNKNOWN_IMAGE, "annotation 2 of image id None"),
    ]
    assert dataset.images[0].annotated is False
    assert dataset.images[0].boxes == []


def test_annotations_of_an_unknown_category_are_skipped_on_their_image() -> None:
    annotations = [
        ann(1, [0, 0, 5, 5], category_id=42),
        ann(2, [0, 0, 5, 5], category_id="1"),
        ann(3, [0, 0, 5, 5]),
    ]
    dataset = read(coco(annotations=annotations))
    [image] = dataset.images
    assert image.skipped == [
        (UNKNOWN_CATEGORY, "annotation 1 of a.jpg (category id 42)"),
        (UNKNOWN_CATEGORY, "annotation 2 of a.jpg (category id 1)"),
    ]
    assert image.boxes == [PixelBox("cat", 0, 0, 5, 5)]
    assert dataset.skipped == []


@pytest.mark.parametrize(
    "bbox",
    [
        ["1", "2", "3", "4"],
        [1, 2, 3],
        [1, 2, 3, 4, 5],
        [1, 2, math.nan, 4],
        [1, 2, 3, math.inf],
        [1, 2, -3, 4],
        [1, 2, 3, 0],
        [1, 2, True, 4],
        [1e308, 0, 1e308, 4],
        [10**400, 0, 1, 1],
        None,
        "1 2 3 4",
        {"x": 1},
    ],
)
def test_a_malformed_bbox_is_skipped(bbox: object) -> None:
    [image] = read(coco(annotations=[ann(7, bbox)])).images
    assert image.boxes == []
    assert image.skipped == [(MALFORMED_BOX, "annotation 7 of a.jpg")]
    assert image.annotated is True


def test_a_box_may_lie_outside_its_image_the_caller_decides() -> None:
    [image] = read(coco(annotations=[ann(1, [-10, 470, 700, 20])])).images
    assert image.boxes == [PixelBox("cat", -10, 470, 690, 490)]


def test_images_without_annotations_are_not_annotated_and_keep_their_order() -> None:
    images = [
        {"id": 3, "file_name": "sub/c.jpg", "width": 10, "height": 10},
        {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
        {"id": 2, "file_name": "b.jpg"},
    ]
    dataset = read(coco(images=images, annotations=[ann(1, [0, 0, 5, 5], image_id=1)]))
    assert [i.file_name for i in dataset.images] == ["sub/c.jpg", "a.jpg", "b.jpg"]
    assert [i.annotated for i in dataset.images] == [False, True, False]


@pytest.mark.parametrize(
    ("width", "expected"), [(None, None), (0, None), (-5, None), ("640", None), (True, None),
                            (12.5, None), (640.0, 640), (640, 640)]
)  # fmt: skip
def test_a_declared_size_is_kept_only_when_a_positive_whole_number(
    width: object, expected: int | None
) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": width, "height": width}]
    [image] = read(coco(images=images)).images
    assert (image.width, image.height) == (expected, expected)


def test_an_annotation_without_an_id_is_named_by_its_position() -> None:
    annotation = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 0]}
    [image] = read(coco(annotations=[ann(1, [0, 0, 1, 1]), annotation])).images
    assert image.skipped == [(MALFORMED_BOX, "annotation #2 of a.jpg")]


def test_segmentation_is_ignored_and_only_the_box_is_read() -> None:
    annotation = ann(1, [1, 1, 2, 2], segmentation=[[0, 0, 9, 0, 9, 9]], area=4)
    [image] = read(coco(annotations=[annotation])).images
    assert image.boxes == [PixelBox("cat", 1, 1, 3, 3)]


def test_image_ids_may_be_texts() -> None:
    images = [{"id": "img-1", "file_name": "a.jpg"}]
    dataset = read(coco(images=images, annotations=[ann(1, [0, 0, 1, 1], image_id="img-1")]))
    assert dataset.images[0].boxes == [PixelBox("cat", 0, 0, 1, 1)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "not a COCO JSON document"),
        ("text", "not a COCO JSON document"),
        ({"images": [], "annotations": []}, "has no 'categories' list"),
        ({"images": [], "categories": []}, "has no 'annotations' list"),
        ({"images": {}, "annotations": [], "categories": []}, "non-list 'images'"),
        (coco(images=["a.jpg"]), "entry 1 of 'images' is not an object"),
        (coco(annotations=[[1, 2]]), "entry 1 of 'annotations' is not an object"),
        (coco(categories=[{"name": "cat"}]), "category 1 has no whole-number id"),
        (coco(categories=[{"id": "1", "name": "cat"}]), "category 1 has no whole-number id"),
        (coco(categories=[{"id": 1.0, "name": "cat"}]), "category 1 has no whole-number id"),
        (coco(categories=[{"id": 4}]), "category 4 has no name"),
        (coco(categories=[{"id": 4, "name": "  "}]), "category 4 has no name"),
        (
            coco(categories=[{"id": 4, "name": "a"}, {"id": 4, "name": "b"}]),
            "two categories have the id 4",
        ),
        (coco(images=[{"file_name": "a.jpg"}]), "image 1 has no id"),
        (coco(images=[{"id": True, "file_name": "a.jpg"}]), "image 1 has no id"),
        (coco(images=[{"id": 8}]), "image 8 has no file_name"),
        (coco(images=[{"id": 8, "file_name": ""}]), "image 8 has no file_name"),
        (
            coco(images=[{"id": 8, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}]),
            "two images have the id 8",
        ),
    ],
)
def test_a_document_that_is_not_coco_detection_is_refused(raw: object, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        read(raw)
    assert caught.value.message.startswith("train.json: ")
    assert message in caught.value.message


def test_looks_like_coco_wants_images_annotations_and_categories_lists() -> None:
    assert looks_like_coco(coco()) is True
    assert looks_like_coco({"images": [], "annotations": []}) is False
    assert looks_like_coco({"images": [], "annotations": {}, "categories": []}) is False
    assert looks_like_coco([coco()]) is False
    assert looks_like_coco({"names": ["cat"]}) is False


def test_the_roboflow_sharks_export_reads_as_roboflow_meant_it() -> None:
    path = TEST_DATA / SHARKS_COCO
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert looks_like_coco(raw)
    dataset = read_coco(raw, where=path.name)
    assert dataset.classes == ["fish", "primary", "shark"]
    assert dataset.dropped_categories == ["sharks"]
    assert len(dataset.images) == 7
    assert dataset.skipped == []
    first = raw["annotations"][0]
    assert first["bbox"] == [36, 23, 190, 143]
    image = next(
        i for i, entry in zip(dataset.images, raw["images"], strict=True)
        if entry["id"] == first["image_id"]
    )  # fmt: skip
    assert image.boxes[0] == PixelBox("primary", 36, 23, 226, 166)
    assert (image.width, image.height) == (256, 256)


# --- Pascal VOC -------------------------------------------------------------------------------


def voc(body: str, *, declaration: str = "") -> bytes:
    return f"{declaration}<annotation>{body}</annotation>".encode()


BOX_1234 = "<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"


def obj(name: str | None, box: str | None = BOX_1234) -> str:
    """An ``<object>`` (with a ``<pose>``, as labelImg writes), its name and bndbox optional."""
    name_xml = "" if name is None else f"<name>{name}</name>"
    box_xml = "" if box is None else f"<bndbox>{box}</bndbox>"
    return f"<object>{name_xml}<pose>Unspecified</pose>{box_xml}</object>"


LABELIMG = b"""<annotation>
    <folder>images</folder>
    <filename>dog 1.jpg</filename>
    <path>C:\\Users\\me\\images\\dog 1.jpg</path>
    <source><database>Unknown</database></source>
    <size><width>500</width><height>375</height><depth>3</depth></size>
    <segmented>0</segmented>
    <object>
        <name>dog</name>
        <pose>Unspecified</pose>
        <truncated>1</truncated>
        <difficult>1</difficult>
        <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox>
    </object>
    <object>
        <name>Person</name>
        <bndbox><xmin>8.5</xmin><ymin>12.25</ymin><xmax>352.0</xmax><ymax>498</ymax></bndbox>
    </object>
</annotation>
"""


def test_a_labelimg_file_reads_its_image_size_and_boxes() -> None:
    image = read_voc(LABELIMG, where="dog 1.xml")
    assert image.file_name == "dog 1.jpg"
    assert (image.width, image.height) == (500, 375)
    assert image.boxes == [
        PixelBox("dog", 48, 240, 195, 371),  # difficult and truncated: kept
        PixelBox("Person", 8.5, 12.25, 352, 498),  # may overrun the image: the caller decides
    ]
    assert image.annotated is True
    assert image.skipped == []


def test_cvat_float_coordinates_are_read_as_they_stand() -> None:
    body = "<filename>a.png</filename>" + obj(
        "car", "<xmin>12.5</xmin><ymin>0.0</ymin><xmax>100.75</xmax><ymax>7.1</ymax>"
    )
    assert read_voc(voc(body), where="a.xml").boxes == [PixelBox("car", 12.5, 0.0, 100.75, 7.1)]


def test_the_file_name_comes_from_the_last_part_of_path_without_filename() -> None:
    for path in ("/data/set/a b.jpg", "C:\\data\\set\\a b.jpg", "a b.jpg"):
        image = read_voc(voc(f"<path>{path}</path>"), where="a.xml")
        assert image.file_name == "a b.jpg"


def test_a_voc_file_that_names_no_image_is_refused() -> None:
    with pytest.raises(Invalid, match=r"a\.xml: names no image"):
        read_voc(voc("<filename> </filename>" + obj("cat")), where="a.xml")


@pytest.mark.parametrize(
    "size",
    [
        "",
        "<size></size>",
        "<size><width>0</width><height>0</height><depth>3</depth></size>",
        "<size><width>wide</width><height>-3</height></size>",
    ],
)
def test_a_missing_or_zero_size_is_none(size: str) -> None:
    image = read_voc(voc(f"<filename>a.jpg</filename>{size}" + obj("cat")), where="a.xml")
    assert (image.width, image.height) == (None, None)
    assert image.boxes == [PixelBox("cat", 1, 2, 3, 4)]


def test_a_voc_file_without_objects_is_not_annotated() -> None:
    image = read_voc(voc("<filename>empty.jpg</filename>"), where="empty.xml")
    assert image.boxes == []
    assert image.annotated is False
    assert image.skipped == []


@pytest.mark.parametrize(
    "box",
    [
        None,
        "",
        "<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>",
        "<xmin>one</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>",
        "<xmin>nan</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>",
        "<xmin>1</xmin><ymin>2</ymin><xmax>inf</xmax><ymax>4</ymax>",
        "<xmin>3</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>",
        "<xmin>1</xmin><ymin>5</ymin><xmax>3</xmax><ymax>4</ymax>",
    ],
)
def test_an_object_with_a_missing_or_malformed_bndbox_is_skipped(box: str | None) -> None:
    body = "<filename>a.jpg</filename>" + obj("cat") + obj("dog", box)
    image = read_voc(voc(body), where="a.xml")
    assert image.boxes == [PixelBox("cat", 1, 2, 3, 4)]
    assert image.skipped == [(MALFORMED_BOX, "object 2 (dog)")]
    assert image.annotated is True


def test_an_object_without_a_class_name_is_skipped() -> None:
    body = "<filename>a.jpg</filename>" + obj(None) + obj("  ") + obj(" cat ")
    image = read_voc(voc(body), where="a.xml")
    assert image.skipped == [(NO_CLASS_NAME, "object 1"), (NO_CLASS_NAME, "object 2")]
    assert image.boxes == [PixelBox(" cat ", 1, 2, 3, 4)]  # the caller strips and matches


def test_a_document_type_declaration_is_refused() -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    )
    with pytest.raises(Invalid, match=r"^a\.xml: declares a DOCTYPE"):
        read_voc(voc("<filename>&lol2;</filename>", declaration=laughs), where="a.xml")
    with pytest.raises(Invalid, match="DOCTYPE"):
        read_voc(voc("", declaration="<!DOCTYPE annotation>"), where="a.xml")


def test_a_document_type_declaration_in_utf16_is_refused_too() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><annotation/>'
    with pytest.raises(Invalid, match="DOCTYPE"):
        read_voc(text.encode("utf-16"), where="a.xml")


def test_a_voc_file_over_two_megabytes_is_refused() -> None:
    big = voc("<filename>a.jpg</filename>" + " " * MAX_VOC_BYTES)
    with pytest.raises(Invalid, match=r"a\.xml: is .* bytes; .* at most 2 MB"):
        read_voc(big, where="a.xml")


@pytest.mark.parametrize(
    "data", [b"", b"<annotation><filename>a.jpg</annotation>", b"not xml", b"\xff\xfe\x00"]
)
def test_malformed_xml_is_refused_with_the_parsers_message(data: bytes) -> None:
    with pytest.raises(Invalid, match=r"^a\.xml: is not well-formed XML \(.+\)"):
        read_voc(data, where="a.xml")


def test_a_root_other_than_annotation_is_refused() -> None:
    with pytest.raises(Invalid, match=r"a\.xml: is not a Pascal VOC file .*<annotations>"):
        read_voc(b"<annotations><annotation/></annotations>", where="a.xml")


def test_a_utf8_file_with_a_declaration_and_non_ascii_names_reads() -> None:
    data = ('<?xml version="1.0" encoding="utf-8"?>' + "<annotation><filename>é.jpg</filename>"
            + obj("Hühner") + "</annotation>").encode()  # fmt: skip
    image = read_voc(data, where="a.xml")
    assert image.file_name == "é.jpg"
    assert image.boxes == [PixelBox("Hühner", 1, 2, 3, 4)]


# --- CVAT labelmap ----------------------------------------------------------------------------


def test_a_cvat_labelmap_gives_its_names_in_order_without_background() -> None:
    text = (
        "# label:color_rgb:parts:actions\n"
        "background:0,0,0::\n"
        "car:250,50,83::\n"
        "\n"
        "  traffic light :51,221,255::\n"
        "person:255,0,0:head,hand:\n"
    )
    assert read_labelmap(text) == ["car", "traffic light", "person"]


def test_background_is_a_class_when_it_is_not_the_first_entry() -> None:
    assert read_labelmap("car:1,2,3::\nbackground:0,0,0::\n") == ["car", "background"]
    assert read_labelmap("Background:0,0,0::\ncar:1,2,3::\n") == ["Background", "car"]


def test_labelmap_names_are_given_once_and_lines_without_colours_still_count() -> None:
    text = "\ufeffcat:1,2,3::\r\ndog\r\nCat:4,5,6::\r\n:7,8,9::\r\ndog:1,1,1::\r\n"
    assert read_labelmap(text) == ["cat", "dog"]


def test_an_empty_labelmap_has_no_names() -> None:
    assert read_labelmap("") == []
    assert read_labelmap("# only a comment\n\nbackground:0,0,0::\n") == []
