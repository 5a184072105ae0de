"""Ingest contract: a thumbnail is made with every stored image, a new image's split is drawn
from its hash unless named (near-duplicates join their twin's split), and a rebalance redraws
only unpinned images, keeping near-duplicate groups together."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import pytest
from alembic import command

from app.db.migrate import alembic_config
from app.domain.errors import Cancelled, DuplicateImage, Invalid, NotFound
from app.domain.models import SPLITS, ImageInfo
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from app.repositories.common import stem_key
from app.repositories.imaging import (
    NEAR_DUPLICATE_DISTANCE,
    PHASH_BAND_BITS,
    hamming,
    near_duplicate_groups,
    perceptual_hash,
    phash_bands,
)
from tests.conftest import encode, execute_sql, make_image
from tests.contract.support import (
    box,
    files_under,
    image_file,
    jpg,
    label_file,
    line,
    png,
    project_dir,
    sha256,
    tmp_files,
    upload,
    with_exif_orientation,
)


def thumb_file(stores: Stores, sha: str) -> Path:
    return project_dir(stores) / "thumbs" / f"{sha}.jpg"


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def scene(seed: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A photo-like frame: smooth blobs (noise blown up), so its perceptual hash is stable."""
    small = make_image(8, 6, seed)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def near_twin(image: np.ndarray, step: int) -> np.ndarray:
    """The same picture a little brighter with a touch of noise: other bytes, same look."""
    rng = np.random.default_rng(1000 + step)
    noise = rng.integers(-2, 3, size=image.shape)
    return np.clip(image.astype(np.int16) + 3 + step + noise, 0, 255).astype(np.uint8)


def drawn(data: bytes) -> str:
    return draw_split(sha256(data), DEFAULT_RATIOS)


def scene_drawn_to(wanted: str) -> np.ndarray:
    """A scene whose PNG draws ``wanted`` (so a twin that follows it goes against its own
    draw most of the time)."""
    return next(s for n in range(200) if drawn(encode(s := scene(100 + n), ".png")) == wanted)


async def save(stores: Stores, name: str, data: bytes, split: str | None = None) -> ImageInfo:
    return await stores.image.save_file("proj", split, name, io.BytesIO(data))  # type: ignore[arg-type]


# --- thumbnails ---------------------------------------------------------------------------


async def test_a_stored_image_gets_its_thumbnail_at_ingest(stores: Stores, project: str) -> None:
    data = encode(scene(1, 400, 300), ".png")

    info = await upload(stores, "big.png", data=data)

    thumb = thumb_file(stores, info.sha256)
    assert thumb.is_file()
    assert decode(thumb.read_bytes()).shape[:2] == (192, 256)  # long side 256, aspect kept
    assert thumb.read_bytes()[:2] == b"\xff\xd8"
    assert await stores.image.thumbnail(project, "big.png") == thumb
    assert tmp_files(stores) == set()


async def test_a_small_image_keeps_its_size_in_the_thumbnail(stores: Stores, project: str) -> None:
    info = await upload(stores, "small.png", seed=1)  # 64 x 48

    assert decode(thumb_file(stores, info.sha256).read_bytes()).shape[:2] == (48, 64)


async def test_a_thumbnail_already_in_place_is_left_as_it_is(stores: Stores, project: str) -> None:
    data = png(2)
    thumb = thumb_file(stores, sha256(data))
    thumb.parent.mkdir(parents=True, exist_ok=True)
    thumb.write_bytes(b"made earlier")

    await upload(stores, "a.png", data=data)

    assert thumb.read_bytes() == b"made earlier"
    assert tmp_files(stores) == set()


async def test_an_upload_that_is_not_committed_leaves_no_thumbnail(
    stores: Stores, project: str
) -> None:
    data = png(3)
    async with stores.unit_of_work():
        await upload(stores, "a.png", data=data)
        assert thumb_file(stores, sha256(data)).is_file()
        # leaving without commit rolls back

    assert files_under(project_dir(stores) / "thumbs") == set()
    assert files_under(project_dir(stores) / "images") == set()
    assert tmp_files(stores) == set()


