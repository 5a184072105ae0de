"""The stream form, the feed page and their JSON twins, without a worker: the form opens a
stream session and queues its task (on to the feed page); a scheme the admin does not allow
(``file:`` first) answers 403 naming the setting, what is no URL 422, the live view without an
active model 422, with nothing created; the feed page says the feed waits for a worker, shows
what a worker published (state, frame, stalled when it went silent), passes a capture to the
worker through the feed folder and returns its answer; End closes the session, after which a
capture is refused; a camera's password never shows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.stores import Stores
from app.services import feeds as feed_service
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

URL = "rtsp://cam.local:554/live"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", run_tasks=False, allowed_hosts=["testserver"])


@pytest.fixture(autouse=True)
async def project(app: FastAPI) -> None:
    await app.state.stores.dataset.create("cam", ["thing"])


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def start(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await client.post("/api/v1/projects/cam/sessions/stream", json={"source": URL, **body})


def feed_dir(app: FastAPI, session_id: int) -> Path:
    return feed_service.feed_folder(app.state.settings.data_dir, session_id)


def publish(app: FastAPI, session_id: int, **status: object) -> None:
    """Write a status.json as the feed's worker does."""
    folder = feed_dir(app, session_id)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"state": "live", "message": "Connected: 64x48.", "updated_at": time.time(), **status}
    (folder / "status.json").write_text(json.dumps(data))


def stream_form(page: Element) -> Element:
    return next(f for f in page.find_all("form") if "stream-form" in f.attrs.get("class", ""))


