"""ImageStore contract for the image grid: search and count with every filter and their
combinations, keyset pagination, and the bulk actions (move, delete, rebalance) that keep the
database and the disk in agreement.

Decision on a class filter: the class must be one of the project's own classes (by stable id); a
class of another project, or an id no class has, raises ``Invalid`` (a filter that can never match
is a mistake to report, not an empty grid).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.domain.errors import Invalid, NotFound
from app.domain.models import SPLITS, ImageFilter, ImageInfo, ImageState
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from tests.conftest import execute_sql
from tests.contract.support import (
    box,
    files_under,
    image_file,
    label_file,
    project_dir,
    upload,
)

CAT, DOG, BIRD = 0, 1, 2  # YOLO indices of the sample project's classes


@dataclass
class Sample:
    """What the grid should know about one image of the sample set."""

    filename: str
    split: str
    boxes: list[int] = field(default_factory=list)  # accepted, by class index
    pending: list[int] = field(default_factory=list)  # suggestions, by class index
    no_objects: bool = False
    missing: bool = False

    @property
    def labelled(self) -> bool:
        return bool(self.boxes) or self.no_objects

    def matches(
        self, split: str | None, state: ImageState | None, cls: int | None, name: str | None
    ) -> bool:
        if split is not None and self.split != split:
            return False
        if cls is not None and cls not in self.boxes:
            return False
        if name and name.casefold() not in self.filename.casefold():
            return False
        return {
            None: True,
            ImageState.LABELLED: self.labelled,
            ImageState.UNLABELLED: not self.labelled,
            ImageState.NO_OBJECTS: self.no_objects,
            ImageState.SUGGESTIONS: bool(self.pending),
            ImageState.MISSING: self.missing,
        }[state]


SAMPLES = [
    Sample("street-01.png", "train", boxes=[CAT]),
    Sample("street-02.png", "val", boxes=[DOG, BIRD], pending=[CAT]),
    Sample("park-01.png", "test", no_objects=True),
    Sample("park-02.png", "train", pending=[DOG]),
    Sample("Park-03.png", "train"),
    Sample("street-03.png", "val", boxes=[CAT], missing=True),
    Sample("beach.png", "test", boxes=[BIRD, BIRD]),
    Sample("harbour.png", "val", missing=True),
]


async def mark_missing(stores: Stores, split: str, filename: str) -> None:
    """Lose the image's file and flag its row missing, as the start-up reconcile would (no store
    method sets the flag, so the SQL backend's row is changed directly)."""
    image_file(stores, split, filename).unlink()
    await execute_sql(stores, "UPDATE image SET missing = true WHERE filename = :f", f=filename)


async def fill(stores: Stores, project: str, samples: list[Sample]) -> None:
    for seed, sample in enumerate(samples):
        info = await upload(stores, sample.filename, split=sample.split, seed=seed)
        assert info.filename == sample.filename
        if sample.boxes:
            await stores.label.save(
                project, sample.split, sample.filename, [box(c) for c in sample.boxes]
            )
        if sample.no_objects:
            await stores.label.set_no_objects(project, sample.filename, True)
        if sample.pending:
            await stores.label.add_suggestions(
                project, sample.filename, [box(c, x=0.3) for c in sample.pending]
            )
    for sample in samples:
        if sample.missing:
            await mark_missing(stores, sample.split, sample.filename)


@pytest.fixture
async def grid(stores: Stores, project: str) -> str:
    """The sample project filled with ``SAMPLES``."""
    await fill(stores, project, SAMPLES)
    return project


async def class_ids(stores: Stores, project: str) -> dict[int, int]:
    """Stable class id by YOLO index."""
    return {c.position: c.id for c in await stores.dataset.get_classes(project)}


async def walk(
    stores: Stores, project: str, filters: ImageFilter | None, limit: int
) -> list[ImageInfo]:
    """Every page of a search, following the keyset cursor to the end."""
    seen: list[ImageInfo] = []
    after: int | None = None
    for _ in range(100):
        page = await stores.image.search(project, filters, after_id=after, limit=limit)
        assert len(page) <= limit
        if not page:
            return seen
        seen += page
        after = page[-1].id
    raise AssertionError("the cursor never reached the end")


def names(images: list[ImageInfo]) -> list[str]:
    return [i.filename for i in images]


