"""DatasetStore contract for dataset health: images per split and their labelling state, accepted
boxes per class in class order, missing files, exact duplicates, and near-duplicate groups from
the stored perceptual hashes, with the groups that span splits (train/val leakage) counted and
shown first. The near-duplicate grouping may be cached, so the figures must follow every change
of the images: an add, a delete, a delete followed by an add, a move between splits.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import app.repositories.datasets as sql_datasets
from app.domain.errors import Invalid, NotFound
from app.domain.models import SPLITS, DatasetHealth, NearDuplicateGroup, SplitHealth
from app.domain.stores import Stores
from tests.conftest import encode, execute_sql, make_image
from tests.contract.support import box, image_file, upload

CAT, DOG, BIRD = 0, 1, 2  # YOLO indices of the sample project's classes


def scene(seed: int) -> np.ndarray:
    """A photo-like frame (smooth blobs), so its perceptual hash is stable and far from the
    hash of any other seed's scene."""
    return cv2.resize(make_image(8, 6, seed), (160, 120), interpolation=cv2.INTER_CUBIC)


def twin(seed: int, step: int) -> bytes:
    """Other bytes of the same picture: a little brighter, a touch of noise."""
    rng = np.random.default_rng(1000 + step)
    noise = rng.integers(-2, 3, size=scene(seed).shape)
    pixels = np.clip(scene(seed).astype(np.int16) + 2 + step + noise, 0, 255).astype(np.uint8)
    return encode(pixels, ".png")


async def mark_missing(stores: Stores, split: str, filename: str) -> None:
    """Lose the file and flag the row, as the start-up reconcile does (no store method sets the
    flag, so the SQL backend's row is changed directly)."""
    image_file(stores, split, filename).unlink()
    await execute_sql(stores, "UPDATE image SET missing = true WHERE filename = :f", f=filename)


def split(health: DatasetHealth, name: str) -> SplitHealth:
    return next(s for s in health.splits if s.split == name)


def member_names(group: NearDuplicateGroup) -> list[str]:
    return [m.filename for m in group.members]


# --- counts -------------------------------------------------------------------------------


async def test_an_empty_project_is_all_zeros_with_every_class_listed(
    stores: Stores, project: str
) -> None:
    health = await stores.dataset.health(project)

    assert health.dataset == project
    assert [s.split for s in health.splits] == list(SPLITS)
    assert all(s == SplitHealth(s.split) for s in health.splits)
    assert [(c.name, c.boxes) for c in health.classes] == [("cat", 0), ("dog", 0), ("bird", 0)]
    assert health.exact_duplicates == 0
    assert health.near_duplicate_groups == health.near_duplicate_images == 0
    assert health.leaking_groups == health.leaking_images == 0
    assert health.groups == []


async def test_images_are_counted_per_split_by_labelling_state(
    stores: Stores, project: str
) -> None:
    # (name, split, accepted boxes, pending suggestions, no objects, missing)
    samples = [
        ("t1.png", "train", [CAT], [], False, False),
        ("t2.png", "train", [], [DOG], False, False),  # suggestions alone: unlabelled
        ("t3.png", "train", [], [], True, False),
        ("t4.png", "train", [], [], False, True),
        ("v1.png", "val", [DOG, BIRD], [CAT], False, False),
        ("v2.png", "val", [CAT], [], False, True),
        ("s1.png", "test", [], [], False, False),
    ]
    for seed, (name, where, boxes, pending, no_objects, _) in enumerate(samples):
        await upload(stores, name, split=where, seed=seed)
        if boxes:
            await stores.label.save(project, where, name, [box(c) for c in boxes])
        if pending:
            await stores.label.add_suggestions(project, name, [box(c, x=0.3) for c in pending])
        if no_objects:
            await stores.label.set_no_objects(project, name, True)
    for name, where, *_, missing in samples:
        if missing:
            await mark_missing(stores, where, name)

    health = await stores.dataset.health(project)

    assert split(health, "train") == SplitHealth(
        "train", images=4, labelled=2, no_objects=1, with_suggestions=1, missing=1
    )
    assert split(health, "train").unlabelled == 2
    assert split(health, "val") == SplitHealth(
        "val", images=2, labelled=2, no_objects=0, with_suggestions=1, missing=1
    )
    assert split(health, "test") == SplitHealth("test", images=1)
    assert health.total == SplitHealth(
        "all", images=7, labelled=4, no_objects=1, with_suggestions=2, missing=2
    )
    assert health.total.unlabelled == 3


