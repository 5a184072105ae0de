"""A capture session is ended by the task that fills it. When that task ends without running
its job to the end (cancelled while queued, or its worker died: failed "interrupted", or
killed after a cancel), nothing else would end the session, so it would stay ``in_progress``.

``settle_session`` ends such a session from its task's final status: cancelled or succeeded →
``completed``, failed → ``failed``, with a log line naming the task. It is called where the task
ends without its job (``services.tasks.cancel_task``) and where a session is read, which also
covers a worker that died (only the heartbeat sweep sees that, and it knows nothing of
sessions). A task that is queued or running, or a session that has ended, is left as it is.
"""

from __future__ import annotations

from app.domain.errors import NotFound
from app.domain.models import SessionInfo, SessionSource, SessionStatus, TaskInfo, TaskStatus
from app.domain.stores import Stores

CAPTURE_KINDS = ("capture_video", "capture_folder", "capture_stream")
FILLED_BY_TASK = (SessionSource.VIDEO, SessionSource.FOLDER, SessionSource.STREAM)
_RECENT_TASKS = 200  # how far back a session's task is looked for


async def capture_task(stores: Stores, session: SessionInfo) -> TaskInfo | None:
    """The newest capture task that fills the session, if any is still on record."""
    tasks = await stores.task.list(
        dataset=session.dataset, kinds=list(CAPTURE_KINDS), limit=_RECENT_TASKS
    )
    return next((t for t in tasks if t.params.get("session") == session.id), None)


async def settle_session(stores: Stores, session: SessionInfo) -> SessionInfo:
    """The session, ended now when its capture task has ended and left it in progress."""
    if session.status != SessionStatus.IN_PROGRESS or session.source not in FILLED_BY_TASK:
        return session
    settled, _ = await session_with_task(stores, session)
    return settled


async def session_with_task(
    stores: Stores, session: SessionInfo
) -> tuple[SessionInfo, TaskInfo | None]:
    """The session (settled as ``settle_session`` does) and the capture task that fills it
    (``None`` for a webcam session, or when the task is no longer on record)."""
    if session.source not in FILLED_BY_TASK:
        return session, None
    task = await capture_task(stores, session)
    if (
        session.status == SessionStatus.IN_PROGRESS
        and task is not None
        and task.status not in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    ):
        session = await _end(stores, session, task)
    return session, task


async def settle_after_task(stores: Stores, task: TaskInfo) -> None:
    """After ``task`` ended without its job (a cancel while queued): end its session."""
    if task.kind not in CAPTURE_KINDS or task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
        return
    try:
        session = await stores.session.get(int(task.params["session"]))
    except (KeyError, TypeError, ValueError, NotFound):
        return
    if session.status == SessionStatus.IN_PROGRESS:
        await _end(stores, session, task)


async def _end(stores: Stores, session: SessionInfo, task: TaskInfo) -> SessionInfo:
    if task.status == TaskStatus.FAILED:
        line = f"Failed: task #{task.id} ended without finishing ({task.error or task.message})."
        status = SessionStatus.FAILED
    else:
        line = f"Ended: task #{task.id} was {task.status} ({task.message}); what it stored stays."
        status = SessionStatus.COMPLETED
    return await stores.session.record(session.id, log=line, status=status)


__all__ = [
    "CAPTURE_KINDS",
    "capture_task",
    "session_with_task",
    "settle_after_task",
    "settle_session",
]
