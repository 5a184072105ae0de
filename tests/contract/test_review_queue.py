"""LabelStore contract, project-wide review: counting pending suggestions above a confidence,
per class, and accepting them all in one unit (versions, "no objects" and label files of the
touched images only)."""

from __future__ import annotations

import pytest

from app.domain.errors import Invalid, NotFound
from app.domain.stores import Stores
from tests.contract.support import CLASSES, box, label_file, line, upload


@pytest.fixture
async def suggested(stores: Stores, project: str) -> dict[str, int]:
    """Four images: ``high.png`` (0.9 and 0.5, plus an accepted box), ``low.png`` (0.49),
    ``mixed.png`` (0.7, and one of unknown confidence), ``none.png`` ("no objects", 0.95), and
    ``plain.png`` with an accepted box and no suggestion. Returns each image's version."""
    for seed, name in enumerate(["high.png", "low.png", "mixed.png", "none.png", "plain.png"]):
        await upload(stores, name, seed=seed)
    await stores.label.save(project, "train", "high.png", [box(1, x=0.8)])
    await stores.label.save(project, "train", "plain.png", [box(2)])
    await stores.label.set_no_objects(project, "none.png", True)
    await stores.label.add_suggestions(
        project, "high.png", [box(0, confidence=0.9), box(2, x=0.2, confidence=0.5)]
    )
    await stores.label.add_suggestions(project, "low.png", [box(0, confidence=0.49)])
    await stores.label.add_suggestions(
        project, "mixed.png", [box(1, confidence=0.7), box(1, x=0.2, source="import")]
    )
    await stores.label.add_suggestions(project, "none.png", [box(0, confidence=0.95)])
    return {
        info.filename: info.version
        for info in [
            await stores.image.get(project, n)
            for n in ["high.png", "low.png", "mixed.png", "none.png", "plain.png"]
        ]
    }


