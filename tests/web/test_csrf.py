"""CSRF by double submit: every state-changing request echoes the cookie's token, in the
``X-CSRF-Token`` header or the ``csrf_token`` form field; a refused request changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Form

from app.web.csrf import COOKIE, CsrfCookie, require_csrf
from tests.web.openapi import assert_documented_error

REFUSED = "security token"


def _bare(app: FastAPI) -> httpx.AsyncClient:
    """A client that has neither the cookie nor the header (a page on another site)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def bare(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _bare(app) as http:
        yield http


def _set_cookie(response: httpx.Response) -> SimpleCookie:
    """The ydc cookies the response sets (parsed with their attributes)."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def _token(client: httpx.AsyncClient) -> str:
    response = await client.get("/api/v1/csrf")
    assert response.status_code == 200
    return str(response.json()["token"])


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert REFUSED in response.json()["detail"]


def _folders_in(projects_dir: Path) -> list[Path]:
    return list(projects_dir.iterdir()) if projects_dir.exists() else []


async def _nothing_written(client: httpx.AsyncClient, projects_dir: Path) -> None:
    assert (await client.get("/api/v1/projects")).json() == []
    assert _folders_in(projects_dir) == []


# --- refused --------------------------------------------------------------------------------


async def test_a_json_post_without_the_token_is_refused_and_writes_nothing(
    bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    await _token(bare)  # the cookie alone is not enough: another site's form would send it too

    response = await bare.post("/api/v1/projects", json={"name": "planted", "classes": []})

    _assert_refused(response)
    await _nothing_written(bare, projects_dir)


async def test_a_post_with_neither_cookie_nor_token_is_refused(
    bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    response = await bare.post("/api/v1/projects", json={"name": "planted", "classes": []})

    _assert_refused(response)
    await _nothing_written(bare, projects_dir)


async def test_a_form_post_without_the_token_field_is_refused_and_writes_nothing(
    bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    await _token(bare)

    response = await bare.post("/api/v1/projects", data={"name": "planted"})

    _assert_refused(response)
    await _nothing_written(bare, projects_dir)


async def test_a_cancel_without_the_token_is_refused_before_the_task_is_looked_up(
    bare: httpx.AsyncClient,
) -> None:
    _assert_refused(await bare.post("/api/v1/tasks/1/cancel"))


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"], ids=["put", "patch", "delete"])
async def test_every_state_changing_method_needs_the_token(
    app: FastAPI, client: httpx.AsyncClient, bare: httpx.AsyncClient, method: str
) -> None:
    created = await client.post("/api/v1/projects", json={"name": "birds", "classes": ["gull"]})
    class_id = created.json()["classes"][0]["id"]
    url = {
        "PUT": "/api/v1/projects/birds/classes",
        "PATCH": f"/api/v1/projects/birds/classes/{class_id}",
        "DELETE": "/api/v1/projects/birds",
    }[method]
    body = {"PUT": {"classes": []}, "PATCH": {"name": "crow"}, "DELETE": None}[method]
    await _token(bare)

    _assert_refused(await bare.request(method, url, json=body))

    after = await client.get("/api/v1/projects/birds")
    assert [c["name"] for c in after.json()["classes"]] == ["gull"]


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("x" * 43, id="wrong"),
        pytest.param("", id="empty"),
        pytest.param("é" * 43, id="non-ascii"),
    ],
)
async def test_a_wrong_token_is_refused_and_writes_nothing(
    bare: httpx.AsyncClient, projects_dir: Path, sent: str
) -> None:
    await _token(bare)

    response = await bare.post(
        "/api/v1/projects",
        json={"name": "planted", "classes": []},
        headers={"X-CSRF-Token": sent.encode()},  # raw bytes, as a browser may send them
    )

    _assert_refused(response)
    await _nothing_written(bare, projects_dir)


async def test_a_non_ascii_token_in_a_form_field_is_refused_not_a_server_error(
    bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    await _token(bare)

    response = await bare.post("/api/v1/projects", data={"csrf_token": "é" * 43})

    _assert_refused(response)
    await _nothing_written(bare, projects_dir)


async def test_the_token_of_another_browser_is_refused(
    app: FastAPI, bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    async with _bare(app) as other:
        theirs = await _token(other)
    await _token(bare)

    response = await bare.post(
        "/api/v1/projects",
        json={"name": "planted", "classes": []},
        headers={"X-CSRF-Token": theirs},
    )

    _assert_refused(response)
    await _nothing_written(bare, projects_dir)


async def test_a_short_cookie_planted_by_another_page_is_not_trusted(
    bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    # ydc's tokens are 43 characters; a short cookie was not set by ydc (cookie tossing).
    planted = "a" * 16

    response = await bare.post(
        "/api/v1/projects",
        json={"name": "planted", "classes": []},
        headers={"cookie": f"{COOKIE}={planted}", "X-CSRF-Token": planted},
    )

    _assert_refused(response)
    assert _set_cookie(response)[COOKIE].value != planted
    await _nothing_written(bare, projects_dir)


# --- accepted -------------------------------------------------------------------------------


async def test_the_token_in_the_header_with_its_cookie_is_accepted(
    bare: httpx.AsyncClient,
) -> None:
    token = await _token(bare)

    response = await bare.post(
        "/api/v1/projects",
        json={"name": "mine", "classes": []},
        headers={"X-CSRF-Token": token},
    )

    assert response.status_code == 201, response.text


async def test_the_token_in_the_form_field_passes_the_check_of_the_real_app(
    bare: httpx.AsyncClient, projects_dir: Path
) -> None:
    token = await _token(bare)

    # The API wants JSON, so the body is then refused as such (422), but not as a forgery (403).
    response = await bare.post("/api/v1/projects", data={"csrf_token": token, "name": "x"})

    assert response.status_code == 422, response.text
    await _nothing_written(bare, projects_dir)


def _form_app() -> FastAPI:
    """A route that takes a form, guarded like ydc's page routes."""
    form_app = FastAPI()
    form_app.add_middleware(CsrfCookie)

    @form_app.post("/notes", dependencies=[Depends(require_csrf)])
    async def add_note(note: Annotated[str, Form()]) -> dict[str, str]:
        return {"note": note}

    @form_app.get("/")
    async def page() -> dict[str, str]:
        return {}

    return form_app


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
async def test_a_form_route_takes_the_token_from_the_form_field(multipart: bool) -> None:
    form_app = _form_app()
    async with _bare(form_app) as http:
        first = await http.get("/")
        token = _set_cookie(first)[COOKIE].value
        fields = {"note": "hello", "csrf_token": token}
        files = {"attachment": ("a.txt", b"bytes", "text/plain")} if multipart else None

        accepted = await http.post("/notes", data=fields, files=files)
        without = await http.post("/notes", data={"note": "hello"}, files=files)
        wrong = await http.post(
            "/notes", data={"note": "hello", "csrf_token": "x" * 43}, files=files
        )

    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"note": "hello"}
    assert without.status_code == 403
    assert wrong.status_code == 403