def disk_state(stores: Stores, project: str) -> tuple[set[str], set[str]]:
    """(images, label files) on disk, as ``split/file`` paths."""
    folder = project_dir(stores, project)
    return files_under(folder / "images"), files_under(folder / "labels")


async def db_state(stores: Stores, project: str) -> tuple[set[str], set[str]]:
    """What the rows say should be on disk: every image, and a label file per labelled one."""
    rows = await stores.image.list(project)
    images = {f"{i.split}/{i.filename}" for i in rows if not i.missing}
    labels = {f"{i.split}/{Path(i.filename).stem}.txt" for i in rows if i.has_labels}
    return images, labels


# --- search and count ---------------------------------------------------------------------


async def test_every_combination_of_filters_finds_exactly_the_matching_images(
    stores: Stores, grid: str
) -> None:
    ids = await class_ids(stores, grid)
    all_ids = [i.id for i in await stores.image.list(grid)]

    for split, state, cls, name in itertools.product(
        [None, *SPLITS], [None, *ImageState], [None, CAT, DOG, BIRD], [None, "street", "PARK", "-0"]
    ):
        filters = ImageFilter(
            split=split, state=state, class_id=None if cls is None else ids[cls], name=name
        )
        expected = [s.filename for s in SAMPLES if s.matches(split, state, cls, name)]

        found = await stores.image.search(grid, filters, limit=100)

        assert sorted(names(found)) == sorted(expected), filters
        assert [i.id for i in found] == sorted(i.id for i in found), filters
        assert set(i.id for i in found) <= set(all_ids)
        assert await stores.image.count(grid, filters) == len(expected), filters


async def test_no_filter_and_an_empty_filter_find_every_image(stores: Stores, grid: str) -> None:
    everything = await stores.image.list(grid)

    assert names(await stores.image.search(grid)) == names(everything)
    assert names(await stores.image.search(grid, ImageFilter())) == names(everything)
    assert names(await stores.image.search(grid, ImageFilter(name=""))) == names(everything)
    assert await stores.image.count(grid) == len(SAMPLES)
    assert await stores.image.count(grid, ImageFilter()) == len(SAMPLES)


async def test_search_results_say_which_images_are_labelled(stores: Stores, grid: str) -> None:
    found = {i.filename: i for i in await stores.image.search(grid)}

    for sample in SAMPLES:
        info = found[sample.filename]
        assert info.has_labels is sample.labelled, sample.filename
        assert info.no_objects is sample.no_objects
        assert info.missing is sample.missing
        assert info.split == sample.split
        assert info.dataset == grid


async def test_pending_suggestions_alone_leave_an_image_unlabelled(
    stores: Stores, grid: str
) -> None:
    suggested = await stores.image.search(grid, ImageFilter(state=ImageState.SUGGESTIONS))
    unlabelled = await stores.image.search(grid, ImageFilter(state=ImageState.UNLABELLED))

    assert sorted(names(suggested)) == ["park-02.png", "street-02.png"]
    assert "park-02.png" in names(unlabelled)
    assert "street-02.png" not in names(unlabelled)


async def test_the_class_filter_sees_accepted_boxes_not_suggestions(
    stores: Stores, grid: str
) -> None:
    ids = await class_ids(stores, grid)

    cats = await stores.image.search(grid, ImageFilter(class_id=ids[CAT]))
    dogs = await stores.image.search(grid, ImageFilter(class_id=ids[DOG]))

    # street-02 only has a cat suggestion; park-02 only a dog suggestion.
    assert sorted(names(cats)) == ["street-01.png", "street-03.png"]
    assert names(dogs) == ["street-02.png"]


async def test_rejected_suggestions_count_as_no_suggestions(stores: Stores, project: str) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.add_suggestions(project, "a.png", [box(CAT)])
    assert await stores.image.count(project, ImageFilter(state=ImageState.SUGGESTIONS)) == 1

    await stores.label.set_no_objects(project, "a.png", True)  # rejects the suggestion

    assert await stores.image.count(project, ImageFilter(state=ImageState.SUGGESTIONS)) == 0
    assert names(await stores.image.search(project, ImageFilter(state=ImageState.NO_OBJECTS))) == [
        "a.png"
    ]


