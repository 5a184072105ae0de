"""Capture use cases: start a capture session from an uploaded video (the video is copied to
``imports/capture/`` and a ``capture_video`` task turns it into frames, then removes it), list a
project's sessions, and read one session with its task and some of its images.

The staged videos live in a folder of their own; the storage reconcile keeps the ones a capture
task that has not ended will read and removes the others (left by a worker that died).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO

from app.domain.capture import CaptureSettings, check_video_name
from app.domain.errors import Invalid, NotFound
from app.domain.models import ImageFilter, ImageInfo, SessionInfo, SessionSource, TaskInfo
from app.domain.stores import Stores
from app.services.session_settle import session_with_task, settle_session
from app.services.system import ensure_disk_room, size_of
from app.services.uploads import keep_upload

KIND = "capture_video"
STAGING = ("imports", "capture")
THUMBNAILS = 24


@dataclass
class SessionView:
    """A session with the task that fills it (if any) and up to ``THUMBNAILS`` of its images."""

    session: SessionInfo
    task: TaskInfo | None
    images: list[ImageInfo]


def staging_folder(stores: Stores) -> Path:
    return stores.data_dir.joinpath(*STAGING)


async def stage_video(stores: Stores, handle: IO[bytes], filename: str, *, max_bytes: int) -> Path:
    """Copy an uploaded video into the staging folder, in a thread; ``Invalid`` for a name
    that is no video, ``TooLarge`` past ``max_bytes`` (nothing is left behind)."""
    check_video_name(filename)
    await ensure_disk_room(stores, incoming=size_of(handle))
    target = staging_folder(stores) / f"video-{uuid.uuid4().hex}{PurePath(filename).suffix.lower()}"
    if not await keep_upload(handle, target, max_bytes=max_bytes, what="The video"):
        await asyncio.to_thread(target.unlink, missing_ok=True)
        raise Invalid(f"{filename!r} is empty.")
    return target


async def start_video_capture(
    stores: Stores,
    project: str,
    *,
    video: Path,
    filename: str,
    settings: CaptureSettings,
    autolabel: bool = False,
) -> tuple[SessionInfo, TaskInfo]:
    """Open a capture session for the staged ``video`` and queue the task that fills it
    (``autolabel``: its frames are auto-labelled as they arrive). The staged video is removed
    when this fails (``NotFound`` for the project)."""
    try:
        if await stores.dataset.get(project) is None:
            raise NotFound(f"There is no project named {project!r}.")
        recorded = {**settings.to_dict(), "filename": filename, "autolabel": autolabel}
        session = await stores.session.create(project, SessionSource.VIDEO, recorded)
        params = {
            "session": session.id,
            "source": str(video),
            "filename": filename,
            "settings": settings.to_dict(),
        }
        # One attempt: a retry would count the frames of the first one again.
        task = await stores.task.enqueue(KIND, params, dataset=project, max_attempts=1)
        session = await stores.session.record(
            session.id, log=f"Uploaded {filename}; capture task #{task.id} queued."
        )
        return session, task
    except BaseException:
        await asyncio.to_thread(video.unlink, missing_ok=True)
        raise


async def list_sessions(stores: Stores, project: str) -> list[SessionInfo]:
    """The project's sessions, newest first, each ended now if the task that fills it ended
    without ending it (``NotFound`` for the project)."""
    return [await settle_session(stores, s) for s in await stores.session.list(project)]


async def session_view(stores: Stores, session_id: int) -> SessionView:
    """A session with its task and its first frames (``NotFound``)."""
    session, task = await session_with_task(stores, await stores.session.get(session_id))
    images = await stores.image.search(
        session.dataset, ImageFilter(session_id=session.id), limit=THUMBNAILS
    )
    return SessionView(session, task, images)


__all__ = [
    "KIND",
    "SessionView",
    "list_sessions",
    "session_view",
    "stage_video",
    "start_video_capture",
]