async def test_a_rolled_back_upload_keeps_a_thumbnail_it_did_not_make(
    stores: Stores, project: str
) -> None:
    data = png(3)
    thumb = thumb_file(stores, sha256(data))
    thumb.parent.mkdir(parents=True, exist_ok=True)
    thumb.write_bytes(b"made earlier")

    with pytest.raises(NotFound):
        await stores.image.save_file(project, "train", "a.png", io.BytesIO(data), session_id=999)

    assert thumb.read_bytes() == b"made earlier"
    assert files_under(project_dir(stores) / "images") == set()
    assert tmp_files(stores) == set()


async def test_a_refused_upload_leaves_no_thumbnail(stores: Stores, project: str) -> None:
    first = await upload(stores, "a.png", seed=4)

    with pytest.raises(ValueError):
        await upload(stores, "again.png", seed=4)  # a duplicate

    assert files_under(project_dir(stores) / "thumbs") == {f"{first.sha256}.jpg"}
    assert tmp_files(stores) == set()


async def test_an_exif_rotated_jpeg_is_kept_byte_for_byte_with_an_upright_thumbnail(
    stores: Stores, project: str
) -> None:
    # Stored landscape, top half white: shown a quarter turn clockwise, the right half is white.
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:150] = 255
    data = with_exif_orientation(encode(pixels, ".jpg"), 6)

    info = await upload(stores, "rotated.jpg", data=data)

    assert image_file(stores, info.split, "rotated.jpg").read_bytes() == data
    assert (info.width, info.height) == (300, 400)
    thumb = decode(thumb_file(stores, info.sha256).read_bytes())
    assert thumb.shape[:2] == (256, 192)  # upright: taller than wide
    assert thumb[:, :80].mean() < 40
    assert thumb[:, -80:].mean() > 215


# --- the split drawn at ingest ------------------------------------------------------------


async def test_an_image_without_a_split_goes_where_its_hash_draws(
    stores: Stores, project: str
) -> None:
    data = png(5)

    info = await save(stores, "a.png", data)

    assert info.split == draw_split(sha256(data), DEFAULT_RATIOS)
    assert image_file(stores, info.split, "a.png").read_bytes() == data
    assert info.split_pinned is False


async def test_the_same_bytes_draw_the_same_split_again(stores: Stores, project: str) -> None:
    data = png(6)
    first = await save(stores, "a.png", data)
    await stores.image.delete(project, first.split, first.filename)

    again = await save(stores, "b.png", data)

    assert again.split == first.split


async def test_a_saved_frame_without_a_split_is_drawn_too(stores: Stores, project: str) -> None:
    info = await stores.image.save(project, None, "frame.png", make_image(seed=7))  # type: ignore[arg-type]

    assert info.split == draw_split(info.sha256, DEFAULT_RATIOS)


async def test_a_named_split_wins_over_the_draw(stores: Stores, project: str) -> None:
    data = next(png(s) for s in range(100) if draw_split(sha256(png(s)), DEFAULT_RATIOS) != "test")

    info = await save(stores, "a.png", data, split="test")

    assert info.split == "test"


async def test_many_images_follow_the_project_ratios(stores: Stores, project: str) -> None:
    infos = [await save(stores, f"i{n}.png", png(n, 16, 12)) for n in range(150)]

    assert all(i.split == draw_split(i.sha256, DEFAULT_RATIOS) for i in infos)
    drawn = Counter(i.split for i in infos)
    assert 0.65 <= drawn["train"] / 150 <= 0.92
    assert drawn["val"] + drawn["test"] > 0
    listed = Counter(i.split for i in await stores.image.list(project))
    assert listed == drawn


