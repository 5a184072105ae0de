"""Accounts (YDC_ACCOUNTS=true): nothing without a login (pages go to the login page, the API
and /media answer 401), session cookies that logging out revokes, API tokens, roles refused with
403, who accepted a suggestion recorded, CSRF still enforced for cookie sessions, and no
listening beyond loopback without accounts."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.cli import main as cli_main
from app.config import ExposedWithoutAccounts, Settings
from app.domain.models import Annotation
from app.domain.stores import Stores
from app.main import create_app
from app.services import accounts
from app.web.auth import SESSION_COOKIE, safe_next
from app.web.permissions import NEEDED
from tests.conftest import encode, make_image
from tests.web.htmltree import parse

PROJECT = "acc"
IMAGE = f"/api/v1/projects/{PROJECT}/images/a.png"
PASSWORD = "correct horse battery"
ROLES = ("admin", "annotator", "reviewer", "viewer")


@pytest.fixture
def settings_on(settings: Settings) -> Settings:
    return settings.model_copy(update={"accounts": True})


@pytest.fixture
async def app_on(settings_on: Settings) -> AsyncIterator[FastAPI]:
    """The app with accounts on, a project with one image, and one user of each role (named
    after it)."""
    application = create_app(settings_on)
    async with LifespanManager(application):
        stores: Stores = application.state.stores
        for role in ROLES:
            await accounts.add_user(stores.account, role, role, PASSWORD)
        await stores.dataset.create(PROJECT, ["cat", "dog"])
        data = encode(make_image(100, 50, 1), ".png")
        await stores.image.save_file(PROJECT, "train", "a.png", io.BytesIO(data))
        yield application


def anonymous(app: FastAPI, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def armed(http: httpx.AsyncClient) -> httpx.AsyncClient:
    """The CSRF cookie (the login page sets it) echoed in a header, as ydc's pages do."""
    await http.get("/login")
    http.headers["X-CSRF-Token"] = http.cookies["ydc_csrf"]
    return http


async def log_in(app: FastAPI, name: str, password: str = PASSWORD) -> httpx.AsyncClient:
    http = await armed(anonymous(app))
    response = await http.post("/login", data={"name": name, "password": password})
    assert response.status_code == 303, response.text
    return http


@pytest.fixture
async def as_role(app_on: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {role: await log_in(app_on, role) for role in ROLES}
    yield clients
    for http in clients.values():
        await http.aclose()


def label_rows(settings: Settings) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.data_dir / "ydc.db") as conn:
        return conn.execute(
            "SELECT status, created_by, updated_by, reviewed_by, reviewed_at FROM label ORDER BY id"
        ).fetchall()


# --- no login --------------------------------------------------------------------------------


async def test_without_a_login_a_page_redirects_to_the_login_page_keeping_the_path(
    app_on: FastAPI,
) -> None:
    async with anonymous(app_on) as http:
        response = await http.get(f"/projects/{PROJECT}/images?split=val")
        assert response.status_code == 303
        target = urlsplit(response.headers["location"])
        assert target.path == "/login"
        assert parse_qs(target.query)["next"] == [f"/projects/{PROJECT}/images?split=val"]

        page = await http.get(response.headers["location"])
        assert page.status_code == 200
        form = parse(page.text).find("form", id="login")
        hidden = {i.attrs.get("name"): i.attrs.get("value") for i in form.find_all("input")}
        assert hidden["next"] == f"/projects/{PROJECT}/images?split=val"


async def test_without_a_login_an_htmx_request_sends_the_window_to_the_login_page(
    app_on: FastAPI,
) -> None:
    async with anonymous(app_on) as http:
        response = await http.get(
            "/tasks",
            headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/storage"},
        )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=/storage"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/projects", f"{IMAGE}/labels", "/api/v1/csrf", f"/media/{PROJECT}/images/train/a.png"],
)
async def test_without_a_login_the_api_and_media_answer_401_with_a_json_error(
    app_on: FastAPI, path: str
) -> None:
    async with anonymous(app_on) as http:
        response = await http.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert "Log in first" in response.json()["detail"]


async def test_without_a_login_the_login_page_and_static_files_are_served(
    app_on: FastAPI,
) -> None:
    async with anonymous(app_on) as http:
        assert (await http.get("/login")).status_code == 200
        assert (await http.get("/static/app.css")).status_code == 200
        assert (await http.get("/static/accounts.css")).status_code == 200


# --- logging in and out ----------------------------------------------------------------------


