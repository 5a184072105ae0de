"""Host and Origin checks: ydc answers only to its own names and refuses cross-site writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI


async def test_a_request_for_a_foreign_host_is_refused(client: httpx.AsyncClient) -> None:
    # DNS rebinding: evil.example resolving to 127.0.0.1 must not reach the API.
    response = await client.get("/api/v1/projects", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" in response.json()["detail"]


async def test_loopback_names_are_answered(client: httpx.AsyncClient) -> None:
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        response = await client.get("/api/v1/projects", headers={"host": host})
        assert response.status_code == 200, host


async def test_a_write_from_another_site_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/projects",
        json={"name": "planted", "classes": []},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "another web site" in response.json()["detail"]
    no_cors = await client.post(
        "/api/v1/projects",
        json={"name": "planted", "classes": []},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert no_cors.status_code == 403
    assert (await client.get("/api/v1/projects")).json() == []


async def test_a_write_from_the_apps_own_pages_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/projects",
        json={"name": "mine", "classes": []},
        headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 201


# --- every state-changing method, and what counts as another site --------------------------


async def _birds(client: httpx.AsyncClient) -> int:
    """Create project ``birds`` with one class; its id."""
    created = await client.post("/api/v1/projects", json={"name": "birds", "classes": ["gull"]})
    assert created.status_code == 201, created.text
    return int(created.json()["classes"][0]["id"])


def _write(method: str, class_id: int) -> tuple[str, dict[str, Any] | None]:
    """A request of ``method`` that would change project ``birds``."""
    return {
        "POST": ("/api/v1/projects/birds/classes", {"name": "crow"}),
        "PUT": ("/api/v1/projects/birds/classes", {"classes": ["owl"]}),
        "PATCH": (f"/api/v1/projects/birds/classes/{class_id}", {"name": "owl"}),
        "DELETE": ("/api/v1/projects/birds", None),
    }[method]


async def _unchanged(client: httpx.AsyncClient, projects_dir: Path) -> None:
    project = await client.get("/api/v1/projects/birds")
    assert project.status_code == 200
    assert [c["name"] for c in project.json()["classes"]] == ["gull"]
    assert (projects_dir / "birds").is_dir()


FOREIGN_ORIGINS = [
    pytest.param({"origin": "https://evil.example"}, id="other-site"),
    pytest.param({"origin": "null"}, id="null-origin"),
    pytest.param({"origin": "http://testserver.evil.example"}, id="lookalike-name"),
    pytest.param({"sec-fetch-site": "cross-site"}, id="sec-fetch-cross-site"),
    pytest.param({"sec-fetch-site": "same-site"}, id="sec-fetch-same-site"),
    pytest.param(
        {"origin": "http://evil.example", "sec-fetch-site": "same-origin"},
        id="origin-wins-over-fetch-site",
    ),
]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("headers", FOREIGN_ORIGINS)
async def test_every_write_from_another_origin_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, projects_dir: Path, method: str, headers: dict[str, str]
) -> None:
    url, body = _write(method, await _birds(client))

    response = await client.request(method, url, json=body, headers=headers)

    assert response.status_code == 403, response.text
    assert "another web site" in response.json()["detail"]
    await _unchanged(client, projects_dir)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_a_write_from_a_foreign_host_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, projects_dir: Path, method: str
) -> None:
    url, body = _write(method, await _birds(client))

    response = await client.request(method, url, json=body, headers={"host": "evil.example"})

    assert response.status_code == 400
    await _unchanged(client, projects_dir)


async def test_a_request_without_a_host_is_refused(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    request = httpx.Request("GET", "http://testserver/api/v1/projects")
    del request.headers["host"]

    response = await transport.handle_async_request(request)

    assert response.status_code == 400


async def test_a_page_on_another_port_of_the_same_host_cannot_write(
    client: httpx.AsyncClient, projects_dir: Path
) -> None:
    # Cookies ignore ports: another program's page on localhost shares ydc's cookies, so its
    # Origin must not pass for ydc's own.
    url, body = _write("PATCH", await _birds(client))

    response = await client.patch(
        url,
        json=body,
        headers={"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:9999"},
    )

    assert response.status_code == 403
    await _unchanged(client, projects_dir)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}, id="port"),
        pytest.param({"host": "localhost:80", "origin": "http://localhost"}, id="default-port"),
        pytest.param({"host": "[::1]:8000", "origin": "http://[::1]:8000"}, id="ipv6"),
        pytest.param({"sec-fetch-site": "same-origin"}, id="sec-fetch-same-origin"),
        pytest.param({"sec-fetch-site": "none"}, id="typed-by-the-user"),
        pytest.param({}, id="a-script-sends-neither"),
    ],
)
async def test_a_write_from_ydc_itself_or_a_script_is_accepted(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    class_id = await _birds(client)

    response = await client.patch(
        f"/api/v1/projects/birds/classes/{class_id}", json={"name": "owl"}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "owl"


async def test_reading_with_a_foreign_origin_is_allowed(client: httpx.AsyncClient) -> None:
    # Reads change nothing, and the browser keeps another site from seeing the answer (no CORS).
    response = await client.get(
        "/api/v1/projects",
        headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    )

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


# --- security headers -----------------------------------------------------------------------


def _policy(response: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: sources}."""
    directives = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.parametrize("path", ["/", "/api/v1/projects", "/no-such-page"])
async def test_responses_carry_the_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    policy = _policy(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["default-src"]


async def test_the_index_page_is_html_with_the_content_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]


async def test_a_malformed_host_or_origin_is_refused_not_a_crash(
    client: httpx.AsyncClient,
) -> None:
    bad_host = await client.get("/api/v1/projects", headers={"host": "[::1"})
    assert bad_host.status_code == 400
    bad_origin = await client.post(
        "/api/v1/projects", json={"name": "x", "classes": []}, headers={"origin": "http://["}
    )
    assert bad_origin.status_code == 403


async def test_another_loopback_name_is_another_site(client: httpx.AsyncClient) -> None:
    # A page on localhost:3000 writing to 127.0.0.1:8000 is cross-site to a browser.
    response = await client.post(
        "/api/v1/projects",
        json={"name": "planted", "classes": []},
        headers={"host": "127.0.0.1:8000", "origin": "http://localhost:3000"},
    )
    assert response.status_code == 403


async def test_refusals_carry_the_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_generic_error_is_never_swapped_into_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/projects/ghost", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert response.headers["hx-reswap"] == "none"
