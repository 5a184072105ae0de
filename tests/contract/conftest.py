"""The contract suite's fixtures: the store bundle of every backend, and a sample project.

Every test that asks for ``stores`` (or ``settings``) runs once per entry of ``BACKENDS``: the
SQLAlchemy stores on SQLite and on PostgreSQL. A new backend (an in-memory fake) is one more entry
there: an async context manager that takes the test's settings and fixture request and yields a
``Stores`` on an empty data dir.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from app.config import Settings
from app.db.migrate import upgrade_to_head_sync
from app.domain.stores import Stores
from app.repositories import create_stores
from tests.contract.support import CLASSES, PROJECT

BackendFactory = Callable[[Settings, pytest.FixtureRequest], AbstractAsyncContextManager[Stores]]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per run; each test gets a copy (migrating every
    test's database would cost more than the test)."""
    path = tmp_path_factory.mktemp("template") / "ydc.db"
    # Alembic's env calls asyncio.run; this fixture may be reached from a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(upgrade_to_head_sync, f"sqlite+aiosqlite:///{path}").result()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@asynccontextmanager
async def sqlite_backend(
    settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[Stores]:
    """The SQLAlchemy stores on a migrated SQLite file in the test's data dir."""
    template: Path = request.getfixturevalue("migrated_sqlite")
    database = settings.data_dir / "ydc.db"
    assert settings.database_url == f"sqlite+aiosqlite:///{database}"
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, database)
    built = create_stores(settings)
    try:
        yield built
    finally:
        await built.close()


@asynccontextmanager
async def postgresql_backend(
    settings: Settings, _request: pytest.FixtureRequest
) -> AsyncIterator[Stores]:
    """The SQLAlchemy stores on a fresh database cloned from the migrated template."""
    assert settings.database_url.startswith("postgresql+asyncpg://")
    built = create_stores(settings)
    try:
        yield built
    finally:
        await built.close()


BACKENDS: dict[str, BackendFactory] = {
    "sqlite": sqlite_backend,
    "postgresql": postgresql_backend,
}


@pytest.fixture(params=list(BACKENDS))
def database_backend(request: pytest.FixtureRequest) -> str:
    """Each contract test runs on every backend (the settings fixture follows it)."""
    return str(request.param)


@pytest.fixture
async def stores(
    database_backend: str, request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[Stores]:
    """The stores of one backend on an empty data dir (overrides the SQLite-only fixture)."""
    async with BACKENDS[database_backend](settings, request) as built:
        yield built


@pytest.fixture
async def project(stores: Stores) -> str:
    """An empty project named ``PROJECT`` with the classes ``CLASSES``."""
    await stores.dataset.create(PROJECT, list(CLASSES))
    return PROJECT
