"""``AccountStore`` on SQLAlchemy: accounts, login sessions, API tokens, and the progress view's
counts (one grouped query per kind of work, whatever the number of users or days)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    cast,
    delete,
    func,
    literal_column,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.db.models import Account, AccountSession, Label
from app.db.models import ApiToken as ApiTokenRow
from app.db.uow import Database
from app.domain.accounts import AccountStore, ApiToken, DayCount, Role, User
from app.domain.errors import AlreadyExists, NotFound
from app.repositories.common import now

DAY_S = 86_400
EPOCH = date(1970, 1, 1)
# An API token's last use is written at most this often (not one write per request).
TOKEN_USE_EVERY_S = 60.0


def _user(row: Account) -> User:
    return User(row.id, row.name, Role(row.role), row.disabled, row.created_at)


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(row.id, row.account_id, row.name, row.created_at, row.last_used_at)


def _day(column: ColumnElement[float] | InstrumentedAttribute[float]) -> ColumnElement[int]:
    """The UTC day number of a timestamp column, the same on SQLite and PostgreSQL: integer
    division of whole seconds (``date()`` and casts to DATE differ between the two). The
    divisor is literal so that GROUP BY repeats the very same expression (PostgreSQL)."""
    return cast(column, BigInteger) // literal_column(str(DAY_S), BigInteger)


class SqlAccountStore(AccountStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _row(self, session: AsyncSession, name: str) -> Account:
        row = await session.scalar(select(Account).where(Account.name_key == name.casefold()))
        if row is None:
            raise NotFound(f"There is no user named {name!r}.")
        return row

    async def add_user(self, name: str, role: Role, password_hash: str) -> User:
        async with self._db.unit() as uow:
            taken = await uow.session.scalar(
                select(Account.id).where(Account.name_key == name.casefold())
            )
            if taken is not None:
                raise AlreadyExists(f"There is already a user named {name!r}.")
            row = Account(
                name=name,
                name_key=name.casefold(),
                role=role.value,
                password_hash=password_hash,
                disabled=False,
                created_at=now(),
            )
            uow.session.add(row)
            try:
                await uow.commit()
            except IntegrityError:
                raise AlreadyExists(f"There is already a user named {name!r}.") from None
            return _user(row)

    async def users(self) -> list[User]:
        async with self._db.reader() as session:
            rows = await session.scalars(select(Account).order_by(Account.name_key))
            return [_user(row) for row in rows]

    async def user(self, name: str) -> User:
        async with self._db.reader() as session:
            return _user(await self._row(session, name))

    async def password_hash(self, name: str) -> tuple[User, str] | None:
        async with self._db.reader() as session:
            row = await session.scalar(select(Account).where(Account.name_key == name.casefold()))
            return None if row is None else (_user(row), row.password_hash)

    async def set_password(self, name: str, password_hash: str) -> None:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            row.password_hash = password_hash
            await uow.session.execute(
                delete(AccountSession).where(AccountSession.account_id == row.id)
            )
            await uow.commit()

    async def set_role(self, name: str, role: Role) -> User:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            row.role = role.value
            await uow.commit()
            return _user(row)

    async def set_disabled(self, name: str, disabled: bool) -> User:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            row.disabled = disabled
            if disabled:
                await uow.session.execute(
                    delete(AccountSession).where(AccountSession.account_id == row.id)
                )
            await uow.commit()
            return _user(row)

    async def remove_user(self, name: str) -> None:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            await uow.session.delete(row)
            await uow.commit()

    async def admins(self) -> int:
        async with self._db.reader() as session:
            count = await session.scalar(
                select(func.count(Account.id)).where(
                    Account.role == Role.ADMIN.value, Account.disabled.is_(False)
                )
            )
            return int(count or 0)

    async def start_session(self, user_id: int, token_hash: str, expires_at: float) -> None:
        async with self._db.unit() as uow:
            stamp = now()
            # Expired sessions go as new ones come: the table stays the size of live logins.
            await uow.session.execute(
                delete(AccountSession).where(AccountSession.expires_at <= stamp)
            )
            uow.session.add(
                AccountSession(
                    account_id=user_id,
                    token_hash=token_hash,
                    created_at=stamp,
                    expires_at=expires_at,
                )
            )
            await uow.commit()

    async def session_user(self, token_hash: str, now: float) -> tuple[User, int] | None:
        async with self._db.reader() as session:
            found = (
                await session.execute(
                    select(Account, AccountSession.id)
                    .join(AccountSession, AccountSession.account_id == Account.id)
                    .where(
                        AccountSession.token_hash == token_hash,
                        AccountSession.expires_at > now,
                        Account.disabled.is_(False),
                    )
                )
            ).first()
            return None if found is None else (_user(found[0]), found[1])

    async def end_session(self, token_hash: str) -> None:
        async with self._db.unit() as uow:
            await uow.session.execute(
                delete(AccountSession).where(AccountSession.token_hash == token_hash)
            )
            await uow.commit()

    async def add_token(self, user_id: int, name: str, token_hash: str) -> ApiToken:
        async with self._db.unit() as uow:
            row = ApiTokenRow(
                account_id=user_id, name=name, token_hash=token_hash, created_at=now()
            )
            uow.session.add(row)
            await uow.commit()
            return _token(row)

    async def tokens(self, user_id: int) -> list[ApiToken]:
        async with self._db.reader() as session:
            rows = await session.scalars(
                select(ApiTokenRow)
                .where(ApiTokenRow.account_id == user_id)
                .order_by(ApiTokenRow.id.desc())
            )
            return [_token(row) for row in rows]

    async def revoke_token(self, user_id: int, token_id: int) -> None:
        async with self._db.unit() as uow:
            gone = await uow.session.execute(
                delete(ApiTokenRow).where(
                    ApiTokenRow.id == token_id, ApiTokenRow.account_id == user_id
                )
            )
            if not gone.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"You have no API token {token_id}.")
            await uow.commit()

    async def token_user(self, token_hash: str, now: float) -> User | None:
        async with self._db.reader() as session:
            found = (
                await session.execute(
                    select(Account, ApiTokenRow.id, ApiTokenRow.last_used_at)
                    .join(ApiTokenRow, ApiTokenRow.account_id == Account.id)
                    .where(ApiTokenRow.token_hash == token_hash, Account.disabled.is_(False))
                )
            ).first()
        if found is None:
            return None
        account, token_id, last_used = found
        if last_used is None or last_used < now - TOKEN_USE_EVERY_S:
            async with self._db.unit() as uow:
                await uow.session.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=now)
                )
                await uow.commit()
        return _user(account)

    async def progress(self, since: float) -> list[DayCount]:
        # "Labelled": an image on which the user drew or changed a box that day; "reviewed":
        # one on which they accepted or rejected a suggestion. Each a grouped count.
        made = union(
            select(
                Label.created_by.label("who"),
                _day(Label.created_at).label("day"),
                Label.image_id,
            ).where(Label.created_by.is_not(None), Label.created_at >= since),
            select(
                Label.updated_by.label("who"),
                _day(Label.updated_at).label("day"),
                Label.image_id,
            ).where(Label.updated_by.is_not(None), Label.updated_at >= since),
        ).subquery()
        labelled_query = select(
            made.c.who, made.c.day, func.count(made.c.image_id.distinct())
        ).group_by(made.c.who, made.c.day)
        reviewed_day = _day(Label.reviewed_at)  # type: ignore[arg-type]  # nullable column
        reviewed_query = (
            select(Label.reviewed_by, reviewed_day, func.count(Label.image_id.distinct()))
            .where(Label.reviewed_by.is_not(None), Label.reviewed_at >= since)
            .group_by(Label.reviewed_by, reviewed_day)
        )
        counts: dict[tuple[str | None, int], list[int]] = {}
        async with self._db.reader() as session:
            for who, day, n in await session.execute(labelled_query):
                counts.setdefault((who, int(day)), [0, 0])[0] = n
            for who, day, n in await session.execute(reviewed_query):
                counts.setdefault((who, int(day)), [0, 0])[1] = n
        return [
            DayCount(who or "", EPOCH + timedelta(days=day), labelled, reviewed)
            for (who, day), (labelled, reviewed) in sorted(
                counts.items(), key=lambda item: (-item[0][1], (item[0][0] or "").casefold())
            )
        ]
