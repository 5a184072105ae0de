"""Host and Origin checks: ydc answers only to its own names and refuses cross-site writes."""

from __future__ import annotations

import httpx


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