# --- safe methods, the cookie, /api/v1/csrf -------------------------------------------------


async def test_get_requests_never_need_the_token(bare: httpx.AsyncClient) -> None:
    for path in ("/api/v1/projects", "/api/v1/tasks", "/", "/openapi.json"):
        response = await bare.get(path)
        assert response.status_code == 200, path
    assert (await bare.head("/api/v1/projects")).status_code != 403


async def test_the_first_response_sets_a_strict_http_only_cookie(bare: httpx.AsyncClient) -> None:
    response = await bare.get("/api/v1/projects")

    cookie = _set_cookie(response)[COOKIE]
    assert len(cookie.value) >= 32
    # Lax: Strict would drop it on a link from another site and stale the open tabs.
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"] is True
    assert cookie["path"] == "/"


async def test_the_cookie_is_set_once_and_then_kept(bare: httpx.AsyncClient) -> None:
    first = await bare.get("/api/v1/csrf")
    second = await bare.get("/api/v1/csrf")

    assert COOKIE in _set_cookie(first)
    assert "set-cookie" not in second.headers
    assert first.json()["token"] == second.json()["token"]


async def test_the_csrf_endpoint_returns_the_cookies_token(bare: httpx.AsyncClient) -> None:
    response = await bare.get("/api/v1/csrf")

    assert response.json() == {
        "token": _set_cookie(response)[COOKIE].value,
        "header": "X-CSRF-Token",
    }
    assert bare.cookies[COOKIE] == response.json()["token"]


async def test_another_apps_odd_cookie_does_not_replace_the_token(
    bare: httpx.AsyncClient,
) -> None:
    # Other programs on localhost share its cookies; one with a quote or a space once made the
    # cookie unreadable, so every response set a new token and the page's one went stale.
    token = "t" * 43
    for odd in ('prefs={"a": 1}', "note=two words"):
        response = await bare.get("/api/v1/csrf", headers={"cookie": f"{odd}; {COOKIE}={token}"})

        assert response.json()["token"] == token, odd
        assert "set-cookie" not in response.headers, odd


async def test_a_planted_cookie_of_another_shape_never_reaches_a_page(
    app: FastAPI,
) -> None:
    planted = "x" * 43 + '", "HX-Foo": "1'
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        http.cookies.set(COOKIE, planted)
        response = await http.get("/")
    assert planted not in response.text
    assert "HX-Foo" not in response.text
    fresh = _set_cookie(response)[COOKIE].value
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", fresh)
    assert fresh in response.text


async def test_a_refused_api_write_is_a_403_the_openapi_document_declares(
    client: httpx.AsyncClient, bare: httpx.AsyncClient
) -> None:
    response = await bare.post("/api/v1/projects", json={"name": "birds"})

    assert response.status_code == 403
    await assert_documented_error(client, response, "/api/v1/projects")
