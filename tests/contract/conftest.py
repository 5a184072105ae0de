"""The contract suite's fixtures: the store bundle of every backend, and a sample project.

Every test that asks for ``stores`` runs once per entry of ``BACKENDS``; a new backend (an
in-memory fake, PostgreSQL) is one more entry there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.domain.stores import Stores
from app.repositories import create_stores
from tests.contract.support import CLASSES, PROJECT

BackendFactory = Callable[[Settings], AbstractAsyncContextManager[Stores]]


@asynccontextmanager
async def sql_backend(settings: Settings) -> AsyncIterator[Stores]:
    """The SQLAlchemy stores on a freshly migrated SQLite file."""
    await upgrade_to_head(settings.database_url)
    built = create_stores(settings)
    try:
        yield built
    finally:
        await built.close()


BACKENDS: dict[str, BackendFactory] = {
    "sql": sql_backend,
}


@pytest.fixture(params=list(BACKENDS))
async def stores(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Stores]:
    """The stores of one backend on an empty data dir (overrides the SQL-only fixture)."""
    async with BACKENDS[request.param](settings) as built:
        yield built


@pytest.fixture
async def project(stores: Stores) -> str:
    """An empty project named ``PROJECT`` with the classes ``CLASSES``."""
    await stores.dataset.create(PROJECT, list(CLASSES))
    return PROJECT
