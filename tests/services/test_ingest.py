"""The upload use case: every file (and every image in a zip) is stored, reported as a duplicate
or refused with its reason; bad input changes nothing and leaves no file behind."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import pytest

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.domain.errors import Invalid, NotFound
from app.domain.models import IngestResult
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from app.repositories import create_stores
from app.services.ingest import MAX_ZIP_RATIO, SAVE_CHUNK, ingest_files, totals
from tests.conftest import encode, make_image

PROJECT = "up"


def png(seed: int = 0, width: int = 64, height: int = 48) -> bytes:
    return encode(make_image(width, height, seed), ".png")


def jpg(seed: int = 0) -> bytes:
    return encode(make_image(64, 48, seed), ".jpg")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


def zipped(
    members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED, level: int | None = None
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)  # as given: zipfile would clean "../" from a filename
            info.compress_type = method
            archive.writestr(info, data, compresslevel=level)
    return buffer.getvalue()


def files(*items: tuple[str, bytes]) -> list[tuple[str, BinaryIO]]:
    return [(name, io.BytesIO(data)) for name, data in items]


def everything_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def stored_files(stores: Stores) -> set[str]:
    """Image and thumbnail files of the project (the project's own yaml/json left out)."""
    folder = stores.data_dir / "projects" / PROJECT
    return {f for f in everything_under(folder) if f.startswith(("images/", "thumbs/"))}


def left_in_tmp(stores: Stores) -> set[str]:
    return everything_under(stores.data_dir / "tmp")


def expected_files(results: list[IngestResult], stores_sha: dict[str, str]) -> set[str]:
    return {f"images/{r.split}/{r.filename}" for r in results if r.status == "stored"} | {
        f"thumbs/{sha}.jpg" for sha in stores_sha.values()
    }


async def shas(stores: Stores) -> dict[str, str]:
    return {i.filename: i.sha256 for i in await stores.image.list(PROJECT)}


async def assert_only_stored_files_remain(stores: Stores, results: list[IngestResult]) -> None:
    """Exactly the stored images and their thumbnails are on disk; nothing in ``tmp/``."""
    assert stored_files(stores) == expected_files(results, await shas(stores))
    assert left_in_tmp(stores) == set()


@pytest.fixture
async def project(stores: Stores) -> str:
    await stores.dataset.create(PROJECT, ["cat", "dog"])
    return PROJECT


@pytest.fixture
async def small_stores(tmp_path: Path) -> AsyncIterator[Stores]:
    """Stores with an upload limit of 10 kB."""
    settings = Settings(data_dir=tmp_path / "small", run_tasks=False, max_upload_bytes=10_000)
    await upgrade_to_head(settings.database_url)
    built = create_stores(settings)
    await built.dataset.create(PROJECT, ["cat"])
    try:
        yield built
    finally:
        await built.close()


# --- good files ---------------------------------------------------------------------------


async def test_good_files_are_stored_and_reported_in_order(stores: Stores, project: str) -> None:
    results = await ingest_files(
        stores, project, files(("a.png", png(1)), ("b.jpg", jpg(2)), ("c.png", png(3))), None
    )

    assert [(r.original_name, r.status, r.filename) for r in results] == [
        ("a.png", "stored", "a.png"),
        ("b.jpg", "stored", "b.jpg"),
        ("c.png", "stored", "c.png"),
    ]
    by_name = await shas(stores)
    assert [r.split for r in results] == [
        draw_split(by_name[r.filename or ""], DEFAULT_RATIOS) for r in results
    ]
    assert totals(results) == {"stored": 3, "duplicate": 0, "refused": 0}
    images = stores.data_dir / "projects" / PROJECT / "images"
    assert (images / str(results[1].split) / "b.jpg").read_bytes() == jpg(2)
    await assert_only_stored_files_remain(stores, results)


async def test_a_named_split_takes_every_file(stores: Stores, project: str) -> None:
    results = await ingest_files(
        stores, project, files(("a.png", png(1)), ("b.png", png(2))), "val"
    )

    assert {r.split for r in results} == {"val"}
    assert {i.split for i in await stores.image.list(project)} == {"val"}


async def test_a_duplicate_is_reported_with_the_existing_name_and_not_stored_twice(
    stores: Stores, project: str
) -> None:
    first = await ingest_files(stores, project, files(("a.png", png(1))), "train")

    results = await ingest_files(
        stores, project, files(("copy.png", png(1)), ("b.png", png(2)), ("b2.png", png(2))), None
    )

    assert [(r.status, r.filename, r.reason) for r in results] == [
        ("duplicate", "a.png", "a.png"),
        ("stored", "b.png", None),
        ("duplicate", "b.png", "b.png"),
    ]
    assert results[0].split == "train"
    assert totals(results) == {"stored": 1, "duplicate": 2, "refused": 0}
    assert len(await stores.image.list(project)) == 2
    await assert_only_stored_files_remain(stores, first + results)


# --- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.jpg", b"just some text, not a picture\n" * 20, "not an image"),
        ("cut.jpg", jpg(5)[:-300], "truncated or corrupt"),
        ("empty.png", b"", "zero bytes"),
        ("bomb.png", png_claiming(30000, 30000), "30000x30000"),
        ("notes.txt", b"hello", "not an image type"),
        ("noextension", png(6), "no extension"),
    ],
    ids=["text-as-jpg", "truncated-jpeg", "zero-bytes", "pixel-bomb", "txt", "no-extension"],
)
async def test_a_bad_file_is_refused_with_its_reason_and_leaves_nothing(
    stores: Stores, project: str, name: str, data: bytes, reason: str
) -> None:
    results = await ingest_files(stores, project, files((name, data), ("good.png", png(1))), None)

    assert results[0].original_name == name
    assert results[0].status == "refused"
    assert results[0].filename is None
    assert reason in (results[0].reason or "")
    assert results[1].status == "stored"  # one bad file never spoils the others
    assert [i.filename for i in await stores.image.list(project)] == ["good.png"]
    await assert_only_stored_files_remain(stores, results)