async def test_the_sessions_page_form_opens_a_stream_session_and_queues_its_task(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    page = parse((await client.get("/projects/cam/sessions")).text)
    form = stream_form(page)
    assert form.attrs["action"] == "/projects/cam/sessions/stream"
    names = {i.attrs.get("name") for i in form.find_all("input") + form.find_all("select")}
    assert {"source", "every_seconds", "near_duplicate_bits", "split", "live", "live_rate"} <= names
    assert "imgsz" in names
    assert "rtsp:" in form.find("p", id="stream-source-hint").text()

    response = await client.post(
        "/projects/cam/sessions/stream",
        data={"source": URL, "every_seconds": "2", "split": "val", "near_duplicate_bits": "4"},
    )
    assert response.status_code == 303
    session_id = int(response.headers["location"].split("/")[2])
    assert response.headers["location"] == f"/sessions/{session_id}/feed"
    session = await stores_of(app).session.get(session_id)
    assert session.source == "stream" and session.status == "in_progress"
    assert session.settings["source"] == URL and session.settings["every_seconds"] == 2.0
    assert session.settings["split"] == "val" and session.settings["near_duplicate_bits"] == 4
    (task,) = await stores_of(app).task.list(dataset="cam")
    assert task.kind == "capture_stream" and task.params["session"] == session_id
    assert task.max_attempts == 1
    listed = parse((await client.get("/projects/cam/sessions")).text)
    assert listed.find("a", **{"class": "session-feed-link"}).attrs["href"] == (
        f"/sessions/{session_id}/feed"
    )
    detail = parse((await client.get(f"/sessions/{session_id}")).text)
    assert detail.find("code", **{"class": "feed-source"}).text() == URL


@pytest.mark.parametrize(
    ("source", "status", "words"),
    [
        ("file:///etc/passwd", 403, "YDC_FEED_SCHEMES"),
        ("0", 403, "'device'"),
        ("concat:/a.mp4|/b.mp4", 403, "not allowed"),
        ("", 422, "Give the stream"),
        ("cam.local/live", 422, "not a stream URL"),
    ],
)
async def test_a_source_the_admin_does_not_allow_or_no_url_is_refused_creating_nothing(
    app: FastAPI, client: httpx.AsyncClient, source: str, status: int, words: str
) -> None:
    api = await client.post("/api/v1/projects/cam/sessions/stream", json={"source": source})
    assert api.status_code == status, api.text
    assert words in api.json()["detail"]
    form = await client.post("/projects/cam/sessions/stream", data={"source": source})
    assert form.status_code == status
    assert await stores_of(app).session.list("cam") == []
    assert await stores_of(app).task.list(dataset="cam") == []


async def test_a_camera_of_the_server_opens_when_the_admin_allows_devices(
    tmp_path: Path,
) -> None:
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from tests.conftest import arm_csrf

    settings = Settings(
        data_dir=tmp_path / "other",
        run_tasks=False,
        allowed_hosts=["testserver"],
        feed_schemes="rtsp,device",  # type: ignore[arg-type]
    )
    assert settings.feed_schemes == ["rtsp", "device"]
    assert settings.as_env()["YDC_FEED_SCHEMES"] == "rtsp,device"
    application = create_app(settings)
    async with LifespanManager(application):
        await application.state.stores.dataset.create("cam", ["thing"])
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await arm_csrf(http)
            ok = await http.post("/api/v1/projects/cam/sessions/stream", json={"source": "0"})
            assert ok.status_code == 202, ok.text
            http_url = await http.post(
                "/api/v1/projects/cam/sessions/stream", json={"source": "http://cam/v.mjpg"}
            )
            assert http_url.status_code == 403
            page = parse((await http.get(f"/sessions/{ok.json()['session']['id']}/feed")).text)
            assert page.find("code", **{"class": "feed-source"}).text() == "camera 0 of the server"


async def test_a_stream_session_is_refused_with_507_when_the_disk_is_within_its_reserve(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    figures = os.statvfs(settings.data_dir)
    stores_of(app).disk_reserve = figures.f_bavail * figures.f_frsize + 10**12  # 1 TB above
    api = await start(client)
    assert api.status_code == 507, api.text
    assert "The stream session was not started." in api.json()["detail"]
    form = await client.post("/projects/cam/sessions/stream", data={"source": URL})
    assert form.status_code == 507
    assert await stores_of(app).session.list("cam") == []
    assert await stores_of(app).task.list(dataset="cam") == []


async def test_the_live_view_needs_an_active_model(app: FastAPI, client: httpx.AsyncClient) -> None:
    refused = await start(client, live=True)
    assert refused.status_code == 422
    assert "no active model" in refused.json()["detail"]
    bad_rate = await start(client, live=True, live_rate=1000)
    assert bad_rate.status_code == 422
    assert await stores_of(app).session.list("cam") == []


async def test_the_feed_page_waits_for_a_worker_then_shows_what_it_published(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    started = await start(client, every_seconds=1.5)
    assert started.status_code == 202, started.text
    session_id = started.json()["session"]["id"]
    task_id = started.json()["task"]["id"]

    response = await client.get(f"/sessions/{session_id}/feed")
    assert response.status_code == 200 and response.headers["vary"] == "HX-Request"
    page = parse(response.text)
    panel = page.find("div", id="feed-status")
    assert panel.attrs["data-state"] == "waiting"
    assert "hx-trigger" in panel.attrs and "every 1s" in panel.attrs["hx-trigger"]
    assert f"task #{task_id} is queued" in panel.find("span", id="feed-message").text()
    capture = page.find("button", id="feed-capture")
    assert capture.attrs["aria-keyshortcuts"] == "Space C"
    image = page.find("img", id="feed-image")
    assert image.attrs["src"] == f"/sessions/{session_id}/feed/frame.jpg?view=camera"
    missing = await client.get(f"/sessions/{session_id}/feed/frame.jpg")
    assert missing.status_code == 404

    frame = encode(make_image(64, 48, seed=3), ".jpg")
    publish(app, session_id, fps=12.5, reconnects=2, width=64, height=48)
    (feed_dir(app, session_id) / "camera.jpg").write_bytes(frame)
    fragment = await client.get(f"/sessions/{session_id}/feed", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text.lower()
    panel = parse(fragment.text).find("div", id="feed-status")
    assert panel.attrs["data-state"] == "live"
    assert panel.find("dd", id="feed-reconnects").text() == "2"
    assert panel.find("dd", id="feed-fps").text() == "12.5"
    served = await client.get(f"/sessions/{session_id}/feed/frame.jpg?view=camera")
    assert served.status_code == 200 and served.content == frame
    assert served.headers["cache-control"] == "no-store"
    assert (await client.get(f"/sessions/{session_id}/feed/frame.jpg?view=x")).status_code == 422
    status = (await client.get(f"/api/v1/sessions/{session_id}/feed")).json()
    assert (status["state"], status["fps"], status["reconnects"]) == ("live", 12.5, 2)
    assert status["task"]["id"] == task_id

    publish(app, session_id, updated_at=time.time() - 60)  # the worker went silent
    status = (await client.get(f"/api/v1/sessions/{session_id}/feed")).json()
    assert status["state"] == "stalled" and "not reported" in status["message"]


async def test_a_capture_goes_to_the_worker_through_the_feed_folder_and_comes_back(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = (await start(client)).json()["session"]["id"]
    requests = feed_dir(app, session_id) / "requests"
    results = feed_dir(app, session_id) / "results"

    async def worker() -> None:
        """Answer the first request as the feed's task does."""
        for _ in range(250):  # a file appearing: polled, as the task does
            if requests.is_dir() and any(requests.iterdir()):
                break
            await asyncio.sleep(0.02)
        (asked,) = requests.iterdir()
        body = json.loads(asked.read_text())
        assert body["mode"] == "manual" and abs(body["at"] - time.time()) < 5
        results.mkdir(exist_ok=True)
        answer = {"id": body["id"], "outcome": "kept", "message": "Frame 1 (manual): kept."}
        (results / asked.name).write_text(json.dumps({**answer, "filename": "s.jpg"}))
        asked.unlink()

    answering = asyncio.create_task(worker())
    response = await client.post(f"/api/v1/sessions/{session_id}/feed/capture")
    await answering
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "kept" and response.json()["filename"] == "s.jpg"
    assert list(results.iterdir()) == []  # the answer was taken

    monkeypatch.setattr(feed_service, "CAPTURE_WAIT_S", 0.2)
    pending = await client.post(f"/api/v1/sessions/{session_id}/feed/capture")
    assert pending.json()["outcome"] == "pending"
    assert len(list(requests.iterdir())) == 1  # left for the worker
    form = await client.post(f"/sessions/{session_id}/feed/capture")
    assert form.status_code == 303 and form.headers["location"] == f"/sessions/{session_id}/feed"


async def test_ending_a_feed_completes_the_session_and_refuses_later_captures(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    secret = "rtsp://admin:s3cret@cam.local/live"
    session_id = (
        await client.post("/api/v1/projects/cam/sessions/stream", json={"source": secret})
    ).json()["session"]["id"]
    api = (await client.get(f"/api/v1/sessions/{session_id}")).json()
    assert api["settings"]["source"] == "rtsp://admin:***@cam.local/live"
    page = (await client.get(f"/sessions/{session_id}/feed")).text
    assert (
        "s3cret" not in page and "s3cret" not in (await client.get(f"/sessions/{session_id}")).text
    )
    assert all("s3cret" not in line for line in api["log"])

    ended = await client.post(f"/sessions/{session_id}/feed/end")
    assert ended.status_code == 303
    session = await stores_of(app).session.get(session_id)
    assert session.status == "completed" and session.ended_at is not None
    refused = await client.post(f"/api/v1/sessions/{session_id}/feed/capture")
    assert refused.status_code == 409 and "has ended" in refused.json()["detail"]
    page_after = parse((await client.get(f"/sessions/{session_id}/feed")).text)
    panel = page_after.find("div", id="feed-status")
    assert panel.attrs["data-state"] == "ended" and "hx-trigger" not in panel.attrs
    with contextlib.suppress(AssertionError):
        page_after.find("button", id="feed-capture")
        raise AssertionError("an ended feed still offers Capture")
    again = await client.post(f"/api/v1/sessions/{session_id}/feed/end")
    assert again.status_code == 200 and again.json()["status"] == "completed"


async def test_feed_routes_refuse_a_session_of_another_source(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    webcam = await client.post("/api/v1/projects/cam/sessions/webcam", data={})
    session_id = webcam.json()["id"]
    for response in (
        await client.get(f"/sessions/{session_id}/feed"),
        await client.get(f"/api/v1/sessions/{session_id}/feed"),
        await client.post(f"/api/v1/sessions/{session_id}/feed/capture"),
        await client.post(f"/api/v1/sessions/{session_id}/feed/end"),
    ):
        assert response.status_code == 404, response.text
