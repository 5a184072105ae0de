"""DatasetStore contract: projects, classes, prompts, and the zip export/import round trip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import yaml

from app.domain.errors import AlreadyExists, Cancelled, Invalid, NotFound
from app.domain.import_rules import Reason
from app.domain.models import SPLITS
from app.domain.stores import Stores
from tests.contract.support import (
    CLASSES,
    box,
    boxes,
    children,
    files_under,
    image_file,
    label_file,
    line,
    png,
    project_dir,
    projects_dir,
    read_yaml,
    sha256,
    tmp_files,
    upload,
)

# --- create -------------------------------------------------------------------------------


async def test_creating_a_project_returns_it_with_its_classes_and_no_images(
    stores: Stores,
) -> None:
    info = await stores.dataset.create("birds", ["robin", "crow"], description="garden")

    assert info.name == "birds"
    assert info.classes == ["robin", "crow"]
    assert info.description == "garden"
    assert info.num_images == dict.fromkeys(SPLITS, 0)
    assert [(c.position, c.name) for c in info.class_details] == [(0, "robin"), (1, "crow")]
    assert info.created_at > 0
    assert info.path == project_dir(stores, "birds")


async def test_creating_a_project_makes_its_folder_with_a_data_yaml_without_path(
    stores: Stores,
) -> None:
    await stores.dataset.create("birds", ["robin", "crow"])

    folder = project_dir(stores, "birds")
    for kind in ("images", "labels"):
        for split in SPLITS:
            assert (folder / kind / split).is_dir()
    data = read_yaml(folder / "data.yaml")
    assert "path" not in data
    assert data["names"] == {0: "robin", 1: "crow"}
    assert data["nc"] == 2


@pytest.mark.parametrize(
    "name",
    ["", "has space", "../escape", "a/b", "a\\b", "-starts-with-dash", "x" * 65, "tab\there"],
)
async def test_creating_a_project_with_a_bad_name_raises_invalid_and_creates_nothing(
    stores: Stores, name: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await stores.dataset.create(name, ["cat"])

    assert isinstance(caught.value, ValueError)
    assert await stores.dataset.list() == []
    assert files_under(projects_dir(stores)) == set()
    assert children(projects_dir(stores)) == []


@pytest.mark.parametrize("classes", [["cat", "Cat"], ["cat", ""], ["cat", "two\nlines"]])
async def test_creating_a_project_with_a_bad_class_list_raises_invalid_and_creates_nothing(
    stores: Stores, classes: list[str]
) -> None:
    with pytest.raises(Invalid):
        await stores.dataset.create("birds", classes)

    assert await stores.dataset.get("birds") is None
    assert not project_dir(stores, "birds").exists()


async def test_creating_a_project_whose_name_is_taken_ignoring_case_raises_already_exists(
    stores: Stores, project: str
) -> None:
    before = await stores.dataset.list()

    with pytest.raises(AlreadyExists) as caught:
        await stores.dataset.create(project.upper(), ["other"])

    assert isinstance(caught.value, ValueError)
    assert await stores.dataset.list() == before
    assert await stores.dataset.get_classes(project) == before[0].class_details
    assert children(projects_dir(stores)) == [project]


@pytest.mark.parametrize("folder", ["birds", "Birds"])
async def test_creating_a_project_over_a_stray_folder_raises_already_exists_and_keeps_it(
    stores: Stores, folder: str
) -> None:
    stray = project_dir(stores, folder)
    stray.mkdir(parents=True)
    (stray / "keep.txt").write_text("user data")

    with pytest.raises(AlreadyExists):
        await stores.dataset.create("birds", ["robin"])

    assert await stores.dataset.list() == []
    assert files_under(stray) == {"keep.txt"}
    assert (stray / "keep.txt").read_text() == "user data"


# --- list, get, delete --------------------------------------------------------------------


async def test_listing_projects_gives_them_by_name_with_image_counts_per_split(
    stores: Stores,
) -> None:
    await stores.dataset.create("zebra", ["z"])
    await stores.dataset.create("Apple", ["a"])
    await stores.dataset.create("mango", ["m"])
    await upload(stores, "a.png", split="train", seed=1, dataset="mango")
    await upload(stores, "b.png", split="train", seed=2, dataset="mango")
    await upload(stores, "c.png", split="test", seed=3, dataset="mango")

    listed = await stores.dataset.list()

    assert [p.name for p in listed] == ["Apple", "mango", "zebra"]
    assert listed[1].num_images == {"train": 2, "val": 0, "test": 1}
    assert listed[0].num_images == dict.fromkeys(SPLITS, 0)
    assert listed[2].classes == ["z"]


async def test_getting_a_project_returns_it_and_none_for_an_unknown_name(
    stores: Stores, project: str
) -> None:
    info = await stores.dataset.get(project)

    assert info is not None
    assert info.name == project
    assert info.classes == list(CLASSES)
    assert await stores.dataset.get("nobody") is None


async def test_deleting_a_project_removes_its_rows_and_its_folder(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])

    assert await stores.dataset.delete(project) is True

    assert await stores.dataset.get(project) is None
    assert await stores.dataset.list() == []
    assert not project_dir(stores).exists()
    with pytest.raises(NotFound):
        await stores.image.list(project)


async def test_deleting_an_unknown_project_returns_false(stores: Stores, project: str) -> None:
    assert await stores.dataset.delete("nobody") is False
    assert [p.name for p in await stores.dataset.list()] == [project]


async def test_a_project_created_again_after_delete_starts_empty(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.dataset.delete(project)

    info = await stores.dataset.create(project, ["other"])

    assert info.num_images == dict.fromkeys(SPLITS, 0)
    assert await stores.image.list(project) == []
    assert files_under(project_dir(stores) / "images") == set()
    await upload(stores, "a.png", seed=1)  # the same bytes are no duplicate any more


# --- classes ------------------------------------------------------------------------------


async def test_getting_classes_gives_them_in_yolo_order_with_stable_ids(
    stores: Stores, project: str
) -> None:
    classes = await stores.dataset.get_classes(project)

    assert [(c.position, c.name) for c in classes] == list(enumerate(CLASSES))
    assert len({c.id for c in classes}) == len(CLASSES)
    assert all(c.colour.startswith("#") and len(c.colour) == 7 for c in classes)


async def test_getting_classes_of_an_unknown_project_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound) as caught:
        await stores.dataset.get_classes("nobody")
    assert isinstance(caught.value, FileNotFoundError)


async def test_reordering_classes_keeps_their_ids_and_rewrites_the_label_files(
    stores: Stores, project: str
) -> None:
    before = {c.name: c for c in await stores.dataset.get_classes(project)}
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0, x=0.3), box(2, x=0.7)])

    await stores.dataset.update_classes(project, ["bird", "cat", "dog"])

    after = await stores.dataset.get_classes(project)
    assert [(c.position, c.name) for c in after] == [(0, "bird"), (1, "cat"), (2, "dog")]
    assert {c.name: (c.id, c.colour) for c in after} == {
        name: (c.id, c.colour) for name, c in before.items()
    }
    text = label_file(stores, "train", "a.png").read_text()
    assert sorted(text.splitlines(keepends=True)) == sorted([line(1, x=0.3), line(0, x=0.7)])
    assert sorted(boxes(await stores.label.load(project, "train", "a.png"))) == [
        (0, 0.7, 0.5, 0.25, 0.25),
        (1, 0.3, 0.5, 0.25, 0.25),
    ]
    data = read_yaml(project_dir(stores) / "data.yaml")
    assert data["names"] == {0: "bird", 1: "cat", 2: "dog"}
    assert "path" not in data


async def test_renaming_a_class_by_case_keeps_the_class_and_its_labels(
    stores: Stores, project: str
) -> None:
    before = await stores.dataset.get_classes(project)
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])

    await stores.dataset.update_classes(project, ["Cat", "dog", "bird"])

    after = await stores.dataset.get_classes(project)
    assert after[0].name == "Cat"
    assert after[0].id == before[0].id
    assert read_yaml(project_dir(stores) / "data.yaml")["names"][0] == "Cat"
    assert boxes(await stores.label.load(project, "train", "a.png")) == [(0, 0.5, 0.5, 0.25, 0.25)]


async def test_adding_a_class_gives_it_a_new_id_at_its_position(
    stores: Stores, project: str
) -> None:
    before = await stores.dataset.get_classes(project)

    await stores.dataset.update_classes(project, ["cat", "fish", "dog", "bird"])

    after = await stores.dataset.get_classes(project)
    assert [c.name for c in after] == ["cat", "fish", "dog", "bird"]
    assert after[1].id not in {c.id for c in before}
    assert read_yaml(project_dir(stores) / "data.yaml")["names"] == {
        0: "cat",
        1: "fish",
        2: "dog",
        3: "bird",
    }


async def test_removing_a_class_deletes_its_labels_and_rewrites_the_label_files(
    stores: Stores, project: str
) -> None:
    await upload(stores, "mixed.png", seed=1)
    await upload(stores, "only-cat.png", seed=2)
    await stores.label.save(project, "train", "mixed.png", [box(0, x=0.3), box(2, x=0.7)])
    await stores.label.save(project, "train", "only-cat.png", [box(0)])

    await stores.dataset.update_classes(project, ["dog", "bird"])

    assert boxes(await stores.label.load(project, "train", "mixed.png")) == [
        (1, 0.7, 0.5, 0.25, 0.25)
    ]
    assert label_file(stores, "train", "mixed.png").read_text() == line(1, x=0.7)
    assert await stores.label.load(project, "train", "only-cat.png") == []
    assert not label_file(stores, "train", "only-cat.png").exists()
    assert await stores.label.exists(project, "train", "only-cat.png") is False
    assert read_yaml(project_dir(stores) / "data.yaml")["names"] == {0: "dog", 1: "bird"}


async def test_removing_a_class_deletes_its_pending_suggestions(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.add_suggestions(
        project, "a.png", [box(0, confidence=0.9), box(1, x=0.2, confidence=0.8)]
    )

    await stores.dataset.update_classes(project, ["dog", "bird"])

    suggestions = await stores.label.list_suggestions(project, "a.png")
    assert boxes(suggestions) == [(0, 0.2, 0.5, 0.25, 0.25)]


async def test_deleting_a_project_deletes_its_models(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    await stores.model.save("m", weights, "yolov8n.pt", project, 1, {})

    await stores.dataset.delete(project)

    assert await stores.model.get("m") is None
    assert await stores.model.list() == []


async def test_updating_the_classes_of_an_unknown_project_raises_not_found(
    stores: Stores,
) -> None:
    with pytest.raises(NotFound):
        await stores.dataset.update_classes("nobody", ["cat"])
    assert await stores.dataset.list() == []


@pytest.mark.parametrize("classes", [["cat", "CAT"], ["cat", "  "], ["bad\nname"]])
async def test_updating_classes_with_bad_names_raises_invalid_and_changes_nothing(
    stores: Stores, project: str, classes: list[str]
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(2)])
    before = await stores.dataset.get_classes(project)
    yaml_before = (project_dir(stores) / "data.yaml").read_bytes()
    label_before = label_file(stores, "train", "a.png").read_bytes()

    with pytest.raises(Invalid):
        await stores.dataset.update_classes(project, classes)

    assert await stores.dataset.get_classes(project) == before
    assert (project_dir(stores) / "data.yaml").read_bytes() == yaml_before
    assert label_file(stores, "train", "a.png").read_bytes() == label_before


# --- prompts ------------------------------------------------------------------------------


async def test_saved_prompts_are_returned_by_class_index_and_mirrored_to_prompts_yaml(
    stores: Stores, project: str
) -> None:
    await stores.dataset.save_prompts(project, {0: ["a cat", "kitten"], 2: ["a bird"]})

    assert await stores.dataset.get_prompts(project) == {0: ["a cat", "kitten"], 2: ["a bird"]}
    assert read_yaml(project_dir(stores) / "prompts.yaml") == {
        0: ["a cat", "kitten"],
        2: ["a bird"],
    }


async def test_saving_prompts_replaces_only_the_given_classes(stores: Stores, project: str) -> None:
    await stores.dataset.save_prompts(project, {0: ["a cat"], 1: ["a dog"]})

    await stores.dataset.save_prompts(project, {1: ["a puppy"]})

    assert await stores.dataset.get_prompts(project) == {0: ["a cat"], 1: ["a puppy"]}


async def test_a_project_without_prompts_has_none(stores: Stores, project: str) -> None:
    assert await stores.dataset.get_prompts(project) == {}


async def test_prompts_follow_their_class_when_the_classes_are_reordered(
    stores: Stores, project: str
) -> None:
    await stores.dataset.save_prompts(project, {0: ["a cat"]})

    await stores.dataset.update_classes(project, ["dog", "bird", "cat"])

    assert await stores.dataset.get_prompts(project) == {2: ["a cat"]}


@pytest.mark.parametrize("index", [3, -1])
async def test_saving_prompts_for_an_index_out_of_range_raises_invalid_and_changes_nothing(
    stores: Stores, project: str, index: int
) -> None:
    await stores.dataset.save_prompts(project, {0: ["a cat"]})

    with pytest.raises(Invalid):
        await stores.dataset.save_prompts(project, {1: ["a dog"], index: ["ghost"]})

    assert await stores.dataset.get_prompts(project) == {0: ["a cat"]}
    assert read_yaml(project_dir(stores) / "prompts.yaml") == {0: ["a cat"]}


async def test_prompts_of_an_unknown_project_raise_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.dataset.get_prompts("nobody")
    with pytest.raises(NotFound):
        await stores.dataset.save_prompts("nobody", {0: ["x"]})


# --- export -------------------------------------------------------------------------------


async def _labelled_project(stores: Stores, project: str) -> dict[str, bytes]:
    """Two labelled images, one "no objects" image and one unlabelled; returns their bytes."""
    names = ["cat.png", "dog.png", "empty.png", "u.png"]
    data = {name: png(seed) for seed, name in enumerate(names)}
    await upload(stores, "cat.png", split="train", data=data["cat.png"])
    await upload(stores, "dog.png", split="val", data=data["dog.png"])
    await upload(stores, "empty.png", split="test", data=data["empty.png"])
    await upload(stores, "u.png", split="train", data=data["u.png"])
    await stores.label.save(project, "train", "cat.png", [box(0, x=0.25), box(2, x=0.75)])
    await stores.label.save(project, "val", "dog.png", [box(1, w=0.5, h=0.125)])
    await stores.label.set_no_objects(project, "empty.png", True)
    return data


async def test_exporting_a_project_writes_an_ultralytics_zip_of_its_labelled_images(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    data = await _labelled_project(stores, project)

    path = await stores.dataset.export_zip(project, tmp_path / "out")

    assert path == tmp_path / "out" / f"{project}.zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [
            "data.yaml",
            "images/test/empty.png",
            "images/train/cat.png",
            "images/val/dog.png",
            "labels/test/empty.txt",
            "labels/train/cat.txt",
            "labels/val/dog.txt",
        ]
        meta = read_yaml_bytes(archive.read("data.yaml"))
        assert "path" not in meta
        assert meta["names"] == dict(enumerate(CLASSES))
        assert archive.read("images/train/cat.png") == data["cat.png"]
        assert archive.read("images/val/dog.png") == data["dog.png"]
        assert archive.read("labels/train/cat.txt").decode() == line(0, x=0.25) + line(2, x=0.75)
        assert archive.read("labels/val/dog.txt").decode() == line(1, w=0.5, h=0.125)
        assert archive.read("labels/test/empty.txt") == b""


async def test_export_says_what_went_in_and_leaves_out_unlabelled_images(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await _labelled_project(stores, project)

    result = await stores.dataset.export(project, tmp_path / "out")

    assert result.path == tmp_path / "out" / f"{project}.zip"
    assert result.images == 3
    assert result.labels == 3
    left_out = [name for names in result.left_out.values() for name in names]
    assert left_out == ["u.png"]
    with zipfile.ZipFile(result.path) as archive:
        assert not any("u." in member for member in archive.namelist())


async def test_pending_suggestions_alone_do_not_put_an_image_in_the_export(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await upload(stores, "s.png", seed=1)
    await stores.label.add_suggestions(project, "s.png", [box(0, confidence=0.9)])

    result = await stores.dataset.export(project, tmp_path)

    assert result.images == 0
    assert [n for names in result.left_out.values() for n in names] == ["s.png"]
    with zipfile.ZipFile(result.path) as archive:
        assert archive.namelist() == ["data.yaml"]


async def test_export_reports_progress_as_fractions_ending_at_one(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await _labelled_project(stores, project)
    seen: list[float] = []

    async def progress(fraction: float, message: str) -> None:
        assert isinstance(message, str)
        seen.append(fraction)

    await stores.dataset.export_zip(project, tmp_path, progress=progress)

    assert seen
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(1.0)


async def test_export_leaves_out_an_image_whose_file_is_missing(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await upload(stores, "gone.png", seed=1)
    await upload(stores, "here.png", seed=2)
    await stores.label.save(project, "train", "gone.png", [box(0)])
    await stores.label.save(project, "train", "here.png", [box(1)])
    image_file(stores, "train", "gone.png").unlink()

    result = await stores.dataset.export(project, tmp_path)

    assert result.images == 1
    assert [n for names in result.left_out.values() for n in names] == ["gone.png"]
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "data.yaml",
            "images/train/here.png",
            "labels/train/here.txt",
        ]


async def test_an_export_stopped_by_its_progress_callback_writes_no_zip(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await _labelled_project(stores, project)

    async def progress(fraction: float, message: str) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        await stores.dataset.export_zip(project, tmp_path / "out", progress=progress)

    assert files_under(tmp_path / "out") == set()
    assert tmp_files(stores) == set()


async def test_exporting_an_unknown_project_raises_not_found(
    stores: Stores, tmp_path: Path
) -> None:
    with pytest.raises(NotFound):
        await stores.dataset.export_zip("nobody", tmp_path)
    assert not (tmp_path / "nobody.zip").exists()


# --- import -------------------------------------------------------------------------------


def read_yaml_bytes(raw: bytes) -> dict:
    loaded = yaml.safe_load(raw)
    assert isinstance(loaded, dict)
    return loaded


def make_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


DATA_YAML = "names:\n  0: cat\n  1: dog\n"


async def test_an_exported_zip_imports_as_the_same_project(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await _labelled_project(stores, project)
    path = await stores.dataset.export_zip(project, tmp_path)

    imported = await stores.dataset.import_zip(path, "copy")

    assert imported.name == "copy"
    assert imported.classes == list(CLASSES)
    assert imported.num_images == {"train": 1, "val": 1, "test": 1}

    async def picture(name: str) -> dict[str, tuple[str, str, list, bool]]:
        out = {}
        for image in await stores.image.list(name):
            stored = image_file(stores, image.split, image.filename, name).read_bytes()
            assert sha256(stored) == image.sha256
            labels = boxes(await stores.label.load(name, image.split, image.filename))
            out[image.sha256] = (image.filename, image.split, labels, image.no_objects)
        return out

    original = await picture(project)
    copy = await picture("copy")
    unlabelled = [k for k, v in original.items() if v[0] == "u.png"]
    for key in unlabelled:
        del original[key]
    assert copy == original
    assert label_file(stores, "test", "empty.png", "copy").read_bytes() == b""
    assert label_file(stores, "train", "cat.png", "copy").read_text() == (
        line(0, x=0.25) + line(2, x=0.75)
    )
    data = read_yaml(project_dir(stores, "copy") / "data.yaml")
    assert "path" not in data
    assert data["names"] == dict(enumerate(CLASSES))


async def test_importing_a_zip_names_the_project_after_the_zip_by_default(
    stores: Stores, tmp_path: Path
) -> None:
    path = make_zip(
        tmp_path / "farm.zip",
        {"data.yaml": DATA_YAML, "images/train/a.png": png(1), "labels/train/a.txt": line(1)},
    )

    info = await stores.dataset.import_zip(path)

    assert info.name == "farm"
    assert info.classes == ["cat", "dog"]
    assert boxes(await stores.label.load("farm", "train", "a.png")) == [(1, 0.5, 0.5, 0.25, 0.25)]


async def test_importing_under_a_taken_name_raises_already_exists_and_keeps_the_project(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    await upload(stores, "mine.png", seed=7)
    path = make_zip(
        tmp_path / "x.zip",
        {"data.yaml": DATA_YAML, "images/train/a.png": png(1), "labels/train/a.txt": line(0)},
    )

    with pytest.raises(AlreadyExists):
        await stores.dataset.import_zip(path, project)

    assert [i.filename for i in await stores.image.list(project)] == ["mine.png"]
    assert [c.name for c in await stores.dataset.get_classes(project)] == list(CLASSES)
    assert files_under(project_dir(stores) / "images") == {"train/mine.png"}


async def _assert_import_refused(stores: Stores, path: Path, name: str = "bad") -> None:
    with pytest.raises(Invalid) as caught:
        await stores.dataset.import_zip(path, name)
    assert isinstance(caught.value, ValueError)
    assert await stores.dataset.get(name) is None
    assert await stores.dataset.list() == []
    assert children(projects_dir(stores)) == []
    assert tmp_files(stores) == set()


async def test_importing_a_zip_with_a_path_that_leaves_the_archive_creates_nothing(
    stores: Stores, tmp_path: Path
) -> None:
    path = make_zip(
        tmp_path / "evil.zip",
        {
            "data.yaml": DATA_YAML,
            "images/train/a.png": png(1),
            "labels/train/a.txt": line(0),
            "../evil.txt": "gotcha",
        },
    )

    await _assert_import_refused(stores, path)

    assert not (stores.data_dir / "evil.txt").exists()
    assert not (stores.data_dir.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    ("label_text", "reason"),
    [
        ("0 0.5 0.5 0.25\n", Reason.MALFORMED),
        ("cat 0.5 0.5 0.25 0.25\n", Reason.MALFORMED),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n", Reason.MALFORMED),
        ("2 0.5 0.5 0.2 0.2\n", Reason.UNNAMED_CLASS),
        (line(1, x=0.95, w=0.5), Reason.OUTSIDE),
    ],
    ids=["too-few-values", "not-a-number", "odd-values", "class-out-of-range", "outside"],
)
async def test_a_bad_label_line_is_left_out_and_reported_and_the_rest_comes_in(
    stores: Stores, project: str, tmp_path: Path, label_text: str, reason: Reason
) -> None:
    path = make_zip(
        tmp_path / "bad.zip",
        {
            "data.yaml": DATA_YAML,
            "images/train/a.png": png(1),
            "labels/train/a.txt": line(0),
            "images/train/b.png": png(2),
            "labels/train/b.txt": line(1, x=0.3) + label_text,
        },
    )

    report = await stores.dataset.import_dataset(project, path)

    assert report.count(reason) == 1
    assert report.examples[reason][0].startswith("labels/train/b.txt:2")
    assert report.count(Reason.IMAGES) == 2
    assert report.count(Reason.BOXES) == 2
    assert boxes(await stores.label.load(project, "train", "b.png")) == [(1, 0.3, 0.5, 0.25, 0.25)]
    # The export's class names matched the project's (cat, dog) by name.
    assert [c.name for c in await stores.dataset.get_classes(project)] == list(CLASSES)


async def test_importing_a_zip_skips_a_file_that_is_not_an_image_and_says_why(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    path = make_zip(
        tmp_path / "bad.zip",
        {
            "data.yaml": DATA_YAML,
            "images/train/a.png": png(1),
            "labels/train/a.txt": line(0),
            "images/train/z.jpg": b"this is not a jpeg",
        },
    )

    report = await stores.dataset.import_dataset(project, path)

    assert report.count(Reason.IMAGES) == 1
    assert report.count(Reason.NOT_IMAGE) == 1
    assert report.examples[Reason.NOT_IMAGE][0].startswith("images/train/z.jpg (")
    assert [i.filename for i in await stores.image.list(project)] == ["a.png"]
    assert tmp_files(stores) == set()


async def test_importing_a_file_that_is_not_a_zip_raises_invalid(
    stores: Stores, tmp_path: Path
) -> None:
    path = tmp_path / "notzip.zip"
    path.write_bytes(b"PK but not really a zip archive" * 10)

    await _assert_import_refused(stores, path)


async def test_importing_a_zip_without_any_image_raises_invalid(
    stores: Stores, tmp_path: Path
) -> None:
    path = make_zip(tmp_path / "empty.zip", {"data.yaml": DATA_YAML, "notes.md": "hello"})

    await _assert_import_refused(stores, path)


async def test_a_zip_without_a_data_yaml_brings_its_images_in_unlabelled(
    stores: Stores, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/train/a.png", png(1))
    path = tmp_path / "noyaml.zip"
    path.write_bytes(buffer.getvalue())

    info = await stores.dataset.import_zip(path, "plain")

    assert info.classes == []
    assert info.num_images == {"train": 1, "val": 0, "test": 0}
    (image,) = await stores.image.list("plain")
    assert not image.has_labels and not image.no_objects


async def test_a_damaged_member_is_left_out_and_named(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("data.yaml", DATA_YAML)
        archive.writestr("images/train/a.png", png(1))
        archive.writestr("images/train/b.png", png(2))
    raw = bytearray(path.read_bytes())
    start = raw.index(png(1)[:16])
    raw[start + 100] ^= 0xFF  # the stored bytes no longer match their CRC
    path.write_bytes(bytes(raw))

    report = await stores.dataset.import_dataset(project, path)

    assert report.count(Reason.NOT_IMAGE) == 1
    assert "images/train/a.png" in report.examples[Reason.NOT_IMAGE][0]
    assert [i.filename for i in await stores.image.list(project)] == ["b.png"]


async def test_importing_a_zip_holding_the_same_image_twice_stores_it_once(
    stores: Stores, tmp_path: Path
) -> None:
    path = make_zip(
        tmp_path / "twice.zip",
        {
            "data.yaml": DATA_YAML,
            "images/train/a.png": png(1),
            "labels/train/a.txt": line(0),
            "images/val/copy-of-a.png": png(1),
            "labels/val/copy-of-a.txt": line(1),
            "images/val/b.png": png(2),
        },
    )

    info = await stores.dataset.import_zip(path, "twice")

    assert info.num_images == {"train": 1, "val": 1, "test": 0}
    names = sorted(i.filename for i in await stores.image.list("twice"))
    assert names == ["a.png", "b.png"]


async def test_adding_a_class_at_the_end_leaves_existing_label_files_alone(
    stores: Stores, project: str
) -> None:
    info = await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", info.filename, [box(0)])
    before = label_file(stores, "train", info.filename).stat()
    classes = await stores.dataset.get_classes(project)

    await stores.dataset.update_classes(project, [c.name for c in classes] + ["newcomer"])

    after = label_file(stores, "train", info.filename).stat()
    # Not rewritten: same inode (a rewrite replaces the file) and same contents.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
