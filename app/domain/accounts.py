"""Accounts: users with roles, their sessions and API tokens, and who is acting now.

Passwords are stored as scrypt hashes with a per-user salt (``hashlib.scrypt``, standard
library). Session and API tokens are random (256 bits) and stored only as their SHA-256: a copy
of the database gives no way in, and a token is found by an indexed lookup of its hash.

``acting_user`` is set per request by the web layer (the logged-in user's name) and read by the
label repository when it writes, so every store keeps its signature; it is ``None`` without
accounts and in background tasks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from abc import ABC, abstractmethod
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from app.domain.errors import Invalid


class Role(StrEnum):
    VIEWER = "viewer"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


# Each role may do everything the roles before it may.
ROLE_RANK = {Role.VIEWER: 0, Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.ADMIN: 3}
ROLES = tuple(ROLE_RANK)

NAME_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt reads all of it; a megabyte "password" is a denial of service
TOKEN_PREFIX = "ydc_"

# scrypt with n=2**14, r=8, p=1 (16 MiB, tens of milliseconds): the parameters are stored with
# each hash, so raising them later leaves old hashes readable.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024

acting_user: ContextVar[str | None] = ContextVar("ydc_acting_user", default=None)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    disabled: bool
    created_at: float

    def may(self, needed: Role) -> bool:
        """Whether this user's role includes ``needed``."""
        return not self.disabled and ROLE_RANK[self.role] >= ROLE_RANK[needed]


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    name: str
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True)
class Login:
    """Who a session cookie or an API token belongs to, and how they came in."""

    user: User
    by_token: bool
    session_id: int | None = None


@dataclass(frozen=True)
class DayCount:
    """One annotator's work on one day (UTC): images labelled and images reviewed."""

    user: str
    day: date
    labelled: int
    reviewed: int


def validate_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise Invalid(f"There is no role {value!r}: choose one of {', '.join(ROLES)}.") from None


def validate_user_name(name: str) -> str:
    name = name.strip()
    if not NAME_SHAPE.fullmatch(name):
        raise Invalid(
            f"A user name is 1 to 64 letters, digits, '_', '.', '@' or '-', starting with a "
            f"letter or digit; {name!r} is not."
        )
    return name


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"A password has at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"A password has at most {MAX_PASSWORD} characters.")
    return password


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password``, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        got = hashlib.scrypt(
            password[:MAX_PASSWORD].encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# Checked against when the user name is unknown, so a wrong name costs as long as a wrong
# password (no telling which names exist by the time an answer takes).
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore(ABC):
    """Users, their login sessions and API tokens."""

    @abstractmethod
    async def add_user(self, name: str, role: Role, password_hash: str) -> User:
        """A new user; ``AlreadyExists`` when the name is taken (case-insensitively)."""

    @abstractmethod
    async def users(self) -> list[User]:
        """Every user, by name."""

    @abstractmethod
    async def user(self, name: str) -> User:
        """The user named ``name``; ``NotFound`` otherwise."""

    @abstractmethod
    async def password_hash(self, name: str) -> tuple[User, str] | None:
        """The user and their stored hash, or ``None`` for an unknown name."""

    @abstractmethod
    async def set_password(self, name: str, password_hash: str) -> None:
        """Replace the user's password hash and end all their sessions."""

    @abstractmethod
    async def set_role(self, name: str, role: Role) -> User:
        """Change the user's role."""

    @abstractmethod
    async def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable (ending their sessions and refusing their tokens) or enable a user."""

    @abstractmethod
    async def remove_user(self, name: str) -> None:
        """Delete the user, their sessions and tokens (their name stays on labels)."""

    @abstractmethod
    async def admins(self) -> int:
        """How many enabled admins there are."""

    @abstractmethod
    async def start_session(self, user_id: int, token_hash: str, expires_at: float) -> None:
        """Record a login session."""

    @abstractmethod
    async def session_user(self, token_hash: str, now: float) -> tuple[User, int] | None:
        """The enabled user of an unexpired session, and the session's id."""

    @abstractmethod
    async def end_session(self, token_hash: str) -> None:
        """Forget a session (logout)."""

    @abstractmethod
    async def add_token(self, user_id: int, name: str, token_hash: str) -> ApiToken:
        """Record an API token."""

    @abstractmethod
    async def tokens(self, user_id: int) -> list[ApiToken]:
        """The user's API tokens, newest first."""

    @abstractmethod
    async def revoke_token(self, user_id: int, token_id: int) -> None:
        """Delete one of the user's tokens; ``NotFound`` when they have no such token."""

    @abstractmethod
    async def token_user(self, token_hash: str, now: float) -> User | None:
        """The enabled user an API token belongs to (its use is noted)."""

    @abstractmethod
    async def progress(self, since: float) -> list[DayCount]:
        """Images labelled and reviewed per user and UTC day, from ``since`` on."""
