"""Bad names get a 422 whose ``detail`` says what is wrong, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.openapi import assert_documented_error


def _paths_under(folder: Path) -> set[str]:
    """Every file and folder below ``folder`` (relative), or nothing when it does not exist."""
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


async def _snapshot(client: httpx.AsyncClient, projects_dir: Path) -> tuple[Any, set[str]]:
    """What the API lists and every path under the projects folder."""
    listing = await client.get("/api/v1/projects")
    assert listing.status_code == 200
    return listing.json(), _paths_under(projects_dir)


def _assert_readable_422(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str), f"detail should be a sentence, got {detail!r}"
    assert fragment.casefold() in detail.casefold(), f"{fragment!r} not in {detail!r}"


BAD_PROJECT_NAMES = [
    pytest.param("", "empty", id="empty"),
    pytest.param("a" * 65, "64", id="65-characters"),
    pytest.param("a/b", "path", id="slash"),
    pytest.param("..", "path", id="dot-dot"),
    pytest.param("a..b", "path", id="dot-dot-inside"),
    pytest.param("my project", "space", id="space"),
    pytest.param("bell\x07name", "control", id="control-bell"),
    pytest.param("two\nlines", "control", id="control-newline"),
]


@pytest.mark.parametrize(("name", "fragment"), BAD_PROJECT_NAMES)
async def test_a_bad_project_name_is_refused_with_a_message_and_nothing_is_written(
    client: httpx.AsyncClient, projects_dir: Path, name: str, fragment: str
) -> None:
    before = await _snapshot(client, projects_dir)

    response = await client.post("/api/v1/projects", json={"name": name, "classes": ["cat"]})

    _assert_readable_422(response, fragment)
    assert await _snapshot(client, projects_dir) == before


@pytest.mark.parametrize(
    "name", [pytest.param("birds", id="same-name"), pytest.param("BIRDS", id="other-case")]
)
async def test_a_taken_project_name_is_refused_with_a_message_and_nothing_is_written(
    client: httpx.AsyncClient, projects_dir: Path, name: str
) -> None:
    created = await client.post("/api/v1/projects", json={"name": "birds", "classes": ["gull"]})
    assert created.status_code == 201
    before = await _snapshot(client, projects_dir)

    response = await client.post("/api/v1/projects", json={"name": name, "classes": ["crow"]})

    _assert_readable_422(response, "already exists")
    assert await _snapshot(client, projects_dir) == before
    assert [c["name"] for c in before[0][0]["classes"]] == ["gull"]


BAD_CLASS_LISTS = [
    pytest.param([""], "empty", id="empty"),
    pytest.param(["cat", "   "], "empty", id="whitespace-only"),
    pytest.param(["cat", "Cat"], "twice", id="duplicate-ignoring-case"),
    pytest.param(["cat", "tabby\ncat"], "line break", id="newline"),
]


@pytest.mark.parametrize(("classes", "fragment"), BAD_CLASS_LISTS)
async def test_a_project_with_bad_class_names_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, projects_dir: Path, classes: list[str], fragment: str
) -> None:
    before = await _snapshot(client, projects_dir)

    response = await client.post("/api/v1/projects", json={"name": "pets", "classes": classes})

    _assert_readable_422(response, fragment)
    assert await _snapshot(client, projects_dir) == before
    assert (await client.get("/api/v1/projects/pets")).status_code == 404


@pytest.mark.parametrize(("classes", "fragment"), BAD_CLASS_LISTS)
async def test_replacing_classes_with_bad_names_is_refused_and_keeps_the_classes(
    client: httpx.AsyncClient, projects_dir: Path, classes: list[str], fragment: str
) -> None:
    created = await client.post("/api/v1/projects", json={"name": "pets", "classes": ["dog"]})
    assert created.status_code == 201
    classes_before = (await client.get("/api/v1/projects/pets/classes")).json()
    before = await _snapshot(client, projects_dir)

    response = await client.put("/api/v1/projects/pets/classes", json={"classes": classes})

    _assert_readable_422(response, fragment)
    assert (await client.get("/api/v1/projects/pets/classes")).json() == classes_before
    assert await _snapshot(client, projects_dir) == before


async def test_a_request_missing_a_field_gets_a_422_naming_the_field(
    client: httpx.AsyncClient, projects_dir: Path
) -> None:
    before = await _snapshot(client, projects_dir)

    response = await client.post("/api/v1/projects", json={"classes": ["cat"]})

    _assert_readable_422(response, "name")
    assert "required" in response.json()["detail"].casefold()
    assert await _snapshot(client, projects_dir) == before


async def test_a_422_has_the_body_the_openapi_document_declares(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/projects", json={"classes": ["cat"]})

    _assert_readable_422(response, "name")
    await assert_documented_error(client, response, "/api/v1/projects")


async def test_a_body_that_is_not_utf8_gets_a_400_the_openapi_document_declares(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/projects", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    await assert_documented_error(client, response, "/api/v1/projects")


async def test_a_request_without_its_json_body_gets_a_422_saying_the_body_is_missing(
    client: httpx.AsyncClient, projects_dir: Path
) -> None:
    before = await _snapshot(client, projects_dir)

    response = await client.post("/api/v1/projects")

    _assert_readable_422(response, "the request body is missing")
    assert await _snapshot(client, projects_dir) == before