async def test_a_near_duplicate_joins_its_twins_split_even_against_its_own_draw(
    stores: Stores, project: str
) -> None:
    base = scene(8)
    twin_bytes = next(
        data
        for step in range(50)
        if draw_split(sha256(data := encode(near_twin(base, step), ".png")), DEFAULT_RATIOS)
        != "val"
    )
    assert hamming(perceptual_hash(base), perceptual_hash(decode(twin_bytes))) <= 2
    first = await save(stores, "first.png", encode(base, ".png"), split="val")

    twin = await save(stores, "twin.png", twin_bytes)

    assert first.split == "val"
    assert twin.split == "val"
    assert image_file(stores, "val", "twin.png").read_bytes() == twin_bytes
    assert twin.split_pinned is False


async def test_a_near_duplicate_of_a_drawn_image_shares_its_split(
    stores: Stores, project: str
) -> None:
    base = scene_drawn_to("test")
    first = await save(stores, "first.png", encode(base, ".png"))
    twin_bytes = [encode(near_twin(base, s), ".png") for s in range(6)]

    twins = [await save(stores, f"t{n}.png", data) for n, data in enumerate(twin_bytes)]

    assert first.split == "test"
    assert {t.split for t in twins} == {"test"}
    assert {drawn(data) for data in twin_bytes} != {"test"}  # some went against their draw


async def test_a_different_picture_draws_its_own_split(stores: Stores, project: str) -> None:
    await save(stores, "first.png", encode(scene(10), ".png"), split="val")
    other = encode(scene(11), ".png")
    assert hamming(perceptual_hash(scene(10)), perceptual_hash(scene(11))) > 8

    info = await save(stores, "other.png", other)

    assert info.split == draw_split(sha256(other), DEFAULT_RATIOS)


