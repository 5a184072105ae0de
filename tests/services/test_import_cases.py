"""Importing other tools' exports into a project, one case per test: small files the tests
write (zips via ``zipfile``, folders under ``tmp_path``), the boxes read back from the label
store and the report's count and examples for the case's reason."""

from __future__ import annotations

import io
import itertools
import json
import os
import socket
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image as PILImage

from app.domain.errors import Cancelled, Invalid
from app.domain.import_plan import COCO, CVAT, LABEL_STUDIO, ROBOFLOW, ULTRALYTICS, VOC
from app.domain.import_rules import ImportReport, Reason
from app.domain.stores import Stores
from app.repositories import importer
from tests.contract.support import jpg, label_file, png, upload

PROJECT = "proj"
Files = dict[str, bytes | str]
Row = tuple[int, float, float, float, float]

_numbers = itertools.count()


def write_zip(path: Path, files: Files) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_folder(root: Path, files: Files) -> Path:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def data_yaml(names: list[str] | dict[int, str], **extra: object) -> str:
    return yaml.safe_dump({"names": names, **extra}, allow_unicode=True)


async def imported(
    stores: Stores,
    tmp_path: Path,
    files: Files,
    *,
    classes: tuple[str, ...] = ("cat", "dog"),
    add_classes: bool = True,
) -> ImportReport:
    """``files`` zipped and imported into ``proj`` (created with ``classes`` if absent)."""
    if await stores.dataset.get(PROJECT) is None:
        await stores.dataset.create(PROJECT, list(classes))
    source = write_zip(tmp_path / f"export-{next(_numbers)}.zip", files)
    return await stores.dataset.import_dataset(PROJECT, source, add_classes=add_classes)


async def stored(stores: Stores, filename: str, project: str = PROJECT) -> list[Row]:
    """The accepted boxes of the image, as YOLO rows (class position, x, y, w, h)."""
    info = await stores.image.get(project, filename)
    labels = await stores.label.load(project, info.split, filename)
    return [(a.class_id, a.x, a.y, a.width, a.height) for a in labels]


def same(actual: list[Row], expected: list[Row]) -> None:
    """The same rows in the same order, coordinates within 1e-6."""
    assert len(actual) == len(expected), (actual, expected)
    for got, want in zip(actual, expected, strict=True):
        assert got[0] == want[0], (actual, expected)
        assert got[1:] == pytest.approx(want[1:], abs=1e-6), (actual, expected)


async def names(stores: Stores, project: str = PROJECT) -> dict[str, str]:
    """Stored image name → split."""
    return {i.filename: i.split for i in await stores.image.list(project)}


def yolo(
    labels: dict[str, str], images: dict[str, bytes] | None = None, **yaml_extra: object
) -> Files:
    """An Ultralytics export: ``images/train/<name>`` and ``labels/train/<stem>.txt``."""
    files: Files = {"data.yaml": data_yaml(["cat", "dog"], train="images/train", **yaml_extra)}
    for name, data in (images or {}).items():
        files[f"images/train/{name}"] = data
    for stem, text in labels.items():
        files[f"labels/train/{stem}.txt"] = text
    return files


# --- 1. polygons and four corners ---------------------------------------------------------


async def test_a_polygon_row_is_read_as_its_bounding_box_and_the_box_rows_stay_boxes(
    stores: Stores, tmp_path: Path
) -> None:
    text = (
        "1 0.5 0.5 0.2 0.2\n"
        "0 0.1 0.1 0.4 0.1 0.4 0.5 0.2 0.7 0.1 0.5\n"  # a pentagon
        "0 0.3 0.3 0.1 0.125\n"
    )
    report = await imported(stores, tmp_path, yolo({"a": text}, {"a.png": png(1)}))

    same(
        await stored(stores, "a.png"),
        [(1, 0.5, 0.5, 0.2, 0.2), (0, 0.25, 0.4, 0.3, 0.6), (0, 0.3, 0.3, 0.1, 0.125)],
    )
    assert report.count(Reason.POLYGON) == 1
    assert report.examples[Reason.POLYGON] == ["labels/train/a.txt:2"]
    assert label_file(stores, "train", "a.png").read_text().splitlines() == [
        "1 0.500000 0.500000 0.200000 0.200000",
        "0 0.250000 0.400000 0.300000 0.600000",
        "0 0.300000 0.300000 0.100000 0.125000",
    ]
    assert report.count(Reason.BOXES) == 3
    assert report.count(Reason.CORNERS) == 0


async def test_a_four_corner_row_of_nine_values_is_read_as_its_box(
    stores: Stores, tmp_path: Path
) -> None:
    text = "1 0.2 0.25 0.6 0.25 0.6 0.75 0.2 0.75\n0 0.5 0.5 0.25 0.25\n"
    report = await imported(stores, tmp_path, yolo({"a": text}, {"a.png": png(1)}))

    same(await stored(stores, "a.png"), [(1, 0.4, 0.5, 0.4, 0.5), (0, 0.5, 0.5, 0.25, 0.25)])
    assert report.count(Reason.CORNERS) == 1
    assert report.examples[Reason.CORNERS] == ["labels/train/a.txt:1"]
    assert report.count(Reason.POLYGON) == 0