async def test_a_file_over_the_byte_limit_is_refused(small_stores: Stores) -> None:
    big = png(1, 200, 150)
    assert len(big) > 10_000

    results = await ingest_files(
        small_stores, PROJECT, files(("big.png", big), ("ok.png", png(2, 16, 12))), None
    )

    assert results[0].status == "refused"
    assert "larger than the upload limit" in (results[0].reason or "")
    assert results[1].status == "stored"
    await assert_only_stored_files_remain(small_stores, results)


async def test_an_unknown_project_or_split_refuses_the_whole_upload(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound):
        await ingest_files(stores, "nobody", files(("a.png", png(1))), None)
    with pytest.raises(Invalid, match="valid"):
        await ingest_files(stores, project, files(("a.png", png(1))), "valid")

    assert await stores.image.list(project) == []
    assert left_in_tmp(stores) == set()


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stored_as"),
    [
        ("my holiday photo.png", "my holiday photo.png"),
        ("café ☕ 猫.png", "café ☕ 猫.png"),
        ("../../etc/passwd.png", "passwd.png"),
        ("..png", "image.png"),
        ("C:\\Users\\me\\..\\x.png", "x.png"),
    ],
    ids=["spaces", "unicode", "dotdot-path", "dotdot-stem", "windows-path"],
)
async def test_a_name_is_kept_when_safe_and_made_safe_otherwise(
    stores: Stores, project: str, name: str, stored_as: str
) -> None:
    results = await ingest_files(stores, project, files((name, png(1))), "train")

    assert (results[0].status, results[0].filename) == ("stored", stored_as)
    assert results[0].original_name == name
    folder = stores.data_dir / "projects" / PROJECT / "images" / "train"
    assert (folder / stored_as).read_bytes() == png(1)
    await assert_only_stored_files_remain(stores, results)


