"""Upload over the JSON API: multipart in, one result per file (and per zip member) out, with
totals; CSRF, an unknown project, a bad split and an oversized request are refused whole."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from app.main import create_app
from tests.conftest import arm_csrf, encode, make_image
from tests.contract.support import sha256, with_exif_orientation

PROJECT = "up"
URL = f"/api/v1/projects/{PROJECT}/images"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        await application.state.stores.dataset.create(PROJECT, ["cat", "dog"])
        yield application


@pytest.fixture
def app_stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


@pytest.fixture
def data_dir(settings: Settings) -> Path:
    return settings.data_dir


def png(seed: int = 0, width: int = 64, height: int = 48) -> bytes:
    return encode(make_image(width, height, seed), ".png")


def jpg(seed: int = 0) -> bytes:
    return encode(make_image(64, 48, seed), ".jpg")


def multipart(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def files_under(folder: Path) -> set[str]:
    if not folder.exists():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


async def test_an_upload_answers_each_files_outcome_and_the_totals(
    client: httpx.AsyncClient, app_stores: Stores, data_dir: Path
) -> None:
    first = await client.post(URL, files=multipart(("old.png", png(9))))
    assert first.status_code == 200

    response = await client.post(
        URL,
        files=multipart(
            ("a.png", png(1)),
            ("b.jpg", jpg(2)),
            ("c.png", png(3)),
            ("again.png", png(9)),
            ("broken.jpg", b"this is text"),
        ),
    )

    assert response.status_code == 200
    body = response.json()
    assert [(r["original_name"], r["status"], r["filename"]) for r in body["results"]] == [
        ("a.png", "stored", "a.png"),
        ("b.jpg", "stored", "b.jpg"),
        ("c.png", "stored", "c.png"),
        ("again.png", "duplicate", "old.png"),
        ("broken.jpg", "refused", None),
    ]
    assert body["totals"] == {"stored": 3, "duplicate": 1, "refused": 1}
    assert "not an image" in body["results"][4]["reason"]
    assert body["results"][0]["split"] == draw_split(sha256(png(1)), DEFAULT_RATIOS)
    listed = {i.filename: i for i in await app_stores.image.list(PROJECT)}
    assert set(listed) == {"old.png", "a.png", "b.jpg", "c.png"}
    project = data_dir / "projects" / PROJECT
    assert (project / "images" / listed["b.jpg"].split / "b.jpg").read_bytes() == jpg(2)
    assert files_under(project / "thumbs") == {f"{i.sha256}.jpg" for i in listed.values()}
    assert files_under(data_dir / "tmp") == set()


async def test_an_upload_may_name_the_split(client: httpx.AsyncClient, app_stores: Stores) -> None:
    response = await client.post(
        URL, files=multipart(("a.png", png(1)), ("b.png", png(2))), data={"split": "test"}
    )

    assert response.status_code == 200
    assert {r["split"] for r in response.json()["results"]} == {"test"}
    assert {i.split for i in await app_stores.image.list(PROJECT)} == {"test"}


async def test_an_empty_split_field_means_drawn(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, files=multipart(("a.png", png(1))), data={"split": ""})

    assert response.json()["results"][0]["split"] == draw_split(sha256(png(1)), DEFAULT_RATIOS)


async def test_an_exif_rotated_jpeg_is_stored_byte_identical_with_an_upright_thumbnail(
    client: httpx.AsyncClient, app_stores: Stores, data_dir: Path
) -> None:
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:150] = 255  # top half white: shown a quarter turn clockwise, the right half
    data = with_exif_orientation(encode(pixels, ".jpg"), 6)

    response = await client.post(URL, files=multipart(("phone.jpg", data)), data={"split": "val"})

    assert response.json()["results"][0]["status"] == "stored"
    info = await app_stores.image.get(PROJECT, "phone.jpg")
    assert (info.width, info.height) == (300, 400)
    assert (data_dir / "projects" / PROJECT / "images" / "val" / "phone.jpg").read_bytes() == data
    thumb = decode(
        (data_dir / "projects" / PROJECT / "thumbs" / f"{sha256(data)}.jpg").read_bytes()
    )
    assert thumb.shape[:2] == (256, 192)
    assert thumb[:, :80].mean() < 40 < 215 < thumb[:, -80:].mean()


async def test_bad_names_and_same_stems_come_back_safe_and_distinct(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    long_name = "x" * 296 + ".png"
    response = await client.post(
        URL,
        files=multipart(
            ("a.jpg", jpg(1)),
            ("a.png", png(2)),
            ("my photo.png", png(3)),
            ("ünïcødé 猫.png", png(4)),
            ("../../up.png", png(5)),
            (long_name, png(6)),
        ),
        data={"split": "train"},
    )

    names = [r["filename"] for r in response.json()["results"]]
    assert names[:5] == ["a.jpg", "a-1.png", "my photo.png", "ünïcødé 猫.png", "up.png"]
    assert names[5].endswith(".png") and len(names[5].encode()) <= 200
    assert files_under(data_dir / "projects" / PROJECT / "images") == {f"train/{n}" for n in names}
    assert not (data_dir / "up.png").exists()


async def test_a_zip_upload_reports_every_member(client: httpx.AsyncClient, data_dir: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("set/a.png", png(1))
        archive.writestr(zipfile.ZipInfo("../evil.png"), png(2))
        archive.writestr(zipfile.ZipInfo("/abs.png"), png(3))
        archive.writestr("bomb.bmp", b"\x00" * (8 * 2**20))
        archive.writestr("notes.txt", b"hello")

    response = await client.post(URL, files=multipart(("batch.zip", buffer.getvalue())))

    body = response.json()
    assert [(r["original_name"], r["status"]) for r in body["results"]] == [
        ("batch.zip/set/a.png", "stored"),
        ("batch.zip/../evil.png", "refused"),
        ("batch.zip//abs.png", "refused"),
        ("batch.zip/bomb.bmp", "refused"),
        ("batch.zip/notes.txt", "refused"),
    ]
    assert body["totals"] == {"stored": 1, "duplicate": 0, "refused": 4}
    assert files_under(data_dir / "projects" / PROJECT / "images") == {
        f"{body['results'][0]['split']}/a.png"
    }
    assert not (data_dir / "projects" / "evil.png").exists()
    assert files_under(data_dir / "tmp") == set()


async def test_an_upload_without_the_csrf_token_is_refused_and_stores_nothing(
    app: FastAPI, app_stores: Stores
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(URL, files=multipart(("a.png", png(1))))

    assert response.status_code == 403
    assert await app_stores.image.list(PROJECT) == []


async def test_the_csrf_token_may_come_as_a_form_field(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        token = (await http.get("/api/v1/csrf")).json()["token"]
        response = await http.post(
            URL, files=multipart(("a.png", png(1))), data={"csrf_token": token}
        )

    assert response.status_code == 200
    assert response.json()["totals"]["stored"] == 1


async def test_an_unknown_project_answers_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/projects/nobody/images", files=multipart(("a.png", png(1)))
    )

    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


async def test_an_unknown_split_answers_422_and_stores_nothing(
    client: httpx.AsyncClient, app_stores: Stores
) -> None:
    response = await client.post(URL, files=multipart(("a.png", png(1))), data={"split": "dev"})

    assert response.status_code == 422
    assert "dev" in response.json()["detail"]
    assert await app_stores.image.list(PROJECT) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {"split": "train"}, "files": {"other": ("a.png", b"x")}},
        {"data": {"files": "not a file"}, "files": {"other": ("a.png", b"x")}},
        {"json": {"files": []}},
    ],
    ids=["no-files-field", "text-in-files", "json-body"],
)
async def test_a_request_without_files_answers_422(
    client: httpx.AsyncClient, kwargs: dict[str, object]
) -> None:
    response = await client.post(URL, **kwargs)  # type: ignore[arg-type]

    assert response.status_code == 422
    assert "files" in response.json()["detail"]


@pytest.fixture
async def small_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    """A client of an app whose upload limit is 10 kB per file (so 1 MB + 1 MiB per request)."""
    settings = Settings(
        data_dir=tmp_path / "small",
        run_tasks=False,
        allowed_hosts=["testserver"],
        max_upload_bytes=10_000,
    )
    application = create_app(settings)
    async with LifespanManager(application):
        await application.state.stores.dataset.create(PROJECT, ["cat"])
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield await arm_csrf(http), settings.data_dir


async def test_a_file_over_the_byte_limit_is_refused_and_the_others_stored(
    small_client: tuple[httpx.AsyncClient, Path],
) -> None:
    client, data_dir = small_client
    big = png(1, 200, 150)
    assert len(big) > 10_000

    response = await client.post(URL, files=multipart(("big.png", big), ("ok.png", png(2, 8, 6))))

    results = response.json()["results"]
    assert [(r["original_name"], r["status"]) for r in results] == [
        ("big.png", "refused"),
        ("ok.png", "stored"),
    ]
    assert "upload limit" in results[0]["reason"]
    assert files_under(data_dir / "tmp") == set()


async def test_a_request_over_the_upload_size_is_refused_before_it_is_read(
    small_client: tuple[httpx.AsyncClient, Path],
) -> None:
    client, data_dir = small_client
    huge = b"\x00" * (3 * 2**20)

    response = await client.post(URL, files=multipart(("huge.png", huge)))

    assert response.status_code == 413
    assert "at most" in response.json()["detail"]
    assert files_under(data_dir / "projects" / PROJECT / "images") == set()
    assert files_under(data_dir / "tmp") == set()


async def test_the_api_docs_describe_the_multipart_upload(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    upload = schema["paths"]["/api/v1/projects/{name}/images"]["post"]
    body = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["files"]["items"]["format"] == "binary"
    # Blank means drawn, as the upload box sends it (found by the fuzz: tests/fuzz).
    assert body["properties"]["split"]["enum"] == ["train", "val", "test", ""]
    assert "200" in upload["responses"]