async def test_the_class_filter_follows_the_stable_id_when_classes_are_reordered(
    stores: Stores, grid: str
) -> None:
    ids = await class_ids(stores, grid)
    cats_before = names(await stores.image.search(grid, ImageFilter(class_id=ids[CAT])))

    await stores.dataset.move_class(grid, ids[CAT], 2)  # cat becomes YOLO index 2

    cats_after = names(await stores.image.search(grid, ImageFilter(class_id=ids[CAT])))
    assert cats_after == cats_before
    assert await stores.image.count(grid, ImageFilter(class_id=ids[CAT])) == len(cats_before)


async def test_a_class_of_another_project_is_invalid(stores: Stores, grid: str) -> None:
    other = await stores.dataset.create("other", ["cat"])
    foreign = other.class_details[0].id

    with pytest.raises(Invalid):
        await stores.image.search(grid, ImageFilter(class_id=foreign))
    with pytest.raises(Invalid):
        await stores.image.count(grid, ImageFilter(class_id=foreign))


async def test_a_class_id_that_no_class_has_is_invalid(stores: Stores, grid: str) -> None:
    with pytest.raises(Invalid):
        await stores.image.search(grid, ImageFilter(class_id=987654))
    with pytest.raises(Invalid):
        await stores.image.count(grid, ImageFilter(class_id=987654))


async def test_an_unknown_split_in_a_filter_is_invalid(stores: Stores, grid: str) -> None:
    with pytest.raises(Invalid):
        await stores.image.search(grid, ImageFilter(split="holdout"))
    with pytest.raises(Invalid):
        await stores.image.count(grid, ImageFilter(split="holdout"))


async def test_an_unknown_state_in_a_filter_is_invalid(stores: Stores, grid: str) -> None:
    with pytest.raises(Invalid):
        await stores.image.search(grid, ImageFilter(state="pending"))  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        await stores.image.count(grid, ImageFilter(state="pending"))  # type: ignore[arg-type]


async def test_a_state_given_as_its_text_works_like_the_enum(stores: Stores, grid: str) -> None:
    as_text = ImageFilter(state="no_objects")  # type: ignore[arg-type]

    assert names(await stores.image.search(grid, as_text)) == ["park-01.png"]
    assert await stores.image.count(grid, as_text) == 1


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_below_one_is_invalid(stores: Stores, grid: str, limit: int) -> None:
    with pytest.raises(Invalid):
        await stores.image.search(grid, limit=limit)


async def test_searching_an_unknown_project_raises_not_found(stores: Stores, grid: str) -> None:
    with pytest.raises(NotFound):
        await stores.image.search("nobody")
    with pytest.raises(NotFound):
        await stores.image.count("nobody")


async def test_search_and_count_see_only_their_own_project(stores: Stores, grid: str) -> None:
    await stores.dataset.create("other", ["cat"])
    await upload(stores, "street-99.png", seed=99, dataset="other")

    assert await stores.image.count(grid, ImageFilter(name="street")) == 3
    assert names(await stores.image.search("other", ImageFilter(name="street"))) == [
        "street-99.png"
    ]
    assert await stores.image.count("other") == 1


# --- the name search ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a_b", ["a_b.png"]),  # "_" is a literal underscore, not "any one character"
        ("50%", ["50%.png"]),  # "%" is a literal percent sign, not "anything"
        ("%", ["50%.png"]),
        ("_", ["a_b.png"]),
        ("cat photo", ["Cat Photo.png"]),
        ("CAT PHOTO.PNG", ["Cat Photo.png"]),
        ("äpf", ["Äpfel.png"]),  # case-insensitive beyond ASCII
        ("ÄPFEL", ["Äpfel.png"]),
        ("/", []),  # the LIKE escape character is a literal too
        ("\\", []),
        (".png", ["a_b.png", "axb.png", "50%.png", "500.png", "Cat Photo.png", "Äpfel.png"]),
        ("nothing-like-it", []),
    ],
)
async def test_the_name_search_ignores_case_and_takes_wildcards_literally(
    stores: Stores, project: str, query: str, expected: list[str]
) -> None:
    names_in = ["a_b.png", "axb.png", "50%.png", "500.png", "Cat Photo.png", "Äpfel.png"]
    for seed, name in enumerate(names_in):
        assert (await upload(stores, name, seed=seed)).filename == name

    found = await stores.image.search(project, ImageFilter(name=query))

    assert names(found) == expected
    assert await stores.image.count(project, ImageFilter(name=query)) == len(expected)