async def test_the_perceptual_hash_is_stored_with_its_index_bands(
    stores: Stores, project: str, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params.get("database_backend") not in ("sqlite", "postgresql"):
        pytest.skip("the band columns are how the SQL store finds near-duplicates")
    info = await save(stores, "a.png", encode(scene(12), ".png"))

    [row] = await execute_sql(
        stores,
        "SELECT phash, phash_b0, phash_b1, phash_b2, phash_b3, phash_b4 FROM image"
        " WHERE filename = 'a.png'",
    )

    assert row[0] == info.phash == perceptual_hash(scene(12))
    assert tuple(row[1:]) == phash_bands(info.phash)


async def test_concurrent_uploads_of_one_stem_into_different_splits_get_different_stems(
    stores: Stores, project: str
) -> None:
    first, second = await asyncio.gather(
        save(stores, "a.png", png(20), split="train"), save(stores, "A.jpg", jpg(21), split="val")
    )

    assert {first.filename, second.filename} in (
        {"a.png", "A-1.jpg"},
        {"a-1.png", "A.jpg"},
    )
    assert files_under(project_dir(stores) / "images") == {
        f"train/{first.filename}",
        f"val/{second.filename}",
    }
    assert tmp_files(stores) == set()


# --- many files at once (save_files) -----------------------------------------------------------


def sources(*items: tuple[str, bytes]) -> list[tuple[str, Path | IO[bytes]]]:
    return [(name, io.BytesIO(data)) for name, data in items]


async def test_many_files_get_one_outcome_each_in_order(stores: Stores, project: str) -> None:
    existing = await save(stores, "old.png", png(1), split="val")

    outcomes = await stores.image.save_files(
        project,
        "train",
        sources(
            ("a.png", png(2)),
            ("again.png", png(1)),  # already in the project
            ("notes.jpg", b"not a picture at all"),
            ("b.png", png(3)),
            ("b-copy.png", png(3)),  # the same bytes as a file before it in the call
        ),
    )

    stored_a, dup_old, refused, stored_b, dup_b = outcomes
    assert isinstance(stored_a, ImageInfo) and isinstance(stored_b, ImageInfo)
    assert (stored_a.filename, stored_a.split, stored_b.filename) == ("a.png", "train", "b.png")
    assert isinstance(dup_old, DuplicateImage) and dup_old.existing_filename == existing.filename
    assert isinstance(dup_b, DuplicateImage) and dup_b.existing_filename == "b.png"
    assert isinstance(refused, Invalid) and not isinstance(refused, DuplicateImage)
    assert "not an image" in refused.message
    listed = {i.filename: i for i in await stores.image.list(project)}
    assert set(listed) == {"old.png", "a.png", "b.png"}
    assert listed["a.png"].id == stored_a.id and listed["a.png"].sha256 == sha256(png(2))
    assert image_file(stores, "train", "b.png").read_bytes() == png(3)
    assert files_under(project_dir(stores) / "images") == {
        "val/old.png",
        "train/a.png",
        "train/b.png",
    }
    assert files_under(project_dir(stores) / "thumbs") == {
        f"{sha256(data)}.jpg" for data in (png(1), png(2), png(3))
    }
    assert tmp_files(stores) == set()


async def test_files_of_one_stem_in_one_call_get_different_stems(
    stores: Stores, project: str
) -> None:
    await save(stores, "A.png", png(1), split="val")

    outcomes = await stores.image.save_files(
        project, None, sources(("a.jpg", jpg(2)), ("a.png", png(3)), ("A.PNG", png(4)))
    )

    names = [o.filename for o in outcomes if isinstance(o, ImageInfo)]
    assert names == ["a-1.jpg", "a-2.png", "A-3.png"]  # extensions are stored lower-case
    assert {stem_key(i.filename) for i in await stores.image.list(project)} == {
        "a",
        "a-1",
        "a-2",
        "a-3",
    }


async def test_a_near_duplicate_earlier_in_the_call_gives_its_split(
    stores: Stores, project: str
) -> None:
    base = scene_drawn_to("test")
    twins = [encode(near_twin(base, s), ".png") for s in range(6)]
    assert {drawn(data) for data in twins} != {"test"}  # some would draw elsewhere alone

    outcomes = await stores.image.save_files(
        project,
        None,
        sources(
            ("first.png", encode(base, ".png")), *((f"t{n}.png", d) for n, d in enumerate(twins))
        ),
    )

    assert [o.split for o in outcomes if isinstance(o, ImageInfo)] == ["test"] * 7


async def test_a_near_duplicate_already_stored_gives_its_split_to_a_batch(
    stores: Stores, project: str
) -> None:
    base = scene(8)
    twin = next(
        data for step in range(50) if drawn(data := encode(near_twin(base, step), ".png")) != "val"
    )
    await save(stores, "first.png", encode(base, ".png"), split="val")

    outcomes = await stores.image.save_files(
        project, None, sources(("other.png", png(9)), ("twin.png", twin))
    )

    other, joined = outcomes
    assert isinstance(other, ImageInfo) and isinstance(joined, ImageInfo)
    assert other.split == drawn(png(9))
    assert joined.split == "val"


async def test_more_files_than_one_batch_are_all_checked_against_each_other(
    stores: Stores, project: str
) -> None:
    many = [(f"i{n}.png", png(n, 16, 12)) for n in range(130)]
    many.append(("late-copy.png", png(3, 16, 12)))  # the same bytes as i3.png, 127 files back
    many.append(("I7.jpg", jpg(500, 16, 12)))  # the stem of i7.png

    outcomes = await stores.image.save_files(project, None, sources(*many))

    assert all(isinstance(o, ImageInfo) for o in outcomes[:130])
    late, clash = outcomes[130:]
    assert isinstance(late, DuplicateImage) and late.existing_filename == "i3.png"
    assert isinstance(clash, ImageInfo) and clash.filename == "I7-1.jpg"
    assert len(await stores.image.list(project)) == 131
    assert tmp_files(stores) == set()


async def test_a_call_inside_a_unit_that_is_not_committed_leaves_nothing(
    stores: Stores, project: str
) -> None:
    async with stores.unit_of_work():
        outcomes = await stores.image.save_files(
            project, None, sources(("a.png", png(1)), ("b.png", png(2)))
        )
        assert all(isinstance(o, ImageInfo) for o in outcomes)
        # leaving without commit rolls back

    assert await stores.image.list(project) == []
    assert files_under(project_dir(stores) / "images") == set()
    assert files_under(project_dir(stores) / "thumbs") == set()
    assert tmp_files(stores) == set()


async def test_an_unknown_project_or_split_fails_the_whole_call(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound):
        await stores.image.save_files("nobody", None, sources(("a.png", png(1))))
    with pytest.raises(Invalid):
        await stores.image.save_files(project, "valid", sources(("a.png", png(1))))

    assert await stores.image.list(project) == []
    assert tmp_files(stores) == set()


async def test_only_a_few_files_of_a_call_are_decoded_at_once(
    stores: Stores, project: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.callspec.params.get("database_backend") not in ("sqlite", "postgresql"):
        pytest.skip("how many files are decoded at once is the SQL store's bound")
    from app.repositories import images as sql_images

    decoding, most = 0, 0
    lock = threading.Lock()
    decode = sql_images.decode_file

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoding, most
        with lock:
            decoding += 1
            most = max(most, decoding)
        try:
            time.sleep(0.005)  # long enough for the others to pile up if nothing bounds them
            return decode(*args, **kwargs)
        finally:
            with lock:
                decoding -= 1

    monkeypatch.setattr(sql_images, "decode_file", counting)

    outcomes = await stores.image.save_files(
        project, None, sources(*((f"i{n}.png", png(n, 16, 12)) for n in range(24)))
    )

    assert all(isinstance(o, ImageInfo) for o in outcomes)
    assert 1 < most <= sql_images.PREPARE_AHEAD


# --- rebalance ----------------------------------------------------------------------------


async def test_a_rebalance_redraws_unpinned_images_and_leaves_pinned_ones(
    stores: Stores, project: str
) -> None:
    infos = [await save(stores, f"i{n}.png", png(n), split="test") for n in range(30)]
    pinned = next(i for i in infos if draw_split(i.sha256, DEFAULT_RATIOS) != "val")
    await stores.image.move(project, pinned.filename, "test", "val")

    counts = await stores.image.rebalance(project)

    after = {i.filename: i for i in await stores.image.list(project)}
    assert after[pinned.filename].split == "val"
    assert after[pinned.filename].split_pinned is True
    for info in infos:
        if info.filename != pinned.filename:
            wanted = draw_split(info.sha256, DEFAULT_RATIOS)
            assert after[info.filename].split == wanted
            assert after[info.filename].split_pinned is False
            assert image_file(stores, wanted, info.filename).read_bytes() == png(
                int(info.filename[1:-4])
            )
    assert counts == {s: sum(i.split == s for i in after.values()) for s in SPLITS}
    assert sum(counts.values()) == 30
    assert files_under(project_dir(stores) / "images") == {
        f"{i.split}/{i.filename}" for i in after.values()
    }


async def test_a_rebalance_keeps_a_near_duplicate_group_in_one_split(
    stores: Stores, project: str
) -> None:
    base = scene_drawn_to("val")
    twin_bytes = next(
        d for s in range(50) if drawn(d := encode(near_twin(base, s), ".png")) != "val"
    )
    await save(stores, "first.png", encode(base, ".png"), split="test")
    await save(stores, "twin.png", twin_bytes, split="train")
    await save(stores, "other.png", encode(near_twin(base, 60), ".png"), split="test")

    await stores.image.rebalance(project)

    # The group's first image draws val; the twin's own draw says otherwise.
    after = {i.filename: i.split for i in await stores.image.list(project)}
    assert after == {"first.png": "val", "twin.png": "val", "other.png": "val"}
    assert image_file(stores, "val", "twin.png").read_bytes() == twin_bytes
    assert files_under(project_dir(stores) / "images") == {
        "val/first.png",
        "val/twin.png",
        "val/other.png",
    }


async def test_a_rebalance_moves_a_group_to_the_split_of_its_pinned_member(
    stores: Stores, project: str
) -> None:
    base = scene(14)
    await save(stores, "first.png", encode(base, ".png"), split="train")
    await save(stores, "twin.png", encode(near_twin(base, 0), ".png"), split="train")
    await stores.image.move(project, "first.png", "train", "test")  # pinned in test

    await stores.image.rebalance(project)

    after = {i.filename: (i.split, i.split_pinned) for i in await stores.image.list(project)}
    assert after == {"first.png": ("test", True), "twin.png": ("test", False)}


async def test_a_rebalance_right_after_ingest_moves_nothing(stores: Stores, project: str) -> None:
    base = scene(15)
    for n in range(20):
        await save(stores, f"i{n}.png", png(n))
    for s in range(3):
        await save(stores, f"t{s}.png", encode(near_twin(base, s), ".png"))
    before = {i.filename: i.split for i in await stores.image.list(project)}

    await stores.image.rebalance(project)

    assert {i.filename: i.split for i in await stores.image.list(project)} == before


async def test_a_rebalance_reports_its_progress_outside_any_unit(
    stores: Stores, project: str
) -> None:
    infos = [await save(stores, f"i{n}.png", png(n), split="test") for n in range(12)]
    # Both draw train: a redraw that ignored the manual moves would take them out of place.
    moved_meanwhile, pinned_meanwhile = [
        i for i in infos if drawn(png(int(i.filename[1:-4]))) == "train"
    ][:2]
    reported: list[tuple[float, str]] = []

    async def progress(fraction: float, message: str) -> None:
        if not reported:
            # Manual moves while the redraw runs: each commits at once, and wins.
            await stores.image.move(project, moved_meanwhile.filename, "test", "val")
            await stores.image.move(project, pinned_meanwhile.filename, "test", "test")
        reported.append((fraction, message))

    counts = await stores.image.rebalance(project, progress=progress)

    fractions = [f for f, _ in reported]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert "moved" in reported[-1][1]
    after = {i.filename: i for i in await stores.image.list(project)}
    moved, pinned = after[moved_meanwhile.filename], after[pinned_meanwhile.filename]
    assert (moved.split, moved.split_pinned) == ("val", True)
    assert (pinned.split, pinned.split_pinned) == ("test", True)
    for info in infos:
        if info.filename not in (moved.filename, pinned.filename):
            assert after[info.filename].split == drawn(png(int(info.filename[1:-4])))
    assert counts == {s: sum(i.split == s for i in after.values()) for s in SPLITS}


async def test_a_rebalance_stopped_between_chunks_keeps_them_and_a_second_one_finishes(
    stores: Stores, project: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.callspec.params.get("database_backend") not in ("sqlite", "postgresql"):
        pytest.skip("the chunk size is the SQL store's")
    from app.repositories import images as sql_images

    monkeypatch.setattr(sql_images, "REBALANCE_CHUNK", 2)
    infos = [await save(stores, f"i{n}.png", png(n), split="test") for n in range(16)]
    wanted = {i.filename: drawn(png(int(i.filename[1:-4]))) for i in infos}
    assert sum(split != "test" for split in wanted.values()) >= 5
    calls = 0

    async def stop_after_one_chunk(fraction: float, message: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        await stores.image.rebalance(project, progress=stop_after_one_chunk)

    halfway = {i.filename: i.split for i in await stores.image.list(project)}
    redrawn = [name for name, split in halfway.items() if split != "test"]
    assert len(redrawn) == 2  # the first chunk, committed with its files
    assert all(halfway[name] == wanted[name] for name in redrawn)
    assert files_under(project_dir(stores) / "images") == {f"{s}/{n}" for n, s in halfway.items()}

    await stores.image.rebalance(project)

    assert {i.filename: i.split for i in await stores.image.list(project)} == wanted
    assert files_under(project_dir(stores) / "images") == {f"{s}/{n}" for n, s in wanted.items()}


async def test_a_rebalance_moves_label_files_with_their_images(
    stores: Stores, project: str
) -> None:
    data = next(png(s) for s in range(100) if drawn(png(s)) != "test")
    info = await save(stores, "boxed.png", data, split="test")
    await stores.label.save(project, "test", "boxed.png", [box(1)])

    await stores.image.rebalance(project)

    moved_to = drawn(data)
    assert (await stores.image.get(project, "boxed.png")).split == moved_to
    assert label_file(stores, moved_to, info.filename).read_text() == line(1)
    assert not label_file(stores, "test", info.filename).exists()
    assert tmp_files(stores) == set()


# --- the near-duplicate rule --------------------------------------------------------------


def test_hashes_within_the_near_duplicate_distance_always_share_a_band() -> None:
    rng = np.random.default_rng(0)
    assert len(PHASH_BAND_BITS) > NEAR_DUPLICATE_DISTANCE
    for _ in range(2000):
        value = int(rng.integers(0, 2**63)) << 1
        flips = rng.choice(64, size=NEAR_DUPLICATE_DISTANCE, replace=False)
        other = value
        for bit in flips:
            other ^= 1 << int(bit)
        a, b = f"{value:016x}", f"{other:016x}"
        assert hamming(a, b) == NEAR_DUPLICATE_DISTANCE
        assert any(x == y for x, y in zip(phash_bands(a), phash_bands(b), strict=True))


def test_near_duplicate_groups_join_transitively_and_leave_far_hashes_alone() -> None:
    a = 0x0F0F_0F0F_0F0F_0F0E
    b = a ^ 0b1111  # 4 bits from a
    c = b ^ (0b1111 << 20)  # 4 bits from b, 8 from a
    far = a ^ 0xFFFF_FFFF_0000_0000

    groups = near_duplicate_groups(
        [(5, f"{c:016x}"), (1, f"{a:016x}"), (3, f"{b:016x}"), (2, f"{far:016x}"), (4, None)]
    )

    assert groups == [[1, 3, 5]]


def test_bands_cut_the_hash_most_significant_bits_first() -> None:
    assert phash_bands("ffffffffffffffff") == (8191, 8191, 8191, 8191, 4095)
    assert phash_bands("8000000000000001") == (4096, 0, 0, 0, 1)
    assert phash_bands(None) == (None,) * 5


# --- the migration that adds the bands ----------------------------------------------------


def test_the_migration_fills_the_bands_of_images_already_stored(tmp_path: Path) -> None:
    db = tmp_path / "ydc.db"
    cfg = alembic_config(f"sqlite+aiosqlite:///{db}")
    command.upgrade(cfg, "acfb2dc315da")  # the schema before the bands
    hashes = ["8eb2d0668212aefe", "0000000000000000", None, "not-a-hash"]
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO project (id, name, name_key, description, train_ratio, val_ratio,"
            " test_ratio, created_at, modified_at) VALUES (1, 'p', 'p', '', .8, .1, .1, 0, 0)"
        )
        for n, phash in enumerate(hashes):
            conn.execute(
                "INSERT INTO image (project_id, split, split_pinned, filename, stem_key, sha256,"
                " phash, width, height, size_bytes, mtime_ns, missing, no_objects, version,"
                " created_at) VALUES (1, 'train', 0, ?, ?, ?, ?, 1, 1, 1, 0, 0, 0, 0, 0)",
                (f"i{n}.png", f"i{n}", f"{n:064x}", phash),
            )

    command.upgrade(cfg, "head")

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT phash, phash_b0, phash_b1, phash_b2, phash_b3, phash_b4 FROM image ORDER BY id"
        ).fetchall()
    assert [tuple(r[1:]) for r in rows[:3]] == [phash_bands(h) for h in hashes[:3]]
    assert tuple(rows[3][1:]) == (None,) * 5