async def test_a_wrong_password_or_unknown_name_is_refused_without_a_session(
    app_on: FastAPI,
) -> None:
    async with anonymous(app_on) as http:
        await armed(http)
        for name, password in (("annotator", "wrong password"), ("nobody", PASSWORD)):
            response = await http.post("/login", data={"name": name, "password": password})
            assert response.status_code == 401
            assert "Wrong name or password" in response.text
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
        assert (await http.get("/")).status_code == 303


async def test_logging_in_sets_an_httponly_samesite_cookie_and_goes_where_the_user_was_going(
    app_on: FastAPI,
) -> None:
    async with anonymous(app_on) as http:
        await armed(http)
        response = await http.post(
            "/login",
            data={"name": "Viewer", "password": PASSWORD, "next": f"/projects/{PROJECT}"},
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/projects/{PROJECT}"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert (await http.get(f"/projects/{PROJECT}")).status_code == 200


async def test_the_session_cookie_is_secure_over_https(app_on: FastAPI) -> None:
    async with anonymous(app_on, "https://testserver") as http:
        await armed(http)
        response = await http.post("/login", data={"name": "viewer", "password": PASSWORD})
    assert "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/projects/a?x=1", "/projects/a?x=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("projects", "/"),
        ("", "/"),
    ],
)
def test_after_logging_in_only_paths_of_this_site_are_followed(value: str, expected: str) -> None:
    assert safe_next(value) == expected


async def test_logging_out_revokes_the_session_on_the_server(app_on: FastAPI) -> None:
    http = await log_in(app_on, "annotator")
    secret = http.cookies[SESSION_COOKIE]
    response = await http.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"

    # The old cookie, sent again (as a copy of it would be), no longer logs in.
    async with anonymous(app_on) as other:
        other.cookies.set(SESSION_COOKIE, secret)
        assert (await other.get("/")).status_code == 303
        assert (await other.get("/api/v1/projects")).status_code == 401
    await http.aclose()


async def test_a_disabled_user_is_logged_out_at_once(
    app_on: FastAPI, as_role: dict[str, httpx.AsyncClient]
) -> None:
    response = await as_role["admin"].post("/users/annotator/disable", data={"disabled": "true"})
    assert response.status_code == 303
    assert (await as_role["annotator"].get("/api/v1/projects")).status_code == 401


# --- roles -----------------------------------------------------------------------------------


