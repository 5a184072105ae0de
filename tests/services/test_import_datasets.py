"""Each real export kept in ``tests/data`` imported into a project: its format, classes, images
per split and a few boxes checked against the export's own files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from app.domain.import_plan import COCO, ROBOFLOW, ULTRALYTICS
from app.domain.import_rules import ImportReport, Reason
from app.domain.stores import Stores
from tests.conftest import TEST_DATA

COCO8 = TEST_DATA / "coco8"
SHARKS_YOLO = TEST_DATA / "roboflow-sharks-tiny-yolo"
SHARKS_COCO = TEST_DATA / "roboflow-sharks-tiny-coco"
Row = tuple[int, float, float, float, float]


def zipped(folder: Path, target: Path) -> Path:
    """The folder's files in a zip, under a top folder of its name (as people zip folders)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, (folder.name / path.relative_to(folder)).as_posix())
    return target


async def import_into_new(stores: Stores, source: Path, project: str = "p") -> ImportReport:
    await stores.dataset.create(project, [])
    return await stores.dataset.import_dataset(project, source)


async def stored(stores: Stores, filename: str, project: str = "p") -> list[Row]:
    info = await stores.image.get(project, filename)
    return [
        (a.class_id, a.x, a.y, a.width, a.height)
        for a in await stores.label.load(project, info.split, filename)
    ]


def has_row(rows: list[Row], expected: Row) -> bool:
    return any(
        row[0] == expected[0] and row[1:] == pytest.approx(expected[1:], abs=1e-6) for row in rows
    )


async def split_counts(stores: Stores, project: str = "p") -> dict[str, int]:
    counts: dict[str, int] = {}
    for info in await stores.image.list(project):
        counts[info.split] = counts.get(info.split, 0) + 1
    return counts


def label_rows(path: Path) -> list[Row]:
    rows = []
    for text in path.read_text().splitlines():
        parts = text.split()
        rows.append((int(parts[0]), *(float(p) for p in parts[1:5])))
    return rows  # type: ignore[return-value]


# --- coco8 --------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "zip"])
async def test_coco8_comes_in_whole(stores: Stores, tmp_path: Path, packed: bool) -> None:
    source = zipped(COCO8, tmp_path / "coco8.zip") if packed else COCO8
    names = yaml.safe_load((COCO8 / "coco8.yaml").read_text())["names"]

    report = await import_into_new(stores, source)

    assert report.format == ULTRALYTICS
    classes = [c.name for c in await stores.dataset.get_classes("p")]
    assert len(classes) == 80
    assert classes[:3] == ["person", "bicycle", "car"]
    assert classes == [names[i] for i in range(80)]
    assert report.count(Reason.CLASSES_ADDED) == 80
    assert await split_counts(stores) == {"train": 4, "val": 4}
    assert report.count(Reason.IMAGES) == 8
    assert report.count(Reason.LABELLED) == 8
    assert report.count(Reason.BOXES) == 30
    assert report.skipped == 0
    # Every row as the label file writes it (coco8's classes are the project's, in order).
    rows = await stored(stores, "000000000009.jpg")
    assert [r[0] for r in rows] == [
        r[0] for r in label_rows(COCO8 / "labels/train/000000000009.txt")
    ]
    rows = await stored(stores, "000000000009.jpg")
    assert has_row(rows, (45, 0.479492, 0.688771, 0.955609, 0.5955))
    assert has_row(rows, (50, 0.637063, 0.732938, 0.494125, 0.510583))
    assert has_row(
        await stored(stores, "000000000036.jpg"), (0, 0.671279, 0.617945, 0.645759, 0.726859)
    )
    assert has_row(
        await stored(stores, "000000000034.jpg"), (22, 0.346211, 0.493259, 0.689422, 0.892118)
    )


# --- the Roboflow sharks, as YOLO ---------------------------------------------------------


def files_per_split(root: Path, pattern: str) -> dict[str, int]:
    split_of = {"train": "train", "valid": "val", "test": "test"}
    return {split_of[d.name]: len(list(d.glob(pattern))) for d in root.iterdir() if d.is_dir()}


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "zip"])
async def test_the_roboflow_sharks_yolo_export_comes_in_whole(
    stores: Stores, tmp_path: Path, packed: bool
) -> None:
    source = zipped(SHARKS_YOLO, tmp_path / "sharks.zip") if packed else SHARKS_YOLO

    report = await import_into_new(stores, source)

    assert report.format == ROBOFLOW
    assert [c.name for c in await stores.dataset.get_classes("p")] == ["fish", "primary", "shark"]
    assert await split_counts(stores) == files_per_split(SHARKS_YOLO, "images/*.jpg")
    lines = sum(len(p.read_text().splitlines()) for p in SHARKS_YOLO.glob("*/labels/*.txt"))
    assert report.count(Reason.BOXES) == lines == 60
    assert report.count(Reason.POLYGON) == 17
    assert report.skipped == 0
    # sharks_mp4-17 line 5 is a closed five-point polygon (a rectangle): its bounding box.
    rows = await stored(stores, "sharks_mp4-17_jpg.rf.17133fea40c5058ab0b924a96ed9d4b0.jpg")
    assert has_row(
        rows,
        (
            0,
            (0.20364453125 + 0.34010546875) / 2,
            (0.30740625 + 0.3981484375) / 2,
            0.34010546875 - 0.20364453125,
            0.3981484375 - 0.30740625,
        ),
    )
    assert has_row(rows, (2, 0.20625, 0.37421875, 0.146875, 0.115625))
    rows = await stored(stores, "sharks_mp4-11_jpg.rf.aaf303e6eba91380d782d7c5fff1dc92.jpg")
    assert len(rows) == 5
    assert has_row(rows, (1, 0.37890625, 0.3765625, 0.7578125, 0.55078125))


# --- the Roboflow sharks, as COCO ---------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "zip"])
async def test_the_roboflow_sharks_coco_export_comes_in_whole(
    stores: Stores, tmp_path: Path, packed: bool
) -> None:
    source = zipped(SHARKS_COCO, tmp_path / "sharks.zip") if packed else SHARKS_COCO

    report = await import_into_new(stores, source)

    assert report.format == COCO
    assert [c.name for c in await stores.dataset.get_classes("p")] == ["fish", "primary", "shark"]
    assert report.count(Reason.PLACEHOLDER) == 3  # once per annotation file
    assert all(e.startswith("sharks (") for e in report.examples[Reason.PLACEHOLDER])
    assert await split_counts(stores) == files_per_split(SHARKS_COCO, "*.jpg")
    assert report.count(Reason.BOXES) == 60
    # The first annotation: bbox [36, 23, 190, 143] of category 2 (primary) on a 256x256 image.
    rows = await stored(stores, "sharks_mp4-15_jpg.rf.abbb1aa996373a3945fc1f1b90523517.jpg")
    assert has_row(rows, (1, (36 + 95) / 256, (23 + 71.5) / 256, 190 / 256, 143 / 256))
    info = await stores.image.get("p", "sharks_mp4-15_jpg.rf.abbb1aa996373a3945fc1f1b90523517.jpg")
    assert (info.width, info.height, info.split) == (256, 256, "train")


async def test_importing_the_sharks_twice_adds_nothing_the_second_time(stores: Stores) -> None:
    await import_into_new(stores, SHARKS_YOLO)
    again = await stores.dataset.import_dataset("p", SHARKS_YOLO)

    assert again.count(Reason.DUPLICATE) == 10
    assert again.count(Reason.IMAGES) == 0
    assert again.count(Reason.BOXES) == 0
