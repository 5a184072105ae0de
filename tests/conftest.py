"""Shared fixtures: settings on a temporary data dir, migrated stores, sample images."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.domain.stores import Stores
from app.repositories import create_stores

pytest_plugins = ["tests.shapes"]  # the session fixture shapes_model

# Small real exports from other tools, kept in the repository (CI runs on a bare clone).
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data dir under ``tmp_path`` (a SQLite file, never ``:memory:``)."""
    return Settings(
        data_dir=tmp_path / "data",
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
