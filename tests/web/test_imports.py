"""Imports over HTTP: the projects page's and the project page's forms, the API, the task that
runs the import, the report page, and the refusals (no source, a taken name, a server folder
outside YDC_IMPORT_ROOTS, a zip that leaves the archive)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.stores import Stores
from app.main import create_app
from app.tasks.worker import run_task
from tests.conftest import arm_csrf
from tests.contract.support import line, png
from tests.web.htmltree import parse

DATA_YAML = "names: [cat, dog]\npath: ../datasets/pets\ndownload: https://example.com/pets.zip\n"


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def pets_zip(extra: dict[str, bytes | str] | None = None) -> bytes:
    buffer = io.BytesIO()
    members: dict[str, bytes | str] = {
        "pets/data.yaml": DATA_YAML,
        "pets/images/train/a.png": png(1),
        "pets/labels/train/a.txt": line(0) + "7 0.5 0.5 0.1 0.1\n",
        "pets/images/val/b.png": png(2),
        "pets/labels/val/b.txt": "",
        "pets/images/val/c.png": b"not a png",
        **(extra or {}),
    }
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def run_queued(app: FastAPI, settings: Settings) -> int:
    """Run the queued task here, as a worker would (these apps run no task runner)."""
    claimed = await stores_of(app).task.claim("test-worker")
    assert claimed is not None
    assert await run_task(settings, claimed.id, "test-worker") == 0
    return claimed.id


async def test_the_projects_page_imports_a_zip_into_a_new_project_and_reports_it(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    page = parse((await client.get("/")).text)
    form = page.find("form", class_="import-form")
    assert form.attrs["action"] == "/imports"
    assert form.attrs["enctype"] == "multipart/form-data"

    response = await client.post(
        "/imports",
        data={"csrf_token": client.cookies["ydc_csrf"], "name": ""},
        files={"file": ("My Pets (2).zip", pets_zip(), "application/zip")},
    )

    assert response.status_code == 303
    task_id = await run_queued(app, settings)
    assert response.headers["location"] == f"/tasks/{task_id}"
    project = await stores_of(app).dataset.get("My_Pets_2")
    assert project is not None
    assert project.classes == ["cat", "dog"]
    assert project.num_images == {"train": 1, "val": 1, "test": 0}
    # The uploaded zip is gone once the task has ended.
    assert list((settings.data_dir / "imports").iterdir()) == []

    panel = parse((await client.get(f"/tasks/{task_id}")).text)
    assert panel.find("a", href=f"/imports/{task_id}").text() == "See the import report"
    report = parse((await client.get(f"/imports/{task_id}")).text)
    assert (
        "Ultralytics YOLO from My Pets (2).zip" in report.find("p", class_="import-summary").text()
    )
    images = report.find("tr", id="reason-images").find("td", class_="num").text()
    assert images == "2"
    unnamed = report.find("tr", id="reason-unnamed_class")
    assert unnamed.find("td", class_="num").text() == "1"
    assert "pets/labels/train/a.txt:2" in unnamed.text()
    assert "pets/images/val/c.png" in report.find("tr", id="reason-not_image").text()


async def test_the_project_page_merges_a_zip_and_can_leave_new_classes_out(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    await stores_of(app).dataset.create("pets", [" CAT "])
    page = parse((await client.get("/projects/pets")).text)
    assert page.find("section", id="import").find("form").attrs["action"] == "/projects/pets/import"

    response = await client.post(
        "/projects/pets/import",
        data={"csrf_token": client.cookies["ydc_csrf"]},  # add_classes unticked
        files={"file": ("pets.zip", pets_zip(), "application/zip")},
    )

    assert response.status_code == 303
    task_id = await run_queued(app, settings)
    assert [c.name for c in await stores_of(app).dataset.get_classes("pets")] == ["CAT"]
    report = (await client.get(f"/api/v1/imports/{task_id}")).json()
    assert report["project"] == "pets"
    assert report["classes"] == ["CAT"]
    found = {f["reason"]: f["count"] for f in report["findings"]}
    assert found["images"] == 2
    assert found["boxes"] == 1


async def test_the_api_queues_an_import_and_its_report_says_what_came_in(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/api/v1/imports",
        data={"mode": "new", "project": "api-pets"},
        files={"file": ("pets.zip", pets_zip(), "application/zip")},
    )

    assert response.status_code == 202, response.text
    task = response.json()
    # The new project is made by the task, once the zip has proved a dataset.
    assert (task["kind"], task["status"]) == ("import", "queued")
    assert await stores_of(app).dataset.get("api-pets") is None
    assert (await client.get(f"/api/v1/imports/{task['id']}")).status_code == 409
    await run_queued(app, settings)
    report = (await client.get(f"/api/v1/imports/{task['id']}")).json()
    assert report["format"] == "Ultralytics YOLO"
    by_reason = {f["reason"]: f for f in report["findings"]}
    assert by_reason["no_objects"]["examples"] == ["pets/images/val/b.png"]
    assert by_reason["classes_added"]["examples"] == ["cat", "dog"]


@pytest.mark.parametrize(
    ("data", "files", "status", "message"),
    [
        ({"mode": "new"}, None, 422, "Choose the zip of the dataset"),
        ({"mode": "merge"}, "pets.zip", 422, "Name the project to merge into"),
        ({"mode": "merge", "project": "nobody"}, "pets.zip", 404, "no project named 'nobody'"),
        ({"mode": "new", "project": "taken"}, "pets.zip", 422, "already exists"),
        ({"mode": "new"}, "pets.tar", 422, "is not a .zip file"),
        ({"mode": "new", "folder": "/etc"}, None, 403, "YDC_IMPORT_ROOTS"),
    ],
    ids=["no-source", "merge-unnamed", "merge-unknown", "name-taken", "not-zip", "no-roots"],
)
async def test_the_api_refuses_an_import_it_cannot_run_and_queues_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    data: dict[str, str],
    files: str | None,
    status: int,
    message: str,
) -> None:
    await stores_of(app).dataset.create("taken", [])
    upload = {"file": (files, pets_zip(), "application/zip")} if files else None

    response = await client.post("/api/v1/imports", data=data, files=upload)

    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert await stores_of(app).task.list() == []
    imports = settings.data_dir / "imports"
    assert not imports.exists() or list(imports.iterdir()) == []


async def test_a_server_folder_under_the_import_roots_imports_and_others_are_refused(
    tmp_path: Path,
) -> None:
    from asgi_lifespan import LifespanManager

    root = tmp_path / "datasets"
    root.mkdir()
    with zipfile.ZipFile(io.BytesIO(pets_zip())) as archive:
        archive.extractall(root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    settings = Settings(
        data_dir=tmp_path / "data",
        run_tasks=False,
        allowed_hosts=["testserver"],
        import_roots=[root],
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = await arm_csrf(http)
            page = parse((await client.get("/")).text)
            assert str(root) in page.find("form", class_="import-form").text()

            for folder, status in [
                (str(outside), 403),
                (f"{root}/../elsewhere", 403),
                ("relative/path", 422),
                (f"{root}/nothing-here", 404),
            ]:
                refused = await client.post(
                    "/api/v1/imports", data={"mode": "new", "folder": folder}
                )
                assert refused.status_code == status, (folder, refused.text)

            response = await client.post(
                "/api/v1/imports", data={"mode": "new", "folder": f"{root}/pets"}
            )
            assert response.status_code == 202, response.text
            await run_queued(app, settings)
            project = await stores_of(app).dataset.get("pets")
            assert project is not None and project.num_images["train"] == 1
            # The folder is read, never changed.
            assert (root / "pets" / "images" / "train" / "a.png").read_bytes() == png(1)


async def test_a_zip_that_leaves_the_archive_fails_its_task_with_the_reason(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/api/v1/imports",
        data={"mode": "new", "project": "evil"},
        files={"file": ("evil.zip", pets_zip({"../../evil.txt": "x"}), "application/zip")},
    )
    assert response.status_code == 202

    claimed = await stores_of(app).task.claim("test-worker")
    assert claimed is not None
    await run_task(settings, claimed.id, "test-worker")

    task = (await client.get(f"/api/v1/tasks/{claimed.id}")).json()
    assert task["status"] == "failed"
    assert "leaves the archive" in task["error"]
    assert not (settings.data_dir / "evil.txt").exists()
    assert await stores_of(app).dataset.get("evil") is None
    assert list((settings.data_dir / "imports").iterdir()) == []
