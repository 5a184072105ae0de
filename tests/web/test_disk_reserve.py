"""The disk reserve (YDC_DISK_RESERVE_MB): with it above the free space, uploads, imports,
exports and trainings are refused with 507 and a message naming the free space and the
reserve, and nothing changes (no row, no task, no file)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.domain.models import Annotation
from app.domain.stores import Stores
from app.main import create_app
from app.services import capture as capture_service
from tests.conftest import arm_csrf, encode, make_image

PROJECT = "full"


def free_mb(path: Path) -> int:
    figures = os.statvfs(path)
    return figures.f_bavail * figures.f_frsize // 1000**2


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def reserve_mb(settings: Settings) -> int:
    """A reserve 1 TB above what the disk has free now."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return free_mb(settings.data_dir) + 1_000_000


@pytest.fixture
async def app(settings: Settings, reserve_mb: int) -> AsyncIterator[FastAPI]:
    """The app with a project whose train and val images are labelled (trainable), its
    reserve set above the free space."""
    application = create_app(settings.model_copy(update={"disk_reserve_mb": reserve_mb}))
    async with LifespanManager(application):
        stores: Stores = application.state.stores
        await stores.dataset.create(PROJECT, ["cat", "dog"])
        for index, split in enumerate(("train", "val")):
            data = io.BytesIO(encode(make_image(32, 24, seed=index), ".png"))
            info = await stores.image.save_file(PROJECT, split, f"{split}.png", data)
            box = Annotation(class_id=0, x=0.5, y=0.5, width=0.2, height=0.2)
            await stores.label.save(PROJECT, split, info.filename, [box])
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield await arm_csrf(http)


def assert_names_reserve_and_free(detail: str, data_dir: Path, reserve_mb: int) -> None:
    assert detail.startswith("Not enough disk space: "), detail
    assert f"free on {data_dir}" in detail
    assert f"ydc keeps {reserve_mb / 1000:.0f} GB free (YDC_DISK_RESERVE_MB)" in detail
    assert "Free some space, or lower the reserve." in detail


async def snapshot(stores: Stores, data_dir: Path) -> tuple[object, ...]:
    """What a refused request must leave as it was: images, tasks, projects, files."""
    images = await stores.image.list(PROJECT)
    tasks = await stores.task.list(limit=100)
    projects = [p.name for p in await stores.dataset.list()]
    return (
        sorted(i.filename for i in images),
        [t.id for t in tasks],
        projects,
        files_under(data_dir / "projects"),
        files_under(data_dir / "imports"),
        files_under(data_dir / "models"),
    )


async def test_an_upload_over_the_reserve_is_refused_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    before = await snapshot(stores, settings.data_dir)

    response = await client.post(
        f"/api/v1/projects/{PROJECT}/images",
        files=[("files", ("new.png", encode(make_image(40, 30, seed=9), ".png"), "image/png"))],
    )

    assert response.status_code == 507, response.text
    detail = response.json()["detail"]
    assert_names_reserve_and_free(detail, settings.data_dir, reserve_mb)
    assert "Nothing was stored." in detail
    assert await snapshot(stores, settings.data_dir) == before
    assert before[0] == ["train.png", "val.png"]
    assert len(before[3]) >= 4  # the two images and their label files, untouched