async def test_the_summary_counts_pending_suggestions_and_their_images_at_a_threshold(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    assert await stores.label.suggestion_summary(project, 0.0) == (6, 4)
    assert await stores.label.suggestion_summary(project) == (6, 4)
    assert await stores.label.suggestion_summary(project, 0.5) == (4, 3)
    assert await stores.label.suggestion_summary(project, 0.9) == (2, 2)
    assert await stores.label.suggestion_summary(project, 1.0) == (0, 0)
    summary = await stores.label.suggestion_summary(project, 0.5)
    assert (summary.suggestions, summary.images) == (4, 3)


async def test_pending_suggestions_are_counted_per_class(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    classes = {c.name: c.id for c in await stores.dataset.get_classes(project)}

    per_class = await stores.label.suggestions_per_class(project)

    assert per_class == {classes["cat"]: 3, classes["dog"]: 2, classes["bird"]: 1}
    assert set(classes) == set(CLASSES)


async def test_accepting_above_a_threshold_accepts_those_and_leaves_the_others_pending(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    plain_mirror = label_file(stores, "train", "plain.png").stat()

    assert await stores.label.accept_suggestions_above(project, 0.5) == (4, 3)

    assert await stores.label.suggestion_summary(project, 0.5) == (0, 0)
    assert await stores.label.suggestion_summary(project) == (2, 2)
    high = await stores.label.load(project, "train", "high.png")
    assert [(a.class_id, a.confidence) for a in high] == [(1, None), (0, 0.9), (2, 0.5)]
    assert all(a.status == "accepted" for a in high)
    assert label_file(stores, "train", "high.png").read_text() == (
        line(1, x=0.8) + line(0) + line(2, x=0.2)
    )
    assert label_file(stores, "train", "mixed.png").read_text() == line(1)
    assert [s.confidence for s in await stores.label.list_suggestions(project, "mixed.png")] == [
        None
    ]
    assert [s.confidence for s in await stores.label.list_suggestions(project, "low.png")] == [0.49]
    assert not label_file(stores, "train", "low.png").exists()
    none = await stores.image.get(project, "none.png")
    assert none.no_objects is False
    assert label_file(stores, "train", "none.png").read_text() == line(0)
    versions = {n: (await stores.image.get(project, n)).version for n in suggested}
    assert versions == {
        "high.png": suggested["high.png"] + 1,
        "low.png": suggested["low.png"],
        "mixed.png": suggested["mixed.png"] + 1,
        "none.png": suggested["none.png"] + 1,
        "plain.png": suggested["plain.png"],
    }
    # Only the touched images' label files were rewritten.
    after = label_file(stores, "train", "plain.png").stat()
    assert (after.st_ino, after.st_mtime_ns) == (plain_mirror.st_ino, plain_mirror.st_mtime_ns)


async def test_accepting_again_finds_nothing_and_changes_nothing(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    await stores.label.accept_suggestions_above(project, 0.5)
    versions = {n: (await stores.image.get(project, n)).version for n in suggested}

    assert await stores.label.accept_suggestions_above(project, 0.5) == (0, 0)

    assert {n: (await stores.image.get(project, n)).version for n in suggested} == versions


async def test_accepting_at_zero_takes_suggestions_of_unknown_confidence_too(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    assert await stores.label.accept_suggestions_above(project, 0) == (6, 4)

    assert await stores.label.suggestion_summary(project) == (0, 0)
    assert label_file(stores, "train", "low.png").read_text() == line(0)


@pytest.mark.parametrize("threshold", [-0.1, 1.01, float("nan")])
async def test_a_threshold_outside_zero_to_one_raises_invalid(
    stores: Stores, project: str, suggested: dict[str, int], threshold: float
) -> None:
    with pytest.raises(Invalid):
        await stores.label.suggestion_summary(project, threshold)
    with pytest.raises(Invalid):
        await stores.label.accept_suggestions_above(project, threshold)

    assert await stores.label.suggestion_summary(project) == (6, 4)


async def test_the_review_of_an_unknown_project_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.label.suggestion_summary("nobody")
    with pytest.raises(NotFound):
        await stores.label.suggestions_per_class("nobody")
    with pytest.raises(NotFound):
        await stores.label.accept_suggestions_above("nobody", 0.5)


async def test_prompt_suggestions_replace_their_own_and_leave_others_pending(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.add_suggestions(project, "a.png", [box(1, x=0.2, confidence=0.8)])

    first = await stores.label.replace_suggestions(
        project, None, {"a.png": [(0, 0.9, 0.5, 0.5, 0.2, 0.2)]}
    )
    again = await stores.label.replace_suggestions(
        project, None, {"a.png": [(2, 0.6, 0.7, 0.7, 0.1, 0.1)]}
    )

    assert (first["added"], again["added"], again["replaced"]) == (1, 1, 1)
    pending = await stores.label.list_suggestions(project, "a.png")
    assert sorted((s.class_id, s.source, s.model) for s in pending) == [
        (1, "model", None),
        (2, "prompt", None),
    ]


async def test_images_come_least_confident_first_unknown_confidence_last(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    queue = await stores.label.uncertain_images(project)

    # low 0.49; high min(0.9, 0.5); mixed 0.7 and an unknown; none 0.95 (plain has none)
    assert [(i.filename, i.lowest, i.suggestions) for i in queue] == [
        ("low.png", 0.49, 1),
        ("high.png", 0.5, 2),
        ("mixed.png", 0.7, 2),
        ("none.png", 0.95, 1),
    ]
    await upload(stores, "unknown.png", seed=9)
    await stores.label.add_suggestions(project, "unknown.png", [box(0, source="import")])
    last = (await stores.label.uncertain_images(project))[-1]
    assert (last.filename, last.lowest) == ("unknown.png", None)


async def test_the_least_confident_order_pages_by_its_rank_both_ways(
    stores: Stores, project: str, suggested: dict[str, int]
) -> None:
    queue = await stores.label.uncertain_images(project)

    after = await stores.label.uncertain_images(project, after=queue[1].rank, limit=1)
    before = await stores.label.uncertain_images(project, before=queue[2].rank, limit=5)

    assert [i.filename for i in after] == [queue[2].filename]
    assert [i.filename for i in before] == [queue[1].filename, queue[0].filename]
    assert await stores.label.uncertain_images(project, after=queue[-1].rank) == []
    with pytest.raises(Invalid):
        await stores.label.uncertain_images(project, limit=0)