async def test_the_name_search_matches_a_decomposed_accent(stores: Stores, project: str) -> None:
    await upload(stores, "café.png", seed=1)  # stored NFC

    decomposed = "cafe\u0301"

    assert names(await stores.image.search(project, ImageFilter(name=decomposed))) == ["café.png"]


# --- keyset pagination --------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_walking_the_cursor_visits_every_image_exactly_once(
    stores: Stores, grid: str, limit: int
) -> None:
    everything = await stores.image.list(grid)

    walked = await walk(stores, grid, None, limit)

    assert [i.id for i in walked] == [i.id for i in everything]


@pytest.mark.parametrize(
    "filters",
    [
        ImageFilter(split="train"),
        ImageFilter(state=ImageState.LABELLED),
        ImageFilter(split="val", name="street"),
        ImageFilter(state=ImageState.UNLABELLED, name="park"),
    ],
)
async def test_walking_the_cursor_of_a_filter_visits_each_match_once(
    stores: Stores, grid: str, filters: ImageFilter
) -> None:
    expected = await stores.image.search(grid, filters, limit=1000)

    walked = await walk(stores, grid, filters, 2)

    assert [i.id for i in walked] == [i.id for i in expected]
    assert len(walked) == await stores.image.count(grid, filters)


async def test_a_cursor_keeps_its_place_when_earlier_images_are_deleted(
    stores: Stores, grid: str
) -> None:
    first = await stores.image.search(grid, limit=3)
    await stores.image.delete_many(grid, [first[0].filename, first[1].filename])

    rest = await stores.image.search(grid, after_id=first[-1].id, limit=100)

    everything = await stores.image.list(grid)
    assert [i.id for i in rest] == [i.id for i in everything if i.id > first[-1].id]


async def test_a_cursor_past_the_last_image_gives_an_empty_page(stores: Stores, grid: str) -> None:
    last = (await stores.image.list(grid))[-1]

    assert await stores.image.search(grid, after_id=last.id) == []


# --- move_many ----------------------------------------------------------------------------


async def test_moving_many_images_moves_their_label_files_and_pins_them(
    stores: Stores, grid: str
) -> None:
    labels_before = {
        name: label_file(stores, "train", name).read_text() for name in ["street-01.png"]
    }

    moved = await stores.image.move_many(
        grid, ["street-01.png", "park-02.png", "street-02.png", "beach.png"], "val"
    )

    assert moved == 3  # street-02 was in val already
    for name in ["street-01.png", "park-02.png", "street-02.png", "beach.png"]:
        info = await stores.image.get(grid, name)
        assert (info.split, info.split_pinned) == ("val", True), name
        assert image_file(stores, "val", name).exists()
    assert label_file(stores, "val", "street-01.png").read_text() == labels_before["street-01.png"]
    assert not label_file(stores, "train", "street-01.png").exists()
    assert not label_file(stores, "test", "beach.png").exists()
    assert len(label_file(stores, "val", "beach.png").read_text().splitlines()) == 2
    assert not label_file(stores, "val", "park-02.png").exists()  # suggestions are no labels
    assert disk_state(stores, grid) == await db_state(stores, grid)


async def test_moved_images_keep_their_labels_suggestions_and_version(
    stores: Stores, grid: str
) -> None:
    before = await stores.image.get(grid, "street-02.png")
    suggestions = await stores.label.list_suggestions(grid, "street-02.png")

    await stores.image.move_many(grid, ["street-02.png"], "test")

    after = await stores.image.get(grid, "street-02.png")
    assert after.version == before.version
    assert after.sha256 == before.sha256
    assert sorted(a.class_id for a in await stores.label.load(grid, "test", "street-02.png")) == [
        DOG,
        BIRD,
    ]
    assert len(await stores.label.list_suggestions(grid, "street-02.png")) == len(suggestions)


async def test_moving_an_image_within_its_own_split_only_pins_it(stores: Stores, grid: str) -> None:
    before = disk_state(stores, grid)

    assert await stores.image.move_many(grid, ["Park-03.png"], "train") == 0

    assert (await stores.image.get(grid, "Park-03.png")).split_pinned is True
    assert disk_state(stores, grid) == before


