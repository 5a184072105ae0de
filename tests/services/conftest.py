"""The service tests run on every database ydc supports: SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import DATABASE_BACKENDS


@pytest.fixture(params=DATABASE_BACKENDS)
def database_backend(request: pytest.FixtureRequest) -> str:
    """Each service test that uses the settings (or the stores) runs on each backend."""
    return str(request.param)
