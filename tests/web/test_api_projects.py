"""The JSON API's happy paths and its 404s."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.web.openapi import assert_documented_error


async def _create(client: httpx.AsyncClient, name: str, classes: list[str]) -> httpx.Response:
    return await client.post("/api/v1/projects", json={"name": name, "classes": classes})


async def test_creating_a_project_returns_201_with_its_classes_in_order(
    client: httpx.AsyncClient, projects_dir: Path
) -> None:
    response = await _create(client, "birds", ["gull", "crow", "owl"])

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "birds"
    assert [(c["index"], c["name"]) for c in body["classes"]] == [
        (0, "gull"),
        (1, "crow"),
        (2, "owl"),
    ]
    assert len({c["id"] for c in body["classes"]}) == 3
    assert (projects_dir / "birds").is_dir()


async def test_a_created_project_can_be_fetched_by_name(client: httpx.AsyncClient) -> None:
    created = (await _create(client, "birds", ["gull", "crow"])).json()

    response = await client.get("/api/v1/projects/birds")

    assert response.status_code == 200
    assert response.json()["classes"] == created["classes"]
    assert response.json()["name"] == "birds"


async def test_the_project_list_holds_every_created_project(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/projects")).json() == []
    await _create(client, "birds", ["gull"])
    await _create(client, "cars", ["sedan", "truck"])

    response = await client.get("/api/v1/projects")

    assert response.status_code == 200
    listed = {p["name"]: [c["name"] for c in p["classes"]] for p in response.json()}
    assert listed == {"birds": ["gull"], "cars": ["sedan", "truck"]}


async def test_replacing_classes_reorders_them_and_kept_names_keep_their_ids(
    client: httpx.AsyncClient,
) -> None:
    created = (await _create(client, "birds", ["gull", "crow", "owl"])).json()
    ids = {c["name"]: c["id"] for c in created["classes"]}

    response = await client.put(
        "/api/v1/projects/birds/classes", json={"classes": ["owl", "heron", "gull"]}
    )

    assert response.status_code == 200
    after = response.json()
    assert [(c["index"], c["name"]) for c in after] == [(0, "owl"), (1, "heron"), (2, "gull")]
    by_name = {c["id"]: c["name"] for c in after}
    assert by_name[ids["owl"]] == "owl"
    assert by_name[ids["gull"]] == "gull"
    assert ids["crow"] not in by_name
    assert (await client.get("/api/v1/projects/birds/classes")).json() == after


async def test_deleting_a_project_returns_204_and_then_it_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    await _create(client, "birds", ["gull"])

    deleted = await client.delete("/api/v1/projects/birds")

    assert deleted.status_code == 204
    response = await client.get("/api/v1/projects/birds")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "no project" in detail.casefold() and "birds" in detail
    assert (await client.get("/api/v1/projects")).json() == []


async def test_an_unknown_project_is_not_found_with_a_readable_message(
    client: httpx.AsyncClient,
) -> None:
    for method, url in [
        ("GET", "/api/v1/projects/nosuch"),
        ("DELETE", "/api/v1/projects/nosuch"),
        ("GET", "/api/v1/projects/nosuch/classes"),
        ("PUT", "/api/v1/projects/nosuch/classes"),
    ]:
        body = {"classes": ["cat"]} if method == "PUT" else None
        response = await client.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "nosuch" in detail, (method, url, detail)


async def test_exporting_an_unknown_project_is_not_found_and_queues_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/projects/nosuch/export")

    assert response.status_code == 404
    assert "nosuch" in response.json()["detail"]
    assert (await client.get("/api/v1/tasks")).json() == []


async def test_exporting_a_project_queues_an_export_task(client: httpx.AsyncClient) -> None:
    await _create(client, "birds", ["gull"])

    response = await client.post("/api/v1/projects/birds/export")

    assert response.status_code == 202
    task = response.json()
    assert (task["kind"], task["project"], task["status"]) == ("export", "birds", "queued")
    assert (await client.get(f"/api/v1/tasks/{task['id']}")).json()["id"] == task["id"]


async def test_an_unknown_task_is_not_found_with_a_readable_message(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/tasks/999")

    assert response.status_code == 404
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "999" in detail


async def test_the_api_documentation_is_served_at_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    # Offline: Swagger UI comes from /static, never from a CDN.
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(s.startswith("/static/swagger/") for s in sources), sources
    for asset in sources:
        assert (await client.get(asset)).status_code == 200


async def test_the_openapi_schema_lists_the_api_paths(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/projects",
        "/api/v1/projects/{name}",
        "/api/v1/projects/{name}/classes",
        "/api/v1/projects/{name}/export",
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/cancel",
        "/api/v1/tasks/{task_id}/download",
    } <= set(paths)
    assert set(paths["/api/v1/projects"]) == {"get", "post"}
    assert all(path.startswith("/api/v1/") for path in paths)


async def test_an_absurd_task_id_is_a_readable_422_not_a_crash(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/tasks/{10**20}")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("task_id:")


async def test_an_unknown_project_gets_a_404_the_openapi_document_declares(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/projects/nope")

    assert response.status_code == 404
    await assert_documented_error(client, response, "/api/v1/projects/{name}")


async def test_the_tasks_of_an_unknown_project_get_a_404_the_openapi_document_declares(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/tasks", params={"project": "nope"})

    assert response.status_code == 404
    await assert_documented_error(client, response, "/api/v1/tasks")


async def test_an_unfinished_export_gets_a_409_the_openapi_document_declares(
    client: httpx.AsyncClient,
) -> None:
    await _create(client, "birds", ["sparrow"])
    task = (await client.post("/api/v1/projects/birds/export", json={})).json()

    response = await client.get(f"/api/v1/tasks/{task['id']}/download")

    assert response.status_code == 409
    await assert_documented_error(client, response, "/api/v1/tasks/{task_id}/download")
