"""sync-from-disk: the database rebuilt from ``storage/projects/`` after it is lost, YOLO folders
copied in adopted, and every file ydc cannot take reported with the reason; a second run changes
nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import shutil
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import cli
from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.domain.errors import NotFound
from app.domain.models import Annotation
from app.domain.reconcile import Outcome, SyncReport
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from app.repositories import create_stores, sync
from tests.conftest import TEST_DATA, encode, make_image

SHARKS = TEST_DATA / "roboflow-sharks-tiny-yolo"


def jpg(seed: int, width: int = 64, height: int = 48) -> bytes:
    return encode(make_image(width, height, seed), ".jpg")


def png(seed: int, width: int = 64, height: int = 48) -> bytes:
    return encode(make_image(width, height, seed), ".png")


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (the database's own files left out)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(("ydc.db", ".ydc.lock"))
    }


def entries(report: SyncReport, kind: str, outcome: Outcome) -> dict[str, str]:
    return {e.name: e.reason for e in report.entries if e.kind == kind and e.outcome == outcome}


async def snapshot(stores: Stores) -> dict[str, Any]:
    """Everything a person made: projects, classes, prompts, images, accepted labels, models."""
    projects: dict[str, Any] = {}
    for info in await stores.dataset.list():
        classes = await stores.dataset.get_classes(info.name)
        names = {c.position: c.name for c in classes}
        images: dict[str, Any] = {}
        for image in await stores.image.list(info.name):
            labels = await stores.label.load(info.name, image.split, image.filename)
            images[image.filename] = (
                image.split,
                image.sha256,
                image.width,
                image.height,
                image.no_objects,
                sorted(
                    (names[a.class_id], *(round(v, 6) for v in (a.x, a.y, a.width, a.height)))
                    for a in labels
                ),
            )
        projects[info.name] = {
            "description": info.description,
            "classes": [(c.name, c.position, c.colour) for c in classes],
            "prompts": await stores.dataset.get_prompts(info.name),
            "images": images,
        }
    models = {
        (m.name, m.dataset_name, m.path.read_bytes(), m.is_active)
        for m in await stores.model.list()
    }
    return {"projects": projects, "models": models}


async def lose_database(stores: Stores, settings: Settings) -> None:
    """Close the stores and delete the SQLite file with its WAL and shared-memory files."""
    await stores.close()
    database = settings.data_dir / "ydc.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240
    assert not database.exists()


async def fresh_stores(settings: Settings) -> Stores:
    await upgrade_to_head(settings.database_url)
    return create_stores(settings)


@pytest.fixture
async def rebuilt(settings: Settings) -> Any:
    """Stores opened on the data dir after the test rebuilt its database (closed at the end)."""
    opened: list[Stores] = []

    async def open_() -> Stores:
        opened.append(await fresh_stores(settings))
        return opened[-1]

    yield open_
    for stores in opened:
        await stores.close()


# --- the disaster ---------------------------------------------------------------------------


async def build_projects(stores: Stores, tmp_path: Path) -> None:
    """Two projects with images in all three splits, boxes, "no objects", an unlabelled image,
    a renamed colour, prompts and a model."""
    await stores.dataset.create("animals", ["cat", "dog", "bird"], description="pets at home")
    classes = await stores.dataset.get_classes("animals")
    await stores.dataset.set_class_colour("animals", classes[1].id, "#123456")
    await stores.dataset.save_prompts("animals", {0: ["a cat", "kitten"], 2: ["a small bird"]})
    splits = ["train", "train", "train", "val", "val", "test", "test", "train"]
    for seed, split in enumerate(splits):
        data = jpg(seed, 80 + seed, 60) if seed % 2 else png(seed, 64, 48 + seed)
        suffix = ".jpg" if seed % 2 else ".png"
        await stores.image.save_file("animals", split, f"img{seed}{suffix}", io.BytesIO(data))
    await stores.label.save(
        "animals",
        "train",
        "img0.png",
        [Annotation(0, 0.5, 0.5, 0.25, 0.5), Annotation(2, 0.1234567, 0.3, 0.1, 0.2)],
    )
    await stores.label.save("animals", "val", "img3.jpg", [Annotation(1, 0.4, 0.6, 0.3, 0.3)])
    await stores.label.save("animals", "test", "img5.jpg", [Annotation(2, 0.7, 0.7, 0.2, 0.2)])
    await stores.label.save("animals", "train", "img1.jpg", [], no_objects=True)
    await stores.label.save("animals", "test", "img6.png", [], no_objects=True)
    # img2, img4 and img7 stay unlabelled.

    await stores.dataset.create("streets", ["car"])
    for seed in range(20, 23):
        await stores.image.save_file("streets", None, f"frame-{seed}.jpg", io.BytesIO(jpg(seed)))
    await stores.label.save("streets", None, "frame-20.jpg", [Annotation(0, 0.5, 0.5, 1.0, 1.0)])

    weights = write(tmp_path / "best.pt", b"not really torch weights")
    await stores.model.save("animals-v1", weights, "yolov8n.pt", "animals", 3, {})


async def test_a_lost_database_is_rebuilt_from_the_project_folders(
    settings: Settings,
    stores: Stores,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rebuilt: Any,
) -> None:
    await build_projects(stores, tmp_path)
    before = await snapshot(stores)
    files_before = tree(settings.data_dir / "projects")
    await lose_database(stores, settings)
    monkeypatch.setenv("YDC_DATA_DIR", str(settings.data_dir))

    # The command line, as a person runs it (it takes the data dir's lock and migrates).
    exit_code = await asyncio.to_thread(cli.main, ["sync-from-disk"])

    assert exit_code == 0
    printed = capsys.readouterr().out
    assert "animals" in printed and "streets" in printed
    recovered = await rebuilt()
    assert await snapshot(recovered) == before
    # Every file lies where it lay, with the same bytes: the mirrors already were ydc's.
    assert tree(settings.data_dir / "projects") == files_before
    assert not any((settings.data_dir / "lost+found").iterdir())
    model = await recovered.model.get("animals-v1")
    assert model is not None and model.is_active is False

    again = await recovered.storage.sync_from_disk()

    assert again.changed is False
    every_image = {
        f"images/{split}/{name}"
        for project in before["projects"].values()
        for name, (split, *_) in project["images"].items()
    }
    assert entries(again, "image", Outcome.SKIPPED) == dict.fromkeys(
        every_image, "already registered"
    )
    assert entries(again, "model", Outcome.SKIPPED) == {"models/animals-v1": "already registered"}


async def test_after_a_rebuild_reconcile_finds_the_disk_and_the_database_agree(
    settings: Settings, stores: Stores, tmp_path: Path, rebuilt: Any
) -> None:
    await build_projects(stores, tmp_path)
    await lose_database(stores, settings)
    recovered = await rebuilt()
    await recovered.storage.sync_from_disk()

    report = await recovered.storage.reconcile(deep=True)

    # Sizes and mtimes of every image and label file were recorded as they lie on disk.
    assert not report.drift, report.findings


# --- folders copied in ------------------------------------------------------------------------


async def test_a_roboflow_export_copied_in_becomes_a_ydc_project(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "sharks"
    shutil.copytree(SHARKS, folder)
    copied = {p.name: p.read_bytes() for p in folder.rglob("*.jpg")}
    split_of = {"train": "train", "valid": "val", "test": "test"}
    expected = {p.name: split_of[p.parent.parent.name] for p in SHARKS.glob("*/images/*.jpg")}

    report = await stores.storage.sync_from_disk()

    info = await stores.dataset.get("sharks")
    assert info is not None
    assert info.classes == ["fish", "primary", "shark"]
    images = {i.filename: i for i in await stores.image.list("sharks")}
    assert {name: i.split for name, i in images.items()} == expected
    # Moved (renamed, the same bytes) into ydc's layout; the emptied folders are gone.
    for name, split in expected.items():
        assert (folder / "images" / split / name).read_bytes() == copied[name]
    assert not (folder / "train").exists() and not (folder / "valid").exists()
    assert (folder / "README.dataset.txt").exists()  # not ydc's: left alone
    # Every image has a label file on the export, so every image has boxes now.
    for name, image in images.items():
        labels = await stores.label.load("sharks", image.split, name)
        assert labels, name
        label_file = folder / "labels" / image.split / (Path(name).stem + ".txt")
        assert len(label_file.read_text().splitlines()) == len(labels)
    # data.yaml is ydc's now (no absolute split paths); the original is kept in lost+found.
    data = yaml.safe_load((folder / "data.yaml").read_text())
    assert "path" not in data and data["val"] == "images/val"
    assert data["names"] == {0: "fish", 1: "primary", 2: "shark"}
    manifest = (settings.data_dir / "lost+found" / "MANIFEST.tsv").read_text()
    assert "projects/sharks/data.yaml" in manifest
    # Polygon lines became boxes: the files as they were are kept too.
    assert any("kept as boxes" in r for r in entries(report, "label", Outcome.ADDED).values())
    assert report.changed

    again = await stores.storage.sync_from_disk()

    assert again.changed is False
    assert (await stores.storage.reconcile()).counts.get("label_rewritten", 0) == 0


async def test_a_plain_yolo_folder_without_split_folders_gets_splits_drawn(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "flat"
    write(folder / "data.yaml", "names: [thing]\n")
    shas = {}
    for seed in range(6):
        path = write(folder / "images" / f"f{seed}.jpg", jpg(100 + seed))
        write(folder / "labels" / f"f{seed}.txt", "0 0.5 0.5 0.5 0.5\n")
        shas[path.name] = __import__("hashlib").sha256(path.read_bytes()).hexdigest()

    await stores.storage.sync_from_disk()

    images = {i.filename: i.split for i in await stores.image.list("flat")}
    assert images == {name: draw_split(sha, DEFAULT_RATIOS) for name, sha in shas.items()}
    for name, split in images.items():
        assert (folder / "images" / split / name).is_file()
        assert len(await stores.label.load("flat", split, name)) == 1


@pytest.mark.parametrize(
    "names", ["names: [cat, dog]\n", "names:\n  0: cat\n  1: dog\n", "names: {1: dog, 0: cat}\n"]
)
async def test_class_names_are_read_from_data_yaml_as_a_list_or_a_mapping(
    settings: Settings, stores: Stores, names: str
) -> None:
    folder = settings.data_dir / "projects" / "pets"
    write(folder / "data.yaml", f"train: images/train\nval: images/val\n{names}")
    write(folder / "images" / "train" / "a.jpg", jpg(1))
    write(folder / "labels" / "train" / "a.txt", "1 0.5 0.5 0.2 0.2\n")

    await stores.storage.sync_from_disk()

    assert (await stores.dataset.get_classes("pets"))[1].name == "dog"
    (label,) = await stores.label.load("pets", "train", "a.jpg")
    assert label.class_id == 1


async def test_a_label_line_with_an_unknown_class_is_skipped_and_reported_with_its_line(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "pets"
    write(folder / "data.yaml", "names: [cat, dog]\n")
    write(folder / "images" / "train" / "a.jpg", jpg(1))
    original = "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n1 0.25 0.25 0.1 0.1\n"
    write(folder / "labels" / "train" / "a.txt", original)

    report = await stores.storage.sync_from_disk()

    skipped = entries(report, "label", Outcome.SKIPPED)
    assert list(skipped) == ["labels/train/a.txt:2"]
    assert "Class index 7 is out of range" in skipped["labels/train/a.txt:2"]
    labels = await stores.label.load("pets", "train", "a.jpg")
    assert [a.class_id for a in labels] == [0, 1]
    # The label file now says what the database says; the file as it was is in lost+found.
    assert (folder / "labels" / "train" / "a.txt").read_text().count("\n") == 2
    kept = [p for p in (settings.data_dir / "lost+found").iterdir() if p.name.endswith("a.txt")]
    assert [p.read_text() for p in kept] == [original]
    assert (await stores.storage.sync_from_disk()).changed is False


async def test_an_empty_label_file_means_the_image_shows_no_objects(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "pets"
    write(folder / "data.yaml", "names: [cat]\n")
    write(folder / "images" / "val" / "empty.jpg", jpg(1))
    write(folder / "labels" / "val" / "empty.txt", "")
    write(folder / "images" / "val" / "none.jpg", jpg(2))

    await stores.storage.sync_from_disk()

    images = {i.filename: i for i in await stores.image.list("pets")}
    assert images["empty.jpg"].no_objects and images["empty.jpg"].has_labels
    assert not images["none.jpg"].no_objects and not images["none.jpg"].has_labels


async def test_files_ydc_cannot_take_are_skipped_with_the_reason(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "mixed"
    write(folder / "data.yaml", "names: [cat]\n")
    write(folder / "images" / "train" / "a.jpg", jpg(1))
    write(folder / "images" / "val" / "A.png", png(2))  # the stem of a.jpg
    write(folder / "images" / "train" / "b.jpg", jpg(3))
    write(folder / "images" / "test" / "copy-of-b.jpg", jpg(3))  # the same bytes
    write(folder / "images" / "train" / "broken.jpg", b"\xff\xd8 not really a jpeg")
    write(folder / "images" / "train" / "notes.gif", b"GIF89a")
    # Only what is already in place keeps its name first; the rest is in mtime order.
    os.utime(folder / "images" / "val" / "A.png", ns=(1, 1))
    os.utime(folder / "images" / "test" / "copy-of-b.jpg", ns=(2, 2))

    report = await stores.storage.sync_from_disk()

    skipped = entries(report, "image", Outcome.SKIPPED)
    assert "clashes with images/val/A.png" in skipped["images/train/a.jpg"]
    assert "duplicate of images/test/copy-of-b.jpg" in skipped["images/train/b.jpg"]
    assert "not an image ydc can read" in skipped["images/train/broken.jpg"]
    assert "not an image type" in skipped["images/train/notes.gif"]
    names = {i.filename for i in await stores.image.list("mixed")}
    assert names == {"A.png", "copy-of-b.jpg"}
    # Skipped files stay where they are; nothing is deleted.
    assert (folder / "images" / "train" / "broken.jpg").exists()
    assert (folder / "images" / "train" / "a.jpg").exists()


async def test_a_folder_whose_name_is_no_project_name_is_skipped(
    settings: Settings, stores: Stores
) -> None:
    write(settings.data_dir / "projects" / "my dataset" / "images" / "train" / "a.jpg", jpg(1))
    write(settings.data_dir / "projects" / "readme.txt", "hello")

    report = await stores.storage.sync_from_disk()

    skipped = entries(report, "project", Outcome.SKIPPED)
    assert "contains a space" in skipped["my dataset"]
    assert "Rename the folder" in skipped["my dataset"]
    assert "not a folder" in skipped["readme.txt"]
    assert await stores.dataset.list() == []
    assert report.changed is False


async def test_a_folder_whose_name_clashes_with_a_project_ignoring_case_is_skipped(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat"])
    write(settings.data_dir / "projects" / "Pets" / "images" / "train" / "a.jpg", jpg(1))

    report = await stores.storage.sync_from_disk()

    assert "clashes with project 'pets'" in entries(report, "project", Outcome.SKIPPED)["Pets"]
    assert await stores.image.list("pets") == []


async def test_a_folder_with_label_files_and_no_class_names_is_skipped(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "nameless"
    write(folder / "images" / "train" / "a.jpg", jpg(1))
    write(folder / "labels" / "train" / "a.txt", "0 0.5 0.5 0.2 0.2\n")

    report = await stores.storage.sync_from_disk()

    assert "no data.yaml" in entries(report, "project", Outcome.SKIPPED)["nameless"]
    assert await stores.dataset.list() == []
    assert (folder / "labels" / "train" / "a.txt").exists()


async def test_ydc_json_and_prompts_yaml_give_what_data_yaml_cannot_hold(
    settings: Settings, stores: Stores
) -> None:
    folder = settings.data_dir / "projects" / "meta"
    write(folder / "data.yaml", "names: [cat, dog]\n")
    write(
        folder / "ydc.json",
        '{"description": "from json", "created_at": 1600000000.0, '
        '"split_ratios": {"train": 0.5, "val": 0.25, "test": 0.25}, '
        '"classes": [{"name": "dog", "colour": "#abcdef"}]}',
    )
    write(folder / "prompts.yaml", "0: [a cat]\n1: [a dog, puppy]\n9: [nobody]\n")
    write(folder / "images" / "a.jpg", jpg(5))

    report = await stores.storage.sync_from_disk()

    info = await stores.dataset.get("meta")
    assert info is not None
    assert (info.description, info.created_at) == ("from json", 1600000000.0)
    classes = await stores.dataset.get_classes("meta")
    assert classes[1].colour == "#abcdef"
    assert classes[0].colour != "#abcdef"
    assert await stores.dataset.get_prompts("meta") == {0: ["a cat"], 1: ["a dog", "puppy"]}
    assert "out of range" in entries(report, "prompt", Outcome.SKIPPED)["prompts.yaml"]
    # A file with no split folder is drawn against the project's own ratios.
    (image,) = await stores.image.list("meta")
    ratios = {"train": 0.5, "val": 0.25, "test": 0.25}
    assert image.split == draw_split(image.sha256, ratios)


# --- registered projects ----------------------------------------------------------------------


async def test_an_extra_file_in_a_registered_project_gets_registered(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat", "dog"])
    await stores.image.save_file("pets", "train", "kept.jpg", io.BytesIO(jpg(1)))
    folder = settings.data_dir / "projects" / "pets"
    write(folder / "images" / "val" / "extra.jpg", jpg(2))
    write(folder / "labels" / "val" / "extra.txt", "1 0.5 0.5 0.2 0.2")  # no final newline

    report = await stores.storage.sync_from_disk()

    assert entries(report, "image", Outcome.ADDED) == {"images/val/extra.jpg": ""}
    assert entries(report, "image", Outcome.SKIPPED) == {
        "images/train/kept.jpg": "already registered"
    }
    (label,) = await stores.label.load("pets", "val", "extra.jpg")
    assert label.class_id == 1
    # The mirror rewrote the label file in ydc's form (and recorded it): no drift.
    assert (folder / "labels" / "val" / "extra.txt").read_text().endswith("\n")
    assert not (await stores.storage.reconcile(deep=True)).drift
    assert (await stores.storage.sync_from_disk()).changed is False


async def test_a_label_file_fills_an_image_the_database_has_unlabelled(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat"])
    await stores.image.save_file("pets", "train", "a.jpg", io.BytesIO(jpg(1)))
    before = await stores.image.get("pets", "a.jpg")
    write(settings.data_dir / "projects" / "pets" / "labels" / "train" / "a.txt", "0 .5 .5 .5 .5\n")

    report = await stores.storage.sync_from_disk()

    assert list(entries(report, "label", Outcome.ADDED)) == ["labels/train/a.txt"]
    (label,) = await stores.label.load("pets", "train", "a.jpg")
    assert (label.x, label.width) == (0.5, 0.5)
    after = await stores.image.get("pets", "a.jpg")
    assert after.version == before.version + 1  # an open annotator must reload
    assert (await stores.storage.sync_from_disk()).changed is False


async def test_the_database_s_labels_win_unless_the_disk_is_preferred(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat", "dog"])
    await stores.image.save_file("pets", "train", "a.jpg", io.BytesIO(jpg(1)))
    await stores.label.save("pets", "train", "a.jpg", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    edited = "1 0.300000 0.300000 0.100000 0.100000\n0 0.700000 0.700000 0.200000 0.200000\n"
    write(settings.data_dir / "projects" / "pets" / "labels" / "train" / "a.txt", edited)

    kept = await stores.storage.sync_from_disk()

    assert kept.changed is False
    assert [a.class_id for a in await stores.label.load("pets", "train", "a.jpg")] == [0]

    preferred = await stores.storage.sync_from_disk(prefer_disk=True)

    assert list(entries(preferred, "label", Outcome.UPDATED)) == ["labels/train/a.txt"]
    labels = await stores.label.load("pets", "train", "a.jpg")
    assert [(a.class_id, a.x) for a in labels] == [(1, 0.3), (0, 0.7)]
    assert not (await stores.storage.reconcile(deep=True)).drift

    again = await stores.storage.sync_from_disk(prefer_disk=True)

    assert again.changed is False
    assert "the same labels" in entries(again, "label", Outcome.SKIPPED)["labels/train/a.txt"]


async def test_preferring_the_disk_turns_an_empty_label_file_into_no_objects(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat"])
    await stores.image.save_file("pets", "val", "a.jpg", io.BytesIO(jpg(1)))
    await stores.label.save("pets", "val", "a.jpg", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    write(settings.data_dir / "projects" / "pets" / "labels" / "val" / "a.txt", "")

    await stores.storage.sync_from_disk(prefer_disk=True)

    image = await stores.image.get("pets", "a.jpg")
    assert image.no_objects
    assert await stores.label.load("pets", "val", "a.jpg") == []


async def test_preferring_the_disk_keeps_the_database_s_labels_over_a_file_with_bad_lines(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat"])
    await stores.image.save_file("pets", "val", "a.jpg", io.BytesIO(jpg(1)))
    await stores.label.save("pets", "val", "a.jpg", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    write(settings.data_dir / "projects" / "pets" / "labels" / "val" / "a.txt", "3 .5 .5 .1 .1\n")

    report = await stores.storage.sync_from_disk(prefer_disk=True)

    assert report.changed is False
    assert "labels/val/a.txt:1" in entries(report, "label", Outcome.SKIPPED)
    assert len(await stores.label.load("pets", "val", "a.jpg")) == 1


# --- dry run, one project ---------------------------------------------------------------------


async def test_a_dry_run_reports_what_it_would_do_and_changes_nothing(
    settings: Settings, stores: Stores
) -> None:
    shutil.copytree(SHARKS, settings.data_dir / "projects" / "sharks")
    await stores.dataset.create("pets", ["cat"])
    await stores.image.save_file("pets", "train", "a.jpg", io.BytesIO(jpg(1)))
    write(settings.data_dir / "projects" / "pets" / "images" / "val" / "b.jpg", jpg(2))
    write(settings.data_dir / "projects" / "pets" / "labels" / "train" / "a.txt", "0 .5 .5 .2 .2")
    files = tree(settings.data_dir)
    state = await snapshot(stores)

    report = await stores.storage.sync_from_disk(dry_run=True)

    assert report.dry_run and report.changed
    assert "sharks" in entries(report, "project", Outcome.ADDED)
    assert len(entries(report, "image", Outcome.ADDED)) == 10 + 1
    assert "labels/train/a.txt" in entries(report, "label", Outcome.ADDED)
    assert tree(settings.data_dir) == files  # no file moved, written or kept aside
    assert await snapshot(stores) == state
    # What it said it would do is what a real run does.
    real = await stores.storage.sync_from_disk()
    assert real.counts == report.counts


async def test_a_run_for_one_project_leaves_the_other_folders_alone(
    settings: Settings, stores: Stores
) -> None:
    for name in ("one", "two"):
        write(settings.data_dir / "projects" / name / "images" / "train" / "a.jpg", jpg(1))

    report = await stores.storage.sync_from_disk(project="two")

    assert [i.name for i in await stores.dataset.list()] == ["two"]
    assert {project for project, _, _ in report.counts} == {"two"}
    with pytest.raises(NotFound):
        await stores.storage.sync_from_disk(project="three")


# --- models -----------------------------------------------------------------------------------


async def test_model_folders_are_registered_with_their_training_record(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat"])
    await stores.dataset.create("other", ["cat"])
    models = settings.data_dir / "projects" / "pets" / "models"
    write(models / "run1" / "weights" / "last.pt", b"weights")
    write(models / "run1" / "args.yaml", "model: yolov8s.pt\nepochs: 50\n")
    write(
        models / "run1" / "results.csv",
        "epoch,metrics/mAP50(B)\n1,0.2\n2,0.6\n3,0.5\n",
    )
    write(models / "nothing" / "notes.txt", "no weights here")
    write(settings.data_dir / "projects" / "other" / "models" / "run1" / "best.pt", b"other")

    report = await stores.storage.sync_from_disk()

    model = await stores.model.get("run1")
    assert model is not None
    assert (model.dataset_name, model.base_model, model.epochs_completed) == ("other", "unknown", 0)
    skipped = entries(report, "model", Outcome.SKIPPED)
    assert "taken by a model of project 'other'" in skipped["models/run1"]
    assert "no weights" in skipped["models/nothing"]


async def test_a_model_folder_s_args_and_results_are_read(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("pets", ["cat"])
    folder = settings.data_dir / "projects" / "pets" / "models" / "run1"
    write(folder / "weights" / "best.pt", b"weights")
    write(folder / "args.yaml", "model: yolov8s.pt\nepochs: 50\n")
    write(folder / "results.csv", "epoch,metrics/mAP50(B)\n1,0.2\n2,0.6\n3,0.5\n")

    await stores.storage.sync_from_disk()

    model = await stores.model.get("run1")
    assert model is not None
    assert (model.base_model, model.epochs_completed, model.best_map50) == ("yolov8s.pt", 3, 0.6)
    assert [e["metrics/mAP50(B)"] for e in model.metrics["epochs"]] == [0.2, 0.6, 0.5]
    assert model.path == folder / "weights" / "best.pt"
    assert await stores.model.load("run1") == model.path


# --- many files -------------------------------------------------------------------------------


async def test_many_files_are_hashed_in_a_process_pool_and_registered_in_batches(
    settings: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "POOL_THRESHOLD", 1)
    monkeypatch.setattr(sync, "BATCH", 20)
    monkeypatch.setattr(sync, "HASH_CHUNK", 5)
    folder = settings.data_dir / "projects" / "many"
    write(folder / "data.yaml", "names: [thing]\n")
    for seed in range(45):
        write(folder / "train" / "images" / f"i{seed:03}.jpg", jpg(200 + seed, 32, 24))
        write(folder / "train" / "labels" / f"i{seed:03}.txt", "0 0.5 0.5 0.5 0.5\n")
    progress: list[float] = []

    async def record(fraction: float, _message: str) -> None:
        progress.append(fraction)

    report = await stores.storage.sync_from_disk(progress=record)

    assert len(entries(report, "image", Outcome.ADDED)) == 45
    assert (await stores.image.count_by_split("many")) == {"train": 45, "val": 0, "test": 0}
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert not (await stores.storage.reconcile()).drift


class _BrokenPool(concurrent.futures.ThreadPoolExecutor):
    """A process pool whose workers died at start (as when the main module is unguarded)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_exception(BrokenProcessPool("a worker died at start"))
        return future


