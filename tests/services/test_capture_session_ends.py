"""A capture task that ends without running its job to the end (cancelled while queued, or
failed because its worker died) ends its session too, for video and folder sessions alike;
a session whose task is queued or running is left in progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.capture import CaptureSettings
from app.domain.capture_folder import FolderSettings
from app.domain.models import SessionInfo, TaskInfo
from app.domain.stores import Stores
from app.services.capture import start_video_capture
from app.services.capture_folder import start_folder_capture
from app.services.session_settle import session_with_task, settle_session
from app.services.tasks import cancel_task


async def start(stores: Stores, source: str, tmp_path: Path) -> tuple[SessionInfo, TaskInfo]:
    await stores.dataset.create("cam", ["thing"])
    if source == "video":
        staged = tmp_path / "clip.avi"
        staged.write_bytes(b"never read: the task does not run")
        return await start_video_capture(
            stores, "cam", video=staged, filename="clip.avi", settings=CaptureSettings()
        )
    folder = tmp_path / "incoming"
    folder.mkdir()
    return await start_folder_capture(
        stores, "cam", FolderSettings(folder=str(folder)), roots=[tmp_path]
    )


@pytest.mark.parametrize("source", ["video", "folder"])
async def test_cancelling_a_queued_capture_task_completes_its_session(
    stores: Stores, source: str, tmp_path: Path
) -> None:
    session, task = await start(stores, source, tmp_path)

    cancelled = await cancel_task(stores, task.id)

    assert cancelled.status == "cancelled"
    ended = await stores.session.get(session.id)
    assert ended.status == "completed" and ended.ended_at is not None
    assert ended.log[-1].startswith(f"Ended: task #{task.id} was cancelled")


@pytest.mark.parametrize("source", ["video", "folder"])
async def test_a_session_whose_worker_died_is_failed_when_it_is_read(
    stores: Stores, source: str, tmp_path: Path
) -> None:
    session, task = await start(stores, source, tmp_path)
    claimed = await stores.task.claim("a-worker-that-dies")
    assert claimed is not None and claimed.id == task.id
    # Running: left as it is.
    assert (await settle_session(stores, session)).status == "in_progress"

    # Its heartbeat stops; with one attempt the sweep fails it as interrupted.
    assert await stores.task.requeue_stale(-1.0) == [task.id]
    settled = await settle_session(stores, await stores.session.get(session.id))

    assert settled.status == "failed"
    assert settled.log[-1].startswith(f"Failed: task #{task.id} ended without finishing")
    assert "interrupted" in settled.log[-1]
    # Settling again changes nothing.
    again = await settle_session(stores, settled)
    assert again == settled
    assert (await stores.session.get(session.id)).log == settled.log


async def test_a_queued_capture_task_leaves_its_session_in_progress(
    stores: Stores, tmp_path: Path
) -> None:
    session, _ = await start(stores, "folder", tmp_path)
    assert (await settle_session(stores, session)).status == "in_progress"
    assert (await stores.session.get(session.id)).log == session.log


@pytest.mark.parametrize("source", ["video", "folder"])
async def test_a_session_is_read_with_its_task_and_settled_on_the_way(
    stores: Stores, source: str, tmp_path: Path
) -> None:
    session, task = await start(stores, source, tmp_path)
    read, found = await session_with_task(stores, session)
    assert found is not None and found.id == task.id and read.status == "in_progress"

    await stores.task.request_cancel(task.id)  # as the runner would, without the service
    read, found = await session_with_task(stores, session)

    assert found is not None and found.status == "cancelled"
    assert read.status == "completed" and read == await stores.session.get(session.id)
    webcam = await stores.session.create("cam", "webcam", {})
    assert await session_with_task(stores, webcam) == (webcam, None)