async def test_moving_the_same_name_twice_moves_it_once(stores: Stores, grid: str) -> None:
    assert await stores.image.move_many(grid, ["street-01.png", "street-01.png"], "test") == 1

    assert (await stores.image.get(grid, "street-01.png")).split == "test"
    assert disk_state(stores, grid) == await db_state(stores, grid)


async def test_moving_with_an_unknown_name_raises_not_found_and_moves_nothing(
    stores: Stores, grid: str
) -> None:
    before_rows = await stores.image.list(grid)
    before_disk = disk_state(stores, grid)

    with pytest.raises(NotFound) as caught:
        await stores.image.move_many(grid, ["street-01.png", "nope.png", "beach.png"], "val")

    assert "nope.png" in str(caught.value)
    assert await stores.image.list(grid) == before_rows
    assert disk_state(stores, grid) == before_disk


async def test_moving_with_an_unknown_name_leaves_a_stray_file_in_place(
    stores: Stores, grid: str
) -> None:
    stray = image_file(stores, "val", "street-01.png")
    stray.write_bytes(b"a stray file")

    with pytest.raises(NotFound):
        await stores.image.move_many(grid, ["street-01.png", "nope.png"], "val")

    assert stray.read_bytes() == b"a stray file"
    assert not (stores.data_dir / "lost+found").exists() or not any(
        p.name.endswith("street-01.png") for p in (stores.data_dir / "lost+found").iterdir()
    )


async def test_moving_to_an_unknown_split_raises_invalid_and_moves_nothing(
    stores: Stores, grid: str
) -> None:
    before = await stores.image.list(grid)

    with pytest.raises(Invalid):
        await stores.image.move_many(grid, ["street-01.png"], "holdout")

    assert await stores.image.list(grid) == before


async def test_moving_in_an_unknown_project_raises_not_found(stores: Stores, grid: str) -> None:
    with pytest.raises(NotFound):
        await stores.image.move_many("nobody", ["street-01.png"], "val")


async def test_moving_nothing_changes_nothing(stores: Stores, grid: str) -> None:
    before = await stores.image.list(grid)

    assert await stores.image.move_many(grid, [], "val") == 0

    assert await stores.image.list(grid) == before


async def test_moving_many_inside_a_unit_that_rolls_back_moves_nothing(
    stores: Stores, grid: str
) -> None:
    before_rows = await stores.image.list(grid)
    before_disk = disk_state(stores, grid)

    async with stores.unit_of_work():
        await stores.image.move_many(grid, ["street-01.png", "beach.png"], "val")
        # left without a commit

    assert await stores.image.list(grid) == before_rows
    assert disk_state(stores, grid) == before_disk


# --- delete_many --------------------------------------------------------------------------


async def test_deleting_many_images_removes_rows_files_labels_and_thumbnails(
    stores: Stores, grid: str
) -> None:
    thumb = await stores.image.thumbnail(grid, "street-01.png")
    assert thumb.exists()

    deleted = await stores.image.delete_many(grid, ["street-01.png", "beach.png", "park-01.png"])

    assert deleted == 3
    remaining = names(await stores.image.list(grid))
    assert sorted(remaining) == sorted(
        s.filename
        for s in SAMPLES
        if s.filename not in {"street-01.png", "beach.png", "park-01.png"}
    )
    assert not thumb.exists()
    for split, name in [("train", "street-01.png"), ("test", "beach.png"), ("test", "park-01.png")]:
        assert not image_file(stores, split, name).exists()
        assert not label_file(stores, split, name).exists()
    assert disk_state(stores, grid) == await db_state(stores, grid)
    with pytest.raises(NotFound):
        await stores.label.load(grid, "train", "street-01.png")


async def test_deleting_an_image_with_suggestions_removes_them(stores: Stores, grid: str) -> None:
    await stores.image.delete_many(grid, ["street-02.png"])

    assert await stores.image.count(grid, ImageFilter(state=ImageState.SUGGESTIONS)) == 1


async def test_deleting_a_missing_image_removes_its_row(stores: Stores, grid: str) -> None:
    assert await stores.image.delete_many(grid, ["harbour.png"]) == 1

    assert await stores.image.count(grid, ImageFilter(state=ImageState.MISSING)) == 1


