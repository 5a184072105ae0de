"""The class endpoints of the JSON API: add, rename, recolour, move, usage, merge, delete."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.conftest import encode, make_image

API = "/api/v1/projects"


async def _create(client: httpx.AsyncClient, name: str, classes: list[str]) -> dict[str, int]:
    """Create a project; the ids of its classes by name."""
    response = await client.post(API, json={"name": name, "classes": classes})
    assert response.status_code == 201, response.text
    return {c["name"]: c["id"] for c in response.json()["classes"]}


async def _classes(client: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/{name}/classes")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def _image_with_boxes(
    app: FastAPI, project: str, filename: str, class_indices: list[int], seed: int = 0
) -> None:
    """Store an image in train with one accepted box per given class index."""
    stores = _stores(app)
    png = encode(make_image(seed=seed))
    await stores.image.save_file(project, "train", filename, io.BytesIO(png))
    boxes = [Annotation(i, 0.5, 0.5, 0.2, 0.2) for i in class_indices]
    await stores.label.save(project, "train", filename, boxes)


def _mirror_classes(projects_dir: Path, project: str, filename: str) -> list[int]:
    """The class indices in the image's label file, line by line."""
    text = (projects_dir / project / "labels" / "train" / f"{Path(filename).stem}.txt").read_text()
    return [int(line.split()[0]) for line in text.splitlines() if line.strip()]


# --- add ------------------------------------------------------------------------------------


async def test_adding_a_class_appends_it_with_the_colour_given(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _create(client, "birds", ["gull", "crow"])

    response = await client.post(f"{API}/birds/classes", json={"name": "owl", "colour": "#A0B1C2"})

    assert response.status_code == 201, response.text
    added = response.json()
    assert (added["index"], added["name"], added["colour"]) == (2, "owl", "#a0b1c2")
    assert [c["name"] for c in await _classes(client, "birds")] == ["gull", "crow", "owl"]
    stored = await _stores(app).dataset.get_classes("birds")
    assert [(c.id, c.position, c.colour) for c in stored][-1] == (added["id"], 2, "#a0b1c2")


async def test_adding_a_class_without_a_colour_gets_one(client: httpx.AsyncClient) -> None:
    await _create(client, "birds", ["gull"])

    response = await client.post(f"{API}/birds/classes", json={"name": "crow"})

    assert response.status_code == 201
    assert response.json()["colour"].startswith("#")
    assert len(response.json()["colour"]) == 7


async def test_adding_a_class_is_written_to_data_yaml(
    client: httpx.AsyncClient, projects_dir: Path
) -> None:
    await _create(client, "birds", ["gull"])

    await client.post(f"{API}/birds/classes", json={"name": "heron"})

    assert "heron" in (projects_dir / "birds" / "data.yaml").read_text()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"name": "GULL"}, "already has", id="duplicate-ignoring-case"),
        pytest.param({"name": ""}, "empty", id="empty"),
        pytest.param({"name": "   "}, "empty", id="blank"),
        pytest.param({"name": "owl", "colour": "red"}, "#rrggbb", id="bad-colour"),
        pytest.param({"name": "owl", "colour": "#12345"}, "#rrggbb", id="short-colour"),
        pytest.param({}, "name", id="no-name"),
    ],
)
async def test_adding_a_bad_class_is_a_422_and_adds_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    await _create(client, "birds", ["gull"])
    before = await _classes(client, "birds")

    response = await client.post(f"{API}/birds/classes", json=body)

    assert response.status_code == 422, response.text
    assert fragment.casefold() in response.json()["detail"].casefold()
    assert await _classes(client, "birds") == before


async def test_adding_a_class_to_an_unknown_project_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/nowhere/classes", json={"name": "owl"})

    assert response.status_code == 404
    assert "nowhere" in response.json()["detail"]


# --- update: rename, recolour, move ---------------------------------------------------------


