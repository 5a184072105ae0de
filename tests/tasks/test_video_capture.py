"""Capture from a video (the issue's acceptance): a video of 10 scenes, 10 noisy frames each,
captured every frame keeps about one frame a scene, records the counts in the session, tags the
images with it and removes the staged video; every T seconds samples by the frame rate; a
cancel keeps what was stored."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.domain.errors import Cancelled
from app.domain.models import TaskInfo
from app.domain.stores import Stores
from app.main import create_app
from app.services.autolabel import NO_ACTIVE_MODEL
from app.tasks.capture import capture_video
from app.tasks.context import TaskContext
from app.tasks.worker import run_task
from tests.conftest import arm_csrf

SCENES, PER_SCENE, FPS = 10, 10, 10.0
WIDTH, HEIGHT = 160, 120


def make_video(path: Path, *, scenes: int = SCENES, per_scene: int = PER_SCENE) -> Path:
    """An MJPG .avi: ``scenes`` distinct block patterns, each shown for ``per_scene`` frames
    with a little noise (near-duplicates, never byte-identical)."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for _ in range(scenes):
        blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        scene = cv2.resize(blocks, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
        for _ in range(per_scene):
            noise = rng.integers(-4, 5, size=scene.shape)
            writer.write(np.clip(scene.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    writer.release()
    return path


def video_file(path: Path) -> io.BytesIO:
    return io.BytesIO(path.read_bytes())


def source_exists(info: TaskInfo) -> bool:
    return Path(str(info.params["source"])).exists()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running and no task runner: a test runs the task itself."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield await arm_csrf(http)


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def upload(
    client: httpx.AsyncClient, video: Path, **fields: str
) -> tuple[dict[str, object], dict[str, object]]:
    response = await client.post(
        "/api/v1/projects/cam/sessions/video",
        data=fields,
        files={"file": (video.name, video_file(video), "video/x-msvideo")},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    return body["session"], body["task"]


async def run_queued(app: FastAPI, settings: Settings) -> int:
    claimed = await stores_of(app).task.claim("test-worker")
    assert claimed is not None and claimed.kind == "capture_video"
    assert await run_task(settings, claimed.id, "test-worker") == 0
    return claimed.id


async def test_a_video_of_ten_scenes_keeps_about_one_frame_a_scene_with_counts_in_its_session(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    video = make_video(tmp_path / "street.avi")

    session, _ = await upload(client, video, every_n="1", split="train")
    assert session["status"] == "in_progress" and session["source"] == "video"
    staged = list((settings.data_dir / "imports" / "capture").iterdir())
    assert len(staged) == 1
    await run_queued(app, settings)

    finished = (await client.get(f"/api/v1/sessions/{session['id']}")).json()
    counts = finished["counts"]
    assert finished["status"] == "completed"
    assert finished["task"]["status"] == "succeeded"
    assert counts["frames_seen"] == SCENES * PER_SCENE
    assert 9 <= counts["kept"] <= 11, counts
    assert counts["kept"] + counts["skipped_near_duplicate"] == SCENES * PER_SCENE
    assert any(line.startswith("Done:") for line in finished["log"])
    images = await stores.image.list("cam")
    assert len(images) == counts["kept"]
    assert {i.session_id for i in images} == {session["id"]}
    assert {i.split for i in images} == {"train"}
    assert images[0].filename == "street-f0.jpg"
    assert all(i.filename.startswith("street-f") for i in images)
    # The staged video is gone.
    assert not staged[0].exists()
    listed = (await client.get("/api/v1/projects/cam/sessions")).json()
    assert [s["id"] for s in listed] == [session["id"]]


async def test_every_t_seconds_samples_by_the_videos_frame_rate(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    video = make_video(tmp_path / "slow.avi", scenes=4, per_scene=10)  # 4 s at 10 fps

    # Every 0.5 s at 10 fps: frames 0, 5, 10, … 35; near-duplicates off, so all 8 are kept.
    session, _ = await upload(client, video, every_seconds="0.5", near_duplicate_bits="0")
    await run_queued(app, settings)

    finished = await stores.session.get(int(session["id"]))  # type: ignore[call-overload]
    assert finished.counts["frames_seen"] == 40
    assert finished.counts["sampled"] == 8
    assert finished.counts["kept"] == 8
    names = sorted(i.filename for i in await stores.image.list("cam"))
    assert names == sorted(f"slow-f{i}.jpg" for i in range(0, 40, 5))


class CancelAfter(TaskContext):
    """A task context whose cancel arrives after ``calls`` progress reports."""

    def __init__(self, task: TaskInfo, stores: Stores, calls: int) -> None:
        super().__init__(task, "test-worker", stores.task, 2.0)
        self.calls = calls

    async def progress(self, fraction: float, message: str = "") -> None:
        self.calls -= 1
        if self.calls < 0:
            raise Cancelled("cancelled")


async def test_a_cancel_keeps_the_frames_stored_and_completes_the_session(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    video = make_video(tmp_path / "long.avi", scenes=10, per_scene=10)
    session, task = await upload(client, video, near_duplicate_bits="0")
    info = await stores.task.get(int(task["id"]))  # type: ignore[call-overload]

    # The first progress report (before reading) passes, the second (after 50 frames) cancels.
    try:
        await capture_video(CancelAfter(info, stores, calls=1), stores)
    except Cancelled:
        pass
    else:
        raise AssertionError("the capture did not stop at the cancel")

    finished = await stores.session.get(int(session["id"]))  # type: ignore[call-overload]
    kept = await stores.image.list("cam")
    assert finished.status == "completed"
    assert finished.counts["frames_seen"] == 50
    assert finished.counts["kept"] == len(kept) == 50
    assert "Cancelled" in finished.log[-1]
    assert not source_exists(info)


async def test_a_video_session_that_auto_labels_asks_for_it_after_each_chunk_it_kept(
    app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("cam", ["thing"])
    video = make_video(tmp_path / "short.avi", scenes=2, per_scene=5)
    session = await stores.session.create("cam", "video", {"autolabel": True})
    params = {"session": session.id, "source": str(video), "settings": {"every_n": 1}}
    await stores.task.enqueue("capture_video", params, dataset="cam", max_attempts=1)

    await run_queued(app, settings)

    # Without an active model the follower says so in the session's log (and queues nothing).
    done = await stores.session.get(session.id)
    assert done.counts["kept"] == 2
    assert NO_ACTIVE_MODEL in done.log