# --- 2. line ends and spaces --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0 0.5 0.5 0.2 0.2\r\n1 0.25 0.25 0.1 0.1\r\n",  # CRLF
        "0 0.5 0.5 0.2 0.2   \n1 0.25 0.25 0.1 0.1 \t\n",  # trailing spaces
        "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1",  # no final newline
        "\n0 0.5 0.5 0.2 0.2\n\n  \n1 0.25 0.25 0.1 0.1\n\n",  # blank lines
        "\ufeff0 0.5 0.5 0.2 0.2\r\n\r\n1 0.25 0.25 0.1 0.1  ",  # a BOM, all at once
    ],
    ids=["crlf", "trailing-spaces", "no-final-newline", "blank-lines", "all-at-once"],
)
async def test_line_ends_trailing_spaces_and_blank_lines_do_not_matter(
    stores: Stores, tmp_path: Path, text: str
) -> None:
    report = await imported(stores, tmp_path, yolo({"a": text}, {"a.png": png(1)}))

    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2), (1, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.BOXES) == 2
    assert report.count(Reason.LABELLED) == 1
    assert report.skipped == 0


# --- 3. empty label, no label, label without image ----------------------------------------


async def test_an_empty_label_file_is_no_objects_a_missing_one_unlabelled_an_orphan_reported(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo(
        {"empty": "", "orphan": "0 0.5 0.5 0.2 0.2\n"},
        {"empty.png": png(1), "bare.png": png(2)},
    )
    report = await imported(stores, tmp_path, files)

    empty = await stores.image.get(PROJECT, "empty.png")
    bare = await stores.image.get(PROJECT, "bare.png")
    assert (empty.no_objects, empty.has_labels) == (True, True)
    assert (bare.no_objects, bare.has_labels) == (False, False)
    assert await stored(stores, "empty.png") == []
    assert await stored(stores, "bare.png") == []
    assert report.count(Reason.NO_OBJECTS) == 1
    assert report.examples[Reason.NO_OBJECTS] == ["images/train/empty.png"]
    assert report.count(Reason.UNLABELLED) == 1
    assert report.examples[Reason.UNLABELLED] == ["images/train/bare.png"]
    assert report.count(Reason.ORPHAN_LABEL) == 1
    assert report.examples[Reason.ORPHAN_LABEL] == ["labels/train/orphan.txt"]
    assert report.count(Reason.IMAGES) == 2


# --- 4. class ids the names do not list ---------------------------------------------------


async def test_a_class_id_outside_the_names_skips_its_line_and_is_reported(
    stores: Stores, tmp_path: Path
) -> None:
    text = "5 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n2 0.5 0.5 0.1 0.1\n"
    report = await imported(stores, tmp_path, yolo({"a": text}, {"a.png": png(1)}))

    same(await stored(stores, "a.png"), [(1, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.UNNAMED_CLASS) == 2
    examples = report.examples[Reason.UNNAMED_CLASS]
    assert [e.split(" ")[0] for e in examples] == ["labels/train/a.txt:1", "labels/train/a.txt:3"]
    assert "class 5" in examples[0]
    assert [c.name for c in await stores.dataset.get_classes(PROJECT)] == ["cat", "dog"]


async def test_an_empty_names_file_skips_and_reports_every_line(
    stores: Stores, tmp_path: Path
) -> None:
    files: Files = {
        "classes.txt": "",
        "images/a.png": png(1),
        "labels/a.txt": "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n",
    }
    report = await imported(stores, tmp_path, files)

    assert await stored(stores, "a.png") == []
    info = await stores.image.get(PROJECT, "a.png")
    assert (info.has_labels, info.no_objects) == (False, False)  # not "no objects": unread
    assert report.count(Reason.UNNAMED_CLASS) == 2
    assert report.examples[Reason.UNNAMED_CLASS][0].startswith("labels/a.txt:1 ")
    assert report.count(Reason.BOXES) == 0
    assert [c.name for c in await stores.dataset.get_classes(PROJECT)] == ["cat", "dog"]


# --- 5. boxes outside the image -----------------------------------------------------------


async def test_a_box_up_to_one_percent_outside_is_clamped_further_out_refused(
    stores: Stores, tmp_path: Path
) -> None:
    text = (
        "0 0.5 0.5 1.01 0.5\n"  # edges -0.005 .. 1.005: clamped to 0..1
        "1 0.95 0.5 0.12 0.2\n"  # right edge 1.01: clamped
        "0 0.5 0.04 0.2 0.1\n"  # top edge -0.01: clamped
        "1 0.5 0.5 1.1 0.5\n"  # edges -0.05 .. 1.05: refused
        "0 -0.02 0.5 0.1 0.1\n"  # left edge -0.07: refused
    )
    report = await imported(stores, tmp_path, yolo({"a": text}, {"a.png": png(1)}))

    same(
        await stored(stores, "a.png"),
        [(0, 0.5, 0.5, 1.0, 0.5), (1, 0.945, 0.5, 0.11, 0.2), (0, 0.5, 0.045, 0.2, 0.09)],
    )
    assert report.count(Reason.CLAMPED) == 3
    assert report.examples[Reason.CLAMPED] == [
        "labels/train/a.txt:1",
        "labels/train/a.txt:2",
        "labels/train/a.txt:3",
    ]
    assert report.count(Reason.OUTSIDE) == 2
    assert [e.split(" ")[0] for e in report.examples[Reason.OUTSIDE]] == [
        "labels/train/a.txt:4",
        "labels/train/a.txt:5",
    ]


# --- 6. upper-case extensions -------------------------------------------------------------


async def test_upper_case_extensions_are_imported_with_their_labels(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo(
        {"A": "0 0.5 0.5 0.2 0.2\n", "B": "1 0.25 0.25 0.1 0.1\n"},
        {"A.JPG": jpg(1), "B.PNG": png(2)},
    )
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"A.jpg": "train", "B.png": "train"}
    same(await stored(stores, "A.jpg"), [(0, 0.5, 0.5, 0.2, 0.2)])
    same(await stored(stores, "B.png"), [(1, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.LABELLED) == 2
    assert report.count(Reason.UNLABELLED) == 0


# --- 7. bytes of another type than the name says ------------------------------------------


async def test_png_bytes_named_jpg_are_stored_as_png_with_their_label(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({"c": "1 0.5 0.5 0.2 0.2\n"}, {"c.jpg": png(1)})
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"c.png": "train"}
    same(await stored(stores, "c.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.RETYPED) == 1
    assert report.examples[Reason.RETYPED] == ["images/train/c.jpg → c.png"]


# --- 8. EXIF orientation ------------------------------------------------------------------


def rotated_jpeg() -> bytes:
    """A 64x32 JPEG whose EXIF orientation (6) shows it upright as 32x64."""
    image = PILImage.new("RGB", (64, 32), (200, 40, 40))
    for x in range(16):
        for y in range(32):
            image.putpixel((x, y), (10, 200, 10))
    exif = PILImage.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


async def test_a_yolo_label_of_an_exif_rotated_jpeg_is_kept_in_upright_coordinates(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({"r": "0 0.5 0.25 0.5 0.25\n"}, {"r.jpg": rotated_jpeg()})
    report = await imported(stores, tmp_path, files)

    info = await stores.image.get(PROJECT, "r.jpg")
    assert (info.width, info.height) == (32, 64)
    same(await stored(stores, "r.jpg"), [(0, 0.5, 0.25, 0.5, 0.25)])
    assert report.count(Reason.BOXES) == 1


async def test_a_coco_pixel_box_of_an_exif_rotated_jpeg_uses_the_declared_size(
    stores: Stores, tmp_path: Path
) -> None:
    coco = {
        "categories": [{"id": 1, "name": "dog"}],
        "images": [{"id": 1, "file_name": "r.jpg", "width": 32, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 8, 8, 16]}],
    }
    files: Files = {"train/_annotations.coco.json": json.dumps(coco), "train/r.jpg": rotated_jpeg()}
    report = await imported(stores, tmp_path, files)

    same(await stored(stores, "r.jpg"), [(1, 0.25, 0.25, 0.25, 0.25)])
    assert report.format == COCO
    assert report.count(Reason.BOXES) == 1


# --- 9. duplicates ------------------------------------------------------------------------


async def test_the_same_image_twice_in_an_export_is_stored_once_and_reported(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo(
        {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n"},
        {"a.png": png(1), "b.png": png(1)},
    )
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"a.png": "train"}
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.IMAGES) == 1
    assert report.count(Reason.DUPLICATE) == 1
    assert report.examples[Reason.DUPLICATE] == ["images/train/b.png = a.png"]
    assert report.count(Reason.FILLED) == 0


async def test_importing_the_same_zip_twice_changes_nothing_the_second_time(
    stores: Stores, tmp_path: Path
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    files = yolo(
        {"a": "0 0.5 0.5 0.2 0.2\n", "e": ""},
        {"a.png": png(1), "e.png": png(2), "u.png": png(3)},
    )
    source = write_zip(tmp_path / "export.zip", files)
    await stores.dataset.import_dataset(PROJECT, source)
    before = {
        i.filename: (i.split, i.sha256, i.no_objects) for i in await stores.image.list(PROJECT)
    }

    again = await stores.dataset.import_dataset(PROJECT, source)

    after = {
        i.filename: (i.split, i.sha256, i.no_objects) for i in await stores.image.list(PROJECT)
    }
    assert after == before
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2)])
    assert await stored(stores, "e.png") == []
    assert await stored(stores, "u.png") == []
    assert again.count(Reason.DUPLICATE) == 3
    assert sorted(again.examples[Reason.DUPLICATE]) == [
        "images/train/a.png = a.png",
        "images/train/e.png = e.png",
        "images/train/u.png = u.png",
    ]
    assert again.count(Reason.IMAGES) == 0
    assert again.count(Reason.BOXES) == 0
    assert again.count(Reason.FILLED) == 0
    assert again.count(Reason.CLASSES_ADDED) == 0


async def test_a_duplicate_of_an_unlabelled_project_image_gives_it_the_labels(
    stores: Stores, tmp_path: Path
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    await upload(stores, "mine.png", split="val", data=png(7))
    files = yolo({"theirs": "1 0.5 0.5 0.2 0.2\n"}, {"theirs.png": png(7)})

    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"mine.png": "val"}
    same(await stored(stores, "mine.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    mirrored = label_file(stores, "val", "mine.png").read_text()
    assert mirrored == "1 0.500000 0.500000 0.200000 0.200000\n"
    assert report.count(Reason.FILLED) == 1
    assert report.examples[Reason.FILLED] == ["images/train/theirs.png"]
    assert report.count(Reason.DUPLICATE) == 0
    assert report.count(Reason.IMAGES) == 0


async def test_a_duplicate_of_a_labelled_project_image_leaves_its_labels_alone(
    stores: Stores, tmp_path: Path
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    await upload(stores, "mine.png", data=png(7))
    await stores.label.save(PROJECT, "train", "mine.png", [])  # nothing yet
    await imported(stores, tmp_path, yolo({"x": "0 0.5 0.5 0.2 0.2\n"}, {"x.png": png(7)}))
    report = await imported(
        stores, tmp_path, yolo({"y": "1 0.25 0.25 0.1 0.1\n"}, {"y.png": png(7)})
    )

    same(await stored(stores, "mine.png"), [(0, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.DUPLICATE) == 1
    assert report.count(Reason.FILLED) == 0


# --- 10. names ----------------------------------------------------------------------------


async def test_names_with_spaces_accents_and_cjk_keep_their_labels(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo(
        {"猫 1": "0 0.5 0.5 0.2 0.2\n", "café photo": "1 0.25 0.25 0.1 0.1\n"},
        {"猫 1.jpg": jpg(1), "café photo.png": png(2)},
    )
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"猫 1.jpg": "train", "café photo.png": "train"}
    same(await stored(stores, "猫 1.jpg"), [(0, 0.5, 0.5, 0.2, 0.2)])
    same(await stored(stores, "café photo.png"), [(1, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.LABELLED) == 2


# --- 11. two images of one stem -----------------------------------------------------------


async def test_two_images_of_one_stem_both_come_in_with_that_stems_labels(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({"a": "1 0.5 0.5 0.2 0.2\n"}, {"a.jpg": jpg(1), "a.png": png(2)})
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"a.jpg": "train", "a-1.png": "train"}
    same(await stored(stores, "a.jpg"), [(1, 0.5, 0.5, 0.2, 0.2)])
    same(await stored(stores, "a-1.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.RENAMED) == 1
    assert report.examples[Reason.RENAMED] == ["images/train/a.png → a-1.png"]
    assert report.count(Reason.ORPHAN_LABEL) == 0


# --- 12. unsafe zips and folders ----------------------------------------------------------


def _symlink_entry(archive: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo("images/train/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, "/etc/passwd")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("../evil.png", "leaves the archive"),
        ("images/../../evil.png", "leaves the archive"),
        ("/etc/x", "leaves the archive"),
        (None, "symbolic link"),
    ],
    ids=["dot-dot", "dot-dot-inside", "absolute", "symlink"],
)
async def test_an_unsafe_zip_is_refused_whole(
    stores: Stores, tmp_path: Path, entry: str | None, message: str
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    source = tmp_path / "bad.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for name, data in yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)}).items():
            archive.writestr(name, data)
        if entry is None:
            _symlink_entry(archive)
        else:
            archive.writestr(zipfile.ZipInfo(entry), png(2))

    with pytest.raises(Invalid, match=message):
        await stores.dataset.import_dataset(PROJECT, source)
    with pytest.raises(Invalid, match=message):
        await stores.dataset.import_zip(source, "other")

    assert await stores.image.list(PROJECT) == []
    assert await stores.dataset.get("other") is None


async def test_a_zip_bomb_is_refused_whole(stores: Stores, tmp_path: Path) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    source = tmp_path / "bomb.zip"
    size = 200 * 2**20  # zeros: about 200 KB deflated
    assert size > importer.MAX_RATIO_FROM
    chunk = bytes(2**20)
    with zipfile.ZipFile(source, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)}).items():
            archive.writestr(name, data)
        with archive.open("labels/train/zeros.txt", "w", force_zip64=True) as member:
            for _ in range(size // len(chunk)):
                member.write(chunk)
    assert source.stat().st_size * importer.MAX_RATIO < size

    with pytest.raises(Invalid, match="zip bomb"):
        await stores.dataset.import_dataset(PROJECT, source)
    with pytest.raises(Invalid, match="zip bomb"):
        await stores.dataset.import_zip(source, "other")

    assert await stores.image.list(PROJECT) == []
    assert await stores.dataset.get("other") is None


async def test_a_damaged_zip_is_refused(stores: Stores, tmp_path: Path) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    source = tmp_path / "bad.zip"
    source.write_bytes(b"PK\x03\x04 not really a zip")

    with pytest.raises(Invalid, match="not a zip"):
        await stores.dataset.import_dataset(PROJECT, source)


async def test_a_folder_with_a_link_out_of_the_allowed_roots_is_refused_whole(
    stores: Stores, tmp_path: Path
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    root = tmp_path / "imports"
    folder = write_folder(root / "export", yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)}))
    secret = write_folder(tmp_path / "elsewhere", {"secret.png": png(2)}) / "secret.png"
    os.symlink(secret, folder / "images" / "train" / "s.png")

    with pytest.raises(Invalid, match="symbolic link"):
        await stores.dataset.import_dataset(PROJECT, folder, allowed_links=(root,))
    assert await stores.image.list(PROJECT) == []

    # Under an allowed root, the link is followed.
    report = await stores.dataset.import_dataset(
        PROJECT, folder, allowed_links=(root, tmp_path / "elsewhere")
    )
    assert report.count(Reason.IMAGES) == 2
    assert sorted(await names(stores)) == ["a.png", "s.png"]


async def test_a_folder_with_a_linked_folder_out_of_the_roots_is_refused(
    stores: Stores, tmp_path: Path
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    folder = write_folder(
        tmp_path / "export", yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)})
    )
    os.symlink(tmp_path.parent, folder / "images" / "val")

    with pytest.raises(Invalid, match="symbolic link"):
        await stores.dataset.import_dataset(PROJECT, folder, allowed_links=(tmp_path,))
    assert await stores.image.list(PROJECT) == []


# --- 13. merging classes ------------------------------------------------------------------


def _merge_export() -> Files:
    return {
        "data.yaml": data_yaml([" Cat ", "bird"], train="images/train"),
        "images/train/a.png": png(1),
        "labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n",
    }


async def test_classes_match_by_name_ignoring_case_and_spaces_and_new_ones_are_added(
    stores: Stores, tmp_path: Path
) -> None:
    report = await imported(stores, tmp_path, _merge_export(), add_classes=True)

    assert [c.name for c in await stores.dataset.get_classes(PROJECT)] == ["cat", "dog", "bird"]
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2), (2, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.CLASSES_ADDED) == 1
    assert report.examples[Reason.CLASSES_ADDED] == ["bird"]
    assert report.classes == ["cat", "dog", "bird"]
    assert report.count(Reason.NOT_IN_PROJECT) == 0


async def test_without_adding_classes_the_boxes_of_new_ones_are_skipped(
    stores: Stores, tmp_path: Path
) -> None:
    report = await imported(stores, tmp_path, _merge_export(), add_classes=False)

    assert [c.name for c in await stores.dataset.get_classes(PROJECT)] == ["cat", "dog"]
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.NOT_IN_PROJECT) == 1
    assert report.examples[Reason.NOT_IN_PROJECT] == ["labels/train/a.txt (1 boxes)"]
    assert report.count(Reason.CLASSES_ADDED) == 0
    assert report.count(Reason.BOXES) == 1


# --- 14. formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names_value",
    [{0: "cat", 1: "dog"}, ["cat", "dog"]],
    ids=["names-dict", "names-list"],
)
async def test_an_ultralytics_yaml_with_path_download_and_list_files(
    stores: Stores,
    tmp_path: Path,
    names_value: list[str] | dict[int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the import tried to reach the network")

    local_connect = socket.socket.connect

    def only_local(sock: socket.socket, address: Any) -> None:
        if sock.family != socket.AF_UNIX:  # a unix socket is PostgreSQL's, on this machine
            no_network()
        local_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", only_local)
    monkeypatch.setattr(socket, "create_connection", no_network)
    files: Files = {
        "dataset/data.yaml": data_yaml(
            names_value,
            path="../datasets/mine",
            train="train.txt",
            val=["val.txt"],
            download="https://example.invalid/never-fetched.zip",
        ),
        "dataset/train.txt": "./images/x.jpg\n./images/y.png\n",
        "dataset/val.txt": "images/z.png\n# a comment\n\n",
        "dataset/images/x.jpg": jpg(1),
        "dataset/images/y.png": png(2),
        "dataset/images/z.png": png(3),
        "dataset/labels/x.txt": "1 0.5 0.5 0.2 0.2\n",
        "dataset/labels/y.txt": "",
        "dataset/labels/z.txt": "0 0.25 0.25 0.1 0.1\n",
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == ULTRALYTICS
    assert await names(stores) == {"x.jpg": "train", "y.png": "train", "z.png": "val"}
    same(await stored(stores, "x.jpg"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert (await stores.image.get(PROJECT, "y.png")).no_objects
    same(await stored(stores, "z.png"), [(0, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.ORPHAN_LABEL) == 0
    assert report.count(Reason.NOT_FOUND) == 0
    assert report.skipped == 0


async def test_a_roboflow_export_reads_its_split_folders(stores: Stores, tmp_path: Path) -> None:
    files: Files = {
        "data.yaml": data_yaml(
            ["cat", "dog"],
            train="../train/images",
            val="../valid/images",
            test="../test/images",
            nc=2,
            roboflow={"workspace": "w", "project": "p", "version": 1},
        ),
        "README.roboflow.txt": "exported",
        "train/images/a.jpg": jpg(1),
        "train/labels/a.txt": "0 0.5 0.5 0.2 0.2\n",
        "valid/images/b.jpg": jpg(2),
        "valid/labels/b.txt": "1 0.25 0.25 0.1 0.1\n",
        "test/images/c.jpg": jpg(3),
        "test/labels/c.txt": "",
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == ROBOFLOW
    assert await names(stores) == {"a.jpg": "train", "b.jpg": "val", "c.jpg": "test"}
    same(await stored(stores, "a.jpg"), [(0, 0.5, 0.5, 0.2, 0.2)])
    same(await stored(stores, "b.jpg"), [(1, 0.25, 0.25, 0.1, 0.1)])
    assert (await stores.image.get(PROJECT, "c.jpg")).no_objects
    assert report.skipped == 0


async def test_a_cvat_yolo_1_1_export(stores: Stores, tmp_path: Path) -> None:
    files: Files = {
        "obj.names": "dog\ncat\n",
        "obj.data": (
            "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
        ),
        "train.txt": "data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n",
        "obj_train_data/a.jpg": jpg(1),
        "obj_train_data/a.txt": "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n",
        "obj_train_data/b.jpg": jpg(2),
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == CVAT
    assert await names(stores) == {"a.jpg": "train", "b.jpg": "train"}
    # dog is the export's class 0, the project's 1.
    same(await stored(stores, "a.jpg"), [(1, 0.5, 0.5, 0.2, 0.2), (0, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.UNLABELLED) == 1
    assert report.examples[Reason.UNLABELLED] == ["obj_train_data/b.jpg"]
    assert report.skipped == 0


async def test_a_label_studio_yolo_export(stores: Stores, tmp_path: Path) -> None:
    notes = {"categories": [{"id": 1, "name": "cat"}, {"id": 0, "name": "fox"}], "info": {}}
    files: Files = {
        "classes.txt": "fox\ncat\n",
        "notes.json": json.dumps(notes),
        "images/0a1b-a.jpg": jpg(1),
        "labels/0a1b-a.txt": "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n",
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == LABEL_STUDIO
    assert [c.name for c in await stores.dataset.get_classes(PROJECT)] == ["cat", "dog", "fox"]
    same(
        await stored(stores, "0a1b-a.jpg"),
        [(2, 0.5, 0.5, 0.2, 0.2), (0, 0.25, 0.25, 0.1, 0.1)],
    )
    assert report.count(Reason.CLASSES_ADDED) == 1


async def test_a_coco_json_export(stores: Stores, tmp_path: Path) -> None:
    coco = {
        "categories": [{"id": 5, "name": "dog"}, {"id": 9, "name": "cat"}],
        "images": [
            {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.png", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [16, 12, 32, 24]},
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [0, 0, 8, 6]},
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [0, 0, 64, 48], "iscrowd": 1},
        ],
    }
    files: Files = {
        "annotations/instances_train.json": json.dumps(coco),
        "images/train/a.png": png(1),
        "images/train/b.png": png(2),
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == COCO
    assert await names(stores) == {"a.png": "train", "b.png": "train"}
    same(
        await stored(stores, "a.png"), [(1, 0.5, 0.5, 0.5, 0.5), (0, 0.0625, 0.0625, 0.125, 0.125)]
    )
    b = await stores.image.get(PROJECT, "b.png")
    assert (b.no_objects, b.has_labels) == (True, True)
    assert report.count(Reason.CROWD) == 1
    assert report.count(Reason.NO_OBJECTS) == 1
    assert report.count(Reason.BOXES) == 2


def _voc(name: str, objects: list[tuple[str, float, float, float, float]]) -> str:
    boxes = "".join(
        f"<object><name>{label}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for label, x1, y1, x2, y2 in objects
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>64</width><height>48</height>"
        f"<depth>3</depth></size>{boxes}</annotation>"
    )


async def test_a_pascal_voc_export(stores: Stores, tmp_path: Path) -> None:
    files: Files = {
        "Annotations/a.xml": _voc(
            "a.jpg", [("dog", 16.0, 12.0, 48.0, 36.0), ("cat", 0.5, 0.5, 8.5, 6.5)]
        ),
        "Annotations/b.xml": _voc("b.jpg", []),
        "JPEGImages/a.jpg": jpg(1),
        "JPEGImages/b.jpg": jpg(2),
        "ImageSets/Main/train.txt": "a\n",
        "ImageSets/Main/val.txt": "b\n",
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == VOC
    assert await names(stores) == {"a.jpg": "train", "b.jpg": "val"}
    same(
        await stored(stores, "a.jpg"),
        [(1, 0.5, 0.5, 0.5, 0.5), (0, 4.5 / 64, 3.5 / 48, 0.125, 0.125)],
    )
    assert (await stores.image.get(PROJECT, "b.jpg")).no_objects
    assert report.count(Reason.BOXES) == 2


# --- 15. round trip -----------------------------------------------------------------------


async def test_an_export_imported_and_exported_again_is_the_same_zip_content(
    stores: Stores, tmp_path: Path
) -> None:
    source: Files = {
        "data.yaml": data_yaml(
            ["cat", "dog", "bird"], train="images/train", val="images/val", test="images/test"
        ),
        "images/train/a.jpg": jpg(1),
        # The last box touches the corner: at six decimals its edges pass 1 by 5e-7.
        "labels/train/a.txt": (
            "0 0.5 0.5 0.2 0.2\n2 0.25 0.75 0.125 0.1\n1 0.938272 0.938272 0.123457 0.123457\n"
        ),
        "images/train/poly.png": png(2),
        "labels/train/poly.txt": "1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6 0.05 0.3\n",
        "images/val/猫 1.jpg": jpg(3),
        "labels/val/猫 1.txt": "1 0.3 0.3 0.2 0.4\n",
        "images/val/empty.png": png(4),
        "labels/val/empty.txt": "",
        "images/test/café photo.png": png(5),
        "labels/test/café photo.txt": "2 0.6 0.4 0.3 0.2\n0 0.2 0.2 0.1 0.1\n",
    }
    report = await imported(stores, tmp_path, source, classes=("cat", "dog", "bird"))
    assert report.count(Reason.CLAMPED) == 0
    assert report.count(Reason.POLYGON) == 1
    assert report.skipped == 0
    first = (await stores.dataset.export(PROJECT, tmp_path / "first")).path

    await stores.dataset.import_zip(first, "again")
    second = (await stores.dataset.export("again", tmp_path / "second")).path

    def contents(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    one, two = contents(first), contents(second)
    assert sorted(one) == sorted(two)
    assert sorted(one) == sorted(
        [
            "data.yaml",
            "images/train/a.jpg",
            "images/train/poly.png",
            "images/val/猫 1.jpg",
            "images/val/empty.png",
            "images/test/café photo.png",
            "labels/train/a.txt",
            "labels/train/poly.txt",
            "labels/val/猫 1.txt",
            "labels/val/empty.txt",
            "labels/test/café photo.txt",
        ]
    )
    for name in one:
        assert one[name] == two[name], name
    assert one["labels/val/empty.txt"] == b""
    assert one["labels/train/poly.txt"].decode().split() == [
        "1", "0.275000", "0.350000", "0.450000", "0.500000"
    ]  # fmt: skip
    assert [c.name for c in await stores.dataset.get_classes("again")] == ["cat", "dog", "bird"]


# --- more of what is left out, and how ----------------------------------------------------


async def test_malformed_confidence_and_tiny_rows_are_each_decided_on_their_own(
    stores: Stores, tmp_path: Path
) -> None:
    text = (
        "0 0.5 0.5 0.2\n"  # too few values
        "cat 0.5 0.5 0.2 0.2\n"  # not a number
        "0 nan 0.5 0.2 0.2\n"  # not finite
        "0 0.5 0.5 -0.2 0.2\n"  # negative width
        "1 0.5 0.5 0.2 0.2 0.87\n"  # a confidence
        "0 0.5 0.5 0.01 0.2\n"  # 0.64 px wide
        "1.0 0.25 0.25 0.1 0.1\n"  # a class written as a float
    )
    report = await imported(stores, tmp_path, yolo({"a": text}, {"a.png": png(1)}))

    same(await stored(stores, "a.png"), [(1, 0.5, 0.5, 0.2, 0.2), (1, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.MALFORMED) == 4
    assert [e.split(" ")[0] for e in report.examples[Reason.MALFORMED]] == [
        f"labels/train/a.txt:{n}" for n in (1, 2, 3, 4)
    ]
    assert report.examples[Reason.CONFIDENCE] == ["labels/train/a.txt:5"]
    assert report.count(Reason.TOO_SMALL) == 1
    assert report.examples[Reason.TOO_SMALL][0].startswith("labels/train/a.txt:6 ")
    assert report.count(Reason.BOXES) == 2


async def test_a_label_file_that_is_not_utf8_leaves_the_image_in_and_its_lines_out(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({}, {"a.png": png(1)})
    files["labels/train/a.txt"] = b"0 0.5 0.5 0.2 0.2\n\xff\xfe 0.5 0.5 0.2 0.2\n"
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"a.png": "train"}
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.MALFORMED) == 1
    assert report.examples[Reason.MALFORMED][0].startswith("labels/train/a.txt:2 ")
    assert report.count(Reason.NOT_IMAGE) == 0


async def test_a_file_named_like_an_image_that_is_none_is_skipped_and_reported(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1), "broken.jpg": b"not a picture"})
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"a.png": "train"}
    assert report.count(Reason.NOT_IMAGE) == 1
    assert report.examples[Reason.NOT_IMAGE][0].startswith("images/train/broken.jpg (")
    assert report.count(Reason.IMAGES) == 1


async def test_a_labelled_copy_of_an_unlabelled_image_of_the_same_import_fills_it(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({"b": "1 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1), "b.png": png(1)})
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"a.png": "train"}
    same(await stored(stores, "a.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.FILLED) == 1
    assert report.examples[Reason.FILLED] == ["images/train/b.png"]
    assert report.count(Reason.UNLABELLED) == 0
    assert report.count(Reason.LABELLED) == 1
    assert report.count(Reason.IMAGES) == 1
    assert report.count(Reason.DUPLICATE) == 0


async def test_duplicates_across_chunks_are_found_and_progress_reaches_the_end(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK", 2)
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    files = yolo(
        {"a": "0 0.5 0.5 0.2 0.2\n", "d": "0 0.5 0.5 0.2 0.2\n", "e": "1 0.5 0.5 0.2 0.2\n"},
        {"a.png": png(1), "b.png": png(2), "c.png": png(3), "d.png": png(1), "e.png": png(2)},
    )
    source = write_zip(tmp_path / "export.zip", files)
    seen: list[float] = []

    async def progress(fraction: float, message: str) -> None:
        seen.append(fraction)

    report = await stores.dataset.import_dataset(PROJECT, source, progress=progress)

    assert await names(stores) == {"a.png": "train", "b.png": "train", "c.png": "train"}
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2)])
    same(await stored(stores, "b.png"), [(1, 0.5, 0.5, 0.2, 0.2)])  # filled by e.png
    assert report.examples[Reason.DUPLICATE] == ["images/train/d.png = a.png"]
    assert report.examples[Reason.FILLED] == ["images/train/e.png"]
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 4


async def test_a_linked_folder_under_an_allowed_root_is_read(
    stores: Stores, tmp_path: Path
) -> None:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    folder = write_folder(
        tmp_path / "export", yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)})
    )
    shared = write_folder(
        tmp_path / "shared", {"images/b.png": png(2), "labels/b.txt": "1 0.5 0.5 0.2 0.2\n"}
    )
    os.symlink(shared / "images", folder / "images" / "val")
    os.symlink(shared / "labels", folder / "labels" / "val")
    os.symlink(folder, folder / "images" / "loop")  # a cycle: read once

    report = await stores.dataset.import_dataset(PROJECT, folder, allowed_links=(tmp_path,))

    assert await names(stores) == {"a.png": "train", "b.png": "val"}
    same(await stored(stores, "b.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.IMAGES) == 2


async def test_a_label_file_too_large_to_read_leaves_its_image_unlabelled_and_is_reported(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_TEXT_BYTES", 64)
    files = yolo({"a": "0 0.5 0.5 0.2 0.2\n" * 10, "b": "1 0.5 0.5 0.2 0.2\n"})
    files.update({"images/train/a.png": png(1), "images/train/b.png": png(2)})
    report = await imported(stores, tmp_path, files)

    assert await names(stores) == {"a.png": "train", "b.png": "train"}
    assert await stored(stores, "a.png") == []
    assert not (await stores.image.get(PROJECT, "a.png")).has_labels
    same(await stored(stores, "b.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert report.count(Reason.MALFORMED) == 1
    assert report.examples[Reason.MALFORMED][0].startswith("labels/train/a.txt (")
    assert report.examples[Reason.UNLABELLED] == ["images/train/a.png"]
    assert report.count(Reason.NOT_IMAGE) == 0


async def test_a_retyped_copy_of_an_image_already_in_is_a_duplicate_not_a_rename(
    stores: Stores, tmp_path: Path
) -> None:
    await imported(stores, tmp_path, yolo({"a": "0 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)}))
    report = await imported(stores, tmp_path, yolo({"c": "0 0.5 0.5 0.2 0.2\n"}, {"c.jpg": png(1)}))

    assert await names(stores) == {"a.png": "train"}
    assert report.count(Reason.DUPLICATE) == 1
    assert report.count(Reason.RETYPED) == 0


async def test_a_zip_from_windows_or_a_mac_reads_the_same(stores: Stores, tmp_path: Path) -> None:
    files: Files = {
        "export\\data.yaml": data_yaml(["cat", "dog"], train="images/train"),
        "export\\images\\train\\a.png": png(1),
        "export\\labels\\train\\a.txt": "1 0.5 0.5 0.2 0.2\n",
        "__MACOSX/export/images/train/._a.png": b"\x00\x05\x16\x07resource fork",
        "export/images/train/._b.png": b"\x00\x05\x16\x07resource fork",
        "export/.DS_Store": b"\x00\x00\x00\x01Bud1",
    }
    report = await imported(stores, tmp_path, files)

    assert report.format == ULTRALYTICS
    assert await names(stores) == {"a.png": "train"}
    same(await stored(stores, "a.png"), [(1, 0.5, 0.5, 0.2, 0.2)])
    assert report.skipped == 0


async def test_a_zip_without_images_creates_no_project(stores: Stores, tmp_path: Path) -> None:
    source = write_zip(tmp_path / "x.zip", {"data.yaml": data_yaml(["cat"]), "labels/a.txt": ""})

    with pytest.raises(Invalid, match="No images found"):
        await stores.dataset.import_zip(source, "new")
    assert await stores.dataset.get("new") is None


async def test_import_zip_creates_the_project_with_the_exports_classes(
    stores: Stores, tmp_path: Path
) -> None:
    files = yolo({"a": "1 0.5 0.5 0.2 0.2\n"}, {"a.png": png(1)})
    source = write_zip(tmp_path / "mine.zip", files)

    created = await stores.dataset.import_zip(source)

    assert created.name == "mine"
    assert [c.name for c in await stores.dataset.get_classes("mine")] == ["cat", "dog"]
    same(await stored(stores, "a.png", "mine"), [(1, 0.5, 0.5, 0.2, 0.2)])


async def test_a_class_name_ydc_cannot_store_skips_only_its_boxes(
    stores: Stores, tmp_path: Path
) -> None:
    files: Files = {
        "classes.txt": "cat\n" + "x" * 101 + "\nbird\n",
        "images/a.png": png(1),
        "labels/a.txt": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n2 0.25 0.25 0.1 0.1\n",
    }
    report = await imported(stores, tmp_path, files)

    assert [c.name for c in await stores.dataset.get_classes(PROJECT)] == ["cat", "dog", "bird"]
    same(await stored(stores, "a.png"), [(0, 0.5, 0.5, 0.2, 0.2), (2, 0.25, 0.25, 0.1, 0.1)])
    assert report.count(Reason.BAD_CLASS_NAME) == 1
    assert "longer than" in report.examples[Reason.BAD_CLASS_NAME][0]
    assert report.examples[Reason.CLASSES_ADDED] == ["bird"]
    assert report.count(Reason.NOT_IN_PROJECT) == 1


@pytest.mark.parametrize("fmt", ["yolo11", "coco"])
async def test_each_of_ydcs_export_formats_imports_back_to_the_same_boxes(
    stores: Stores, tmp_path: Path, fmt: str
) -> None:
    source: Files = {
        "data.yaml": data_yaml(["cat", "dog"], train="images/train", val="images/val"),
        "images/train/a.jpg": jpg(1, 80, 60),
        "labels/train/a.txt": "0 0.5 0.5 0.25 0.5\n1 0.25 0.75 0.125 0.1\n",
        "images/val/b.png": png(2, 80, 60),
        "labels/val/b.txt": "",
        "images/val/猫.png": png(3, 80, 60),
        "labels/val/猫.txt": "1 0.875 0.5 0.25 1\n",
    }
    await imported(stores, tmp_path, source)
    exported = (await stores.dataset.export(PROJECT, tmp_path / "out", format=fmt)).path

    await stores.dataset.create("again", [])
    report = await stores.dataset.import_dataset("again", exported)

    assert report.format == {"yolo11": CVAT, "coco": COCO}[fmt]
    assert [c.name for c in await stores.dataset.get_classes("again")] == ["cat", "dog"]
    assert report.skipped == 0
    assert report.count(Reason.CLAMPED) == 0
    for name in ("a.jpg", "b.png", "猫.png"):
        before = await stored(stores, name)
        after = await stored(stores, name, "again")
        assert len(after) == len(before)
        for got, want in zip(after, before, strict=True):
            assert got[0] == want[0]
            assert got[1:] == pytest.approx(want[1:], abs=0.5 / 80)  # pixels, rounded
    b = await stores.image.get("again", "b.png")
    assert (b.no_objects, b.split) == (True, "val")
    assert (await stores.image.get("again", "a.jpg")).split == "train"


async def test_a_cancelled_import_keeps_whole_chunks_and_a_second_run_completes_it(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK", 2)
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    labels = {s: f"{i % 2} 0.5 0.5 0.2 0.2\n" for i, s in enumerate("abcde")}
    files = yolo(labels, {f"{s}.png": png(i) for i, s in enumerate("abcde")})
    source = write_zip(tmp_path / "export.zip", files)

    async def cancel_after_first_chunk(fraction: float, message: str) -> None:
        if fraction > 0:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        await stores.dataset.import_dataset(PROJECT, source, progress=cancel_after_first_chunk)

    assert sorted(await names(stores)) == ["a.png", "b.png"]
    same(await stored(stores, "b.png"), [(1, 0.5, 0.5, 0.2, 0.2)])

    report = await stores.dataset.import_dataset(PROJECT, source)

    assert sorted(await names(stores)) == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert report.count(Reason.DUPLICATE) == 2
    assert report.count(Reason.IMAGES) == 3
    for i, s in enumerate("abcde"):
        same(await stored(stores, f"{s}.png"), [(i % 2, 0.5, 0.5, 0.2, 0.2)])
