"""Engine and session factory.

One writer at a time, on both databases, so a unit of work that reads then writes sees no other
writer between its read and its write:

- SQLite: every connection gets WAL, foreign keys and a busy timeout, and a transaction opened
  for writing starts with ``BEGIN IMMEDIATE`` (a deferred one could fail with SQLITE_BUSY
  halfway).
- PostgreSQL: a transaction opened for writing first takes a transaction-level advisory lock
  (``WRITE_LOCK``), the same rule across every process and machine on the database; reads take
  no lock and see one snapshot per session (REPEATABLE READ, as a SQLite read transaction does).
  A value outside a column's integer range becomes ``Invalid`` (SQLite would just find nothing).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.domain.errors import Invalid

BUSY_TIMEOUT_MS = 15_000
WRITE = {"ydc_begin": "IMMEDIATE"}

# PostgreSQL advisory lock keys (two int4: ydc's namespace, then what is locked). Advisory
# locks belong to one database, so these never meet another database's.
ADVISORY_NAMESPACE = 0x59444300  # "YDC\0"
WRITE_LOCK = 1  # the write units, one at a time (transaction-level)
DATA_DIR_LOCK = 2  # the data dir: shared by servers and workers, exclusive for reconcile/sync
MIGRATION_LOCK = 3  # one migration at a time (transaction-level, migrations/env.py)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def is_postgresql(url: str) -> bool:
    return url.startswith("postgresql")


def make_engine(url: str) -> AsyncEngine:
    """Build the async engine for ``url`` with ydc's connection settings."""
    if is_postgresql(url):
        return _postgresql_engine(url)
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


def _postgresql_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_pre_ping=True,
        # Like SQLite's busy timeout: a write waits this long for the one before it.
        connect_args={"server_settings": {"lock_timeout": f"{BUSY_TIMEOUT_MS}ms"}},
    )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("ydc_begin") == "IMMEDIATE":
            conn.exec_driver_sql(
                f"SELECT pg_advisory_xact_lock({ADVISORY_NAMESPACE}, {WRITE_LOCK})"
            )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _out_of_range(context: ExceptionContext) -> None:
        # asyncpg refuses to send e.g. an id past 2**31 - 1 for an INTEGER column, and the
        # server refuses arithmetic past it (SQLSTATE 22003).
        error = context.original_exception
        cause = error.__cause__ or error
        if getattr(cause, "sqlstate", None) == "22003" or "out of int" in str(cause):
            raise Invalid(f"A number is out of the range the database can hold: {cause}")

    return engine


def session_factories(engine: AsyncEngine) -> tuple[async_sessionmaker, async_sessionmaker]:
    """(read, write) session factories; the write one begins transactions IMMEDIATE on SQLite
    and behind the write lock on PostgreSQL."""
    reads = engine
    if engine.dialect.name == "postgresql":
        reads = engine.execution_options(isolation_level="REPEATABLE READ")
    read = async_sessionmaker(reads, expire_on_commit=False, autoflush=False)
    write = async_sessionmaker(
        engine.execution_options(**WRITE), expire_on_commit=False, autoflush=True
    )
    return read, write