async def test_renaming_a_class_keeps_its_id_index_and_boxes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    await _image_with_boxes(app, "birds", "a.png", [1])

    response = await client.patch(f"{API}/birds/classes/{ids['crow']}", json={"name": "raven"})

    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["index"]) == (ids["crow"], 1)
    assert [(c["id"], c["name"]) for c in await _classes(client, "birds")] == [
        (ids["gull"], "gull"),
        (ids["crow"], "raven"),
    ]
    boxes = await _stores(app).label.load("birds", "train", "a.png")
    assert [b.class_id for b in boxes] == [1]


async def test_recolouring_a_class_changes_only_its_colour(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])

    response = await client.patch(f"{API}/birds/classes/{ids['gull']}", json={"colour": "#00ff00"})

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["colour"]) == ("gull", "#00ff00")
    stored = {c.id: c for c in await _stores(app).dataset.get_classes("birds")}
    assert stored[ids["gull"]].colour == "#00ff00"
    assert stored[ids["crow"]].colour != "#00ff00"


async def test_moving_a_class_answers_its_new_index_and_shifts_the_others(
    client: httpx.AsyncClient,
) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])

    response = await client.patch(f"{API}/birds/classes/{ids['gull']}", json={"index": 2})

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["index"]) == (ids["gull"], 2)
    assert [c["name"] for c in await _classes(client, "birds")] == ["crow", "owl", "gull"]


@pytest.mark.parametrize("index", [False, "1", 1.0], ids=["false", "string", "float"])
async def test_a_move_to_an_index_that_is_no_json_integer_gets_a_422_and_moves_nothing(
    client: httpx.AsyncClient, index: object
) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])

    response = await client.patch(f"{API}/birds/classes/{ids['owl']}", json={"index": index})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("index: ")
    assert [c["name"] for c in await _classes(client, "birds")] == ["gull", "crow", "owl"]


async def test_moving_a_class_past_the_end_puts_it_last(client: httpx.AsyncClient) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])

    response = await client.patch(f"{API}/birds/classes/{ids['gull']}", json={"index": 99})

    assert response.json()["index"] == 2
    assert [c["name"] for c in await _classes(client, "birds")] == ["crow", "owl", "gull"]


async def test_moving_a_class_rewrites_the_label_file_with_the_new_indices(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])
    await _image_with_boxes(app, "birds", "a.png", [0, 2])
    assert _mirror_classes(projects_dir, "birds", "a.png") == [0, 2]

    response = await client.patch(f"{API}/birds/classes/{ids['owl']}", json={"index": 0})

    assert response.status_code == 200
    # owl 2 → 0, gull 0 → 1: the same boxes under their classes' new indices.
    assert sorted(_mirror_classes(projects_dir, "birds", "a.png")) == [0, 1]
    boxes = await _stores(app).label.load("birds", "train", "a.png")
    assert sorted(b.class_id for b in boxes) == [0, 1]


async def test_one_update_can_rename_recolour_and_move_together(
    client: httpx.AsyncClient,
) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])

    response = await client.patch(
        f"{API}/birds/classes/{ids['owl']}",
        json={"name": "eagle", "colour": "#123456", "index": 0},
    )

    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("id", "index", "name", "colour")} == {
        "id": ids["owl"],
        "index": 0,
        "name": "eagle",
        "colour": "#123456",
    }
    assert [c["name"] for c in await _classes(client, "birds")] == ["eagle", "gull", "crow"]


async def test_an_empty_update_changes_nothing_and_answers_the_class(
    client: httpx.AsyncClient,
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    before = await _classes(client, "birds")

    response = await client.patch(f"{API}/birds/classes/{ids['crow']}", json={})

    assert response.status_code == 200
    assert response.json() == before[1]
    assert await _classes(client, "birds") == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"name": "Gull"}, "already has", id="duplicate-name"),
        pytest.param({"name": ""}, "empty", id="empty-name"),
        pytest.param({"colour": "#xyzxyz"}, "#rrggbb", id="bad-colour"),
        pytest.param({"name": "raven", "colour": "blue"}, "#rrggbb", id="rename-and-bad-colour"),
        pytest.param({"name": "raven", "index": -1}, "index", id="negative-index"),
        pytest.param({"name": "gull", "index": 0}, "already has", id="duplicate-and-move"),
    ],
)
async def test_a_bad_update_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    before = await _classes(client, "birds")

    response = await client.patch(f"{API}/birds/classes/{ids['crow']}", json=body)

    assert response.status_code == 422, response.text
    assert fragment.casefold() in response.json()["detail"].casefold()
    assert await _classes(client, "birds") == before


