"""The login gate (with accounts on): who a request comes from, and no way in without a login.

A browser logs in once and carries a session cookie: a random token whose SHA-256 is a row of
``account_session``, so logging out, a password change or disabling the user ends it at once on
the server (a signed token would live until it expired). Scripts send an API token in
``Authorization: Bearer …``. Without either, pages redirect to the login page (keeping where
the user was going) and the JSON API and ``/media`` answer 401 with a JSON error.

The gate sets ``acting_user`` for the request, so the label repository records who wrote.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.accounts import Login, acting_user
from app.domain.stores import Stores
from app.services.accounts import session_login, token_login

SESSION_COOKIE = "ydc_session"
LOGIN_PATH = "/login"
# Reachable without a login: the login form itself, logging out, the stylesheets and scripts
# the login page uses, and the source code (AGPL section 13; it holds no data).
PUBLIC_PATHS = frozenset({LOGIN_PATH, "/logout", "/source", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
# Answered with a JSON 401 rather than a redirect: what scripts and <img> tags ask for.
JSON_PREFIXES = ("/api/", "/media/")
JSON_PATHS = frozenset({"/openapi.json"})


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site only (never ``//host`` or a URL)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 32 or c == "\\" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_url(next_path: str) -> str:
    """The login page, coming back to ``next_path`` afterwards."""
    target = safe_next(next_path)
    return LOGIN_PATH if target == "/" else f"{LOGIN_PATH}?next={quote(target, safe='/')}"


class AccountGate:
    """Finds the request's login and turns away requests without one (accounts on only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stores: Stores = scope["app"].state.stores
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        login: Login | None = None
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            login = await token_login(stores.account, authorization[7:].strip())
            if login is None:
                await _unauthorized(
                    "The API token is not valid: it was revoked, its user disabled, or it was "
                    "mistyped. Make a new one on your account page."
                )(scope, receive, send)
                return
        else:
            secret = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE, "")
            if secret:
                login = await session_login(stores.account, secret)
        scope.setdefault("state", {})["login"] = login
        if login is None and not _public(path):
            await _refuse(scope, headers, path)(scope, receive, send)
            return
        token = acting_user.set(login.user.name if login is not None else None)
        try:
            await self.app(scope, receive, _private(send) if path.startswith("/media/") else send)
        finally:
            acting_user.reset(token)


def _private(send: Send) -> Send:
    """Media behind a login may be kept by the browser, never by a shared cache (a proxy would
    otherwise hand a cached thumbnail to whoever asks)."""

    async def send_private(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                (key, value.replace(b"public", b"private") if key == b"cache-control" else value)
                for key, value in message["headers"]
            ]
        await send(message)

    return send_private


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _unauthorized(message: str) -> Response:
    return JSONResponse(
        {"detail": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


def _refuse(scope: Scope, headers: dict[str, str], path: str) -> Response:
    if path.startswith(JSON_PREFIXES) or path in JSON_PATHS:
        return _unauthorized(
            "Log in first: send an API token (Authorization: Bearer …, made on your account "
            "page) or the session cookie of a login."
        )
    query = scope.get("query_string", b"").decode("latin-1")
    if headers.get("hx-request") == "true":
        # htmx asks for a fragment: send the whole window to the login page, coming back to
        # the page the user was on.
        current = urlsplit(headers.get("hx-current-url", ""))
        back = current.path + (f"?{current.query}" if current.query else "")
        return Response(status_code=204, headers={"HX-Redirect": login_url(back or "/")})
    target = path + (f"?{query}" if query else "")
    return RedirectResponse(login_url(target), status_code=303)
