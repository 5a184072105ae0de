"""A version's folder from source images: unchanged images hard-linked, transformed ones new,
augmented copies in train only, the same recipe giving the same names and bytes."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from app.domain.box_geometry import YoloBox
from app.domain.errors import Invalid
from app.domain.versions import validate_recipe
from app.tasks.version_build import SourceImage, build_folder


async def no_progress(fraction: float, message: str) -> None:
    return None


def make_sources(folder: Path) -> list[SourceImage]:
    folder.mkdir()
    rng = np.random.default_rng(1)
    sources = []
    for n, split in enumerate(["train", "train", "val", "test"]):
        image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
        path = folder / f"img{n}.jpg"
        cv2.imwrite(str(path), image)
        boxes = [] if n == 1 else [YoloBox(n % 2, 0.5, 0.5, 0.2, 0.3)]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sources.append(SourceImage("cars", f"img{n}", ".jpg", path, split, digest, boxes))
    return sources


def build(folder: Path, sources: list[SourceImage], raw: dict) -> dict:
    counts = asyncio.run(
        build_folder(
            folder, ["car", "bike"], sources, len(sources), validate_recipe(raw), no_progress
        )
    )
    return counts.to_dict()


def hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


AUGMENTED = {
    "augmentation": {
        "outputs": 2,
        "flip_horizontal": True,
        "rotation": 8,
        "brightness": 0.2,
        "noise": 6,
        "grayscale": 0.3,
    },
    "seed": 11,
}


def test_unchanged_images_are_linked_and_train_gets_augmented_copies(tmp_path: Path):
    sources = make_sources(tmp_path / "src")
    counts = build(tmp_path / "v1", sources, AUGMENTED)
    v1 = tmp_path / "v1"
    assert counts["images"] == {"train": 2 + 4, "val": 1, "test": 1}
    assert counts["linked"] == 4 and counts["written"] == 4
    assert counts["boxes"]["train"] == {"car": 3}  # img0 and its two copies; img1 has none
    assert counts["boxes"]["val"] == {"car": 1} and counts["boxes"]["test"] == {"bike": 1}
    # The originals are the projects' own files, not copies.
    assert (v1 / "images/val/cars__img2.jpg").stat().st_ino == sources[2].path.stat().st_ino
    assert sorted(p.name for p in (v1 / "images/train").iterdir()) == [
        "cars__img0.jpg",
        "cars__img0_aug1.jpg",
        "cars__img0_aug2.jpg",
        "cars__img1.jpg",
        "cars__img1_aug1.jpg",
        "cars__img1_aug2.jpg",
    ]
    assert (v1 / "labels/train/cars__img1_aug1.txt").read_text() == ""
    data = yaml.safe_load((v1 / "data.yaml").read_text())
    assert data["names"] == {0: "car", 1: "bike"} and data["train"] == "images/train"


def test_the_same_recipe_and_seed_build_identical_versions(tmp_path: Path):
    sources = make_sources(tmp_path / "src")
    recipe = {**AUGMENTED, "preprocessing": {"resize": 320, "resize_mode": "fit_pad"}}
    build(tmp_path / "a", sources, recipe)
    build(tmp_path / "b", sources, recipe)
    first, second = hashes(tmp_path / "a"), hashes(tmp_path / "b")
    assert len(first) == 2 * (4 + 4) + 1
    assert first == second
    build(tmp_path / "c", sources, {**recipe, "seed": 12})
    third = hashes(tmp_path / "c")
    assert third["images/train/cars__img0_aug1.jpg"] != first["images/train/cars__img0_aug1.jpg"]
    assert third["images/val/cars__img2.jpg"] == first["images/val/cars__img2.jpg"]


def test_tiles_and_dropping_empty_ones(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    image = np.zeros((1000, 1500, 3), np.uint8)
    path = src / "big.png"
    cv2.imwrite(str(path), image)
    source = SourceImage(
        "p", "big", ".png", path, "val", "ab" * 32, [YoloBox(0, 0.1, 0.1, 0.1, 0.1)]
    )
    counts = build(tmp_path / "v", [source], {"preprocessing": {"tile": 640, "drop_empty": True}})
    assert counts["images"]["val"] == 1 and counts["written"] == 1
    assert counts["dropped_empty"] == 6 - 1  # 3 x 2 tiles, one holds the box
    (tile,) = (tmp_path / "v/images/val").iterdir()
    assert tile.name == "p__big_t0x0.png"
    assert cv2.imread(str(tile)).shape[:2] == (640, 640)


def test_redrawn_splits_follow_the_ratios_by_hash(tmp_path: Path):
    sources = make_sources(tmp_path / "src")
    counts = build(
        tmp_path / "v",
        sources,
        {"split_mode": "redraw", "ratios": {"train": 0, "val": 1, "test": 0}},
    )
    assert counts["images"] == {"train": 0, "val": 4, "test": 0}


def test_an_existing_folder_is_never_written_into(tmp_path: Path):
    (tmp_path / "v").mkdir()
    with pytest.raises(Invalid, match="exists already"):
        build(tmp_path / "v", [], {})


def test_names_that_meet_get_a_number_and_never_touch_a_projects_files(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(3)
    sources = []
    # Project a's "b__c" and project a__b's "c" both join to a__b__c; "img" copied as
    # "img_aug1" meets the source image "img_aug1"; "Dup" and "dup" meet on a
    # case-insensitive disk.
    for project, stem, split in [
        ("a", "b__c", "val"),
        ("a__b", "c", "val"),
        ("p", "img", "train"),
        ("p", "img_aug1", "val"),
        ("p", "Dup", "test"),
        ("p", "dup", "test"),
    ]:
        path = src / f"{project}-{stem}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        box = YoloBox(0, 0.5, 0.5, 0.2, 0.2)
        sources.append(SourceImage(project, stem, ".jpg", path, split, digest, [box]))
    before = {s.path: s.path.read_bytes() for s in sources}

    counts = build(tmp_path / "v", sources, {"augmentation": {"outputs": 1, "blur": 2}})

    assert {s.path: s.path.read_bytes() for s in sources} == before
    images = sorted(
        p.relative_to(tmp_path / "v").as_posix() for p in (tmp_path / "v/images").rglob("*.jpg")
    )
    assert images == [
        "images/test/p__Dup.jpg",
        "images/test/p__dup-2.jpg",
        "images/train/p__img.jpg",
        "images/train/p__img_aug1.jpg",
        "images/val/a__b__c-2.jpg",
        "images/val/a__b__c.jpg",
        "images/val/p__img_aug1-2.jpg",
    ]
    assert counts["images"] == {"train": 2, "val": 3, "test": 2}
    labels = sorted(p.name for p in (tmp_path / "v/labels").rglob("*.txt"))
    assert len(labels) == 7


def test_an_image_no_larger_than_a_tile_is_linked_not_encoded_again(tmp_path: Path):
    sources = make_sources(tmp_path / "src")[2:3]  # 400x300, val
    counts = build(tmp_path / "v", sources, {"preprocessing": {"tile": 640}})
    assert counts["linked"] == 1 and counts["written"] == 0
    linked = tmp_path / "v/images/val/cars__img2.jpg"
    assert linked.stat().st_ino == sources[0].path.stat().st_ino