async def test_when_the_hashing_processes_cannot_start_threads_do_the_work(
    settings: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "POOL_THRESHOLD", 1)
    monkeypatch.setattr(sync, "ProcessPoolExecutor", lambda *_a, **_k: _BrokenPool())
    folder = settings.data_dir / "projects" / "pets"
    for seed in range(3):
        write(folder / "images" / "train" / f"i{seed}.jpg", jpg(300 + seed))

    report = await stores.storage.sync_from_disk()

    assert len(entries(report, "image", Outcome.ADDED)) == 3


async def test_labels_saved_while_the_sync_runs_are_not_overwritten(
    settings: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stores.dataset.create("pets", ["cat", "dog"])
    await stores.image.save_file("pets", "train", "a.jpg", io.BytesIO(jpg(1)))
    write(settings.data_dir / "projects" / "pets" / "labels" / "train" / "a.txt", "0 .5 .5 .2 .2\n")
    write_labels = sync._Sync._write_labels

    async def annotator_saves_first(self: Any, *args: Any) -> set[int]:
        await stores.label.save("pets", "train", "a.jpg", [Annotation(1, 0.3, 0.3, 0.1, 0.1)])
        return await write_labels(self, *args)

    monkeypatch.setattr(sync._Sync, "_write_labels", annotator_saves_first)

    report = await stores.storage.sync_from_disk()

    assert "saved meanwhile" in entries(report, "label", Outcome.SKIPPED)["labels/train/a.txt"]
    assert [a.class_id for a in await stores.label.load("pets", "train", "a.jpg")] == [1]
