"""Alembic environment (the async template).

The URL comes from ``sqlalchemy.url`` when the caller set one (the app does, see
``app.db.migrate``), otherwise from ``app.config.Settings`` (``YDC_DATABASE_URL``, or the SQLite
file in ``YDC_DATA_DIR``). Online runs call ``asyncio.run``: call them from a thread without a
running event loop (the CLI, or ``asyncio.to_thread``).

On SQLite every upgrade runs in one transaction: pysqlite issues no BEGIN before DDL by itself, so
without taking over BEGIN a failure half-way would leave a half-migrated database.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import event, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.engine import ADVISORY_NAMESPACE, MIGRATION_LOCK
from app.db.migrate import ensure_sqlite_folder
from app.db.models import Base

config = context.config

# The app configures its own logging and sets configure_logger=False; only the CLI uses the ini.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

SQLITE_BUSY_TIMEOUT_S = 15.0


def database_url() -> str:
    """The URL set on the Config, else the one from the settings."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.config import Settings

    return Settings().database_url  # type: ignore[call-arg]  # no pydantic mypy plugin


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def configure_options(url: str) -> dict[str, Any]:
    """The context options shared by online and offline runs."""
    return {
        "target_metadata": target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        "render_as_batch": True,
        "compare_type": True,
        # SQLite does run DDL inside a transaction once we emit BEGIN ourselves (see make_engine).
        "transactional_ddl": True if is_sqlite(url) else None,
    }


def run_migrations_offline() -> None:
    """Emit the migration SQL to stdout (``alembic upgrade --sql``) without a connection."""
    url = database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_options(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def make_engine(url: str) -> AsyncEngine:
    """A throwaway engine for one migration run.

    Not ``app.db.engine.make_engine``: its ``PRAGMA foreign_keys=ON`` would make a batch table
    rebuild (which drops the old table) fire ON DELETE CASCADE into the child tables.
    """
    if not is_sqlite(url):
        return create_async_engine(url, poolclass=pool.NullPool)
    engine = create_async_engine(
        url, poolclass=pool.NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE: take the write lock up front, so a running server cannot interleave.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **configure_options(database_url()))
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes on several machines may start at once: one migrates, the others wait
            # here and then find the schema at head (SQLite's BEGIN IMMEDIATE does the same).
            connection.exec_driver_sql(
                f"SELECT pg_advisory_xact_lock({ADVISORY_NAMESPACE}, {MIGRATION_LOCK})"
            )
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()
    ensure_sqlite_folder(url)
    connectable = make_engine(url)
    try:
        async with connectable.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await connectable.dispose()


def run_migrations_online() -> None:
    """Run the migrations against the database (a new event loop in this thread)."""
    asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