async def test_deleting_the_same_name_twice_deletes_it_once(stores: Stores, grid: str) -> None:
    assert await stores.image.delete_many(grid, ["beach.png", "beach.png"]) == 1

    assert "beach.png" not in names(await stores.image.list(grid))
    assert disk_state(stores, grid) == await db_state(stores, grid)


async def test_deleting_with_an_unknown_name_raises_not_found_and_deletes_nothing(
    stores: Stores, grid: str
) -> None:
    before_rows = await stores.image.list(grid)
    before_disk = disk_state(stores, grid)

    with pytest.raises(NotFound) as caught:
        await stores.image.delete_many(grid, ["street-01.png", "nope.png"])

    assert "nope.png" in str(caught.value)
    assert await stores.image.list(grid) == before_rows
    assert disk_state(stores, grid) == before_disk


async def test_deleting_many_inside_a_unit_that_rolls_back_deletes_nothing(
    stores: Stores, grid: str
) -> None:
    before_rows = await stores.image.list(grid)
    before_disk = disk_state(stores, grid)

    async with stores.unit_of_work():
        await stores.image.delete_many(grid, ["street-01.png", "beach.png"])

    assert await stores.image.list(grid) == before_rows
    assert disk_state(stores, grid) == before_disk


async def test_deleting_nothing_deletes_nothing(stores: Stores, grid: str) -> None:
    assert await stores.image.delete_many(grid, []) == 0

    assert len(await stores.image.list(grid)) == len(SAMPLES)


async def test_deleting_in_an_unknown_project_raises_not_found(stores: Stores, grid: str) -> None:
    with pytest.raises(NotFound):
        await stores.image.delete_many("nobody", ["beach.png"])


async def test_deleted_images_can_be_uploaded_again_under_their_name(
    stores: Stores, grid: str
) -> None:
    await stores.image.delete_many(grid, ["beach.png"])

    info = await upload(stores, "beach.png", seed=6)

    assert info.filename == "beach.png"


# --- rebalance ----------------------------------------------------------------------------


async def test_rebalance_redraws_unpinned_images_and_leaves_pinned_ones(
    stores: Stores, project: str
) -> None:
    # Every image starts in "test", named by the upload; the draw sends most elsewhere.
    infos = [await upload(stores, f"img{i}.png", split="test", seed=i) for i in range(12)]
    for info in infos[:6]:
        await stores.label.save(project, "test", info.filename, [box(DOG)])
    await stores.image.move_many(project, [infos[0].filename, infos[7].filename], "test")
    pinned = {infos[0].filename, infos[7].filename}
    wanted = {i.filename: draw_split(i.sha256, DEFAULT_RATIOS) for i in infos}
    assert any(wanted[n] != "test" for n in wanted if n not in pinned)  # something must move

    counts = await stores.image.rebalance(project)

    for info in infos:
        after = await stores.image.get(project, info.filename)
        if info.filename in pinned:
            assert (after.split, after.split_pinned) == ("test", True), info.filename
        else:
            assert (after.split, after.split_pinned) == (wanted[info.filename], False)
    ends_in = {n: "test" if n in pinned else wanted[n] for n in wanted}
    assert counts == {split: list(ends_in.values()).count(split) for split in SPLITS}
    assert counts == (await stores.dataset.get(project)).num_images  # type: ignore[union-attr]
    assert disk_state(stores, project) == await db_state(stores, project)
    for info in infos[:6]:
        split = (await stores.image.get(project, info.filename)).split
        assert label_file(stores, split, info.filename).read_text().startswith(f"{DOG} ")


async def test_rebalance_twice_changes_nothing_the_second_time(
    stores: Stores, project: str
) -> None:
    for i in range(8):
        await upload(stores, f"img{i}.png", split="val", seed=i)
    first = await stores.image.rebalance(project)
    rows = await stores.image.list(project)

    second = await stores.image.rebalance(project)

    assert second == first
    assert await stores.image.list(project) == rows


async def test_rebalancing_an_unknown_project_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.image.rebalance("nobody")


# --- files left over ----------------------------------------------------------------------


async def test_the_sample_set_starts_with_disk_and_database_in_agreement(
    stores: Stores, grid: str
) -> None:
    images, labels = disk_state(stores, grid)

    assert (images, labels) == await db_state(stores, grid)
    assert "val/street-03.txt" in labels  # a missing image keeps its label file
    assert "val/harbour.png" not in images
