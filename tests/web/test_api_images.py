"""The image grid's JSON API: listing with filters, cursor and count; one image; bulk move and
delete; rebalance; and readable 422s for bad parameters."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.models import Annotation
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from app.tasks.worker import run_task
from tests.conftest import encode, make_image

PROJECT = "grid"
BASE = f"/api/v1/projects/{PROJECT}"


@pytest.fixture
def app_stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def add(stores: Stores, filename: str, split: str = "train", seed: int = 0) -> str:
    data = encode(make_image(32, 24, seed), ".png")
    info = await stores.image.save_file(PROJECT, split, filename, io.BytesIO(data))
    return info.filename


@pytest.fixture
async def grid(app_stores: Stores) -> dict[str, int]:
    """A project of 6 images: a cat box on a.png and d.png, "no objects" on b.png, a pending
    suggestion on c.png. Returns the class ids by name."""
    info = await app_stores.dataset.create(PROJECT, ["cat", "dog"])
    for seed, (name, split) in enumerate(
        [
            ("a.png", "train"),
            ("b.png", "val"),
            ("c.png", "train"),
            ("d.png", "val"),
            ("My Photo 50%.png", "test"),
            ("e.png", "train"),
        ]
    ):
        await add(app_stores, name, split, seed)
    cat = Annotation(0, 0.5, 0.5, 0.2, 0.2)
    await app_stores.label.save(PROJECT, "train", "a.png", [cat])
    await app_stores.label.save(PROJECT, "val", "d.png", [cat])
    await app_stores.label.set_no_objects(PROJECT, "b.png", True)
    await app_stores.label.add_suggestions(PROJECT, "c.png", [cat])
    return {c.name: c.id for c in info.class_details}


def filenames(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["filename"] for item in body["items"]]


# --- listing ------------------------------------------------------------------------------


async def test_listing_gives_every_image_with_its_urls_and_the_count(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    response = await client.get(f"{BASE}/images")

    assert response.status_code == 200
    body = response.json()
    assert filenames(body) == ["a.png", "b.png", "c.png", "d.png", "My Photo 50%.png", "e.png"]
    assert body["count"] == 6
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["split"] == "train"
    assert (first["width"], first["height"]) == (32, 24)
    assert first["labelled"] is True
    assert first["no_objects"] is False
    assert first["missing"] is False
    assert first["split_pinned"] is False
    assert first["version"] == 1
    assert len(first["sha256"]) == 64
    assert first["size_bytes"] > 0
    assert first["url"] == f"/media/{PROJECT}/images/train/a.png"
    assert first["thumb_url"] == f"/media/{PROJECT}/thumbs/{first['sha256']}.jpg"


async def test_an_image_url_is_quoted_and_serves_the_image(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    body = (await client.get(f"{BASE}/images", params={"q": "photo"})).json()

    url = body["items"][0]["url"]
    assert url == f"/media/{PROJECT}/images/test/My%20Photo%2050%25.png"
    assert unquote(url).endswith("My Photo 50%.png")
    served = await client.get(url)
    assert served.status_code == 200
    assert served.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"split": "val"}, ["b.png", "d.png"]),
        ({"state": "labelled"}, ["a.png", "b.png", "d.png"]),
        ({"state": "unlabelled"}, ["c.png", "My Photo 50%.png", "e.png"]),
        ({"state": "no_objects"}, ["b.png"]),
        ({"state": "suggestions"}, ["c.png"]),
        ({"state": "missing"}, []),
        ({"q": "PHOTO 50%"}, ["My Photo 50%.png"]),
        ({"q": "%"}, ["My Photo 50%.png"]),
        ({"split": "train", "state": "labelled"}, ["a.png"]),
        ({"split": "", "state": "", "class_id": "", "q": "", "cursor": ""}, None),
    ],
)
async def test_filters_combine_and_the_count_follows_them(
    client: httpx.AsyncClient, grid: dict[str, int], params: dict[str, str], expected: list[str]
) -> None:
    body = (await client.get(f"{BASE}/images", params=params)).json()

    if expected is None:  # empty parameters mean "no filter"
        expected = ["a.png", "b.png", "c.png", "d.png", "My Photo 50%.png", "e.png"]
    assert filenames(body) == expected
    assert body["count"] == len(expected)


async def test_the_class_filter_takes_the_stable_class_id(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    cats = (await client.get(f"{BASE}/images", params={"class_id": grid["cat"]})).json()
    val_cats = (
        await client.get(f"{BASE}/images", params={"class_id": grid["cat"], "split": "val"})
    ).json()
    dogs = (await client.get(f"{BASE}/images", params={"class_id": grid["dog"]})).json()

    assert (filenames(cats), cats["count"]) == (["a.png", "d.png"], 2)
    assert (filenames(val_cats), val_cats["count"]) == (["d.png"], 1)
    assert (filenames(dogs), dogs["count"]) == ([], 0)


async def test_the_cursor_walks_every_image_once_and_the_count_stays(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    seen: list[str] = []
    cursor: int | None = None
    pages = 0
    while True:
        params = {"limit": 4} if cursor is None else {"limit": 4, "cursor": cursor}
        body = (await client.get(f"{BASE}/images", params=params)).json()
        pages += 1
        assert body["count"] == 6
        seen += filenames(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert cursor == body["items"][-1]["id"]

    assert pages == 2
    assert seen == ["a.png", "b.png", "c.png", "d.png", "My Photo 50%.png", "e.png"]


async def test_a_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    body = (await client.get(f"{BASE}/images", params={"limit": 6})).json()

    assert len(body["items"]) == 6
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"split": "training"}, "split"),
        ({"state": "pending"}, "state"),
        ({"class_id": "cat"}, "class_id"),
        ({"class_id": "0"}, "class_id"),
        ({"class_id": str(2**63)}, "class_id"),
        ({"cursor": "-1"}, "cursor"),
        ({"cursor": "abc"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"q": "x" * 201}, "q"),
    ],
)
async def test_a_bad_parameter_is_a_422_that_names_it(
    client: httpx.AsyncClient, grid: dict[str, int], params: dict[str, str], field: str
) -> None:
    response = await client.get(f"{BASE}/images", params=params)

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}: ")


async def test_a_bad_state_lists_the_states_there_are(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    response = await client.get(f"{BASE}/images", params={"state": "pending"})

    assert "suggestions" in response.json()["detail"]


async def test_a_class_of_another_project_is_a_422(
    client: httpx.AsyncClient, app_stores: Stores, grid: dict[str, int]
) -> None:
    other = await app_stores.dataset.create("other", ["cat"])

    response = await client.get(f"{BASE}/images", params={"class_id": other.class_details[0].id})

    assert response.status_code == 422
    assert "no class with id" in response.json()["detail"]


async def test_listing_an_unknown_project_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/projects/nobody/images")

    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


# --- one image ----------------------------------------------------------------------------


async def test_getting_one_image_by_name(client: httpx.AsyncClient, grid: dict[str, int]) -> None:
    response = await client.get(f"{BASE}/images/My Photo 50%.png")

    assert response.status_code == 200
    body = response.json()
    assert (body["filename"], body["split"], body["labelled"]) == (
        "My Photo 50%.png",
        "test",
        False,
    )


async def test_getting_an_unknown_image_is_a_404(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    response = await client.get(f"{BASE}/images/nope.png")

    assert response.status_code == 404
    assert "nope.png" in response.json()["detail"]


async def test_a_missing_thumbnail_is_made_on_demand(
    client: httpx.AsyncClient, grid: dict[str, int], projects_dir: Path
) -> None:
    image = (await client.get(f"{BASE}/images/a.png")).json()
    thumb = projects_dir / PROJECT / "thumbs" / f"{image['sha256']}.jpg"
    thumb.unlink(missing_ok=True)

    response = await client.get(f"{BASE}/images/a.png/thumbnail")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    assert thumb.read_bytes() == response.content
    assert (await client.get(image["thumb_url"])).status_code == 200


# --- move ---------------------------------------------------------------------------------


async def test_moving_images_moves_files_and_labels_and_pins_them(
    client: httpx.AsyncClient, grid: dict[str, int], projects_dir: Path
) -> None:
    response = await client.post(
        f"{BASE}/images/move", json={"filenames": ["a.png", "e.png", "d.png"], "split": "val"}
    )

    assert response.status_code == 200
    assert response.json() == {"moved": 2}
    val = (await client.get(f"{BASE}/images", params={"split": "val"})).json()
    assert filenames(val) == ["a.png", "b.png", "d.png", "e.png"]
    assert all(i["split_pinned"] for i in val["items"] if i["filename"] != "b.png")
    folder = projects_dir / PROJECT
    assert (folder / "images" / "val" / "a.png").exists()
    assert not (folder / "images" / "train" / "a.png").exists()
    assert (folder / "labels" / "val" / "a.txt").read_text().startswith("0 ")
    assert not (folder / "labels" / "train" / "a.txt").exists()


async def test_moving_with_an_unknown_name_is_a_404_and_moves_nothing(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    before = (await client.get(f"{BASE}/images")).json()

    response = await client.post(
        f"{BASE}/images/move", json={"filenames": ["a.png", "nope.png"], "split": "val"}
    )

    assert response.status_code == 404
    assert "nope.png" in response.json()["detail"]
    assert (await client.get(f"{BASE}/images")).json() == before


@pytest.mark.parametrize(
    "body",
    [
        {"filenames": ["a.png"], "split": "holdout"},
        {"filenames": [], "split": "val"},
        {"filenames": "a.png", "split": "val"},
        {"split": "val"},
    ],
)
async def test_a_bad_move_request_is_a_422(
    client: httpx.AsyncClient,
    grid: dict[str, int],
    body: dict,  # type: ignore[type-arg]
) -> None:
    response = await client.post(f"{BASE}/images/move", json=body)

    assert response.status_code == 422
    assert response.json()["detail"]
    assert (await client.get(f"{BASE}/images/a.png")).json()["split"] == "train"


async def test_moving_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    response = await client.post(
        f"{BASE}/images/move",
        json={"filenames": ["a.png"], "split": "val"},
        headers={"X-CSRF-Token": "wrong"},
    )

    assert response.status_code == 403
    assert (await client.get(f"{BASE}/images/a.png")).json()["split"] == "train"


# --- delete -------------------------------------------------------------------------------


async def test_deleting_images_removes_them_and_their_files(
    client: httpx.AsyncClient, grid: dict[str, int], projects_dir: Path
) -> None:
    response = await client.post(f"{BASE}/images/delete", json={"filenames": ["a.png", "b.png"]})

    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    body = (await client.get(f"{BASE}/images")).json()
    assert filenames(body) == ["c.png", "d.png", "My Photo 50%.png", "e.png"]
    folder = projects_dir / PROJECT
    assert not (folder / "images" / "train" / "a.png").exists()
    assert not (folder / "labels" / "train" / "a.txt").exists()
    assert not (folder / "labels" / "val" / "b.txt").exists()


async def test_deleting_with_an_unknown_name_is_a_404_and_deletes_nothing(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    response = await client.post(f"{BASE}/images/delete", json={"filenames": ["a.png", "nope.png"]})

    assert response.status_code == 404
    assert (await client.get(f"{BASE}/images")).json()["count"] == 6


async def test_deleting_with_an_empty_list_is_a_422(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    response = await client.post(f"{BASE}/images/delete", json={"filenames": []})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("filenames: ")


# --- rebalance ----------------------------------------------------------------------------


async def test_rebalance_starts_a_task_that_keeps_pinned_images_and_ends_with_the_counts(
    client: httpx.AsyncClient, grid: dict[str, int], settings: Settings, app_stores: Stores
) -> None:
    await client.post(f"{BASE}/images/move", json={"filenames": ["e.png"], "split": "test"})

    response = await client.post(f"{BASE}/rebalance")

    assert response.status_code == 202, response.text
    task = response.json()
    assert (task["kind"], task["status"], task["project"]) == ("rebalance", "queued", PROJECT)
    assert task["max_attempts"] == 3
    # This app runs no task runner: claim the task and run it here, as a worker would.
    claimed = await app_stores.task.claim("test-worker")
    assert claimed is not None and claimed.id == task["id"]
    assert await run_task(settings, claimed.id, "test-worker") == 0
    done = (await client.get(f"/api/v1/tasks/{task['id']}")).json()
    assert (done["status"], done["progress"]) == ("succeeded", 1.0)
    counts = done["result"]["num_images"]
    assert sum(counts.values()) == 6
    project = (await client.get(BASE)).json()
    assert counts == project["num_images"]
    e = (await client.get(f"{BASE}/images/e.png")).json()
    assert (e["split"], e["split_pinned"]) == ("test", True)
    for item in (await client.get(f"{BASE}/images")).json()["items"]:
        if item["filename"] != "e.png":
            assert item["split"] == draw_split(item["sha256"], DEFAULT_RATIOS)


async def test_rebalancing_an_unknown_project_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/projects/nobody/rebalance")

    assert response.status_code == 404
    assert (await client.get("/api/v1/tasks")).json() == []


async def test_the_image_routes_are_documented_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert "/api/v1/projects/{name}/images" in paths
    params = {p["name"] for p in paths["/api/v1/projects/{name}/images"]["get"]["parameters"]}
    assert {"split", "state", "class_id", "q", "cursor", "limit"} <= params


FILTERS = ["split", "state", "class_id", "q", "session", "cursor"]


async def test_a_blank_filter_means_no_filter_and_the_openapi_document_allows_it(
    client: httpx.AsyncClient, grid: dict[str, int]
) -> None:
    body = (await client.get(f"{BASE}/images", params=dict.fromkeys(FILTERS, ""))).json()

    assert body["count"] == 6
    document = (await client.get("/openapi.json")).json()
    parameters = document["paths"]["/api/v1/projects/{name}/images"]["get"]["parameters"]
    schemas = {p["name"]: p["schema"] for p in parameters}
    blank = {"type": "string", "pattern": r"^\s*$"}
    assert all(blank in schemas[name]["anyOf"] for name in FILTERS), schemas
