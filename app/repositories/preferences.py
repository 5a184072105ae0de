"""``PreferenceStore`` on SQLAlchemy: one ``preference`` row per top-level name."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, select

from app.db.models import Preference
from app.db.uow import Database
from app.domain.stores import PreferenceStore
from app.repositories.common import now


class SqlPreferenceStore(PreferenceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_all(self) -> dict[str, Any]:
        async with self._db.reader() as session:
            rows = await session.scalars(select(Preference).order_by(Preference.key))
            return {row.key: row.value for row in rows}

    async def put(self, values: dict[str, Any]) -> None:
        if not values:
            return
        async with self._db.unit() as uow:
            rows = {
                row.key: row
                for row in await uow.session.scalars(
                    select(Preference).where(Preference.key.in_(list(values)))
                )
            }
            stamp = now()
            for key, value in values.items():
                row = rows.get(key)
                if row is None:
                    uow.session.add(Preference(key=key, value=value, updated_at=stamp))
                else:
                    row.value = value
                    row.updated_at = stamp
            await uow.commit()

    async def reset(self, names: Collection[str] | None = None) -> None:
        async with self._db.unit() as uow:
            query = delete(Preference)
            if names is not None:
                query = query.where(Preference.key.in_(list(names)))
            await uow.session.execute(query)
            await uow.commit()
