"""``SessionStore`` on SQLAlchemy: capture sessions and their log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db.models import CaptureSession, Project
from app.db.uow import Database
from app.domain.errors import Invalid, NotFound
from app.domain.models import SessionInfo, SessionSource, SessionStatus
from app.domain.stores import SessionStore
from app.repositories.common import now, project_by_name

MAX_LOG_LINES = 1000


class SqlSessionStore(SessionStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _info(row: CaptureSession, project_name: str) -> SessionInfo:
        return SessionInfo(
            id=row.id,
            dataset=project_name,
            source=row.source,
            settings=dict(row.settings or {}),
            status=row.status,
            counts=dict(row.counts or {}),
            log=list(row.log or []),
            created_at=row.created_at,
            ended_at=row.ended_at,
        )

    async def create(
        self, dataset: str, source: str, settings: dict[str, Any] | None = None
    ) -> SessionInfo:
        if source not in SessionSource.__members__.values():
            raise Invalid(
                f"Capture source {source!r} is not one of {[s.value for s in SessionSource]}."
            )
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, dataset)
            row = CaptureSession(
                project_id=project.id,
                source=source,
                settings=dict(settings or {}),
                status=SessionStatus.IN_PROGRESS,
                counts={},
                log=[],
                created_at=now(),
            )
            uow.session.add(row)
            await uow.commit()
            return self._info(row, project.name)

    async def _row(self, session, session_id: int) -> tuple[CaptureSession, str]:  # type: ignore[no-untyped-def]
        found = (
            await session.execute(
                select(CaptureSession, Project.name)
                .join(Project)
                .where(CaptureSession.id == session_id)
            )
        ).first()
        if found is None:
            raise NotFound(f"There is no capture session {session_id}.")
        return found[0], found[1]

    async def get(self, session_id: int) -> SessionInfo:
        async with self._db.reader() as session:
            return self._info(*await self._row(session, session_id))

    async def list(self, dataset: str) -> list[SessionInfo]:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            rows = await session.scalars(
                select(CaptureSession)
                .where(CaptureSession.project_id == project.id)
                .order_by(CaptureSession.id.desc())
            )
            return [self._info(row, project.name) for row in rows]

    async def record(
        self,
        session_id: int,
        *,
        counts: dict[str, int] | None = None,
        log: str | None = None,
        status: str | None = None,
    ) -> SessionInfo:
        if status is not None and status not in SessionStatus.__members__.values():
            raise Invalid(
                f"Session status {status!r} is not one of {[s.value for s in SessionStatus]}."
            )
        async with self._db.unit() as uow:
            row, project_name = await self._row(uow.session, session_id)
            if counts:
                merged = dict(row.counts or {})
                for key, value in counts.items():
                    merged[key] = int(merged.get(key, 0)) + int(value)
                row.counts = merged
            if log is not None:
                row.log = [*(row.log or []), log][-MAX_LOG_LINES:]
            if status is not None:
                row.status = status
                row.ended_at = None if status == SessionStatus.IN_PROGRESS else now()
            await uow.commit()
            return self._info(row, project_name)

    async def delete(self, session_id: int) -> bool:
        async with self._db.unit() as uow:
            try:
                row, _ = await self._row(uow.session, session_id)
            except NotFound:
                return False
            await uow.session.delete(row)
            await uow.commit()
        return True
