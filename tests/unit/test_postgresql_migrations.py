"""The Alembic migrations run both ways on PostgreSQL and agree with the ORM models there."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import alembic_config
from app.db.models import Base
from tests.postgres import PostgresServer


def in_a_thread(config: Config, step: str, revision: str = "") -> None:
    """Alembic's env calls asyncio.run: run a command where no event loop is running."""
    work = {
        "upgrade": lambda: command.upgrade(config, revision),
        "downgrade": lambda: command.downgrade(config, revision),
        "check": lambda: command.check(config),
    }[step]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result()


async def tables_and_revision(url: str) -> tuple[set[str], list[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            revision = []
            if "alembic_version" in tables:
                result = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                revision = [row[0] for row in result]
    finally:
        await engine.dispose()
    return tables - {"alembic_version"}, revision


async def test_migrations_go_up_and_down_on_postgresql_and_match_the_models(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.empty_database("ydc_migrations")
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()

    in_a_thread(config, "upgrade", "head")
    assert await tables_and_revision(url) == (set(Base.metadata.tables), [head])
    in_a_thread(config, "check")  # raises when the models and the migrations differ here

    in_a_thread(config, "downgrade", "base")
    assert await tables_and_revision(url) == (set(), [])
    in_a_thread(config, "upgrade", "head")
    assert (await tables_and_revision(url))[1] == [head]
