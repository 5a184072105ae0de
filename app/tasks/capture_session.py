"""What every capture job does with its session: add a chunk's counts, queue the auto-labelling
of new frames when the session asks for it, and end the session with the job: a cancel keeps
what was stored and ends it ``completed`` (its log says so), an error ends it ``failed``.

A session that something else ended meanwhile (a person's "End session") keeps its status
and end time: the job only adds its last log line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.domain.errors import Cancelled, Invalid
from app.domain.models import SessionInfo, SessionStatus
from app.domain.stores import Stores
from app.services.autolabel import follow_session_frames


@dataclass
class Tally:
    """A job's counts so far, written to its session a chunk at a time."""

    session_id: int
    counts: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)

    async def add(self, stores: Stores, step: dict[str, int]) -> SessionInfo | None:
        """Add a chunk's counts here and on the session; then, when the chunk kept frames and
        the session auto-labels (setting ``autolabel``), queue the labelling of its new frames.
        The session as it is now, or ``None`` when the chunk counted nothing."""
        for key, value in step.items():
            self.counts[key] = self.counts.get(key, 0) + value
        if not any(step.values()):
            return None
        session = await stores.session.record(self.session_id, counts=step)
        if step.get("kept") and session.settings.get("autolabel"):
            await follow_session_frames(stores, session)
        return session


async def end_session(stores: Stores, session_id: int, line: str, status: str) -> SessionInfo:
    """Log ``line`` and set ``status``, unless the session has already ended (then only log)."""
    session = await stores.session.get(session_id)
    ending = status if session.status == SessionStatus.IN_PROGRESS else None
    return await stores.session.record(session_id, log=line, status=ending)


@asynccontextmanager
async def ending_session_on_exit(
    stores: Stores, session_id: int, cancelled: Callable[[], str]
) -> AsyncIterator[None]:
    """Around a capture job's work: a cancel logs ``cancelled()`` and completes the session
    (what was stored stays), an error logs it and fails the session; both are raised on."""
    try:
        yield
    except Cancelled:
        await end_session(stores, session_id, cancelled(), SessionStatus.COMPLETED)
        raise
    except Exception as error:
        message = str(error) if isinstance(error, Invalid) else f"{type(error).__name__}: {error}"
        await end_session(stores, session_id, f"Failed: {message}", SessionStatus.FAILED)
        raise