async def test_a_300_character_name_is_shortened_and_keeps_its_extension(
    stores: Stores, project: str
) -> None:
    name = "é" * 150 + "x" * 146 + ".png"
    assert len(name) == 300

    results = await ingest_files(stores, project, files((name, png(1))), "train")

    stored = results[0].filename or ""
    assert results[0].status == "stored"
    assert stored.endswith(".png") and stored.startswith("éé")
    assert len(stored.encode()) <= 200
    await assert_only_stored_files_remain(stores, results)


async def test_a_jpg_and_a_png_of_one_stem_get_different_stems(
    stores: Stores, project: str
) -> None:
    results = await ingest_files(stores, project, files(("a.jpg", jpg(1)), ("a.png", png(2))), None)

    assert [(r.status, r.filename) for r in results] == [
        ("stored", "a.jpg"),
        ("stored", "a-1.png"),
    ]
    await assert_only_stored_files_remain(stores, results)


# --- zips ---------------------------------------------------------------------------------


async def test_every_image_of_a_zip_is_ingested_on_its_own(stores: Stores, project: str) -> None:
    archive = zipped(
        {
            "a.png": png(1),
            "folder/b.jpg": jpg(2),
            "folder/deeper/c.png": png(3),
            "readme.txt": b"not an image",
            "broken.jpg": b"text, not a jpeg",
            "again.png": png(1),
            "__MACOSX/folder/._b.jpg": b"resource fork",
        }
    )

    results = await ingest_files(stores, project, files(("photos.zip", archive)), "train")

    assert [(r.original_name, r.status, r.filename) for r in results] == [
        ("photos.zip/a.png", "stored", "a.png"),
        ("photos.zip/folder/b.jpg", "stored", "b.jpg"),
        ("photos.zip/folder/deeper/c.png", "stored", "c.png"),
        ("photos.zip/readme.txt", "refused", None),
        ("photos.zip/broken.jpg", "refused", None),
        ("photos.zip/again.png", "duplicate", "a.png"),
    ]
    assert "not an image type" in (results[3].reason or "")
    assert "not an image" in (results[4].reason or "")
    folder = stores.data_dir / "projects" / PROJECT / "images" / "train"
    assert (folder / "b.jpg").read_bytes() == jpg(2)
    await assert_only_stored_files_remain(stores, results)


@pytest.mark.parametrize(
    "member",
    ["../evil.png", "folder/../../evil.png", "/etc/evil.png", "\\evil.png", "C:/evil.png"],
)
async def test_a_zip_member_whose_path_leaves_the_archive_is_refused_unread(
    stores: Stores, project: str, member: str
) -> None:
    archive = zipped({member: png(1), "fine.png": png(2)})

    results = await ingest_files(stores, project, files(("x.zip", archive)), "train")

    assert results[0].status == "refused"
    assert results[0].original_name == f"x.zip/{member}"
    assert "leaves the archive" in (results[0].reason or "")
    assert (results[1].status, results[1].filename) == ("stored", "fine.png")
    assert not (stores.data_dir / "evil.png").exists()
    assert not (stores.data_dir.parent / "evil.png").exists()
    await assert_only_stored_files_remain(stores, results)


async def test_a_zip_member_that_inflates_too_much_is_refused_before_it_is_read(
    stores: Stores, project: str
) -> None:
    bomb = b"\x00" * (20 * 2**20)  # 20 MiB of zeros deflate to about 20 KiB
    archive = zipped({"bomb.bmp": bomb, "fine.png": png(2)}, level=9)
    assert len(archive) < len(bomb) / MAX_ZIP_RATIO

    results = await ingest_files(stores, project, files(("bomb.zip", archive)), "train")

    assert results[0].status == "refused"
    assert "inflate" in (results[0].reason or "") and "zip bomb" in (results[0].reason or "")
    assert results[1].status == "stored"
    await assert_only_stored_files_remain(stores, results)


async def test_a_zip_that_unpacks_to_too_much_is_refused_whole(
    stores: Stores, project: str
) -> None:
    archive = zipped({f"i{n}.png": png(n, 200, 150) for n in range(4)}, zipfile.ZIP_STORED)

    results = await ingest_files(
        stores, project, files(("big.zip", archive)), "train", max_zip_bytes=200_000
    )

    assert [(r.original_name, r.status) for r in results] == [("big.zip", "refused")]
    assert "unpack" in (results[0].reason or "")
    assert await stores.image.list(project) == []
    await assert_only_stored_files_remain(stores, results)


