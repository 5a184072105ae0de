"""DatasetStore class operations: add, rename, recolour, move, usage, merge, delete.

The project fixture has classes cat (0), dog (1), bird (2). Labels point at a class's stable id;
every operation that changes a position rewrites the label files that hold it.
"""

from __future__ import annotations

import pytest

from app.domain.errors import AlreadyExists, Invalid, NotFound
from app.domain.models import ClassUsage
from app.domain.stores import Stores
from tests.contract.support import box, label_file, line, project_dir, read_yaml, upload


async def ids(stores: Stores, project: str) -> dict[str, int]:
    return {c.name: c.id for c in await stores.dataset.get_classes(project)}


async def names(stores: Stores, project: str) -> list[str]:
    return [c.name for c in await stores.dataset.get_classes(project)]


def yaml_names(stores: Stores, project: str) -> dict[int, str]:
    return read_yaml(project_dir(stores, project) / "data.yaml")["names"]


async def labelled(stores: Stores, project: str, filename: str, seed: int, *classes: int) -> str:
    info = await upload(stores, filename, seed=seed)
    await stores.label.save(project, "train", info.filename, [box(c) for c in classes])
    return info.filename


async def test_adding_a_class_appends_it_and_writes_data_yaml(stores: Stores, project: str) -> None:
    added = await stores.dataset.add_class(project, " fish ", colour="#112233")

    assert (added.name, added.position, added.colour) == ("fish", 3, "#112233")
    assert await names(stores, project) == ["cat", "dog", "bird", "fish"]
    assert yaml_names(stores, project)[3] == "fish"


@pytest.mark.parametrize("bad", ["", "CAT", "two\nlines"])
async def test_adding_a_bad_or_taken_class_name_is_refused(
    stores: Stores, project: str, bad: str
) -> None:
    with pytest.raises(Invalid):
        await stores.dataset.add_class(project, bad)
    assert await names(stores, project) == ["cat", "dog", "bird"]


async def test_renaming_keeps_id_position_and_label_files(stores: Stores, project: str) -> None:
    cls = await ids(stores, project)
    name = await labelled(stores, project, "a.png", 1, 1)
    before = label_file(stores, "train", name).read_text()

    renamed = await stores.dataset.rename_class(project, cls["dog"], "puppy")

    assert (renamed.id, renamed.position, renamed.name) == (cls["dog"], 1, "puppy")
    assert yaml_names(stores, project) == {0: "cat", 1: "puppy", 2: "bird"}
    assert label_file(stores, "train", name).read_text() == before == line(1)


async def test_renaming_to_another_class_name_ignoring_case_is_refused(
    stores: Stores, project: str
) -> None:
    cls = await ids(stores, project)
    with pytest.raises(AlreadyExists):
        await stores.dataset.rename_class(project, cls["dog"], "Cat")
    # A change of case of its own name is fine.
    assert (await stores.dataset.rename_class(project, cls["dog"], "Dog")).name == "Dog"


async def test_an_unknown_class_or_project_is_not_found(stores: Stores, project: str) -> None:
    with pytest.raises(NotFound):
        await stores.dataset.rename_class(project, 9999, "x")
    with pytest.raises(NotFound):
        await stores.dataset.delete_class("ghost", 1)
    other = await stores.dataset.create("other", ["x"])
    with pytest.raises(NotFound):  # a class of another project
        await stores.dataset.delete_class(project, other.class_details[0].id)


async def test_recolouring_checks_the_colour(stores: Stores, project: str) -> None:
    cls = await ids(stores, project)
    assert (await stores.dataset.set_class_colour(project, cls["cat"], "#ABCDEF")).colour == (
        "#abcdef"
    )
    with pytest.raises(Invalid):
        await stores.dataset.set_class_colour(project, cls["cat"], "red")


async def test_moving_a_class_shifts_the_others_and_rewrites_label_files(
    stores: Stores, project: str
) -> None:
    cls = await ids(stores, project)
    name = await labelled(stores, project, "a.png", 1, 0, 2)

    order = await stores.dataset.move_class(project, cls["bird"], 0)

    assert [c.name for c in order] == ["bird", "cat", "dog"]
    assert [c.id for c in order] == [cls["bird"], cls["cat"], cls["dog"]]
    assert sorted(label_file(stores, "train", name).read_text().splitlines()) == sorted(
        [line(1).strip(), line(0).strip()]
    )
    assert yaml_names(stores, project) == {0: "bird", 1: "cat", 2: "dog"}


async def test_class_usage_counts_boxes_suggestions_and_images_left_empty(
    stores: Stores, project: str
) -> None:
    cls = await ids(stores, project)
    only_dog = await labelled(stores, project, "a.png", 1, 1, 1)
    await labelled(stores, project, "b.png", 2, 1, 0)
    await stores.label.add_suggestions(project, only_dog, [box(1, confidence=0.5)])

    usage = await stores.dataset.class_usage(project, cls["dog"])

    assert usage == ClassUsage(labels=3, suggestions=1, images_left_empty=1)


async def test_deleting_a_class_removes_its_labels_and_shifts_later_classes(
    stores: Stores, project: str
) -> None:
    cls = await ids(stores, project)
    only_dog = await labelled(stores, project, "a.png", 1, 1)
    mixed = await labelled(stores, project, "b.png", 2, 1, 2)
    version = (await stores.image.get(project, mixed)).version

    usage = await stores.dataset.delete_class(project, cls["dog"])

    assert usage == ClassUsage(labels=2, suggestions=0, images_left_empty=1)
    assert await names(stores, project) == ["cat", "bird"]
    assert not label_file(stores, "train", only_dog).exists()  # unlabelled now
    assert label_file(stores, "train", mixed).read_text() == line(1)  # bird moved 2 → 1
    assert (await stores.image.get(project, mixed)).version == version + 1
    assert yaml_names(stores, project) == {0: "cat", 1: "bird"}


async def test_merging_moves_every_label_to_the_target_and_removes_the_source(
    stores: Stores, project: str
) -> None:
    cls = await ids(stores, project)
    name = await labelled(stores, project, "a.png", 1, 2, 0)
    await stores.label.add_suggestions(project, name, [box(2, confidence=0.4)])

    moved = await stores.dataset.merge_class(project, cls["bird"], cls["cat"])

    assert moved == ClassUsage(labels=1, suggestions=1, images_left_empty=0)
    assert await names(stores, project) == ["cat", "dog"]
    assert label_file(stores, "train", name).read_text() == line(0) + line(0)
    suggestions = await stores.label.list_suggestions(project, name)
    assert [s.class_id for s in suggestions] == [0]


async def test_merging_into_a_later_class_rewrites_its_shifted_index(
    stores: Stores, project: str
) -> None:
    cls = await ids(stores, project)
    cat_only = await labelled(stores, project, "a.png", 1, 0)
    bird_only = await labelled(stores, project, "b.png", 2, 2)

    await stores.dataset.merge_class(project, cls["cat"], cls["bird"])

    assert await names(stores, project) == ["dog", "bird"]
    assert label_file(stores, "train", cat_only).read_text() == line(1)
    assert label_file(stores, "train", bird_only).read_text() == line(1)


async def test_merging_a_class_into_itself_is_refused(stores: Stores, project: str) -> None:
    cls = await ids(stores, project)
    with pytest.raises(Invalid):
        await stores.dataset.merge_class(project, cls["cat"], cls["cat"])
    assert await names(stores, project) == ["cat", "dog", "bird"]
