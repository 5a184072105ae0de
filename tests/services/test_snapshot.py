"""The dataset snapshot a training reads: hard links of the labelled images that are there,
label files written fresh from the accepted boxes, a ``data.yaml``; frozen once made."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from app.domain.models import Annotation, Snapshot
from app.domain.stores import Stores
from tests.conftest import encode, execute_sql, make_image
from tests.contract.support import image_file

PROJECT = "pets"
CLASSES = ["cat", "dog"]


async def add(stores: Stores, split: str, name: str, seed: int) -> str:
    data = encode(make_image(48, 32, seed=seed), ".png")
    info = await stores.image.save_file(PROJECT, split, name, io.BytesIO(data))
    return info.filename


async def flag_missing(stores: Stores, split: str, filename: str) -> None:
    """Lose the file and flag its row, as the reconcile does (no store method sets the flag)."""
    image_file(stores, split, filename, PROJECT).unlink()
    await execute_sql(stores, "UPDATE image SET missing = true WHERE filename = :f", f=filename)


async def mixed_project(stores: Stores) -> None:
    """train: two labelled (boxes, no objects), one unlabelled, one labelled but missing;
    val: one labelled; test: only an unlabelled image."""
    await stores.dataset.create(PROJECT, CLASSES)
    for split, name, seed in (
        ("train", "boxes.png", 1),
        ("train", "empty.png", 2),
        ("train", "todo.png", 3),
        ("train", "gone.png", 4),
        ("val", "check.png", 5),
        ("test", "later.png", 6),
    ):
        await add(stores, split, name, seed)
    two = [Annotation(0, 0.25, 0.25, 0.2, 0.2), Annotation(1, 0.75, 0.5, 0.3, 0.4)]
    await stores.label.save(PROJECT, "train", "boxes.png", two)
    await stores.label.save(PROJECT, "train", "empty.png", [], no_objects=True)
    await stores.label.save(PROJECT, "train", "gone.png", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    await stores.label.save(PROJECT, "val", "check.png", [Annotation(1, 0.5, 0.5, 0.5, 0.5)])
    await flag_missing(stores, "train", "gone.png")


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


async def test_a_snapshot_links_the_labelled_images_that_are_there_with_fresh_label_files(
    stores: Stores, tmp_path: Path
) -> None:
    await mixed_project(stores)
    folder = tmp_path / "snap"

    snap = await stores.dataset.snapshot(PROJECT, folder)

    assert isinstance(snap, Snapshot)
    assert snap.folder == folder
    assert snap.data_yaml == folder / "data.yaml"
    assert snap.images == {"train": 2, "val": 1, "test": 0}
    assert snap.boxes == 3
    assert files(folder) == [
        "data.yaml",
        "images/train/boxes.png",
        "images/train/empty.png",
        "images/val/check.png",
        "labels/train/boxes.txt",
        "labels/train/empty.txt",
        "labels/val/check.txt",
    ]
    for split, name in (("train", "boxes.png"), ("train", "empty.png"), ("val", "check.png")):
        linked, original = (
            folder / "images" / split / name,
            image_file(stores, split, name, PROJECT),
        )
        assert linked.stat().st_ino == original.stat().st_ino  # a hard link, not a copy
    boxes = (folder / "labels/train/boxes.txt").read_text().split("\n")
    assert [line.split()[0] for line in boxes if line] == ["0", "1"]
    assert [float(v) for v in boxes[1].split()[1:]] == [0.75, 0.5, 0.3, 0.4]
    assert (folder / "labels/train/empty.txt").read_text() == ""
    assert (folder / "labels/val/check.txt").read_text().split()[0] == "1"
    assert snap.to_dict() == {
        "images": {"train": 2, "val": 1, "test": 0},
        "boxes": 3,
        "ids_sha256": snap.ids_sha256,
    }


async def test_the_data_yaml_of_a_snapshot_names_its_folder_classes_and_only_splits_with_images(
    stores: Stores, tmp_path: Path
) -> None:
    await mixed_project(stores)
    folder = tmp_path / "snap"

    snap = await stores.dataset.snapshot(PROJECT, folder)

    described = yaml.safe_load(snap.data_yaml.read_text(encoding="utf-8"))
    assert described["path"] == str(folder)
    assert described["train"] == "images/train"
    assert described["val"] == "images/val"
    assert "test" not in described
    assert described["nc"] == 2
    assert described["names"] == {0: "cat", 1: "dog"}


async def test_the_hash_of_a_snapshot_changes_with_the_set_of_images_only(
    stores: Stores, tmp_path: Path
) -> None:
    await mixed_project(stores)
    first = await stores.dataset.snapshot(PROJECT, tmp_path / "first")
    again = await stores.dataset.snapshot(PROJECT, tmp_path / "again")
    # Other boxes on the same images: the same set.
    await stores.label.save(PROJECT, "val", "check.png", [Annotation(0, 0.4, 0.4, 0.2, 0.2)])
    reboxed = await stores.dataset.snapshot(PROJECT, tmp_path / "reboxed")
    await stores.label.save(PROJECT, "train", "todo.png", [Annotation(0, 0.5, 0.5, 0.1, 0.1)])
    grown = await stores.dataset.snapshot(PROJECT, tmp_path / "grown")

    assert len(first.ids_sha256) == 64
    assert again.ids_sha256 == first.ids_sha256
    assert reboxed.ids_sha256 == first.ids_sha256
    assert grown.ids_sha256 != first.ids_sha256
    assert grown.images["train"] == 3


async def test_labelling_after_a_snapshot_leaves_the_snapshot_as_it_was(
    stores: Stores, tmp_path: Path
) -> None:
    await mixed_project(stores)
    folder = tmp_path / "snap"
    snap = await stores.dataset.snapshot(PROJECT, folder)
    before = {name: (folder / name).read_bytes() for name in files(folder)}

    await stores.label.save(PROJECT, "train", "boxes.png", [Annotation(1, 0.1, 0.1, 0.1, 0.1)])
    await stores.label.save(PROJECT, "train", "todo.png", [Annotation(0, 0.5, 0.5, 0.1, 0.1)])
    await stores.label.save(PROJECT, "val", "check.png", [], no_objects=True)
    await stores.image.move(PROJECT, "empty.png", "train", "val")

    assert {name: (folder / name).read_bytes() for name in files(folder)} == before
    linked = folder / "images/train/boxes.png"
    assert linked.stat().st_ino == image_file(stores, "train", "boxes.png", PROJECT).stat().st_ino
    assert snap.images == {"train": 2, "val": 1, "test": 0}


async def test_a_file_gone_since_the_last_reconcile_is_left_out_not_a_failure(
    stores: Stores, tmp_path: Path
) -> None:
    await mixed_project(stores)
    # Deleted by hand while the server runs: its row is not flagged missing yet.
    image_file(stores, "train", "boxes.png", PROJECT).unlink()

    snapshot = await stores.dataset.snapshot(PROJECT, tmp_path / "snap")

    assert snapshot.images == {"train": 1, "val": 1, "test": 0}
    assert snapshot.boxes == 1
    assert "images/train/boxes.png" not in files(tmp_path / "snap")
    assert "labels/train/boxes.txt" not in files(tmp_path / "snap")
