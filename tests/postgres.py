"""A real PostgreSQL server for the tests (never a mock): ``pgserver``'s PostgreSQL 16, started
in a temp dir the first time a test asks for it and stopped at the end of the run.

The schema is migrated once into one database; before each test every table but
``alembic_version`` is emptied and every sequence restarted (ids from 1 again, as in a fresh
SQLite file): plain DELETEs with the foreign-key triggers off, ≈ 3 ms a test, where a TRUNCATE
costs ≈ 17 ms (new files for every table and index) and cloning a template database 50-200 ms.
A server that cannot start makes the tests that need it error out: they are never
skipped.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.db.migrate import upgrade_to_head_sync

DATABASE = "ydc_test"
# The server is thrown away after the run: durability only costs time here.
SPEED_OVER_SAFETY = ("fsync", "synchronous_commit", "full_page_writes")

T = TypeVar("T")


class PostgresServer:
    """The running server, and one admin connection to the test database on a thread of its
    own (fixtures may be reached from a running event loop)."""

    def __init__(self, socket_dir: str, port: int) -> None:
        self.socket_dir, self.port = socket_dir, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn: Any = None
        self._emptying = ""

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL ydc takes (``YDC_DATABASE_URL``) for ``database``."""
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _connect(self, database: str) -> Any:
        import asyncpg

        return await asyncpg.connect(
            host=self.socket_dir, port=self.port, user="postgres", database=database
        )

    def setup(self) -> None:
        """Tune the throwaway server, create the test database and migrate it."""

        async def create() -> None:
            conn = await self._connect("postgres")
            try:
                for name in SPEED_OVER_SAFETY:
                    await conn.execute(f"ALTER SYSTEM SET {name} = off")
                await conn.execute("SELECT pg_reload_conf()")
                await conn.execute(f"CREATE DATABASE {DATABASE}")
            finally:
                await conn.close()

        self._run(create())
        with ThreadPoolExecutor(max_workers=1) as pool:  # Alembic's env calls asyncio.run
            pool.submit(upgrade_to_head_sync, self.url()).result()

        async def emptying() -> str:
            self._conn = await self._connect(DATABASE)
            tables = await self._conn.fetch(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            sequences = await self._conn.fetch(
                "SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = 'public'"
            )
            # replica: no foreign-key triggers, so the order of the DELETEs does not matter.
            return " ".join(
                [
                    "SET session_replication_role = replica;",
                    *(f"DELETE FROM {table};" for (table,) in tables),
                    *(f"ALTER SEQUENCE {sequence} RESTART;" for (sequence,) in sequences),
                    "RESET session_replication_role;",
                ]
            )

        self._emptying = self._run(emptying())

    def empty(self) -> None:
        """Every table emptied and its ids restarted; the connections a test left behind (a
        killed worker's) are ended first, so none holds a lock the DELETEs would wait for."""

        async def empty() -> None:
            await self._conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                DATABASE,
            )
            await self._conn.execute(self._emptying)  # one round trip

        self._run(empty())

    def empty_database(self, name: str) -> str:
        """A new database with no schema at all (dropped and made again if it exists)."""

        async def create() -> None:
            conn = await self._connect("postgres")
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        self._run(create())
        return self.url(name)

    def close(self) -> None:
        if self._conn is not None:
            self._run(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the run, with a migrated test database."""
    # Not under pytest's temp root: as root, pgserver runs PostgreSQL as its own user, which
    # must traverse the path, and every pytest start makes that root 0700 again.
    folder = Path(tempfile.mkdtemp(prefix="ydc-postgres-"))
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set (harmless)
        warnings.simplefilter("ignore")
        import pgserver  # the dev extra installs it

        server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    running: PostgresServer | None = None
    try:
        info = server.get_postmaster_info()
        assert info.socket_dir is not None, "pgserver started PostgreSQL without a unix socket"
        running = PostgresServer(str(info.socket_dir), int(info.port or 5432))
        running.setup()
        yield running
    finally:
        if running is not None:
            running.close()
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of the migrated PostgreSQL test database, emptied for this test."""
    postgres_server.empty()
    return postgres_server.url()