# --- usage ----------------------------------------------------------------------------------


async def test_usage_counts_boxes_suggestions_and_images_left_empty(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    await _image_with_boxes(app, "birds", "only-gulls.png", [0, 0], seed=1)
    await _image_with_boxes(app, "birds", "mixed.png", [0, 1], seed=2)
    await _image_with_boxes(app, "birds", "crows.png", [1], seed=3)
    await _stores(app).label.add_suggestions(
        "birds", "crows.png", [Annotation(0, 0.3, 0.3, 0.1, 0.1, status="pending")]
    )

    response = await client.get(f"{API}/birds/classes/{ids['gull']}/usage")

    assert response.status_code == 200
    assert response.json() == {"labels": 3, "suggestions": 1, "images_left_empty": 1}
    unused = await client.get(f"{API}/birds/classes/{ids['crow']}/usage")
    assert unused.json() == {"labels": 2, "suggestions": 0, "images_left_empty": 1}


# --- merge ----------------------------------------------------------------------------------


async def test_merging_moves_the_boxes_and_removes_the_class(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])
    await _image_with_boxes(app, "birds", "a.png", [0, 1, 2])

    response = await client.post(
        f"{API}/birds/classes/{ids['gull']}/merge", json={"into": ids["owl"]}
    )

    assert response.status_code == 200, response.text
    assert response.json()["labels"] == 1
    assert [(c["id"], c["index"]) for c in await _classes(client, "birds")] == [
        (ids["crow"], 0),
        (ids["owl"], 1),
    ]
    # The gull box is now an owl box, and every index shifted up by one.
    boxes = await _stores(app).label.load("birds", "train", "a.png")
    assert sorted(b.class_id for b in boxes) == [0, 1, 1]
    assert sorted(_mirror_classes(projects_dir, "birds", "a.png")) == [0, 1, 1]


async def test_merging_a_class_into_itself_is_a_422_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    await _image_with_boxes(app, "birds", "a.png", [0])
    before = await _classes(client, "birds")

    response = await client.post(
        f"{API}/birds/classes/{ids['gull']}/merge", json={"into": ids["gull"]}
    )

    assert response.status_code == 422
    assert "itself" in response.json()["detail"]
    assert await _classes(client, "birds") == before
    assert [b.class_id for b in await _stores(app).label.load("birds", "train", "a.png")] == [0]


async def test_merging_into_an_unknown_class_is_a_404_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    other = await _create(client, "cars", ["sedan"])
    await _image_with_boxes(app, "birds", "a.png", [0])
    before = await _classes(client, "birds")

    for into in (ids["crow"] + 1000, other["sedan"]):
        response = await client.post(
            f"{API}/birds/classes/{ids['gull']}/merge", json={"into": into}
        )
        assert response.status_code == 404, into

    assert await _classes(client, "birds") == before
    assert [b.class_id for b in await _stores(app).label.load("birds", "train", "a.png")] == [0]


# --- delete ---------------------------------------------------------------------------------


