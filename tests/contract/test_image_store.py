"""ImageStore contract: original bytes kept, safe unique names, duplicates refused, files follow
their rows (move, delete)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.domain.errors import DuplicateImage, Invalid, NearDuplicate, NotFound
from app.domain.stores import Stores
from tests.conftest import make_image
from tests.contract.support import (
    HEIGHT,
    WIDTH,
    box,
    files_under,
    image_file,
    jpg,
    label_file,
    png,
    project_dir,
    sha256,
    tmp_files,
    upload,
    with_exif_orientation,
)


def stored_images(stores: Stores) -> set[str]:
    return files_under(project_dir(stores) / "images")


# --- save_file ----------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "make"), [("a.png", png), ("b.jpg", jpg)])
async def test_saving_a_file_keeps_its_original_bytes_exactly(
    stores: Stores, project: str, filename: str, make: object
) -> None:
    data = make(3)  # type: ignore[operator]

    info = await upload(stores, filename, data=data)

    assert info.filename == filename
    assert info.split == "train"
    assert image_file(stores, "train", filename).read_bytes() == data
    assert info.path.read_bytes() == data
    assert info.sha256 == sha256(data)
    assert info.size_bytes == len(data)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.has_labels is False
    assert info.no_objects is False


async def test_saving_a_file_from_a_path_stores_its_bytes(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    source = tmp_path / "upload.png"
    source.write_bytes(png(4))

    info = await stores.image.save_file(project, "val", "upload.png", source)

    assert image_file(stores, "val", info.filename).read_bytes() == png(4)
    assert source.read_bytes() == png(4)


async def test_saving_a_file_records_its_capture_session(stores: Stores, project: str) -> None:
    session = await stores.session.create(project, "folder")

    info = await stores.image.save_file(
        project, "train", "a.png", io.BytesIO(png(1)), session_id=session.id
    )

    assert info.session_id == session.id
    assert (await stores.image.get(project, "a.png")).session_id == session.id


async def test_a_file_within_the_bits_of_a_given_hash_is_skipped_with_nothing_stored(
    stores: Stores, project: str
) -> None:
    first = await upload(stores, "a.png", data=png(1))
    assert first.phash is not None
    # The same pixels, other bytes: not a duplicate, but 0 bits from the first one's hash.
    ok, again = cv2.imencode(".png", make_image(WIDTH, HEIGHT, 1), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok and again.tobytes() != png(1)

    with pytest.raises(NearDuplicate) as refused:
        await stores.image.save_file(
            project, "train", "b.png", io.BytesIO(again.tobytes()), skip_within=(first.phash, 4)
        )

    assert refused.value.distance == 0
    assert stored_images(stores) == {"train/a.png"}
    assert await stores.image.count(project) == 1
    kept = await stores.image.save_file(
        project, "train", "b.png", io.BytesIO(again.tobytes()), skip_within=(first.phash, 0)
    )
    assert kept.filename == "b.png"


async def test_an_image_with_exif_rotation_is_recorded_with_its_upright_size(
    stores: Stores, project: str
) -> None:
    data = with_exif_orientation(jpg(5), 6)  # stored landscape, shown rotated a quarter turn

    info = await upload(stores, "rotated.jpg", data=data)

    assert (info.width, info.height) == (HEIGHT, WIDTH)
    assert image_file(stores, "train", "rotated.jpg").read_bytes() == data
    loaded = await stores.image.load(project, "train", "rotated.jpg")
    assert loaded.shape[:2] == (WIDTH, HEIGHT)
    listed = await stores.image.list(project)
    assert (listed[0].width, listed[0].height) == (HEIGHT, WIDTH)


async def test_box_checks_use_the_upright_size_of_an_exif_rotated_image(
    stores: Stores, project: str
) -> None:
    await upload(stores, "rotated.jpg", data=with_exif_orientation(jpg(5), 6))
    upright_width = HEIGHT

    await stores.label.save(project, "train", "rotated.jpg", [box(0, w=1 / upright_width)])
    with pytest.raises(Invalid):  # 1.07 px of the stored width, but 0.8 px upright
        await stores.label.save(project, "train", "rotated.jpg", [box(0, w=1.07 / WIDTH)])

    assert len(await stores.label.load(project, "train", "rotated.jpg")) == 1


async def test_saving_with_an_unknown_capture_session_raises_not_found_and_stores_nothing(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound):
        await stores.image.save_file(
            project, "train", "a.png", io.BytesIO(png(1)), session_id=98765
        )

    assert await stores.image.list(project) == []
    assert stored_images(stores) == set()
    assert tmp_files(stores) == set()


async def test_uploading_the_same_bytes_again_raises_duplicate_image_and_stores_nothing(
    stores: Stores, project: str
) -> None:
    first = await upload(stores, "a.png", seed=1)
    before = await stores.image.list(project)

    with pytest.raises(DuplicateImage) as caught:
        await upload(stores, "other-name.png", split="val", seed=1)

    assert isinstance(caught.value, ValueError)
    assert caught.value.existing_filename == first.filename
    assert await stores.image.list(project) == before
    assert stored_images(stores) == {"train/a.png"}
    assert tmp_files(stores) == set()


async def test_two_concurrent_uploads_of_the_same_bytes_store_them_once(
    stores: Stores, project: str
) -> None:
    results = await asyncio.gather(
        upload(stores, "a.png", seed=1),
        upload(stores, "b.png", split="val", seed=1),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["DuplicateImage", "ImageInfo"]
    assert len(await stores.image.list(project)) == 1
    assert len(stored_images(stores)) == 1
    assert tmp_files(stores) == set()


async def test_two_concurrent_uploads_of_one_name_get_different_names(
    stores: Stores, project: str
) -> None:
    first, second = await asyncio.gather(
        upload(stores, "a.png", seed=1), upload(stores, "a.png", seed=2)
    )

    assert {first.filename, second.filename} == {"a.png", "a-1.png"}
    assert image_file(stores, "train", first.filename).read_bytes() == png(1)
    assert image_file(stores, "train", second.filename).read_bytes() == png(2)


async def test_a_name_whose_stem_is_taken_ignoring_case_gets_a_suffix(
    stores: Stores, project: str
) -> None:
    first = await upload(stores, "a.jpg", data=jpg(1))
    second = await upload(stores, "A.png", seed=2)
    third = await upload(stores, "a.png", split="val", seed=3)

    assert first.filename == "a.jpg"
    assert second.filename == "A-1.png"
    assert third.filename == "a-2.png"
    assert stored_images(stores) == {"train/a.jpg", "train/A-1.png", "val/a-2.png"}
    assert image_file(stores, "train", "A-1.png").read_bytes() == png(2)
    stems = [Path(i.filename).stem.casefold() for i in await stores.image.list(project)]
    assert len(set(stems)) == 3


async def test_a_suffix_skips_names_that_are_already_taken(stores: Stores, project: str) -> None:
    await upload(stores, "a-1.png", seed=1)
    await upload(stores, "a.png", seed=2)

    info = await upload(stores, "A.png", seed=3)

    assert info.filename == "A-2.png"


@pytest.mark.parametrize(
    "filename",
    [
        "../../etc/x.png",
        "..\\..\\x.png",
        "/abs/path/x.png",
        "bad\x00na\x1bme\n.png",
        "sub/dir/x.png",
    ],
)
async def test_an_unsafe_name_is_made_safe_and_stays_inside_the_project(
    stores: Stores, project: str, filename: str, tmp_path: Path
) -> None:
    info = await upload(stores, filename, seed=1)

    assert "/" not in info.filename
    assert "\\" not in info.filename
    assert ".." not in Path(info.filename).stem
    assert all(ch.isprintable() for ch in info.filename)
    assert info.filename.endswith(".png")
    assert stored_images(stores) == {f"train/{info.filename}"}
    assert image_file(stores, "train", info.filename).read_bytes() == png(1)
    inside = image_file(stores, "train", info.filename).resolve()
    assert inside.is_relative_to((project_dir(stores) / "images" / "train").resolve())
    pngs = {p for p in files_under(tmp_path) if p.endswith(".png")}
    assert pngs == {f"data/projects/{project}/images/train/{info.filename}"}


@pytest.mark.parametrize(
    "data",
    [b"", b"definitely not a jpeg", b"\xff\xd8\xff\xe0 truncated"],
    ids=["empty", "text", "truncated"],
)
async def test_bytes_that_are_not_an_image_raise_invalid_and_store_nothing(
    stores: Stores, project: str, data: bytes
) -> None:
    with pytest.raises(Invalid) as caught:
        await upload(stores, "photo.jpg", data=data)

    assert isinstance(caught.value, ValueError)
    assert await stores.image.list(project) == []
    assert stored_images(stores) == set()
    assert tmp_files(stores) == set()


@pytest.mark.parametrize("filename", ["notes.txt", "noextension", "photo.gif", ""])
async def test_a_name_that_is_no_image_file_name_raises_invalid(
    stores: Stores, project: str, filename: str
) -> None:
    with pytest.raises(Invalid):
        await upload(stores, filename, seed=1)

    assert await stores.image.list(project) == []
    assert stored_images(stores) == set()


async def test_saving_into_an_unknown_split_raises_invalid(stores: Stores, project: str) -> None:
    with pytest.raises(Invalid):
        await upload(stores, "a.png", split="training", seed=1)

    assert await stores.image.list(project) == []
    assert stored_images(stores) == set()


async def test_saving_into_an_unknown_project_raises_not_found(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await upload(stores, "a.png", seed=1, dataset="nobody")

    assert isinstance(caught.value, FileNotFoundError)
    assert not project_dir(stores, "nobody").exists()
    assert tmp_files(stores) == set()


# --- save (a decoded frame) -----------------------------------------------------------------


async def test_saving_a_frame_encodes_it_in_the_format_of_its_name(
    stores: Stores, project: str
) -> None:
    frame = make_image(WIDTH, HEIGHT, 9)

    info = await stores.image.save(project, "val", "frame.png", frame)

    data = image_file(stores, "val", "frame.png").read_bytes()
    assert data.startswith(b"\x89PNG")
    assert info.sha256 == sha256(data)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert np.array_equal(await stores.image.load(project, "val", "frame.png"), frame)


async def test_saving_a_jpeg_frame_writes_a_jpeg(stores: Stores, project: str) -> None:
    info = await stores.image.save(project, "train", "frame.jpg", make_image(WIDTH, HEIGHT, 9))

    data = image_file(stores, "train", info.filename).read_bytes()
    assert data[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (HEIGHT, WIDTH, 3)


async def test_saving_the_same_frame_twice_raises_duplicate_image(
    stores: Stores, project: str
) -> None:
    frame = make_image(WIDTH, HEIGHT, 9)
    await stores.image.save(project, "train", "a.png", frame)

    with pytest.raises(DuplicateImage):
        await stores.image.save(project, "val", "b.png", frame)

    assert [i.filename for i in await stores.image.list(project)] == ["a.png"]
    assert stored_images(stores) == {"train/a.png"}


@pytest.mark.parametrize(
    "frame",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((0,), np.uint8)],
    ids=["zero-size", "flat"],
)
async def test_saving_an_empty_frame_raises_invalid(
    stores: Stores, project: str, frame: np.ndarray
) -> None:
    with pytest.raises(Invalid):
        await stores.image.save(project, "train", "empty.png", frame)

    assert await stores.image.list(project) == []
    assert stored_images(stores) == set()


async def test_saving_a_frame_with_a_taken_stem_gets_a_suffix(stores: Stores, project: str) -> None:
    await stores.image.save(project, "train", "f.png", make_image(WIDTH, HEIGHT, 1))

    info = await stores.image.save(project, "train", "F.jpg", make_image(WIDTH, HEIGHT, 2))

    assert info.filename == "F-1.jpg"


# --- load, get, exists, list --------------------------------------------------------------


async def test_loading_an_image_decodes_it(stores: Stores, project: str) -> None:
    frame = make_image(WIDTH, HEIGHT, 4)
    await upload(stores, "a.png", data=cv2.imencode(".png", frame)[1].tobytes())

    loaded = await stores.image.load(project, "train", "a.png")

    assert np.array_equal(loaded, frame)


async def test_loading_an_unknown_image_or_from_the_wrong_split_raises_not_found(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)

    with pytest.raises(NotFound):
        await stores.image.load(project, "train", "missing.png")
    with pytest.raises(NotFound):
        await stores.image.load(project, "val", "a.png")
    with pytest.raises(NotFound):
        await stores.image.load("nobody", "train", "a.png")


async def test_getting_an_image_finds_it_in_any_split(stores: Stores, project: str) -> None:
    saved = await upload(stores, "a.png", split="test", seed=1)

    info = await stores.image.get(project, "a.png")

    assert info.split == "test"
    assert info.id == saved.id
    assert info.sha256 == saved.sha256
    assert info.dataset == project


async def test_getting_an_unknown_image_raises_not_found(stores: Stores, project: str) -> None:
    with pytest.raises(NotFound) as caught:
        await stores.image.get(project, "missing.png")
    assert isinstance(caught.value, FileNotFoundError)


async def test_exists_is_true_only_for_the_split_that_holds_the_image(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", split="val", seed=1)

    assert await stores.image.exists(project, "val", "a.png") is True
    assert await stores.image.exists(project, "train", "a.png") is False
    assert await stores.image.exists(project, "val", "b.png") is False


async def test_listing_images_gives_them_in_id_order_optionally_one_split(
    stores: Stores, project: str
) -> None:
    for seed, (name, split) in enumerate(
        [("c.png", "train"), ("a.png", "val"), ("b.png", "train"), ("d.png", "test")]
    ):
        await upload(stores, name, split=split, seed=seed)

    everything = await stores.image.list(project)
    train = await stores.image.list(project, "train")

    assert [i.filename for i in everything] == ["c.png", "a.png", "b.png", "d.png"]
    assert [i.id for i in everything] == sorted(i.id for i in everything)
    assert [i.filename for i in train] == ["c.png", "b.png"]
    assert all((i.width, i.height) == (WIDTH, HEIGHT) for i in everything)


async def test_listing_images_pages_by_id(stores: Stores, project: str) -> None:
    for seed in range(5):
        await upload(stores, f"img{seed}.png", seed=seed)
    everything = await stores.image.list(project)

    first = await stores.image.list(project, limit=2)
    second = await stores.image.list(project, after_id=first[-1].id, limit=2)
    rest = await stores.image.list(project, after_id=second[-1].id)

    assert [i.filename for i in first + second + rest] == [i.filename for i in everything]
    assert len(first) == len(second) == 2
    assert len(rest) == 1


async def test_listing_images_marks_the_labelled_ones(stores: Stores, project: str) -> None:
    await upload(stores, "boxed.png", seed=1)
    await upload(stores, "none.png", seed=2)
    await upload(stores, "plain.png", seed=3)
    await stores.label.save(project, "train", "boxed.png", [box(0)])
    await stores.label.set_no_objects(project, "none.png", True)

    listed = {i.filename: i for i in await stores.image.list(project)}

    assert listed["boxed.png"].has_labels is True
    assert listed["none.png"].has_labels is True
    assert listed["none.png"].no_objects is True
    assert listed["plain.png"].has_labels is False


async def test_listing_the_images_of_an_unknown_project_raises_not_found(
    stores: Stores,
) -> None:
    with pytest.raises(NotFound):
        await stores.image.list("nobody")


# --- delete -------------------------------------------------------------------------------


async def test_deleting_an_image_removes_its_row_its_file_and_its_label_file(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await upload(stores, "b.png", seed=2)
    await stores.label.save(project, "train", "a.png", [box(0)])
    assert label_file(stores, "train", "a.png").exists()

    assert await stores.image.delete(project, "train", "a.png") is True

    assert [i.filename for i in await stores.image.list(project)] == ["b.png"]
    assert await stores.image.exists(project, "train", "a.png") is False
    assert not image_file(stores, "train", "a.png").exists()
    assert not label_file(stores, "train", "a.png").exists()
    assert stored_images(stores) == {"train/b.png"}
    with pytest.raises(NotFound):
        await stores.label.load(project, "train", "a.png")


async def test_deleting_an_image_that_is_not_there_returns_false(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)

    assert await stores.image.delete(project, "train", "missing.png") is False
    assert await stores.image.delete(project, "val", "a.png") is False
    assert await stores.image.delete("nobody", "train", "a.png") is False
    assert image_file(stores, "train", "a.png").exists()


async def test_a_deleted_image_can_be_uploaded_again(stores: Stores, project: str) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.image.delete(project, "train", "a.png")

    info = await upload(stores, "a.png", seed=1)

    assert info.filename == "a.png"
    assert image_file(stores, "train", "a.png").read_bytes() == png(1)


# --- move ---------------------------------------------------------------------------------


async def test_moving_an_image_moves_its_file_and_its_label_file(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(1)])
    label_text = label_file(stores, "train", "a.png").read_text()

    await stores.image.move(project, "a.png", "train", "val")

    info = await stores.image.get(project, "a.png")
    assert info.split == "val"
    assert info.split_pinned is True
    assert await stores.image.exists(project, "val", "a.png") is True
    assert await stores.image.exists(project, "train", "a.png") is False
    assert not image_file(stores, "train", "a.png").exists()
    assert image_file(stores, "val", "a.png").read_bytes() == png(1)
    assert not label_file(stores, "train", "a.png").exists()
    assert label_file(stores, "val", "a.png").read_text() == label_text
    assert [a.class_id for a in await stores.label.load(project, "val", "a.png")] == [1]


async def test_moving_an_unlabelled_image_creates_no_label_file(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)

    await stores.image.move(project, "a.png", "train", "test")

    assert image_file(stores, "test", "a.png").exists()
    assert files_under(project_dir(stores) / "labels") == set()


async def test_moving_does_not_bump_the_version(stores: Stores, project: str) -> None:
    await upload(stores, "a.png", seed=1)
    await stores.label.save(project, "train", "a.png", [box(0)])
    version = (await stores.image.get(project, "a.png")).version

    await stores.image.move(project, "a.png", "train", "val")

    assert (await stores.image.get(project, "a.png")).version == version


async def test_moving_an_image_from_a_split_it_is_not_in_raises_not_found(
    stores: Stores, project: str
) -> None:
    await upload(stores, "a.png", seed=1)

    with pytest.raises(NotFound):
        await stores.image.move(project, "a.png", "val", "test")
    with pytest.raises(NotFound):
        await stores.image.move(project, "missing.png", "train", "val")

    info = await stores.image.get(project, "a.png")
    assert (info.split, info.split_pinned) == ("train", False)
    assert stored_images(stores) == {"train/a.png"}


async def test_moving_to_an_unknown_split_raises_invalid(stores: Stores, project: str) -> None:
    await upload(stores, "a.png", seed=1)

    with pytest.raises(Invalid):
        await stores.image.move(project, "a.png", "train", "holdout")

    assert (await stores.image.get(project, "a.png")).split == "train"
    assert stored_images(stores) == {"train/a.png"}


async def test_a_stray_file_in_the_way_of_a_move_is_quarantined_not_overwritten(
    stores: Stores, project: str
) -> None:
    info = await upload(stores, "a.png", seed=1)
    stray = image_file(stores, "val", info.filename)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"someone else's bytes")

    await stores.image.move(project, info.filename, "train", "val")

    assert stray.read_bytes() == png(1)
    lost = stores.data_dir / "lost+found"
    kept = [p for p in lost.iterdir() if p.name.endswith(info.filename)]
    assert [p.read_bytes() for p in kept] == [b"someone else's bytes"]
    assert "in the way of moving" in (lost / "MANIFEST.tsv").read_text()
