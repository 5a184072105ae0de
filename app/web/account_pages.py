"""Accounts in the browser and the API: log in and out, one's account (password, API tokens),
the users page (admins) and the per-annotator progress view. Who may open what is
``permissions.py``'s table."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from math import ceil
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from app.domain.accounts import ROLES, DayCount, Login
from app.domain.errors import Invalid
from app.services import accounts as account_service
from app.web.auth import SESSION_COOKIE, safe_next
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.permissions import current_login
from app.web.render import redirect, render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["accounts"], dependencies=[Depends(require_csrf)])

FormText = Annotated[str, Form()]
DAY_S = 86_400


def _accounts_on(request: Request) -> bool:
    return bool(request.app.state.settings.accounts)


def _throttle(request: Request) -> account_service.LoginThrottle:
    """The app's login throttle (made on first use)."""
    state = request.app.state
    if getattr(state, "login_throttle", None) is None:
        state.login_throttle = account_service.LoginThrottle()
    return state.login_throttle  # type: ignore[no-any-return]


def _set_session_cookie(request: Request, response: Response, secret: str) -> None:
    days = request.app.state.settings.session_days
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(days * DAY_S),
        path="/",
        httponly=True,
        samesite="lax",
        # Behind a TLS proxy (X-Forwarded-Proto from an allowed proxy) the scheme is https.
        secure=request.url.scheme == "https",
    )


# --- log in and out --------------------------------------------------------------------------


