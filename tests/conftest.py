"""Shared fixtures: settings on a temporary data dir, migrated stores, sample images."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.domain.stores import Stores
from app.repositories import create_stores

# asgi-lifespan gives start-up and shutdown 5 s each. Start-up migrates and reconciles a fresh
# data dir, which takes ~0.3 s alone but more than 5 s on a 2-core machine other jobs load;
# a minute keeps a real hang visible without failing a test for the machine's load.
LifespanManager.__init__.__defaults__ = (60, 60)

# The session fixtures shapes_model and postgres_server (a real PostgreSQL for both backends).
pytest_plugins = ["tests.shapes", "tests.postgres"]

# The databases ydc runs on. tests/contract and tests/services run on each (their conftest
# parametrises ``database_backend``); the other tests run on SQLite.
DATABASE_BACKENDS = ("sqlite", "postgresql")

# Small real exports from other tools, kept in the repository (CI runs on a bare clone).
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def database_backend() -> str:
    """The database of the test's settings: SQLite unless a folder's conftest says otherwise."""
    return "sqlite"


@pytest.fixture
def settings(tmp_path: Path, database_backend: str, request: pytest.FixtureRequest) -> Settings:
    """Settings on a fresh data dir under ``tmp_path``, with a SQLite file there (never
    ``:memory:``) or a fresh database of the test PostgreSQL server."""
    assert database_backend in DATABASE_BACKENDS
    postgres = database_backend == "postgresql"
    return Settings(
        data_dir=tmp_path / "data",
        database_url=request.getfixturevalue("postgres_url") if postgres else "",
        task_heartbeat_s=2.0,
        run_tasks=False,
        allowed_hosts=["testserver"],  # httpx's ASGI client's host
    )


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """The SQLAlchemy stores on a migrated database."""
    await upgrade_to_head(settings.database_url)
    built = create_stores(settings)
    try:
        yield built
    finally:
        await built.close()


async def execute_sql(stores: Stores, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one SQL statement on the stores' database in a unit of its own (for what no store
    method does, such as flagging a row missing) and return its rows. Write SQL both SQLite and
    PostgreSQL take (booleans as ``true``/``false``)."""
    async with stores.unit_of_work() as uow:
        result = await uow.session.execute(text(statement), params)  # type: ignore[attr-defined]
        rows = [tuple(row) for row in result.all()] if result.returns_rows else []
        await uow.commit()
    return rows


async def arm_csrf(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Fetch the CSRF token (its cookie lands in the client's jar) and send it on every request,
    as ydc's own pages do."""
    response = await client.get("/api/v1/csrf")
    client.headers["X-CSRF-Token"] = response.json()["token"]
    return client


def make_image(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """A BGR frame of random noise, different for every seed (so its sha256 differs)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()
