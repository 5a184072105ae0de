"""Capture from a server folder: open a session whose images come from a folder under
``YDC_IMPORT_ROOTS`` and queue the ``capture_folder`` task that takes them (and, in watch mode,
the files that appear later), and end such a session by hand.

The folder is checked against the import roots here, before anything is created (``Forbidden``
outside them, ``NotFound`` when it is no folder), and again by the task when it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from app.domain.capture_folder import FolderSettings
from app.domain.errors import Invalid, NotFound
from app.domain.models import SessionInfo, SessionSource, SessionStatus, TaskInfo
from app.domain.stores import Stores
from app.services.imports import server_folder
from app.services.system import ensure_disk_room

KIND = "capture_folder"


async def start_folder_capture(
    stores: Stores, project: str, settings: FolderSettings, *, roots: Sequence[Path]
) -> tuple[SessionInfo, TaskInfo]:
    """Open a folder session in ``project`` and queue its task. ``NotFound`` (project, or no
    folder there), ``Forbidden`` (the folder lies outside ``roots``, or there are none),
    ``Invalid`` (no absolute path); nothing is created then."""
    if await stores.dataset.get(project) is None:
        raise NotFound(f"There is no project named {project!r}.")
    folder = await asyncio.to_thread(server_folder, settings.folder, roots)
    await ensure_disk_room(stores, outcome="No session was opened.")
    chosen = replace(settings, folder=str(folder))
    session = await stores.session.create(project, SessionSource.FOLDER, chosen.to_dict())
    params = {"session": session.id, "settings": chosen.to_dict()}
    # One attempt: a retry would count the files of the first one again.
    task = await stores.task.enqueue(KIND, params, dataset=project, max_attempts=1)
    session = await stores.session.record(
        session.id, log=f"Folder {folder}; capture task #{task.id} queued."
    )
    return session, task


async def end_folder_session(stores: Stores, session_id: int) -> SessionInfo:
    """End a folder session (``completed``): its task stops at its next look at the folder,
    keeping what it stored. A session that has ended stays as it is; ``NotFound``, and
    ``Invalid`` for a session of another source."""
    session = await stores.session.get(session_id)
    if session.source != SessionSource.FOLDER:
        raise Invalid(f"Session {session_id} does not capture from a folder.")
    if session.status != SessionStatus.IN_PROGRESS:
        return session
    return await stores.session.record(
        session_id,
        log="Ended: the task stops at its next look at the folder; what it stored stays.",
        status=SessionStatus.COMPLETED,
    )


__all__ = ["KIND", "end_folder_session", "start_folder_capture"]
