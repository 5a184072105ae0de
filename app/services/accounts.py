"""Accounts: add and change users, log in and out, API tokens, the progress view.

Password hashing (scrypt, tens of milliseconds of CPU) runs in a thread, off the event loop.
The last enabled admin cannot be removed, disabled or demoted: someone must be able to manage
users without the command line.
"""

from __future__ import annotations

import asyncio
import time

from app.domain.accounts import (
    DUMMY_HASH,
    TOKEN_PREFIX,
    AccountStore,
    ApiToken,
    DayCount,
    Login,
    Role,
    User,
    check_password,
    hash_password,
    new_token,
    token_hash,
    validate_password,
    validate_role,
    validate_user_name,
)
from app.domain.errors import Conflict, Invalid

DAY_S = 86_400.0
MAX_PROGRESS_DAYS = 366


async def add_user(store: AccountStore, name: str, role: str, password: str) -> User:
    """A new user with ``role`` and ``password`` (checked for length, stored hashed)."""
    name = validate_user_name(name)
    chosen = validate_role(role)
    hashed = await asyncio.to_thread(hash_password, validate_password(password))
    return await store.add_user(name, chosen, hashed)


async def authenticate(store: AccountStore, name: str, password: str) -> User | None:
    """The enabled user whose name and password these are, else ``None``. An unknown name
    costs as long as a wrong password."""
    found = await store.password_hash(name.strip())
    stored = found[1] if found is not None else DUMMY_HASH
    ok = await asyncio.to_thread(check_password, password, stored)
    if found is None or not ok or found[0].disabled:
        return None
    return found[0]


class LoginThrottle:
    """Slows down password guessing: after ``free`` wrong passwords in a row for a name, each
    further try waits twice as long as the one before (up to ``longest`` seconds). Per process;
    a right password clears the name's count."""

    def __init__(self, free: int = 5, longest: float = 60.0) -> None:
        self.free = free
        self.longest = longest
        self._failures: dict[str, tuple[int, float]] = {}

    def wait_s(self, name: str, now: float | None = None) -> float:
        """Seconds before ``name`` may try again (0: now)."""
        failures, last = self._failures.get(name.strip().casefold(), (0, 0.0))
        if failures < self.free:
            return 0.0
        delay = min(2.0 ** (failures - self.free), self.longest)
        return max(0.0, last + delay - (time.time() if now is None else now))

    def failed(self, name: str) -> None:
        key = name.strip().casefold()
        failures, _ = self._failures.get(key, (0, 0.0))
        self._failures[key] = (failures + 1, time.time())
        if len(self._failures) > 10_000:  # names nobody has: forget the oldest
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.strip().casefold(), None)


async def log_in(
    store: AccountStore, name: str, password: str, *, days: float
) -> tuple[User, str] | None:
    """Check the password and open a session: the user and the session's secret token."""
    user = await authenticate(store, name, password)
    if user is None:
        return None
    secret = new_token()
    await store.start_session(user.id, token_hash(secret), time.time() + days * DAY_S)
    return user, secret


async def session_login(store: AccountStore, secret: str) -> Login | None:
    """Who a session cookie's token logs in, while the session lasts."""
    found = await store.session_user(token_hash(secret), time.time())
    return None if found is None else Login(found[0], by_token=False, session_id=found[1])


async def token_login(store: AccountStore, secret: str) -> Login | None:
    """Who an API token (``Authorization: Bearer …``) logs in."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    user = await store.token_user(token_hash(secret), time.time())
    return None if user is None else Login(user, by_token=True)


async def log_out(store: AccountStore, secret: str) -> None:
    """End the session whose token this is (the cookie stops working at once)."""
    await store.end_session(token_hash(secret))


async def create_api_token(store: AccountStore, user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token for ``user``: the record, and the secret (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("Give the token a name of 1 to 100 characters (what script uses it).")
    secret = new_token(TOKEN_PREFIX)
    return await store.add_token(user.id, name, token_hash(secret)), secret


async def change_password(store: AccountStore, user: User, current: str, new: str) -> None:
    """Replace ``user``'s password after checking the current one; every session ends."""
    validate_password(new)
    if await authenticate(store, user.name, current) is None:
        raise Invalid("The current password is wrong.")
    await store.set_password(user.name, await asyncio.to_thread(hash_password, new))


async def reset_password(store: AccountStore, name: str, password: str) -> None:
    """Set a user's password (an admin's or the command line's act); their sessions end."""
    hashed = await asyncio.to_thread(hash_password, validate_password(password))
    await store.set_password(name, hashed)


async def _keep_an_admin(store: AccountStore, name: str) -> None:
    user = await store.user(name)
    if user.role == Role.ADMIN and not user.disabled and await store.admins() <= 1:
        raise Conflict(f"{user.name} is the last admin: make another user admin first.")


async def set_role(store: AccountStore, name: str, role: str) -> User:
    """Give ``name`` another role (never leaving no admin)."""
    chosen = validate_role(role)
    if chosen != Role.ADMIN:
        await _keep_an_admin(store, name)
    return await store.set_role(name, chosen)


async def set_disabled(store: AccountStore, name: str, disabled: bool) -> User:
    """Disable a user (their sessions end, their tokens stop working) or enable them again."""
    if disabled:
        await _keep_an_admin(store, name)
    return await store.set_disabled(name, disabled)


async def remove_user(store: AccountStore, name: str) -> None:
    """Delete a user; the labels keep their name."""
    await _keep_an_admin(store, name)
    await store.remove_user(name)


async def progress(store: AccountStore, days: int) -> list[DayCount]:
    """Images labelled and reviewed per user and day over the last ``days`` UTC days."""
    if not 1 <= days <= MAX_PROGRESS_DAYS:
        raise Invalid(f"Show 1 to {MAX_PROGRESS_DAYS} days (asked for {days}).")
    today = int(time.time() // DAY_S)
    return await store.progress((today - days + 1) * DAY_S)
