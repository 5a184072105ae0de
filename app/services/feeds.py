"""Stream feeds: open a capture session whose frames come from a stream (RTSP, HTTP MJPEG, a
camera of the server) and queue the ``capture_stream`` task that reads it, ask that task for a
capture now, read what it publishes, and end the session.

The task runs in a worker and owns the stream; the server never opens it. They meet in the
session's feed folder, ``<data dir>/feeds/<session id>/``, which holds only ephemeral files
(nothing in it is part of a dataset; reconcile leaves it alone):

- ``status.json``: the task's state (connecting, live, reconnecting…), frame rate, reconnects,
  the live view's boxes, rewritten a few times a second;
- ``camera.jpg`` and ``live.jpg``: the newest frame, and the newest frame the model saw with its
  boxes drawn on it;
- ``requests/<id>.json``: a capture the web asked for (with the time it was asked), taken by the
  task at its next look (every 0.1 s) and answered in ``results/<id>.json``.

Every file is written to a temporary name in the same folder and renamed into place, so a reader
sees the old file or the new one, never half of one. No fsync: a crash loses a preview frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.feeds import FeedSettings, check_source, page_state, redact_url
from app.domain.models import ImageInfo, SessionInfo, SessionSource, SessionStatus, TaskInfo
from app.domain.stores import Stores
from app.services.session_settle import session_with_task
from app.services.system import ensure_disk_room
from app.services.webcam import recent_frames

KIND = "capture_stream"
FEEDS = "feeds"
STATUS = "status.json"
VIEWS = {"camera": "camera.jpg", "live": "live.jpg"}
REQUESTS = "requests"
RESULTS = "results"
CAPTURE_WAIT_S = 5.0  # how long "capture now" waits for the task's answer
_WAIT_STEP_S = 0.05


@dataclass
class FeedView:
    """A feed session with its task, what the task last published, and the state to show."""

    session: SessionInfo
    task: TaskInfo | None
    status: dict[str, Any] | None
    state: str
    source: str  # the source as shown (no password)
    recent: list[ImageInfo]


# --- the feed folder (shared with app.tasks.feed) --------------------------------------------


def feed_folder(data_dir: Path, session_id: int) -> Path:
    return data_dir / FEEDS / str(int(session_id))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, separators=(",", ":")).encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when it is absent or not whole (blocking)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- use cases --------------------------------------------------------------------------------


async def start_feed_capture(
    stores: Stores, project: str, settings: FeedSettings, *, schemes: Sequence[str]
) -> tuple[SessionInfo, TaskInfo]:
    """Open a stream session in ``project`` and queue the task that reads it. ``NotFound``
    (project), ``Forbidden`` (a scheme or camera the admin does not allow in ``schemes``),
    ``Invalid`` (no URL; live view without an active model), ``InsufficientStorage`` (507:
    the disk is within its reserve); nothing is created then."""
    source = check_source(settings.source, schemes)
    if await stores.dataset.get(project) is None:
        raise NotFound(f"There is no project named {project!r}.")
    await ensure_disk_room(stores, outcome="The stream session was not started.")
    model_line = ""
    if settings.live:
        model = await stores.model.get_active(dataset=project)
        if model is None:
            raise Invalid(
                f"Project {project!r} has no active model for the live view: train one or make "
                "one of its models active, or untick the live view."
            )
        model_line = f" Live view with model {model.name}."
    chosen = replace(settings, source=source.url or str(source.device))
    session = await stores.session.create(project, SessionSource.STREAM, chosen.to_dict())
    params = {"session": session.id, "settings": chosen.to_dict()}
    # One attempt: a retry would number the frames of the first one again.
    task = await stores.task.enqueue(KIND, params, dataset=project, max_attempts=1)
    session = await stores.session.record(
        session.id,
        log=f"Stream {source.describe()}; {chosen.describe()}.{model_line} "
        f"Feed task #{task.id} queued.",
    )
    return session, task


async def stream_session(stores: Stores, session_id: int) -> SessionInfo:
    """The session, when it reads a stream (``NotFound`` otherwise)."""
    session = await stores.session.get(session_id)
    if session.source != SessionSource.STREAM:
        raise NotFound(
            f"Session #{session_id} takes its frames from a {session.source}, not a stream."
        )
    return session


def shown_source(session: SessionInfo) -> str:
    text = str(session.settings.get("source") or "")
    return f"camera {text} of the server" if text.isdigit() else redact_url(text)


async def read_status(stores: Stores, session_id: int) -> dict[str, Any] | None:
    """What the feed's task last published (``None`` before it started)."""
    return await asyncio.to_thread(read_json, feed_folder(stores.data_dir, session_id) / STATUS)