async def test_the_upload_box_shows_the_refusal(
    client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    response = await client.post(
        f"/projects/{PROJECT}/upload",
        files=[("files", ("new.png", encode(make_image(40, 30, seed=9), ".png"), "image/png"))],
    )
    assert response.status_code == 507
    assert "Not enough disk space" in response.text and "YDC_DISK_RESERVE_MB" in response.text


async def test_an_import_zip_over_the_reserve_is_refused_and_nothing_is_staged(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.yaml", "names: [cat]\n")
        archive.writestr("train/images/a.png", encode(make_image(20, 20), ".png"))
        archive.writestr("train/labels/a.txt", "0 0.5 0.5 0.2 0.2\n")
    before = await snapshot(stores, settings.data_dir)

    response = await client.post(
        "/api/v1/imports",
        data={"mode": "new", "project": "imported"},
        files={"file": ("pets.zip", buffer.getvalue(), "application/zip")},
    )

    assert response.status_code == 507, response.text
    detail = response.json()["detail"]
    assert_names_reserve_and_free(detail, settings.data_dir, reserve_mb)
    assert "The import was not queued" in detail
    assert await snapshot(stores, settings.data_dir) == before


async def test_an_export_over_the_reserve_is_refused_and_queues_nothing(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    before = await snapshot(stores, settings.data_dir)

    response = await client.post(f"/api/v1/projects/{PROJECT}/export", json={})

    assert response.status_code == 507, response.text
    detail = response.json()["detail"]
    assert_names_reserve_and_free(detail, settings.data_dir, reserve_mb)
    assert "The export was not queued." in detail
    assert await snapshot(stores, settings.data_dir) == before
    assert before[1] == []


async def test_a_training_over_the_reserve_is_refused_and_queues_nothing(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    before = await snapshot(stores, settings.data_dir)

    response = await client.post(
        f"/api/v1/projects/{PROJECT}/train",
        json={"base": "yolo11n.yaml", "epochs": 1, "imgsz": 64, "batch": 2},
    )

    assert response.status_code == 507, response.text
    detail = response.json()["detail"]
    assert_names_reserve_and_free(detail, settings.data_dir, reserve_mb)
    assert "The training was not queued." in detail
    assert await snapshot(stores, settings.data_dir) == before


async def test_a_model_upload_over_the_reserve_is_refused(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    before = await snapshot(stores, settings.data_dir)
    response = await client.post(
        f"/api/v1/projects/{PROJECT}/models",
        data={"name": "uploaded"},
        files={"file": ("w.pt", b"PK\x03\x04 weights", "application/octet-stream")},
    )
    assert response.status_code == 507, response.text
    assert_names_reserve_and_free(response.json()["detail"], settings.data_dir, reserve_mb)
    assert await stores.model.list(dataset=PROJECT) == []
    assert await snapshot(stores, settings.data_dir) == before


async def test_with_the_reserve_off_the_same_export_is_queued(
    settings: Settings,
) -> None:
    application = create_app(settings.model_copy(update={"disk_reserve_mb": 0}))
    async with LifespanManager(application):
        await application.state.stores.dataset.create(PROJECT, ["cat"])
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await arm_csrf(http)
            response = await http.post(f"/api/v1/projects/{PROJECT}/export", json={})
    assert response.status_code == 202, response.text


async def test_the_openapi_document_declares_507_on_every_guarded_operation(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    guarded = [
        ("/api/v1/projects/{name}/images", "post"),
        ("/api/v1/imports", "post"),
        ("/api/v1/projects/{name}/export", "post"),
        ("/api/v1/projects/{name}/train", "post"),
        ("/api/v1/tasks/{task_id}/resume", "post"),
        ("/api/v1/projects/{name}/models", "post"),
        ("/api/v1/projects/{name}/sessions/video", "post"),
        ("/api/v1/sessions/{session_id}/frames", "post"),
        ("/api/v1/projects/{name}/sessions/folder", "post"),
        ("/api/v1/projects/{name}/sessions/stream", "post"),
    ]
    for path, method in guarded:
        entry = document["paths"][path][method]["responses"]["507"]
        schema = entry["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, entry)
    assert "/api/v1/system" in document["paths"]


async def test_locating_a_missing_file_over_the_reserve_is_refused_and_restores_nothing(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    (image,) = [i for i in await stores.image.list(PROJECT) if i.filename == "train.png"]
    data = image.path.read_bytes()
    image.path.unlink()

    response = await client.post(
        f"/api/v1/projects/{PROJECT}/locate", files=[("files", ("found.png", data, "image/png"))]
    )

    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["status"] == "refused"
    assert_names_reserve_and_free(result["message"], settings.data_dir, reserve_mb)
    assert "Nothing was restored." in result["message"]
    assert not image.path.exists()


async def test_a_webcam_frame_over_the_reserve_is_refused_and_counts_nothing(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    started = await client.post(f"/api/v1/projects/{PROJECT}/sessions/webcam", data={})
    session_id = started.json()["id"]
    before = await snapshot(stores, settings.data_dir)

    response = await client.post(
        f"/api/v1/sessions/{session_id}/frames",
        files={"file": ("frame.jpg", encode(make_image(40, 30, seed=7), ".jpg"), "image/jpeg")},
        data={"mode": "manual"},
    )

    assert response.status_code == 507, response.text
    assert_names_reserve_and_free(response.json()["detail"], settings.data_dir, reserve_mb)
    assert await snapshot(stores, settings.data_dir) == before
    session = (await client.get(f"/api/v1/sessions/{session_id}")).json()
    assert session["counts"].get("frames_seen", 0) == 0


async def test_a_video_over_the_reserve_is_refused_before_it_is_staged(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, reserve_mb: int
) -> None:
    stores: Stores = app.state.stores
    before = await snapshot(stores, settings.data_dir)

    response = await client.post(
        f"/api/v1/projects/{PROJECT}/sessions/video",
        files={"file": ("clip.mp4", b"\x00" * 4096, "video/mp4")},
        data={"every_n": "5"},
    )

    assert response.status_code == 507, response.text
    assert_names_reserve_and_free(response.json()["detail"], settings.data_dir, reserve_mb)
    assert await snapshot(stores, settings.data_dir) == before
    assert files_under(capture_service.staging_folder(stores)) == []
    assert await stores.session.list(PROJECT) == []


async def test_a_folder_session_over_the_reserve_is_refused_and_opens_nothing(
    settings: Settings, reserve_mb: int, tmp_path: Path
) -> None:
    roots = tmp_path / "camera-drops"
    roots.mkdir()
    update = {"disk_reserve_mb": reserve_mb, "import_roots": [roots]}
    application = create_app(settings.model_copy(update=update))
    async with LifespanManager(application):
        stores: Stores = application.state.stores
        await stores.dataset.create(PROJECT, ["cat"])
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = await arm_csrf(http)
            response = await client.post(
                f"/api/v1/projects/{PROJECT}/sessions/folder", json={"folder": str(roots)}
            )
        assert response.status_code == 507, response.text
        assert_names_reserve_and_free(response.json()["detail"], settings.data_dir, reserve_mb)
        assert await stores.session.list(PROJECT) == []
        assert await stores.task.list() == []
