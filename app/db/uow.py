"""Unit of work: one transaction plus the file actions that belong to it.

Invariant (DESIGN.md "Write protocol"): a committed row always has its file. New bytes are put
in place *before* the commit and unlinked if the unit rolls back; deletions, moves and mirror
renames happen *after* the commit. Repositories never commit: a store method joins the unit that
is open in the current context, or opens (and commits) its own, so a method called alone is
atomic and a service can make several calls one unit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.engine import session_factories
from app.domain.stores import UnitOfWork
from app.faults import fault_point

log = logging.getLogger(__name__)

BeforeCommit = Callable[[AsyncSession], Awaitable[None]]
FileAction = Callable[[], Any]

_current: ContextVar[SqlUnitOfWork | None] = ContextVar("ydc_unit_of_work", default=None)


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._before_commit: dict[str, BeforeCommit] = {}
        self._after_commit: list[FileAction] = []
        self._on_rollback: list[FileAction] = []
        self.committed = False

    async def __aenter__(self) -> SqlUnitOfWork:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.committed:
            await self.rollback()
        await self.session.close()

    def before_commit(self, key: str, hook: BeforeCommit) -> None:
        """Run ``hook`` once (per key) inside the transaction, just before it commits; mirror
        rewrites use it so a unit that touches an image ten times writes its file once."""
        self._before_commit.setdefault(key, hook)

    def after_commit(self, action: FileAction) -> None:
        """Run ``action`` once the commit has succeeded (deletes, moves, mirror renames)."""
        self._after_commit.append(action)

    def on_rollback(self, action: FileAction) -> None:
        """Undo a file this unit created if the unit does not commit."""
        self._on_rollback.append(action)

    async def commit(self) -> None:
        await self.session.flush()
        done: set[str] = set()
        # Hooks may register further hooks (a class change dirties every label mirror).
        while pending := [k for k in self._before_commit if k not in done]:
            for key in pending:
                done.add(key)
                await self._before_commit[key](self.session)
            await self.session.flush()
        fault_point("before-commit")
        await self.session.commit()
        fault_point("after-commit")
        self.committed = True
        actions, self._after_commit = self._after_commit, []
        self._on_rollback.clear()
        # File work (renames, unlinks, a project's whole tree) runs off the event loop.
        if actions:
            await asyncio.to_thread(_run_all, actions)

    async def rollback(self) -> None:
        try:
            await self.session.rollback()
        finally:
            for action in reversed(self._on_rollback):
                try:
                    action()
                except OSError:
                    log.exception("undoing a file after rollback failed")
            self._on_rollback.clear()
            self._after_commit.clear()


def _run_all(actions: list[FileAction]) -> None:
    for action in actions:
        try:
            action()
        except OSError:
            # The rows are committed; reconcile repairs a file step that failed here.
            log.exception("file action after commit failed")


class Database:
    """The engine and the two ways in: a unit of work for writes, a session for reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._read, self._write = session_factories(engine)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[SqlUnitOfWork]:
        """Join the unit open in this context, or open a new one (which the caller commits)."""
        outer = _current.get()
        if outer is not None and not outer.committed:
            yield _Joined(outer)  # type: ignore[misc]
            return
        uow = SqlUnitOfWork(self._write())
        token = _current.set(uow)
        try:
            async with uow:
                yield uow
        finally:
            _current.reset(token)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reads: the open unit's (to see its own writes) or a short read one."""
        outer = _current.get()
        if outer is not None and not outer.committed:
            yield outer.session
            return
        async with self._read() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


class _Joined(SqlUnitOfWork):
    """A store call inside an open unit: shares it; committing is the outer unit's job."""

    def __init__(self, outer: SqlUnitOfWork) -> None:
        self._outer = outer
        self.session = outer.session
        self.committed = False

    def before_commit(self, key: str, hook: BeforeCommit) -> None:
        self._outer.before_commit(key, hook)

    def after_commit(self, action: FileAction) -> None:
        self._outer.after_commit(action)

    def on_rollback(self, action: FileAction) -> None:
        self._outer.on_rollback(action)

    async def commit(self) -> None:
        await self.session.flush()

    async def rollback(self) -> None:  # the outer unit decides
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
