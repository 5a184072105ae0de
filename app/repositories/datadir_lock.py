"""The data dir's lock (DESIGN.md "Start-up reconcile and recovery").

A server or worker holds it shared while it runs; ``ydc reconcile`` and ``ydc sync-from-disk``
need it exclusively, so they never move files under a process that is writing them. An
``flock`` on ``<data dir>/.ydc.lock``: the kernel drops it when the holder dies, so a killed
server never leaves the data dir locked.

On PostgreSQL the processes sharing the data dir may run on several machines (storage/ on NFS),
where an flock is not to be trusted, so the lock is also a session-level advisory lock in the
database, on a connection of its own that lives as long as the hold: the server drops it when
that connection ends (a dead process, a dead machine). Its key is the database's, not the data
dir's path: every machine may mount the shared storage elsewhere, and one database always goes
with one data dir.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.db.engine import ADVISORY_NAMESPACE, DATA_DIR_LOCK, is_postgresql
from app.domain.errors import YdcError

LOCK_NAME = ".ydc.lock"
KEY = f"{ADVISORY_NAMESPACE}, {DATA_DIR_LOCK}"

T = TypeVar("T")


class DataDirBusy(YdcError):
    """Another ydc process holds the data dir in a way that excludes this one."""

    status = 409


class DataDirLock:
    def __init__(self, data_dir: Path, database_url: str = "") -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None
        self._advisory = AdvisoryLock(database_url) if is_postgresql(database_url) else None

    def _open(self) -> int:
        if self._fd is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def try_exclusive(self) -> bool:
        """Take the lock alone if no other process holds it; ``False`` otherwise."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if self._advisory is not None and not self._advisory.try_exclusive():
            fcntl.flock(fd, fcntl.LOCK_UN)  # a process on another machine holds it
            return False
        return True

    def exclusive(self) -> None:
        """Take the lock alone, or refuse (a server or worker is using the data dir)."""
        if not self.try_exclusive():
            self.release()
            raise DataDirBusy(
                f"A ydc server or worker is using {self.data_dir}. Stop it first, or run "
                "reconcile and sync from the Storage health page of the running server."
            )

    def shared(self) -> None:
        """Hold the lock alongside other servers and workers, or refuse while a reconcile or
        sync-from-disk from the command line has it alone. Also turns an exclusive hold into
        a shared one."""
        try:
            fcntl.flock(self._open(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = self._advisory is None or self._advisory.try_shared()
        except BlockingIOError:
            held = False
        if not held:
            self.release()
            raise DataDirBusy(
                f"ydc reconcile or sync-from-disk is working on {self.data_dir}; start again "
                "when it has finished."
            )

    def release(self) -> None:
        if self._advisory is not None:
            self._advisory.release()
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AdvisoryLock:
    """The data dir's advisory lock on PostgreSQL. Its connection runs on an event loop in a
    thread of its own, so the lock works the same from async code and from plain code."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._exclusive = 0  # exclusive holds to drop once the shared one is taken

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="ydc-advisory-lock", daemon=True
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _ask(self, function: str) -> bool:
        if self._conn is None:
            # AUTOCOMMIT: the connection holds the lock, never an open transaction.
            self._engine = create_async_engine(
                self._url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
            )
            self._conn = await self._engine.connect()
        return bool(await self._conn.scalar(text(f"SELECT {function}({KEY})")))

    def try_exclusive(self) -> bool:
        taken = self._run(self._ask("pg_try_advisory_lock"))
        self._exclusive += taken
        return taken

    def try_shared(self) -> bool:
        """Take it shared; an exclusive hold of this connection becomes the shared one."""

        async def share() -> bool:
            # A session's own exclusive hold never blocks its shared request.
            if not await self._ask("pg_try_advisory_lock_shared"):
                return False
            for _ in range(self._exclusive):
                await self._ask("pg_advisory_unlock")
            self._exclusive = 0
            return True

        return self._run(share())

    def release(self) -> None:
        """Close the connection (which drops every hold) and stop the thread."""
        if self._loop is None:
            return

        async def close() -> None:
            if self._conn is not None:
                await self._conn.close()
            if self._engine is not None:
                await self._engine.dispose()

        try:
            self._run(close())
        finally:
            self._conn = self._engine = None
            self._exclusive = 0
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop.close()
            self._loop = self._thread = None