async def feed_view(stores: Stores, session_id: int, *, recent: int = 12) -> FeedView:
    """A stream session, its task, its published status and newest frames (``NotFound``)."""
    session, task = await session_with_task(stores, await stream_session(stores, session_id))
    status = await read_status(stores, session.id)
    state = page_state(
        status, now=time.time(), in_progress=session.status == SessionStatus.IN_PROGRESS
    )
    frames = await recent_frames(stores, session, recent) if recent > 0 else []
    return FeedView(session, task, status, state, shown_source(session), frames)


async def frame_bytes(stores: Stores, session_id: int, view: str) -> bytes:
    """The newest ``camera`` frame, or the ``live`` one with the model's boxes, as JPEG bytes
    (``NotFound`` before the task wrote one; ``Invalid`` for another view). Read whole in one
    open: the task replaces the file several times a second, so a size taken before opening
    it could belong to another frame."""
    name = VIEWS.get(view)
    if name is None:
        raise Invalid(f"The view is one of {', '.join(VIEWS)}, not {view!r}.")
    await stream_session(stores, session_id)
    path = feed_folder(stores.data_dir, session_id) / name
    try:
        return await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NotFound(f"Session #{session_id} has no {view} frame yet.") from None


async def request_capture(
    stores: Stores, session_id: int, *, wait_s: float | None = None
) -> dict[str, Any]:
    """Ask the feed's task to capture the frame on screen now (a manual capture: never skipped
    as a near-duplicate) and wait up to ``wait_s`` for its answer: ``outcome`` is ``kept``,
    ``skipped_duplicate``, ``no_frame``, or ``pending`` when the task has not answered yet
    (it still takes it). ``Conflict`` once the session has ended, ``NotFound``."""
    session = await stream_session(stores, session_id)
    if session.status != SessionStatus.IN_PROGRESS:
        raise Conflict(
            f"Session #{session.id} has ended ({session.status.replace('_', ' ')}): start a new "
            "stream session to capture more frames."
        )
    folder = feed_folder(stores.data_dir, session.id)
    request_id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    asked = {"id": request_id, "at": time.time(), "mode": "manual"}
    await asyncio.to_thread(write_json, folder / REQUESTS / f"{request_id}.json", asked)
    answer = folder / RESULTS / f"{request_id}.json"
    deadline = time.monotonic() + (CAPTURE_WAIT_S if wait_s is None else wait_s)
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(read_json, answer)
        if result is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(answer.unlink)
            return result
        await asyncio.sleep(_WAIT_STEP_S)
    return {
        "id": request_id,
        "outcome": "pending",
        "message": "Asked: the feed takes the frame as soon as it has one.",
    }


async def end_feed_session(stores: Stores, session_id: int) -> SessionInfo:
    """End a stream session (``completed``): its task sees it within half a second, closes
    the stream and stops; what it stored stays. An ended session stays as it is."""
    session = await stream_session(stores, session_id)
    if session.status != SessionStatus.IN_PROGRESS:
        return session
    return await stores.session.record(
        session_id,
        log="Ended: the feed closes the stream and stops; the captured frames stay.",
        status=SessionStatus.COMPLETED,
    )


__all__ = [
    "KIND",
    "FeedView",
    "end_feed_session",
    "feed_folder",
    "feed_view",
    "frame_bytes",
    "read_json",
    "read_status",
    "request_capture",
    "start_feed_capture",
    "stream_session",
    "write_atomic",
    "write_json",
]