async def test_deleting_a_class_removes_its_boxes_and_answers_what_went(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    ids = await _create(client, "birds", ["gull", "crow", "owl"])
    await _image_with_boxes(app, "birds", "a.png", [0, 1, 2], seed=1)
    await _image_with_boxes(app, "birds", "b.png", [0], seed=2)

    response = await client.delete(f"{API}/birds/classes/{ids['gull']}")

    assert response.status_code == 200, response.text
    assert response.json() == {"labels": 2, "suggestions": 0, "images_left_empty": 1}
    assert [(c["id"], c["index"]) for c in await _classes(client, "birds")] == [
        (ids["crow"], 0),
        (ids["owl"], 1),
    ]
    boxes = await _stores(app).label.load("birds", "train", "a.png")
    assert sorted(b.class_id for b in boxes) == [0, 1]
    assert sorted(_mirror_classes(projects_dir, "birds", "a.png")) == [0, 1]
    assert await _stores(app).label.load("birds", "train", "b.png") == []


async def test_a_deleted_class_is_then_not_found(client: httpx.AsyncClient) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])
    await client.delete(f"{API}/birds/classes/{ids['gull']}")

    again = await client.delete(f"{API}/birds/classes/{ids['gull']}")

    assert again.status_code == 404
    assert [c["name"] for c in await _classes(client, "birds")] == ["crow"]


# --- not found, bounds ----------------------------------------------------------------------

CLASS_REQUESTS = [
    pytest.param("PATCH", "", {"name": "x"}, id="patch"),
    pytest.param("GET", "/usage", None, id="usage"),
    pytest.param("POST", "/merge", {"into": 2}, id="merge"),
    pytest.param("DELETE", "", None, id="delete"),
]


@pytest.mark.parametrize(("method", "suffix", "body"), CLASS_REQUESTS)
async def test_an_unknown_project_is_a_404(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, f"{API}/nowhere/classes/1{suffix}", json=body)

    assert response.status_code == 404
    assert "nowhere" in response.json()["detail"]


@pytest.mark.parametrize(("method", "suffix", "body"), CLASS_REQUESTS)
async def test_an_unknown_class_or_one_of_another_project_is_a_404_and_changes_nothing(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    birds = await _create(client, "birds", ["gull", "crow"])
    cars = await _create(client, "cars", ["sedan", "truck"])
    if body is not None and "into" in body:
        body = {"into": birds["crow"]}
    before = (await _classes(client, "birds"), await _classes(client, "cars"))

    for class_id in (max(*birds.values(), *cars.values()) + 1, cars["sedan"]):
        response = await client.request(
            method, f"{API}/birds/classes/{class_id}{suffix}", json=body
        )
        assert response.status_code == 404, (class_id, response.text)

    assert (await _classes(client, "birds"), await _classes(client, "cars")) == before


@pytest.mark.parametrize("class_id", ["0", "-1", str(2**63), "abc"])
async def test_a_class_id_out_of_range_is_a_422(client: httpx.AsyncClient, class_id: str) -> None:
    await _create(client, "birds", ["gull"])

    response = await client.delete(f"{API}/birds/classes/{class_id}")

    assert response.status_code == 422
    assert "class_id" in response.json()["detail"]
    assert [c["name"] for c in await _classes(client, "birds")] == ["gull"]


async def test_the_whole_list_can_still_be_replaced_with_put(client: httpx.AsyncClient) -> None:
    ids = await _create(client, "birds", ["gull", "crow"])

    response = await client.put(f"{API}/birds/classes", json={"classes": ["crow", "owl"]})

    assert response.status_code == 200
    assert [(c["name"], c["index"]) for c in response.json()] == [("crow", 0), ("owl", 1)]
    assert response.json()[0]["id"] == ids["crow"]


async def test_the_class_endpoints_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]

    assert {"post", "put", "get"} <= set(paths[f"{API}/{{name}}/classes"])
    assert {"patch", "delete"} <= set(paths[f"{API}/{{name}}/classes/{{class_id}}"])
    assert "get" in paths[f"{API}/{{name}}/classes/{{class_id}}/usage"]
    assert "post" in paths[f"{API}/{{name}}/classes/{{class_id}}/merge"]
    schemas = set(document["components"]["schemas"])
    assert {"ClassCreate", "ClassUpdate", "ClassMerge", "ClassUsageOut", "ClassOut"} <= schemas
