"""LabelStore contract: accepted boxes are the truth, ``labels/<split>/<stem>.txt`` their mirror;
versions guard against lost updates; suggestions stay out of the mirror."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.contract.support import (
    HEIGHT,
    WIDTH,
    box,
    boxes,
    files_under,
    image_file,
    label_file,
    line,
    png,
    project_dir,
    upload,
)


async def register_model(stores: Stores, project: str, tmp_path: Path, name: str = "m1") -> str:
    """A model of the project (suggestions name it); its weights are a few dummy bytes."""
    weights = tmp_path / f"{name}.pt"
    weights.write_bytes(b"weights")
    await stores.model.save(name, weights, "yolov8n.pt", project, 1, {})
    return name


async def version_of(stores: Stores, project: str, filename: str) -> int:
    return (await stores.image.get(project, filename)).version


@pytest.fixture
async def image(stores: Stores, project: str) -> str:
    """An unlabelled image ``a.png`` in the train split."""
    return (await upload(stores, "a.png", seed=1)).filename


# --- save and load ------------------------------------------------------------------------


async def test_saved_boxes_load_back_with_ids_and_their_source(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(
        project, "train", image, [box(0, x=0.25), box(2, x=0.75, source="model", confidence=0.8)]
    )

    loaded = await stores.label.load(project, "train", image)

    assert boxes(loaded) == [(0, 0.25, 0.5, 0.25, 0.25), (2, 0.75, 0.5, 0.25, 0.25)]
    assert all(a.id is not None for a in loaded)
    assert [(a.source, a.confidence, a.status) for a in loaded] == [
        ("manual", None, "accepted"),
        ("model", 0.8, "accepted"),
    ]


async def test_saving_boxes_writes_the_label_file_with_six_decimals(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(
        project,
        "train",
        image,
        [box(0, 0.1, 0.2, 0.15, 0.25), box(1, 1 / 3, 0.5, 0.125, 0.5), box(2, 0.9, 0.9, 0.2, 0.2)],
    )

    assert label_file(stores, "train", image).read_text() == (
        "0 0.100000 0.200000 0.150000 0.250000\n"
        "1 0.333333 0.500000 0.125000 0.500000\n"
        "2 0.900000 0.900000 0.200000 0.200000\n"
    )


async def test_saving_replaces_the_previous_boxes(stores: Stores, project: str, image: str) -> None:
    await stores.label.save(project, "train", image, [box(0), box(1, x=0.2)])

    await stores.label.save(project, "train", image, [box(2, x=0.8)])

    assert boxes(await stores.label.load(project, "train", image)) == [(2, 0.8, 0.5, 0.25, 0.25)]
    assert label_file(stores, "train", image).read_text() == line(2, x=0.8)


async def test_saving_bumps_the_version_and_marks_the_image_labelled(
    stores: Stores, project: str, image: str
) -> None:
    before = await stores.image.get(project, image)

    await stores.label.save(project, "train", image, [box(0)])

    after = await stores.image.get(project, image)
    assert after.version == before.version + 1
    assert after.has_labels is True
    assert await stores.label.exists(project, "train", image) is True


async def test_saving_with_the_current_version_succeeds(
    stores: Stores, project: str, image: str
) -> None:
    version = await version_of(stores, project, image)

    await stores.label.save(project, "train", image, [box(0)], expected_version=version)
    await stores.label.save(project, "train", image, [box(1)], expected_version=version + 1)

    assert [a.class_id for a in await stores.label.load(project, "train", image)] == [1]
    assert await version_of(stores, project, image) == version + 2


async def test_saving_with_a_stale_version_raises_conflict_and_changes_nothing(
    stores: Stores, project: str, image: str
) -> None:
    stale = await version_of(stores, project, image)
    await stores.label.save(project, "train", image, [box(0)])
    mirror = label_file(stores, "train", image).read_bytes()

    with pytest.raises(Conflict):
        await stores.label.save(project, "train", image, [box(1)], expected_version=stale)

    assert boxes(await stores.label.load(project, "train", image)) == [(0, 0.5, 0.5, 0.25, 0.25)]
    assert label_file(stores, "train", image).read_bytes() == mirror
    assert await version_of(stores, project, image) == stale + 1


@pytest.mark.parametrize(
    "bad",
    [
        box(3),
        box(-1),
        box(0, x=0.95, w=0.2),
        box(0, y=0.05, h=0.2),
        box(0, x=1.2, w=0.1),
        box(0, w=0.5 / WIDTH),
        box(0, h=0.5 / HEIGHT),
        box(0, w=0.0),
        box(0, x=float("nan")),
    ],
    ids=[
        "class-too-high",
        "class-negative",
        "past-right-edge",
        "past-top-edge",
        "centre-outside",
        "under-a-pixel-wide",
        "under-a-pixel-high",
        "zero-width",
        "nan",
    ],
)
async def test_an_invalid_box_raises_invalid_and_keeps_the_old_labels_and_file(
    stores: Stores, project: str, image: str, bad: Annotation
) -> None:
    await stores.label.save(project, "train", image, [box(0)])
    mirror = label_file(stores, "train", image).read_bytes()
    version = await version_of(stores, project, image)

    with pytest.raises(Invalid) as caught:
        await stores.label.save(project, "train", image, [box(1), bad])

    assert isinstance(caught.value, ValueError)
    assert boxes(await stores.label.load(project, "train", image)) == [(0, 0.5, 0.5, 0.25, 0.25)]
    assert label_file(stores, "train", image).read_bytes() == mirror
    assert await version_of(stores, project, image) == version


async def test_a_box_of_exactly_one_pixel_touching_the_edges_is_accepted(
    stores: Stores, project: str, image: str
) -> None:
    one_px = 1 / WIDTH
    await stores.label.save(project, "train", image, [box(0, x=one_px / 2, y=0.5, w=one_px, h=1.0)])

    assert len(await stores.label.load(project, "train", image)) == 1


async def test_resaving_a_label_by_id_keeps_its_source_and_confidence(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(
        project, "train", image, [box(0, source="prompt", confidence=0.7), box(1, x=0.2)]
    )
    prompted, manual = await stores.label.load(project, "train", image)

    edited = Annotation(2, 0.6, 0.4, 0.3, 0.2, id=prompted.id)  # the editor sends defaults
    await stores.label.save(
        project, "train", image, [edited, Annotation(1, 0.2, 0.5, 0.25, 0.25, id=manual.id)]
    )

    loaded = {a.id: a for a in await stores.label.load(project, "train", image)}
    assert set(loaded) == {prompted.id, manual.id}
    kept = loaded[prompted.id]
    assert (kept.class_id, kept.x, kept.y, kept.width, kept.height) == (2, 0.6, 0.4, 0.3, 0.2)
    assert (kept.source, kept.confidence) == ("prompt", 0.7)
    assert loaded[manual.id].source == "manual"


async def test_saving_an_unknown_image_or_in_the_wrong_split_raises_not_found(
    stores: Stores, project: str, image: str
) -> None:
    with pytest.raises(NotFound):
        await stores.label.save(project, "train", "missing.png", [box(0)])
    with pytest.raises(NotFound):
        await stores.label.save(project, "val", image, [box(0)])
    with pytest.raises(NotFound):
        await stores.label.save("nobody", "train", image, [box(0)])

    assert await stores.label.load(project, "train", image) == []
    assert files_under(project_dir(stores) / "labels") == set()


async def test_an_unlabelled_image_has_no_boxes_and_no_label_file(
    stores: Stores, project: str, image: str
) -> None:
    assert await stores.label.load(project, "train", image) == []
    assert await stores.label.exists(project, "train", image) is False
    assert not label_file(stores, "train", image).exists()


async def test_saving_no_boxes_leaves_the_image_unlabelled_without_a_label_file(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(0)])

    await stores.label.save(project, "train", image, [])

    assert await stores.label.load(project, "train", image) == []
    assert await stores.label.exists(project, "train", image) is False
    assert not label_file(stores, "train", image).exists()


async def test_loading_the_labels_of_an_unknown_image_raises_not_found(
    stores: Stores, project: str, image: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await stores.label.load(project, "train", "missing.png")
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(NotFound):
        await stores.label.load(project, "val", image)


# --- delete -------------------------------------------------------------------------------


async def test_deleting_labels_removes_the_boxes_and_the_label_file(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(0)])
    version = await version_of(stores, project, image)

    assert await stores.label.delete(project, "train", image) is True

    assert await stores.label.load(project, "train", image) == []
    assert await stores.label.exists(project, "train", image) is False
    assert not label_file(stores, "train", image).exists()
    assert image_file(stores, "train", image).exists()
    assert await version_of(stores, project, image) > version


async def test_deleting_labels_clears_the_no_objects_mark(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.set_no_objects(project, image, True)

    assert await stores.label.delete(project, "train", image) is True

    assert (await stores.image.get(project, image)).no_objects is False
    assert not label_file(stores, "train", image).exists()


async def test_deleting_the_labels_of_an_unlabelled_or_unknown_image_returns_false(
    stores: Stores, project: str, image: str
) -> None:
    version = await version_of(stores, project, image)

    assert await stores.label.delete(project, "train", image) is False
    assert await stores.label.delete(project, "train", "missing.png") is False

    assert await version_of(stores, project, image) == version


# --- move ---------------------------------------------------------------------------------


async def test_moving_labels_moves_the_image_with_its_label_file(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(2)])

    await stores.label.move(project, image, "train", "test")

    assert (await stores.image.get(project, image)).split == "test"
    assert image_file(stores, "test", image).read_bytes() == png(1)
    assert not image_file(stores, "train", image).exists()
    assert label_file(stores, "test", image).read_text() == line(2)
    assert not label_file(stores, "train", image).exists()


async def test_moving_labels_after_the_image_moved_is_a_no_op(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(2)])
    await stores.image.move(project, image, "train", "val")

    await stores.label.move(project, image, "train", "val")

    assert (await stores.image.get(project, image)).split == "val"
    assert label_file(stores, "val", image).read_text() == line(2)
    assert files_under(project_dir(stores) / "labels") == {"val/a.txt"}


async def test_moving_labels_of_an_image_in_neither_split_raises_not_found(
    stores: Stores, project: str, image: str
) -> None:
    with pytest.raises(NotFound):
        await stores.label.move(project, image, "val", "test")
    with pytest.raises(NotFound):
        await stores.label.move(project, "missing.png", "train", "val")

    assert (await stores.image.get(project, image)).split == "train"


# --- exists -------------------------------------------------------------------------------


async def test_exists_is_true_for_boxes_or_no_objects_and_false_otherwise(
    stores: Stores, project: str
) -> None:
    await upload(stores, "boxed.png", seed=1)
    await upload(stores, "none.png", seed=2)
    await upload(stores, "plain.png", seed=3)
    await upload(stores, "suggested.png", seed=4)
    await stores.label.save(project, "train", "boxed.png", [box(0)])
    await stores.label.set_no_objects(project, "none.png", True)
    await stores.label.add_suggestions(project, "suggested.png", [box(0, confidence=0.5)])

    assert await stores.label.exists(project, "train", "boxed.png") is True
    assert await stores.label.exists(project, "train", "none.png") is True
    assert await stores.label.exists(project, "train", "plain.png") is False
    assert await stores.label.exists(project, "train", "suggested.png") is False
    assert await stores.label.exists(project, "val", "boxed.png") is False
    assert await stores.label.exists(project, "train", "missing.png") is False


# --- no objects ---------------------------------------------------------------------------


async def test_marking_no_objects_writes_an_empty_label_file_and_removes_the_boxes(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(0)])
    version = await version_of(stores, project, image)

    await stores.label.set_no_objects(project, image, True)

    info = await stores.image.get(project, image)
    assert info.no_objects is True
    assert info.has_labels is True
    assert info.version == version + 1
    assert await stores.label.load(project, "train", image) == []
    assert label_file(stores, "train", image).read_bytes() == b""


async def test_marking_no_objects_rejects_the_pending_suggestions(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.add_suggestions(project, image, [box(0, confidence=0.9), box(1, x=0.2)])

    await stores.label.set_no_objects(project, image, True)

    assert await stores.label.list_suggestions(project, image) == []
    assert await stores.label.load(project, "train", image) == []
    assert label_file(stores, "train", image).read_bytes() == b""


async def test_clearing_no_objects_leaves_the_image_unlabelled_without_a_label_file(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.set_no_objects(project, image, True)

    await stores.label.set_no_objects(project, image, False)

    assert (await stores.image.get(project, image)).no_objects is False
    assert await stores.label.exists(project, "train", image) is False
    assert not label_file(stores, "train", image).exists()


async def test_saving_boxes_clears_no_objects(stores: Stores, project: str, image: str) -> None:
    await stores.label.set_no_objects(project, image, True)

    await stores.label.save(project, "train", image, [box(1)])

    assert (await stores.image.get(project, image)).no_objects is False
    assert label_file(stores, "train", image).read_text() == line(1)


async def test_marking_no_objects_with_a_stale_version_raises_conflict_and_changes_nothing(
    stores: Stores, project: str, image: str
) -> None:
    stale = await version_of(stores, project, image)
    await stores.label.save(project, "train", image, [box(0)])
    mirror = label_file(stores, "train", image).read_bytes()

    with pytest.raises(Conflict):
        await stores.label.set_no_objects(project, image, True, expected_version=stale)

    info = await stores.image.get(project, image)
    assert (info.no_objects, info.version) == (False, stale + 1)
    assert boxes(await stores.label.load(project, "train", image)) == [(0, 0.5, 0.5, 0.25, 0.25)]
    assert label_file(stores, "train", image).read_bytes() == mirror


async def test_marking_no_objects_on_an_unknown_image_raises_not_found(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound):
        await stores.label.set_no_objects(project, "missing.png", True)


# --- suggestions --------------------------------------------------------------------------


async def test_suggestions_are_listed_as_pending_but_not_loaded_as_labels(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.add_suggestions(
        project, image, [box(0, source="model", confidence=0.9), box(2, x=0.2, confidence=0.4)]
    )

    suggestions = await stores.label.list_suggestions(project, image)

    assert boxes(suggestions) == [(0, 0.5, 0.5, 0.25, 0.25), (2, 0.2, 0.5, 0.25, 0.25)]
    assert [(s.status, s.confidence) for s in suggestions] == [("pending", 0.9), ("pending", 0.4)]
    assert all(s.id is not None for s in suggestions)
    assert await stores.label.load(project, "train", image) == []


async def test_suggestions_do_not_bump_the_version_nor_touch_the_mirror(
    stores: Stores, project: str
) -> None:
    await upload(stores, "plain.png", seed=1)
    await upload(stores, "boxed.png", seed=2)
    await stores.label.save(project, "train", "boxed.png", [box(1)])
    versions = {n: await version_of(stores, project, n) for n in ("plain.png", "boxed.png")}
    mirror = label_file(stores, "train", "boxed.png").read_bytes()

    await stores.label.add_suggestions(project, "plain.png", [box(0, confidence=0.5)])
    await stores.label.add_suggestions(project, "boxed.png", [box(2, x=0.2, confidence=0.5)])

    assert {n: await version_of(stores, project, n) for n in versions} == versions
    assert not label_file(stores, "train", "plain.png").exists()
    assert label_file(stores, "train", "boxed.png").read_bytes() == mirror
    assert (await stores.image.get(project, "plain.png")).has_labels is False


async def test_saving_with_a_suggestion_id_accepts_it_keeping_its_source_and_confidence(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.add_suggestions(project, image, [box(0, source="model", confidence=0.9)])
    (suggestion,) = await stores.label.list_suggestions(project, image)

    await stores.label.save(project, "train", image, [suggestion])

    (accepted,) = await stores.label.load(project, "train", image)
    assert accepted.id == suggestion.id
    assert (accepted.source, accepted.confidence, accepted.status) == ("model", 0.9, "accepted")
    assert await stores.label.list_suggestions(project, image) == []
    assert label_file(stores, "train", image).read_text() == line(0)


async def test_an_invalid_suggestion_raises_invalid_and_adds_nothing(
    stores: Stores, project: str, image: str
) -> None:
    with pytest.raises(Invalid):
        await stores.label.add_suggestions(project, image, [box(0), box(7)])

    assert await stores.label.list_suggestions(project, image) == []


async def test_suggestions_for_an_unknown_image_raise_not_found(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound):
        await stores.label.add_suggestions(project, "missing.png", [box(0)])
    with pytest.raises(NotFound):
        await stores.label.list_suggestions(project, "missing.png")


async def test_saved_labels_and_suggestions_read_back_together_with_the_image(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(0, x=0.25)])
    await stores.label.add_suggestions(project, image, [box(1, x=0.75, confidence=0.4)])

    found = await stores.label.image_labels(project, image)

    assert (found.image.filename, found.image.split) == (image, "train")
    assert (found.image.width, found.image.height) == (WIDTH, HEIGHT)
    assert found.image.version == await version_of(stores, project, image)
    assert boxes(found.labels) == [(0, 0.25, 0.5, 0.25, 0.25)]
    assert boxes(found.suggestions) == [(1, 0.75, 0.5, 0.25, 0.25)]
    assert [a.id for a in found.labels] == [
        a.id for a in await stores.label.load(project, "train", image)
    ]
    assert [a.id for a in found.suggestions] == [
        a.id for a in await stores.label.list_suggestions(project, image)
    ]
    with pytest.raises(NotFound):
        await stores.label.image_labels(project, "missing.png")


async def test_saving_without_a_split_finds_the_image_in_its_split(
    stores: Stores, project: str
) -> None:
    await upload(stores, "v.png", split="val", seed=3)

    await stores.label.save(project, None, "v.png", [box(1)])

    assert label_file(stores, "val", "v.png").read_text() == line(1)


# --- saving with suggestions ----------------------------------------------------------------


async def test_suggestions_added_after_loading_stay_pending_through_a_save(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.add_suggestions(project, image, [box(0, confidence=0.9)])
    loaded = await stores.label.image_labels(project, image)
    # An auto-label run adds a suggestion while the annotator edits.
    await stores.label.add_suggestions(project, image, [box(2, x=0.2, confidence=0.6)])

    await stores.label.save(
        project, "train", image, [box(1)], expected_version=loaded.image.version
    )

    assert [s.class_id for s in await stores.label.list_suggestions(project, image)] == [0, 2]
    assert boxes(await stores.label.load(project, "train", image)) == [(1, 0.5, 0.5, 0.25, 0.25)]


async def test_saving_with_reject_rejects_those_suggestions_and_keeps_the_others_pending(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.add_suggestions(
        project, image, [box(0, confidence=0.9), box(1, x=0.2, confidence=0.3)]
    )
    first, second = await stores.label.list_suggestions(project, image)
    version = await version_of(stores, project, image)

    await stores.label.save(
        project, "train", image, [box(2)], expected_version=version, reject=[first.id or 0]
    )

    assert [s.id for s in await stores.label.list_suggestions(project, image)] == [second.id]
    assert [a.class_id for a in await stores.label.load(project, "train", image)] == [2]
    assert label_file(stores, "train", image).read_text() == line(2)
    assert await version_of(stores, project, image) == version + 1


@pytest.mark.parametrize("which", ["unknown", "accepted", "kept"])
async def test_rejecting_what_is_not_a_pending_suggestion_raises_invalid_and_changes_nothing(
    stores: Stores, project: str, image: str, which: str
) -> None:
    await stores.label.save(project, "train", image, [box(0)])
    await stores.label.add_suggestions(project, image, [box(1, x=0.2, confidence=0.5)])
    (accepted,) = await stores.label.load(project, "train", image)
    (suggestion,) = await stores.label.list_suggestions(project, image)
    mirror = label_file(stores, "train", image).read_bytes()
    version = await version_of(stores, project, image)
    keep = [accepted]
    reject = {"unknown": 10_000, "accepted": accepted.id, "kept": suggestion.id}[which]
    if which == "kept":
        keep.append(suggestion)

    with pytest.raises(Invalid):
        await stores.label.save(project, "train", image, keep, reject=[reject or 0])

    assert await stores.label.load(project, "train", image) == [accepted]
    assert await stores.label.list_suggestions(project, image) == [suggestion]
    assert label_file(stores, "train", image).read_bytes() == mirror
    assert await version_of(stores, project, image) == version


async def test_saving_no_objects_marks_the_image_and_rejects_its_suggestions(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(0)])
    await stores.label.add_suggestions(project, image, [box(1, confidence=0.9)])
    version = await version_of(stores, project, image)

    await stores.label.save(project, "train", image, [], expected_version=version, no_objects=True)

    info = await stores.image.get(project, image)
    assert (info.no_objects, info.has_labels, info.version) == (True, True, version + 1)
    assert await stores.label.load(project, "train", image) == []
    assert await stores.label.list_suggestions(project, image) == []
    assert label_file(stores, "train", image).read_bytes() == b""


async def test_saving_boxes_with_no_objects_raises_invalid_and_changes_nothing(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(0)])
    version = await version_of(stores, project, image)

    with pytest.raises(Invalid):
        await stores.label.save(project, "train", image, [box(1)], no_objects=True)

    info = await stores.image.get(project, image)
    assert (info.no_objects, info.version) == (False, version)
    assert label_file(stores, "train", image).read_text() == line(0)


async def test_saving_no_boxes_without_no_objects_clears_the_mark(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.set_no_objects(project, image, True)

    await stores.label.save(project, "train", image, [])

    assert (await stores.image.get(project, image)).no_objects is False
    assert not label_file(stores, "train", image).exists()


async def test_an_accepted_suggestion_keeps_its_model(
    stores: Stores, project: str, image: str, tmp_path: Path
) -> None:
    model = await register_model(stores, project, tmp_path)
    await stores.label.add_suggestions(
        project, image, [box(0, source="model", confidence=0.8, model=model)]
    )
    (suggestion,) = await stores.label.list_suggestions(project, image)
    assert suggestion.model == model

    await stores.label.save(project, "train", image, [box(1, id=suggestion.id)])

    (accepted,) = await stores.label.load(project, "train", image)
    assert (accepted.id, accepted.class_id) == (suggestion.id, 1)
    assert (accepted.source, accepted.model, accepted.confidence) == ("model", model, 0.8)


@pytest.mark.parametrize(
    "bad",
    [
        box(0, model="nobody"),
        box(0, confidence=1.5),
        box(0, confidence=-0.1),
        box(0, confidence=float("nan")),
        box(0, source="guess"),
    ],
    ids=["unknown-model", "confidence-above-1", "negative-confidence", "nan", "bad-source"],
)
async def test_a_suggestion_with_a_bad_model_confidence_or_source_raises_invalid(
    stores: Stores, project: str, image: str, bad: Annotation
) -> None:
    with pytest.raises(Invalid):
        await stores.label.add_suggestions(project, image, [box(1, confidence=0.5), bad])

    assert await stores.label.list_suggestions(project, image) == []


# --- accepting and rejecting suggestions ----------------------------------------------------


async def test_accepting_a_suggestion_makes_it_a_label_keeping_source_and_confidence(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.set_no_objects(project, image, True)
    await stores.label.add_suggestions(
        project, image, [box(0, source="prompt", confidence=0.7), box(2, x=0.2, confidence=0.2)]
    )
    wanted, other = await stores.label.list_suggestions(project, image)
    version = await version_of(stores, project, image)

    assert await stores.label.accept_suggestions(project, image, [wanted.id or 0]) == 1

    (accepted,) = await stores.label.load(project, "train", image)
    assert accepted.id == wanted.id
    assert (accepted.source, accepted.confidence, accepted.status) == ("prompt", 0.7, "accepted")
    assert await stores.label.list_suggestions(project, image) == [other]
    info = await stores.image.get(project, image)
    assert (info.version, info.no_objects) == (version + 1, False)
    assert label_file(stores, "train", image).read_text() == line(0)


async def test_accepting_all_suggestions_of_an_image(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(1, x=0.8)])
    await stores.label.add_suggestions(project, image, [box(0, x=0.2), box(2, confidence=0.1)])

    assert await stores.label.accept_suggestions(project, image) == 2

    assert [a.class_id for a in await stores.label.load(project, "train", image)] == [1, 0, 2]
    assert await stores.label.list_suggestions(project, image) == []
    assert label_file(stores, "train", image).read_text() == (
        line(1, x=0.8) + line(0, x=0.2) + line(2)
    )


async def test_rejecting_suggestions_keeps_them_out_of_labels_mirror_and_export(
    stores: Stores, project: str, image: str, tmp_path: Path
) -> None:
    await stores.label.save(project, "train", image, [box(1)])
    await stores.label.add_suggestions(project, image, [box(0, x=0.2), box(2, confidence=0.9)])
    first, second = await stores.label.list_suggestions(project, image)
    mirror = label_file(stores, "train", image).read_bytes()
    version = await version_of(stores, project, image)

    assert await stores.label.reject_suggestions(project, image, [first.id or 0]) == 1
    assert await version_of(stores, project, image) == version + 1
    assert await stores.label.list_suggestions(project, image) == [second]
    assert await stores.label.reject_suggestions(project, image) == 1

    assert await stores.label.list_suggestions(project, image) == []
    assert [a.class_id for a in await stores.label.load(project, "train", image)] == [1]
    assert label_file(stores, "train", image).read_bytes() == mirror
    assert await version_of(stores, project, image) == version + 2
    result = await stores.dataset.export(project, tmp_path / "out")
    with zipfile.ZipFile(result.path) as archive:
        assert archive.read("labels/train/a.txt").decode() == line(1)


@pytest.mark.parametrize("action", ["accept", "reject"])
async def test_accepting_or_rejecting_an_unknown_suggestion_raises_not_found_and_changes_nothing(
    stores: Stores, project: str, image: str, action: str
) -> None:
    await stores.label.add_suggestions(project, image, [box(0, confidence=0.9)])
    (suggestion,) = await stores.label.list_suggestions(project, image)
    version = await version_of(stores, project, image)
    review = getattr(stores.label, f"{action}_suggestions")

    with pytest.raises(NotFound):
        await review(project, image, [suggestion.id, 10_000])
    with pytest.raises(NotFound):
        await review(project, "missing.png")

    assert await stores.label.list_suggestions(project, image) == [suggestion]
    assert await version_of(stores, project, image) == version


@pytest.mark.parametrize("action", ["accept", "reject"])
async def test_accepting_or_rejecting_with_a_stale_version_raises_conflict(
    stores: Stores, project: str, image: str, action: str
) -> None:
    await stores.label.add_suggestions(project, image, [box(0, confidence=0.9)])
    stale = await version_of(stores, project, image)
    await stores.label.save(project, "train", image, [box(1, x=0.2)])
    review = getattr(stores.label, f"{action}_suggestions")

    with pytest.raises(Conflict):
        await review(project, image, expected_version=stale)

    assert len(await stores.label.list_suggestions(project, image)) == 1


async def test_accepting_or_rejecting_when_nothing_is_pending_changes_nothing(
    stores: Stores, project: str, image: str
) -> None:
    version = await version_of(stores, project, image)

    assert await stores.label.accept_suggestions(project, image) == 0
    assert await stores.label.reject_suggestions(project, image) == 0

    assert await version_of(stores, project, image) == version
    assert not label_file(stores, "train", image).exists()


async def test_the_label_file_lists_boxes_in_label_id_order_after_a_mixed_save(
    stores: Stores, project: str, image: str
) -> None:
    await stores.label.save(project, "train", image, [box(1, x=0.3)])
    (manual,) = await stores.label.load(project, "train", image)
    await stores.label.add_suggestions(project, image, [box(2, x=0.7, confidence=0.9)])
    (suggestion,) = await stores.label.list_suggestions(project, image)

    saved = await stores.label.save(
        project,
        "train",
        image,
        [box(0, x=0.2), box(2, x=0.7, id=suggestion.id), box(1, x=0.3, id=manual.id)],
    )

    assert [a.id for a in saved.labels] == sorted(a.id or 0 for a in saved.labels)
    assert saved.labels == await stores.label.load(project, "train", image)
    assert [a.class_id for a in saved.labels] == [1, 2, 0]
    assert label_file(stores, "train", image).read_text() == (
        line(1, x=0.3) + line(2, x=0.7) + line(0, x=0.2)
    )
    assert saved.image.version == await version_of(stores, project, image)