async def test_an_annotator_cannot_delete_a_project(
    as_role: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    annotator = as_role["annotator"]
    page = await annotator.post(f"/projects/{PROJECT}/delete", data={"confirm": PROJECT})
    assert page.status_code == 403
    assert "needs the admin role" in page.text
    api = await annotator.delete(f"/api/v1/projects/{PROJECT}")
    assert api.status_code == 403
    assert "needs the admin role" in api.json()["detail"]
    assert (settings.data_dir / "projects" / PROJECT).is_dir()
    assert (await annotator.get(f"/api/v1/projects/{PROJECT}")).status_code == 200


async def test_a_viewer_reads_but_cannot_write(as_role: dict[str, httpx.AsyncClient]) -> None:
    viewer = as_role["viewer"]
    assert (await viewer.get(f"/projects/{PROJECT}")).status_code == 200
    assert (await viewer.get(f"{IMAGE}/labels")).status_code == 200
    labels = {
        "version": 0,
        "labels": [{"class_id": 0, "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2}],
    }
    response = await viewer.put(f"{IMAGE}/labels", json=labels)
    assert response.status_code == 403
    assert "needs the annotator role" in response.json()["detail"]
    upload = await viewer.post(
        f"/api/v1/projects/{PROJECT}/images",
        files={"files": ("b.png", encode(make_image(20, 20, 2)), "image/png")},
    )
    assert upload.status_code == 403
    assert (await viewer.get(f"{IMAGE}/labels")).json()["labels"] == []
    # An annotator may save the same labels.
    assert (await as_role["annotator"].put(f"{IMAGE}/labels", json=labels)).status_code == 200


async def test_an_annotator_cannot_accept_suggestions_but_a_reviewer_can(
    app_on: FastAPI, as_role: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    stores: Stores = app_on.state.stores
    await stores.label.add_suggestions(
        PROJECT, "a.png", [Annotation(1, 0.5, 0.5, 0.2, 0.2, source="model", confidence=0.7)]
    )
    refused = await as_role["annotator"].post(f"{IMAGE}/suggestions/accept-all")
    assert refused.status_code == 403
    assert "needs the reviewer role" in refused.json()["detail"]

    accepted = await as_role["reviewer"].post(f"{IMAGE}/suggestions/accept-all")

    assert accepted.status_code == 200, accepted.text
    [(status, created_by, _, reviewed_by, reviewed_at)] = label_rows(settings)
    assert (status, created_by, reviewed_by) == ("accepted", None, "reviewer")
    assert reviewed_at is not None


async def test_only_admins_see_the_users_page(as_role: dict[str, httpx.AsyncClient]) -> None:
    assert (await as_role["reviewer"].get("/users")).status_code == 403
    page = await as_role["admin"].get("/users")
    assert page.status_code == 200
    names = [td.text() for td in parse(page.text).find_all("td", class_="name")]
    assert names == ["admin", "annotator", "reviewer", "viewer"]


async def test_every_route_the_permission_table_names_exists(app_on: FastAPI) -> None:
    from fastapi.routing import APIRoute

    def routes(items: list[Any]) -> set[str]:
        found: set[str] = set()
        for route in items:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                found |= routes(inner.routes)
            elif isinstance(route, APIRoute):
                found |= {f"{m} {route.path_format}" for m in route.methods}
        return found

    assert set(NEEDED) - routes(app_on.router.routes) == set()


# --- the audit and the progress view ---------------------------------------------------------


async def test_labels_record_who_drew_changed_and_reviewed_them_and_progress_counts_them(
    app_on: FastAPI, as_role: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    box = {"class_id": 0, "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2}
    drawn = await as_role["annotator"].put(f"{IMAGE}/labels", json={"version": 0, "labels": [box]})
    saved = drawn.json()["labels"][0]
    moved = {**box, "id": saved["id"], "x": 0.4}
    changed = await as_role["reviewer"].put(
        f"{IMAGE}/labels", json={"version": 1, "labels": [moved]}
    )
    assert changed.status_code == 200
    stores: Stores = app_on.state.stores
    await stores.label.add_suggestions(
        PROJECT, "a.png", [Annotation(1, 0.2, 0.2, 0.1, 0.1, source="model", confidence=0.4)]
    )
    suggestion = (await as_role["reviewer"].get(f"{IMAGE}/labels")).json()["suggestions"][0]
    rejected = await as_role["reviewer"].post(f"{IMAGE}/suggestions/{suggestion['id']}/reject")
    assert rejected.status_code == 200

    rows = label_rows(settings)
    assert [row[:4] for row in rows] == [
        ("accepted", "annotator", "reviewer", None),
        ("rejected", None, None, "reviewer"),
    ]

    progress = await as_role["reviewer"].get("/api/v1/progress?days=7")
    assert progress.status_code == 200
    counts = {(r["user"], r["labelled"], r["reviewed"]) for r in progress.json()}
    assert counts == {("annotator", 1, 0), ("reviewer", 1, 1)}
    page = await as_role["reviewer"].get("/progress")
    totals = parse(page.text).find("table", class_="progress-totals")
    cells = [[td.text() for td in tr.find_all("td")] for tr in totals.find_all("tr")[1:]]
    assert cells == [["annotator", "1", "0"], ["reviewer", "1", "1"]]
    assert (await as_role["annotator"].get("/api/v1/progress")).status_code == 403


# --- API tokens and CSRF ---------------------------------------------------------------------


async def test_an_api_token_is_shown_once_works_without_csrf_and_stops_when_revoked(
    app_on: FastAPI, as_role: dict[str, httpx.AsyncClient]
) -> None:
    admin = as_role["admin"]
    made = await admin.post("/account/tokens", data={"name": "nightly script"})
    assert made.status_code == 201
    secret = parse(made.text).find("input", id="new-token").attrs["value"]
    assert secret.startswith("ydc_")
    again = await admin.get("/account")
    assert secret not in again.text and "nightly script" in again.text

    bearer = {"Authorization": f"Bearer {secret}"}
    async with anonymous(app_on) as script:
        assert (await script.get("/api/v1/me", headers=bearer)).json()["name"] == "admin"
        created = await script.post(
            "/api/v1/projects", json={"name": "scripted", "classes": ["a"]}, headers=bearer
        )
        assert created.status_code == 201, created.text
        assert (await script.get("/api/v1/projects", headers=bearer)).status_code == 200

        [revoke] = [
            form.attrs["action"]
            for form in parse(again.text).find_all("form")
            if form.attrs.get("action", "").endswith("/revoke")
        ]
        assert (await admin.post(revoke)).status_code == 303
        refused = await script.get("/api/v1/projects", headers=bearer)
        assert refused.status_code == 401
        assert "not valid" in refused.json()["detail"]
        wrong = await script.get("/api/v1/projects", headers={"Authorization": "Bearer ydc_nope"})
        assert wrong.status_code == 401


async def test_a_token_acts_with_its_users_role(
    app_on: FastAPI, as_role: dict[str, httpx.AsyncClient]
) -> None:
    made = await as_role["annotator"].post("/account/tokens", data={"name": "uploader"})
    secret = parse(made.text).find("input", id="new-token").attrs["value"]
    async with anonymous(app_on) as script:
        response = await script.delete(
            f"/api/v1/projects/{PROJECT}", headers={"Authorization": f"Bearer {secret}"}
        )
    assert response.status_code == 403


async def test_csrf_is_still_enforced_for_a_cookie_session(
    as_role: dict[str, httpx.AsyncClient],
) -> None:
    admin = as_role["admin"]
    token = admin.headers.pop("X-CSRF-Token")
    response = await admin.post("/api/v1/projects", json={"name": "nocsrf", "classes": ["a"]})
    assert response.status_code == 403
    assert "security token" in response.json()["detail"]
    admin.headers["X-CSRF-Token"] = token
    response = await admin.post("/api/v1/projects", json={"name": "withcsrf", "classes": ["a"]})
    assert response.status_code == 201


async def test_changing_the_password_ends_other_sessions(app_on: FastAPI) -> None:
    first = await log_in(app_on, "annotator")
    second = await log_in(app_on, "annotator")
    wrong = await first.post("/account/password", data={"current": "nope", "new": "x" * 10})
    assert wrong.status_code == 422
    changed = await first.post("/account/password", data={"current": PASSWORD, "new": "y" * 10})
    assert changed.status_code == 303
    assert (await first.get("/account")).status_code == 200  # this browser logged in afresh
    assert (await second.get("/account")).status_code == 303
    await log_in(app_on, "annotator", "y" * 10)
    await first.aclose()
    await second.aclose()


# --- start-up --------------------------------------------------------------------------------


async def test_listening_beyond_loopback_without_accounts_refuses_to_start(
    settings: Settings,
) -> None:
    exposed = settings.model_copy(update={"host": "0.0.0.0"})
    with pytest.raises(ExposedWithoutAccounts, match="YDC_ACCOUNTS=true"):
        async with LifespanManager(create_app(exposed)):
            pass
    with_accounts = exposed.model_copy(update={"accounts": True})
    async with LifespanManager(create_app(with_accounts)):
        pass


def test_ydc_serve_on_0_0_0_0_without_accounts_refuses_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    monkeypatch.setenv("YDC_HOST", "0.0.0.0")
    monkeypatch.setenv("YDC_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("YDC_ACCOUNTS", raising=False)
    assert cli_main(["serve"]) == 2
    message = capsys.readouterr().err
    assert "will not listen on '0.0.0.0' without accounts" in message
    assert "YDC_ACCOUNTS=true" in message and "Deployment" in message


# --- accounts off ----------------------------------------------------------------------------


async def test_without_accounts_nobody_logs_in_and_nothing_is_refused(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/me")).json() is None
    assert (await client.get("/login")).status_code == 303
    account = await client.get("/account")
    assert account.status_code == 200 and "Accounts are off" in account.text
    assert (await client.get("/progress")).status_code == 200
    created = await client.post("/api/v1/projects", json={"name": "open", "classes": ["a"]})
    assert created.status_code == 201
    assert (await client.delete("/api/v1/projects/open")).status_code in (200, 204)


async def test_media_behind_a_login_is_served_and_never_cached_by_shared_caches(
    as_role: dict[str, httpx.AsyncClient],
) -> None:
    viewer = as_role["viewer"]
    image = await viewer.get(f"/media/{PROJECT}/images/train/a.png")
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    assert (await viewer.get(f"/api/v1/projects/{PROJECT}/images/a.png/thumbnail")).is_success
    thumb_url = (await viewer.get(f"/api/v1/projects/{PROJECT}/images/a.png")).json()["thumb_url"]
    thumb = await viewer.get(thumb_url)
    assert thumb.status_code == 200
    assert thumb.headers["cache-control"] == "private, max-age=31536000, immutable"


async def test_repeated_wrong_passwords_slow_down_further_tries_for_that_name(
    app_on: FastAPI,
) -> None:
    async with anonymous(app_on) as http:
        await armed(http)
        for _ in range(5):
            wrong = await http.post("/login", data={"name": "admin", "password": "guess guess"})
            assert wrong.status_code == 401
        # Even the right password waits now: a guesser learns nothing while refused.
        refused = await http.post("/login", data={"name": "admin", "password": PASSWORD})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Too many wrong passwords" in refused.text
        # Other names are not slowed down.
        other = await http.post("/login", data={"name": "viewer", "password": PASSWORD})
        assert other.status_code == 303