async def test_a_zip_member_whose_header_understates_its_size_is_refused(
    stores: Stores, project: str
) -> None:
    real = png(1, 200, 150)
    archive = bytearray(zipped({"liar.png": real, "fine.png": png(2)}, zipfile.ZIP_STORED))
    # Say 100 bytes in both the local header and the central directory.
    local = archive.find(b"PK\x03\x04")
    central = archive.find(b"PK\x01\x02")
    struct.pack_into("<I", archive, local + 22, 100)
    struct.pack_into("<I", archive, central + 24, 100)

    results = await ingest_files(stores, project, files(("liar.zip", bytes(archive))), "train")

    assert results[0].status == "refused"  # only 100 bytes are ever read: a bad CRC or no image
    assert [r.status for r in results[1:]] == ["stored"]
    await assert_only_stored_files_remain(stores, results)


async def test_a_zip_member_damaged_inside_is_refused_and_the_others_stored(
    stores: Stores, project: str
) -> None:
    good = png(2)
    archive = bytearray(zipped({"a.png": png(1), "b.png": good}, zipfile.ZIP_STORED))
    data_start = archive.find(png(1))
    archive[data_start + 40] ^= 0xFF  # one flipped byte: the CRC no longer matches

    results = await ingest_files(stores, project, files(("x.zip", bytes(archive))), "train")

    assert [(r.original_name, r.status) for r in results] == [
        ("x.zip/a.png", "refused"),
        ("x.zip/b.png", "stored"),
    ]
    assert "cannot be read from the zip" in (results[0].reason or "")
    assert "CRC" in (results[0].reason or "")
    await assert_only_stored_files_remain(stores, results)


async def test_files_and_zips_in_one_upload_keep_their_order_across_chunks(
    stores: Stores, project: str
) -> None:
    archive = zipped({f"z{n}.png": png(100 + n, 16, 12) for n in range(SAVE_CHUNK + 5)})
    uploads = files(
        ("first.png", png(1, 16, 12)),
        ("big.zip", archive),
        ("last.png", png(2, 16, 12)),
        ("z3-copy.png", png(103, 16, 12)),
    )

    results = await ingest_files(stores, project, uploads, "val")

    assert [r.original_name for r in results] == [
        "first.png",
        *(f"big.zip/z{n}.png" for n in range(SAVE_CHUNK + 5)),
        "last.png",
        "z3-copy.png",
    ]
    assert [r.status for r in results[:-1]] == ["stored"] * (SAVE_CHUNK + 7)
    assert (results[-1].status, results[-1].filename, results[-1].split) == (
        "duplicate",
        "z3.png",
        "val",
    )
    await assert_only_stored_files_remain(stores, results)


async def test_a_zip_member_compressed_with_bzip2_is_refused(stores: Stores, project: str) -> None:
    archive = zipped({"a.png": png(1)}, zipfile.ZIP_BZIP2)

    results = await ingest_files(stores, project, files(("x.zip", archive)), "train")

    assert results[0].status == "refused"
    assert "method" in (results[0].reason or "")
    await assert_only_stored_files_remain(stores, results)


async def test_a_file_named_zip_that_is_no_zip_is_refused(stores: Stores, project: str) -> None:
    results = await ingest_files(stores, project, files(("fake.ZIP", png(1))), None)

    assert [(r.original_name, r.status) for r in results] == [("fake.ZIP", "refused")]
    assert "not a zip" in (results[0].reason or "")
    await assert_only_stored_files_remain(stores, results)


async def test_an_empty_zip_is_refused(stores: Stores, project: str) -> None:
    results = await ingest_files(stores, project, files(("none.zip", zipped({}))), None)

    assert [(r.status, r.reason) for r in results] == [("refused", "The zip holds no files.")]
