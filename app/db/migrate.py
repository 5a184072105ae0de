"""Run the Alembic migrations from the app and the CLI.

The app brings its database to ``head`` at every start, before anything else touches it. Alembic's
``env.py`` is async and calls ``asyncio.run`` itself, so ``upgrade_to_head`` runs it in a worker
thread (its own event loop) rather than on the server's loop. The Config built here carries the URL
and tells ``env.py`` to leave the app's logging alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic Config on the repository's ``migrations/`` for the database at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Config values go through ConfigParser interpolation: a literal % (URL-encoded password)
    # must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file database if it is missing (SQLite won't)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def upgrade_to_head_sync(url: str) -> None:
    """Migrate the database at ``url`` to the newest revision (blocking; for the CLI)."""
    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), "head")


async def upgrade_to_head(url: str) -> None:
    """Migrate the database at ``url`` to the newest revision without blocking the event loop."""
    await asyncio.to_thread(upgrade_to_head_sync, url)
