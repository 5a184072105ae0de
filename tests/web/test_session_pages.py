"""Capture sessions over HTTP: the upload form on the project page and the sessions page, a
non-video refused with nothing created, and the sessions list and a session's page showing its
counts, log and frames."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.domain.stores import Stores
from app.tasks.worker import run_task
from tests.tasks.test_video_capture import make_video, video_file
from tests.web.htmltree import parse


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def test_the_video_form_is_on_the_project_page_and_the_sessions_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stores_of(app).dataset.create("cam", ["thing"])
    for url in ("/projects/cam", "/projects/cam/sessions"):
        page = parse((await client.get(url)).text)
        form = page.find("form", class_="session-form")
        assert form.attrs["action"] == "/projects/cam/sessions/video"
        assert form.attrs["enctype"] == "multipart/form-data"
        names = {e.attrs.get("name") for e in form.iter() if e.tag in ("input", "select")}
        assert {"file", "every_n", "every_seconds", "near_duplicate_bits", "split"} <= names
    project = parse((await client.get("/projects/cam")).text)
    assert project.find("a", href="/projects/cam/sessions").text() == "See the capture sessions"
    empty = parse((await client.get("/projects/cam/sessions")).text)
    assert empty.find("p", class_="empty").text() == "No capture sessions yet."


async def test_a_file_that_is_no_video_is_refused_with_nothing_created(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    for url in ("/api/v1/projects/cam/sessions/video", "/projects/cam/sessions/video"):
        response = await client.post(
            url,
            data={"csrf_token": client.cookies["ydc_csrf"]},
            files={"file": ("notes.txt", io.BytesIO(b"hello"), "text/plain")},
        )
        assert response.status_code == 422, response.text
        assert "not a video" in response.text
    bad_rule = await client.post(
        "/api/v1/projects/cam/sessions/video",
        data={"every_n": "2", "every_seconds": "1"},
        files={"file": ("clip.mp4", io.BytesIO(b"x" * 10), "video/mp4")},
    )
    assert bad_rule.status_code == 422
    assert await stores.session.list("cam") == []
    assert await stores.task.list() == []
    staging = settings.data_dir / "imports" / "capture"
    assert not staging.exists() or list(staging.iterdir()) == []


async def test_a_video_over_the_import_limit_is_refused(settings: Settings, tmp_path: Path) -> None:
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from tests.conftest import arm_csrf

    small = create_app(settings.model_copy(update={"max_import_bytes": 1000}))
    async with LifespanManager(small):
        transport = httpx.ASGITransport(app=small)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await arm_csrf(http)
            await stores_of(small).dataset.create("cam", ["thing"])
            response = await http.post(
                "/api/v1/projects/cam/sessions/video",
                files={"file": ("big.mp4", io.BytesIO(b"x" * 5000), "video/mp4")},
            )
            assert response.status_code == 413, response.text
            assert await stores_of(small).session.list("cam") == []


async def test_the_sessions_list_and_a_session_page_show_counts_log_and_frames(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    video = make_video(tmp_path / "yard.avi", scenes=3, per_scene=4)
    response = await client.post(
        "/projects/cam/sessions/video",
        data={"csrf_token": client.cookies["ydc_csrf"], "every_n": "1", "split": "val"},
        files={"file": ("yard.avi", video_file(video), "video/x-msvideo")},
    )
    assert response.status_code == 303
    session_url = response.headers["location"]
    session_id = int(session_url.rsplit("/", 1)[1])

    # Before the task runs: in progress, with its task's panel.
    running = parse((await client.get(session_url)).text)
    assert running.find("div", id="session-detail").attrs["hx-trigger"] == "every 2s"
    assert running.find("article", class_="task-queued")

    claimed = await stores.task.claim("test-worker")
    assert claimed is not None
    assert await run_task(settings, claimed.id, "test-worker") == 0

    listing = parse((await client.get("/projects/cam/sessions")).text)
    row = listing.find("tr", id=f"session-{session_id}")
    assert row.find("a", href=session_url).text() == f"#{session_id}"
    assert row.find("td", class_="count-frames_seen").text() == "12"
    kept = int(row.find("td", class_="count-kept").text())
    skipped = int(row.find("td", class_="count-skipped_near_duplicate").text())
    assert kept == 3 and kept + skipped == 12
    assert "completed" in row.text()

    page = parse((await client.get(session_url)).text)
    assert page.find("dd", class_="count-kept").text() == "3"
    log = [li.text() for li in page.find("ol", class_="session-log").find_all("li")]
    assert log[0].startswith("Uploaded yard.avi")
    assert log[-1].startswith("Done: 12 frames seen, 3 kept")
    thumbs = page.find("ul", class_="session-thumbs").find_all("img")
    assert len(thumbs) == 3
    assert page.find("a", href=f"/projects/cam/images?session={session_id}")
    assert "hx-trigger" not in page.find("div", id="session-detail").attrs

    fragment = await client.get(session_url, headers={"HX-Request": "true"})
    assert fragment.headers["vary"] == "HX-Request"
    assert "<html" not in fragment.text
    assert parse(fragment.text).find("dd", class_="count-kept").text() == "3"
    missing = await client.get("/sessions/999")
    assert missing.status_code == 404


async def test_a_video_session_can_auto_label_its_frames_as_they_arrive(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    video = make_video(tmp_path / "yard.avi", scenes=2, per_scene=2)
    project = parse((await client.get("/projects/cam")).text)
    assert project.find("input", id="session-autolabel").attrs["name"] == "autolabel"

    response = await client.post(
        "/projects/cam/sessions/video",
        data={"csrf_token": client.cookies["ydc_csrf"], "autolabel": "on"},
        files={"file": ("yard.avi", video_file(video), "video/x-msvideo")},
    )
    plain = await client.post(
        "/api/v1/projects/cam/sessions/video",
        files={"file": ("yard.avi", video_file(video), "video/x-msvideo")},
    )

    assert response.status_code == 303
    session = await stores.session.get(int(response.headers["location"].rsplit("/", 1)[1]))
    assert session.settings["autolabel"] is True
    assert plain.json()["session"]["settings"]["autolabel"] is False
    page = parse((await client.get(response.headers["location"])).text)
    assert "Auto-label on arrival" in page.find("dl", class_="session-settings").text()
