"""CSRF protection by double submit: a random token in a SameSite cookie, echoed by every
state-changing request in the ``csrf_token`` form field or the ``X-CSRF-Token`` header.

Another site can make a browser send the cookie, but cannot read it or a page to learn the value
it must echo (the Host check stops DNS rebinding). Scripts get the token from
``GET /api/v1/csrf`` and send it back in the header with the cookie, or (accounts on) send an
API token in ``Authorization: Bearer …`` instead, which needs no CSRF token.
"""

from __future__ import annotations

import hmac
import re
import secrets

from fastapi import HTTPException, Request
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "ydc_csrf"
HEADER = "x-csrf-token"
FIELD = "csrf_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# What secrets.token_urlsafe(32) gives; anything else was not set by ydc (another app on the
# same host name can set cookies too): it is replaced, never trusted, never put in a page.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def _cookie_token(cookie_header: str) -> str | None:
    """The token in a ``Cookie`` header, when there is one ydc could have set."""
    # Starlette's parser, the one ``request.cookies`` uses: http.cookies.SimpleCookie gives up
    # on the whole header at a cookie it dislikes (``prefs={"a": 1}`` from another app on
    # localhost), and a new token on every response would stale the token a page holds.
    token = cookie_parser(cookie_header).get(COOKIE, "")
    return token if TOKEN_SHAPE.fullmatch(token) else None


def csrf_token(request: Request) -> str:
    """The token pages embed (the cookie's value, or the one the middleware is about to set)."""
    return str(request.scope.get("state", {}).get("csrf_token", ""))


class CsrfCookie:
    """Gives every client a token cookie and puts the token on ``request.state``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie_header = "; ".join(
            value.decode("latin-1") for key, value in scope["headers"] if key == b"cookie"
        )
        token = _cookie_token(cookie_header)
        fresh = token is None
        token = token or secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                cookie = f"{COOKIE}={token}; Path=/; SameSite=Lax; HttpOnly"
                message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def require_csrf(request: Request) -> None:
    """Refuse (403) a state-changing request that does not echo the cookie's token."""
    if request.method in SAFE_METHODS:
        return
    if getattr(request.scope.get("state", {}).get("login"), "by_token", False):
        return  # an API token: a header no other site can make a browser send
    expected = _cookie_token("; ".join(request.headers.getlist("cookie"))) or ""
    sent = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        sent = str((await request.form()).get(FIELD) or "")
    # Compared as bytes: compare_digest raises on a str with non-ASCII characters (a 500).
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise HTTPException(
            403,
            "The form's security token is missing or out of date: reload the page and try "
            "again. (Scripts: send the token from GET /api/v1/csrf in the X-CSRF-Token header.)",
        )
