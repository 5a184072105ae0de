"""Engine and session factory. On SQLite every connection gets WAL, foreign keys and a busy
timeout, and a transaction opened for writing starts with ``BEGIN IMMEDIATE`` so a unit of work
that reads then writes cannot fail with SQLITE_BUSY halfway."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

BUSY_TIMEOUT_MS = 15_000
WRITE = {"ydc_begin": "IMMEDIATE"}


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> AsyncEngine:
    """Build the async engine for ``url`` with ydc's connection settings."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("ydc_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def session_factories(engine: AsyncEngine) -> tuple[async_sessionmaker, async_sessionmaker]:
    """(read, write) session factories; the write one begins transactions IMMEDIATE on SQLite."""
    read = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    write = async_sessionmaker(
        engine.execution_options(**WRITE), expire_on_commit=False, autoflush=True
    )
    return read, write
