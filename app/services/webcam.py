"""Webcam capture: a session whose frames the browser posts one at a time.

A frame is stored with the session's id unless the session has ended (``Conflict``), the bytes
are no image or too large (``Invalid``, nothing stored), the same bytes are already in the
project (counted, not stored twice), or it is an interval capture whose perceptual hash lies
within the session's threshold of the last kept frame's (counted as a near-duplicate). A manual
capture is never skipped as a near-duplicate. The last kept frame is the session's newest image:
one indexed read, never the whole session. A kept frame of a session set to ``autolabel`` queues
the auto-labelling of its new frames with the active model (``follow_session_frames``).

The frames of one session are taken one at a time (a lock per session in this process), so two
quick posts cannot both compare themselves with the same last kept frame, and the session's end
waits for a frame being stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import IO

from app.domain.capture import (
    FrameMode,
    WebcamSettings,
    may_skip,
    webcam_frame_filename,
)
from app.domain.errors import Conflict, DuplicateImage, Invalid, NearDuplicate, NotFound
from app.domain.models import (
    ImageFilter,
    ImageInfo,
    SessionInfo,
    SessionSource,
    SessionStatus,
    TaskInfo,
)
from app.domain.stores import Stores
from app.services.autolabel import follow_session_frames
from app.services.system import ensure_disk_room, size_of

KEPT = "kept"
SKIPPED_NEAR_DUPLICATE = "skipped_near_duplicate"
SKIPPED_DUPLICATE = "skipped_duplicate"
_NEWEST = 2**63 - 1  # ``before_id`` above every id: the newest image first

_locks: dict[int, asyncio.Lock] = {}


@dataclass
class FrameOutcome:
    """What became of one posted frame: ``outcome`` is ``kept``, ``skipped_near_duplicate``
    or ``skipped_duplicate``; ``image`` the stored one when kept."""

    outcome: str
    mode: FrameMode
    session: SessionInfo
    image: ImageInfo | None
    message: str
    distance: int | None = None
    autolabel_task: TaskInfo | None = None  # the follower queued for this frame, if any


def _lock(session_id: int) -> asyncio.Lock:
    return _locks.setdefault(session_id, asyncio.Lock())


async def start_webcam_capture(
    stores: Stores, project: str, settings: WebcamSettings
) -> SessionInfo:
    """Open a webcam session in progress (``NotFound`` for the project)."""
    if await stores.dataset.get(project) is None:
        raise NotFound(f"There is no project named {project!r}.")
    session = await stores.session.create(project, SessionSource.WEBCAM, settings.to_dict())
    into = settings.split or "a drawn split"
    skip = (
        f"interval captures within {settings.near_duplicate_bits} bits of the last kept frame "
        "are skipped"
        if settings.near_duplicate_bits
        else "every frame is kept"
    )
    label = "; frames are auto-labelled as they arrive" if settings.autolabel else ""
    return await stores.session.record(
        session.id, log=f"Webcam session started: frames go into {into}; {skip}{label}."
    )


async def webcam_session(stores: Stores, session_id: int) -> SessionInfo:
    """The session, when it takes its frames from the webcam (``NotFound`` otherwise)."""
    session = await stores.session.get(session_id)
    if session.source != SessionSource.WEBCAM:
        raise NotFound(
            f"Session #{session_id} takes its frames from a {session.source}, not the webcam."
        )
    return session


async def recent_frames(stores: Stores, session: SessionInfo, limit: int) -> list[ImageInfo]:
    """The session's newest ``limit`` frames, newest first."""
    return await stores.image.search(
        session.dataset, ImageFilter(session_id=session.id), before_id=_NEWEST, limit=limit
    )


def _check_open(session: SessionInfo) -> None:
    if session.status != SessionStatus.IN_PROGRESS:
        raise Conflict(
            f"Session #{session.id} has ended ({session.status.replace('_', ' ')}): "
            "start a new webcam session to capture more frames."
        )


async def add_webcam_frame(
    stores: Stores, session_id: int, handle: IO[bytes], *, mode: FrameMode
) -> FrameOutcome:
    """Store one posted frame into the webcam session and count it (see the module's rules).
    Raises ``NotFound`` (session), ``Conflict`` (ended), ``Invalid`` (not an image, too
    large: nothing stored, the session's log says why)."""
    async with _lock(session_id):
        session = await webcam_session(stores, session_id)
        _check_open(session)
        await ensure_disk_room(stores, incoming=size_of(handle))
        settings = WebcamSettings.from_dict(session.settings)
        number = session.counts.get("frames_seen", 0) + 1
        skip_within = None
        if may_skip(mode, settings.near_duplicate_bits):
            last = await recent_frames(stores, session, 1)
            if last and last[0].phash:
                skip_within = (last[0].phash, settings.near_duplicate_bits)
        name = webcam_frame_filename(session.id, number)
        image: ImageInfo | None = None
        distance: int | None = None
        try:
            image = await stores.image.save_file(
                session.dataset,
                settings.split,
                name,
                handle,
                session_id=session.id,
                skip_within=skip_within,
            )
        except NearDuplicate as error:
            outcome, distance = SKIPPED_NEAR_DUPLICATE, error.distance
            message = f"Frame {number} ({mode}): skipped, {distance} bits from the last kept frame."
        except DuplicateImage as error:
            outcome = SKIPPED_DUPLICATE
            message = (
                f"Frame {number} ({mode}): the same picture is already in the project as "
                f"{error.existing_filename}."
            )
        except Invalid as error:
            await stores.session.record(session.id, log=f"A frame was refused: {error}")
            raise
        else:
            outcome = KEPT
            message = f"Frame {number} ({mode}): kept as {image.filename} in {image.split}."
        counts = {"frames_seen": 1, KEPT: 0, SKIPPED_NEAR_DUPLICATE: 0, SKIPPED_DUPLICATE: 0}
        counts[outcome] = 1
        session = await stores.session.record(session.id, counts=counts, log=message)
    follower = None
    if outcome == KEPT and settings.autolabel:
        # At most one queued follower per session: a burst of frames queues one task.
        follower = await follow_session_frames(stores, session)
    return FrameOutcome(outcome, mode, session, image, message, distance, follower)


async def end_webcam_session(stores: Stores, session_id: int) -> SessionInfo:
    """End the session (``completed``) once any frame being stored is in; a session that has
    already ended is left as it is."""
    async with _lock(session_id):
        session = await webcam_session(stores, session_id)
        if session.status != SessionStatus.IN_PROGRESS:
            return session
        c = session.counts
        ended = await stores.session.record(
            session.id,
            log=f"Ended: {c.get('frames_seen', 0)} frames seen, {c.get(KEPT, 0)} kept, "
            f"{c.get(SKIPPED_NEAR_DUPLICATE, 0)} skipped as near-duplicates, "
            f"{c.get(SKIPPED_DUPLICATE, 0)} already in the project.",
            status=SessionStatus.COMPLETED,
        )
    _locks.pop(session_id, None)
    return ended


__all__ = [
    "KEPT",
    "SKIPPED_DUPLICATE",
    "SKIPPED_NEAR_DUPLICATE",
    "FrameOutcome",
    "add_webcam_frame",
    "end_webcam_session",
    "recent_frames",
    "start_webcam_capture",
    "webcam_session",
]