def _login_page(
    request: Request, next_path: str, *, name: str = "", error: str = "", status_code: int = 200
) -> HTMLResponse:
    return render(
        request,
        "pages/login.html",
        {"next": next_path, "name": name, "error": error},
        status_code=status_code,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    """The login form (accounts on); straight on to ``next`` when already logged in."""
    target = safe_next(next)
    if not _accounts_on(request) or current_login(request) is not None:
        return redirect(request, target)
    return _login_page(request, target)


@router.post("/login")
async def log_in(
    request: Request,
    stores: StoresDep,
    name: FormText = "",
    password: FormText = "",
    next: FormText = "/",
) -> Response:
    """Check the name and password, start a session, go on to ``next`` (this site only)."""
    target = safe_next(next)
    if not _accounts_on(request):
        return redirect(request, target)
    throttle = _throttle(request)
    if wait := throttle.wait_s(name):
        refused = _login_page(
            request,
            target,
            name=name,
            error=f"Too many wrong passwords for this name: try again in {ceil(wait)} s.",
            status_code=429,
        )
        refused.headers["Retry-After"] = str(ceil(wait))
        return refused
    days = request.app.state.settings.session_days
    found = await account_service.log_in(stores.account, name, password, days=days)
    if found is None:
        throttle.failed(name)
        return _login_page(
            request,
            target,
            name=name,
            error="Wrong name or password (or the account is disabled).",
            status_code=401,
        )
    throttle.succeeded(name)
    if old := request.cookies.get(SESSION_COOKIE):
        await account_service.log_out(stores.account, old)  # one browser, one session
    response = redirect(request, target)
    _set_session_cookie(request, response, found[1])
    return response


@router.post("/logout")
async def log_out(request: Request, stores: StoresDep) -> Response:
    """End this session on the server and forget its cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        await account_service.log_out(stores.account, secret)
    response = redirect(request, "/login" if _accounts_on(request) else "/")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


# --- one's account ---------------------------------------------------------------------------


async def _account_page(
    request: Request,
    stores: StoresDep,
    *,
    new_token: str = "",
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    login = current_login(request)
    tokens = await stores.account.tokens(login.user.id) if login is not None else []
    return render(
        request,
        "pages/account.html",
        {
            "nav": "account",
            "login": login,
            "accounts_on": _accounts_on(request),
            "tokens": tokens,
            "new_token": new_token,
            "error": error,
        },
        status_code=status_code,
    )


def _logged_in(request: Request) -> Login:
    login = current_login(request)
    if login is None:
        raise Invalid("Accounts are off (YDC_ACCOUNTS): there is no account to change.")
    return login


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, stores: StoresDep) -> HTMLResponse:
    """Who you are, your API tokens, your password."""
    return await _account_page(request, stores)


@router.post("/account/tokens", response_class=HTMLResponse)
async def create_token(request: Request, stores: StoresDep, name: FormText = "") -> Response:
    """A new API token, shown on the page this once (only its hash is kept)."""
    login = _logged_in(request)
    try:
        _, secret = await account_service.create_api_token(stores.account, login.user, name)
    except Invalid as error:
        return await _account_page(request, stores, error=error.message, status_code=422)
    response = await _account_page(request, stores, new_token=secret, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(request: Request, stores: StoresDep, token_id: int) -> Response:
    """Revoke one of your API tokens: scripts using it get 401 from now on."""
    login = _logged_in(request)
    await stores.account.revoke_token(login.user.id, token_id)
    return redirect(request, "/account")


@router.post("/account/password")
async def change_password(
    request: Request, stores: StoresDep, current: FormText = "", new: FormText = ""
) -> Response:
    """Change your password: every session of yours ends; this browser logs in afresh."""
    login = _logged_in(request)
    try:
        await account_service.change_password(stores.account, login.user, current, new)
    except Invalid as error:
        return await _account_page(request, stores, error=error.message, status_code=422)
    days = request.app.state.settings.session_days
    found = await account_service.log_in(stores.account, login.user.name, new, days=days)
    response = redirect(request, "/account")
    if found is not None:
        _set_session_cookie(request, response, found[1])
    return response


# --- users (admins) --------------------------------------------------------------------------


async def _users_page(
    request: Request,
    stores: StoresDep,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "pages/users.html",
        {
            "nav": "users",
            "users": await stores.account.users(),
            "roles": ROLES,
            "accounts_on": _accounts_on(request),
            "login": current_login(request),
            "form": form or {"name": "", "role": "annotator"},
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, stores: StoresDep) -> HTMLResponse:
    """Every user, their role and state; add one."""
    return await _users_page(request, stores)


@router.post("/users", response_class=HTMLResponse)
async def add_user(
    request: Request,
    stores: StoresDep,
    name: FormText = "",
    role: FormText = "annotator",
    password: FormText = "",
) -> Response:
    """Add a user; a bad or taken name comes back inline (422)."""
    try:
        await account_service.add_user(stores.account, name, role, password)
    except Invalid as error:
        return await _users_page(
            request, stores, form={"name": name, "role": role}, error=error.message, status_code=422
        )
    return redirect(request, "/users")


@router.post("/users/{user}/role")
async def set_role(request: Request, stores: StoresDep, user: str, role: FormText = "") -> Response:
    """Give a user another role (the last admin stays admin)."""
    await account_service.set_role(stores.account, user, role)
    return redirect(request, "/users")


@router.post("/users/{user}/disable")
async def set_disabled(
    request: Request, stores: StoresDep, user: str, disabled: FormText = "true"
) -> Response:
    """Disable a user (their sessions end, their tokens stop) or enable them again."""
    await account_service.set_disabled(stores.account, user, disabled == "true")
    return redirect(request, "/users")


# --- progress --------------------------------------------------------------------------------

Days = Annotated[int, Query(ge=1, le=account_service.MAX_PROGRESS_DAYS)]


def _by_day(rows: list[DayCount]) -> list[tuple[date, list[DayCount]]]:
    grouped: dict[date, list[DayCount]] = {}
    for row in rows:
        grouped.setdefault(row.day, []).append(row)
    return list(grouped.items())


@router.get("/progress", response_class=HTMLResponse)
async def progress_page(request: Request, stores: StoresDep, days: Days = 14) -> HTMLResponse:
    """Images labelled and reviewed per annotator and day (UTC), newest day first."""
    rows = await account_service.progress(stores.account, days)
    totals: dict[str, list[int]] = {}
    for row in rows:
        total = totals.setdefault(row.user, [0, 0])
        total[0] += row.labelled
        total[1] += row.reviewed
    return render(
        request,
        "pages/progress.html",
        {
            "nav": "progress",
            "days": days,
            "by_day": _by_day(rows),
            "totals": sorted(totals.items(), key=lambda item: item[0].casefold()),
            "accounts_on": _accounts_on(request),
        },
    )


class DayCountOut(BaseModel):
    user: str
    day: date
    labelled: int
    reviewed: int


class UserOut(BaseModel):
    name: str
    role: str
    disabled: bool


@api_router.get("/progress", response_model=list[DayCountOut])
async def api_progress(stores: StoresDep, days: Days = 14) -> list[dict[str, Any]]:
    """Images labelled and reviewed per user and UTC day over the last ``days`` days."""
    return [asdict(row) for row in await account_service.progress(stores.account, days)]


@api_router.get("/me", response_model=UserOut | None)
async def api_me(request: Request) -> dict[str, Any] | None:
    """Who this request is logged in as (null without accounts)."""
    login = current_login(request)
    if login is None:
        return None
    return {"name": login.user.name, "role": login.user.role.value, "disabled": False}


@api_router.get("/users", response_model=list[UserOut])
async def api_users(stores: StoresDep) -> list[dict[str, Any]]:
    """Every user and their role (admins)."""
    return [
        {"name": u.name, "role": u.role.value, "disabled": u.disabled}
        for u in await stores.account.users()
    ]