async def test_accepted_boxes_are_counted_per_class_in_class_order(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await upload(stores, "b.png", split="val", seed=2)
    await stores.label.save(project, "train", "a.png", [box(BIRD), box(BIRD, x=0.3), box(CAT)])
    await stores.label.save(project, "val", "b.png", [box(BIRD)])
    # Suggestions are not boxes of the dataset (yet).
    await stores.label.add_suggestions(project, "a.png", [box(DOG), box(DOG, x=0.3)])

    health = await stores.dataset.health(project)

    assert [(c.position, c.name, c.boxes) for c in health.classes] == [
        (0, "cat", 1),
        (1, "dog", 0),
        (2, "bird", 3),
    ]
    assert health.boxes == 4
    classes = await stores.dataset.get_classes(project)
    assert [(c.id, c.colour) for c in health.classes] == [(c.id, c.colour) for c in classes]

    # A class moved to the front is listed first, with its boxes.
    bird = classes[BIRD].id
    await stores.dataset.move_class(project, bird, 0)

    moved = await stores.dataset.health(project)

    assert [(c.name, c.boxes) for c in moved.classes] == [("bird", 3), ("cat", 1), ("dog", 0)]


async def test_the_boxes_of_another_project_are_not_counted(stores: Stores, project: str) -> None:
    await stores.dataset.create("other", ["cat"])
    await upload(stores, "mine.png", seed=1)
    await upload(stores, "theirs.png", seed=2, dataset="other")
    await stores.label.save(project, "train", "mine.png", [box(CAT)])
    await stores.label.save("other", "train", "theirs.png", [box(CAT), box(CAT, x=0.3)])

    health = await stores.dataset.health(project)

    assert [c.boxes for c in health.classes] == [1, 0, 0]
    assert health.total.images == 1


async def test_the_same_bytes_are_stored_once_so_there_are_no_exact_duplicates(
    stores: Stores, project: str
) -> None:
    data = encode(make_image(seed=5))
    await upload(stores, "first.png", data=data)
    with pytest.raises(ValueError):
        await upload(stores, "second.png", data=data, split="val")

    health = await stores.dataset.health(project)

    assert health.exact_duplicates == 0
    assert health.total.images == 1


async def test_an_unknown_project_or_a_bad_bound_is_refused(stores: Stores, project: str) -> None:
    with pytest.raises(NotFound):
        await stores.dataset.health("nope")
    with pytest.raises(Invalid):
        await stores.dataset.health(project, max_members=0)
    with pytest.raises(Invalid):
        await stores.dataset.health(project, max_groups=-1)


# --- near-duplicates ----------------------------------------------------------------------


async def test_near_duplicates_are_grouped_and_a_group_across_splits_is_a_leak(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a1.png", split="train", data=twin(1, 0))
    await upload(stores, "a2.png", split="train", data=twin(1, 2))
    await upload(stores, "a3.png", split="val", data=twin(1, 4))  # leaks into val
    await upload(stores, "b1.png", split="test", data=twin(2, 0))
    await upload(stores, "b2.png", split="test", data=twin(2, 3))
    await upload(stores, "lone.png", split="train", data=twin(3, 0))

    health = await stores.dataset.health(project)

    assert health.near_duplicate_groups == 2
    assert health.near_duplicate_images == 5
    assert health.leaking_groups == 1
    assert health.leaking_images == 3
    leak, same_split = health.groups
    assert member_names(leak) == ["a1.png", "a2.png", "a3.png"]
    assert [m.split for m in leak.members] == ["train", "train", "val"]
    assert leak.splits == ("train", "val") and leak.spans_splits and leak.size == 3
    assert member_names(same_split) == ["b1.png", "b2.png"]
    assert same_split.splits == ("test",) and not same_split.spans_splits
    # What a page needs to show each member: its name, split and content hash (thumbnail).
    stored = {i.filename: i for i in await stores.image.list(project)}
    for member in leak.members + same_split.members:
        assert member.sha256 == stored[member.filename].sha256
        assert member.dataset == project
        assert member.id == stored[member.filename].id


async def test_groups_that_leak_come_first_then_the_biggest(stores: Stores, project: str) -> None:
    for step in range(4):  # the biggest group, all in train
        await upload(stores, f"big{step}.png", split="train", data=twin(1, step))
    await upload(stores, "pair1.png", split="train", data=twin(2, 0))
    await upload(stores, "pair2.png", split="train", data=twin(2, 2))
    await upload(stores, "leak1.png", split="train", data=twin(3, 0))
    await upload(stores, "leak2.png", split="test", data=twin(3, 2))

    health = await stores.dataset.health(project)

    assert [g.size for g in health.groups] == [2, 4, 2]
    assert member_names(health.groups[0]) == ["leak1.png", "leak2.png"]
    assert member_names(health.groups[2]) == ["pair1.png", "pair2.png"]


async def test_a_bounded_number_of_groups_and_members_is_shown_with_the_totals(
    stores: Stores, project: str
) -> None:
    for step in range(7):  # seven in train ...
        await upload(stores, f"a{step}.png", split="train", data=twin(1, step))
    await upload(stores, "a-val.png", split="val", data=twin(1, 7))  # ... and the last in val
    await upload(stores, "b1.png", data=twin(2, 0))
    await upload(stores, "b2.png", data=twin(2, 2))

    health = await stores.dataset.health(project, max_groups=1, max_members=3)

    assert health.near_duplicate_groups == 2 and health.near_duplicate_images == 10
    assert health.leaking_groups == 1 and health.leaking_images == 8
    (group,) = health.groups
    assert group.size == 8
    # The one image in val is among the three shown, though it is the newest of eight.
    assert member_names(group) == ["a0.png", "a1.png", "a-val.png"]
    assert [m.split for m in group.members] == ["train", "train", "val"]


async def test_a_move_between_splits_shows_at_once(stores: Stores, project: str) -> None:
    await upload(stores, "a1.png", split="train", data=twin(1, 0))
    await upload(stores, "a2.png", split="val", data=twin(1, 2))
    assert (await stores.dataset.health(project)).leaking_groups == 1

    await stores.image.move(project, "a2.png", "val", "train")

    health = await stores.dataset.health(project)
    assert health.leaking_groups == 0 and health.near_duplicate_groups == 1
    (group,) = health.groups
    assert group.splits == ("train",)
    assert [m.split for m in group.members] == ["train", "train"]

    await stores.image.move_many(project, ["a1.png"], "test")

    health = await stores.dataset.health(project)
    assert health.leaking_groups == 1
    assert health.groups[0].splits == ("train", "test")
    assert split(health, "test").images == 1


async def test_an_added_or_deleted_image_changes_the_groups(stores: Stores, project: str) -> None:
    await upload(stores, "a1.png", data=twin(1, 0))
    await upload(stores, "b1.png", data=twin(2, 0))
    assert (await stores.dataset.health(project)).near_duplicate_groups == 0

    await upload(stores, "a2.png", data=twin(1, 2))

    health = await stores.dataset.health(project)
    assert [member_names(g) for g in health.groups] == [["a1.png", "a2.png"]]

    await stores.image.delete(project, "train", "a1.png")

    health = await stores.dataset.health(project)
    assert health.near_duplicate_groups == 0 and health.groups == []
    assert health.total.images == 2


async def test_a_delete_then_an_add_of_as_many_images_changes_the_groups(
    stores: Stores, project: str
) -> None:
    """The hard case for a cache: the image count stays the same and SQLite gives the new
    image the id of the deleted one (the highest), so only the hashes tell them apart."""
    await upload(stores, "a1.png", data=twin(1, 0))
    await upload(stores, "a2.png", data=twin(1, 2))
    await upload(stores, "other.png", data=twin(2, 0))
    before = await stores.dataset.health(project)
    assert [member_names(g) for g in before.groups] == [["a1.png", "a2.png"]]

    await stores.image.delete(project, "train", "other.png")
    await upload(stores, "a3.png", data=twin(1, 4))

    health = await stores.dataset.health(project)
    assert health.total.images == before.total.images
    assert [member_names(g) for g in health.groups] == [["a1.png", "a2.png", "a3.png"]]

    await stores.image.delete(project, "train", "a3.png")
    await upload(stores, "other.png", data=twin(2, 0))

    health = await stores.dataset.health(project)
    assert [member_names(g) for g in health.groups] == [["a1.png", "a2.png"]]


async def test_images_of_another_project_never_join_a_group(stores: Stores, project: str) -> None:
    await stores.dataset.create("other", ["cat"])
    await upload(stores, "mine.png", data=twin(1, 0))
    await upload(stores, "theirs.png", data=twin(1, 2), dataset="other")

    assert (await stores.dataset.health(project)).groups == []
    assert (await stores.dataset.health("other")).groups == []


async def test_the_grouping_is_computed_again_only_when_the_images_change(
    stores: Stores, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQL store keeps the grouping (about a second at 100,000 images) while the project's
    image rows stay the same; moves and label edits do not regroup."""
    calls: list[int] = []
    grouping = sql_datasets.near_duplicate_groups

    def counted(hashes):  # type: ignore[no-untyped-def]
        calls.append(1)
        return grouping(hashes)

    monkeypatch.setattr(sql_datasets, "near_duplicate_groups", counted)
    await upload(stores, "a1.png", data=twin(1, 0))
    await upload(stores, "a2.png", data=twin(1, 2))

    await stores.dataset.health(project)
    await stores.dataset.health(project)
    assert len(calls) == 1

    await stores.image.move(project, "a2.png", "train", "val")
    await stores.label.save(project, "train", "a1.png", [box(CAT)])
    health = await stores.dataset.health(project)
    assert len(calls) == 1
    assert health.leaking_groups == 1

    await upload(stores, "a3.png", data=twin(1, 4))
    health = await stores.dataset.health(project)
    assert len(calls) == 2
    assert health.near_duplicate_images == 3


async def test_the_splits_of_many_grouped_images_are_read_as_exactly_as_of_a_few(
    stores: Stores, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more grouped images than one id lookup takes, the SQL store reads the images
    outside the biggest split instead; the answer must be the same."""
    monkeypatch.setattr(sql_datasets, "IN_CHUNK", 1)
    for step in range(3):
        await upload(stores, f"a{step}.png", split="train", data=twin(1, step))
    await upload(stores, "a-test.png", split="test", data=twin(1, 3))
    await upload(stores, "b1.png", split="val", data=twin(2, 0))
    await upload(stores, "b2.png", split="val", data=twin(2, 2))

    health = await stores.dataset.health(project)

    assert [(member_names(g), g.splits) for g in health.groups] == [
        (["a0.png", "a1.png", "a2.png", "a-test.png"], ("train", "test")),
        (["b1.png", "b2.png"], ("val",)),
    ]
    assert [m.split for m in health.groups[0].members] == ["train"] * 3 + ["test"]

    await stores.image.move_many(project, ["a-test.png", "b1.png"], "train")

    health = await stores.dataset.health(project)
    assert [(member_names(g), g.splits) for g in health.groups] == [
        (["b1.png", "b2.png"], ("train", "val")),  # the leak first
        (["a0.png", "a1.png", "a2.png", "a-test.png"], ("train",)),
    ]
    assert health.leaking_groups == 1 and health.leaking_images == 2
