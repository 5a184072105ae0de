"""The previous and next image under a grid filter (the annotator's A/D keys), and the store's
``before_id`` keyset that gives the previous one."""

from __future__ import annotations

import io

import pytest

from app.domain.errors import NotFound
from app.domain.models import Annotation, ImageFilter, ImageState
from app.domain.stores import Stores
from app.services.images import neighbours
from tests.conftest import encode, make_image

PROJECT = "walk"


@pytest.fixture
async def walk(stores: Stores) -> Stores:
    """a..f in upload order; b and e in val; c labelled."""
    await stores.dataset.create(PROJECT, ["cat"])
    for seed, (name, split) in enumerate(
        [("a", "train"), ("b", "val"), ("c", "train"), ("d", "train"), ("e", "val"), ("f", "train")]
    ):
        data = encode(make_image(24, 16, seed), ".png")
        await stores.image.save_file(PROJECT, split, f"{name}.png", io.BytesIO(data))
    await stores.label.save(PROJECT, "train", "c.png", [Annotation(0, 0.5, 0.5, 0.5, 0.5)])
    return stores


async def test_before_id_pages_backwards_nearest_first(walk: Stores) -> None:
    d = await walk.image.get(PROJECT, "d.png")

    before = await walk.image.search(PROJECT, None, before_id=d.id, limit=2)
    all_before = await walk.image.search(PROJECT, None, before_id=d.id, limit=10)

    assert [i.filename for i in before] == ["c.png", "b.png"]
    assert [i.filename for i in all_before] == ["c.png", "b.png", "a.png"]


@pytest.mark.parametrize(
    ("filename", "filters", "expected"),
    [
        ("c.png", None, ("b.png", "d.png")),
        ("a.png", None, (None, "b.png")),
        ("f.png", None, ("e.png", None)),
        ("b.png", ImageFilter(split="val"), (None, "e.png")),
        ("d.png", ImageFilter(split="train"), ("c.png", "f.png")),
        # c is labelled, so it is not "unlabelled" itself: its neighbours still are found.
        ("c.png", ImageFilter(split="train", state=ImageState.UNLABELLED), ("a.png", "d.png")),
    ],
)
async def test_neighbours_follow_the_filter(
    walk: Stores,
    filename: str,
    filters: ImageFilter | None,
    expected: tuple[str | None, str | None],
) -> None:
    assert await neighbours(walk, PROJECT, filename, filters) == expected


async def test_neighbours_of_an_unknown_image_is_not_found(walk: Stores) -> None:
    with pytest.raises(NotFound):
        await neighbours(walk, PROJECT, "zzz.png")
