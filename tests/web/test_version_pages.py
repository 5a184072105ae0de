"""The versions pages and their JSON API: the mapping screen of the chosen projects, a refused
form kept as typed (422), a build queued from the form with a mapping choice and its counts on
the list once built, the zip, delete behind a confirmation, and who may do what."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.accounts import Role
from app.domain.models import Annotation
from app.domain.stores import Stores
from app.services import versions as version_service
from app.web.permissions import needed_role
from tests.conftest import encode, make_image
from tests.tasks.test_versions import run_build
from tests.web.htmltree import parse

HTMX = {"HX-Request": "true"}


@pytest.fixture
async def seeded(app: FastAPI) -> Stores:
    stores: Stores = app.state.stores
    await stores.dataset.create("north", ["Car", "person"])
    await stores.dataset.create("south", ["car ", "dog"])
    for project, name, split, seed, boxes in (
        ("north", "a.png", "train", 1, [Annotation(0, 0.5, 0.5, 0.2, 0.2)]),
        ("north", "b.png", "val", 2, [Annotation(1, 0.3, 0.3, 0.2, 0.2)]),
        (
            "south",
            "c.png",
            "train",
            3,
            [Annotation(0, 0.4, 0.4, 0.2, 0.2), Annotation(1, 0.7, 0.7, 0.2, 0.2)],
        ),
    ):
        data = encode(make_image(80, 60, seed), ".png")
        await stores.image.save_file(project, split, name, io.BytesIO(data))
        await stores.label.save(project, split, name, boxes)
    return stores


def form(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "cars-v1",
        "projects": ["north", "south"],
        "auto_orient": "on",
        "resize_mode": "fit_pad",
        "tile_overlap": "0.2",
        "tile_min_visible": "0.4",
        "outputs": "1",
        "flip_horizontal": "on",
        "seed": "5",
        "split_mode": "keep",
    }
    return body | extra


async def test_the_mapping_screen_shows_car_and_car_as_one_class_and_asks_about_the_rest(
    client: httpx.AsyncClient, seeded: Stores
) -> None:
    response = await client.get(
        "/versions/new/classes", params={"projects": ["north", "south"]}, headers=HTMX
    )

    assert response.status_code == 200
    page = parse(response.text)
    table = page.find("table", class_="version-classes")
    heads = [th.text() for th in table.find_all("th", scope="row")]
    assert heads == ["Car matched by name", "person", "dog"]
    assert len(table.find_all("tr", class_="unmatched")) == 2
    select = table.find("select", name="map:south:1")  # dog
    options = [o.attrs["value"] for o in select.find_all("option")]
    assert options == ["", "merge:Car", "merge:person", "drop"]
    assert table.find_all("input", name="rename:north:1")


async def test_a_refused_form_comes_back_as_typed_with_the_error_beside_its_field(
    client: httpx.AsyncClient, seeded: Stores
) -> None:
    response = await client.post("/versions/new", data=form(tile="10", **{"map:south:1": "drop"}))

    assert response.status_code == 422
    page = parse(response.text)
    field = page.find("input", name="tile")
    assert field.attrs["value"] == "10" and field.attrs.get("aria-invalid") == "true"
    assert "between 32 and 8192" in page.find("p", id="version-error-tile").text()
    assert page.find("input", name="name").attrs["value"] == "cars-v1"
    dog = page.find("select", name="map:south:1")
    assert "selected" in dog.find("option", value="drop").attrs  # the mapping choice kept
    assert [
        c.attrs["value"] for c in page.find_all("input", name="projects") if "checked" in c.attrs
    ] == ["north", "south"]
    assert await seeded.version.list() == []


async def test_a_version_built_from_the_form_is_listed_with_its_counts(
    client: httpx.AsyncClient, seeded: Stores, settings: Settings
) -> None:
    response = await client.post("/versions/new", data=form(**{"map:south:1": "drop"}))
    assert response.status_code == 303 and response.headers["location"] == "/versions"
    building = parse((await client.get("/versions")).text)
    card = building.find("article", id="version-cars-v1")
    assert "building" in card.find("span", class_="version-status").text()
    assert card.find_all("article", class_="task-panel")
    version = await seeded.version.get("cars-v1")
    assert version is not None and version.task_id is not None

    await run_build(seeded, settings, version.task_id)

    page = parse((await client.get("/versions")).text)
    card = page.find("article", id="version-cars-v1")
    rows = {
        tr.find("th").text(): [td.text() for td in tr.find_all("td")]
        for tr in card.find("table", class_="version-counts").find_all("tr")[1:]
    }
    assert rows == {"images": ["4", "1", "0"], "Car": ["4", "0", "0"], "person": ["0", "1", "0"]}
    assert "south/dog → dropped" in card.find("p", class_="version-mapping").text()
    assert "1 augmented copy per train image: flip horizontal" in card.text()
    detail = await client.get("/versions/cars-v1")
    assert detail.status_code == 200 and "0 Car , 1 person ." in parse(detail.text).text()


async def test_the_api_builds_lists_zips_and_deletes_a_version(
    client: httpx.AsyncClient, seeded: Stores, settings: Settings
) -> None:
    body = {"name": "api-v1", "projects": ["north", "south"], "recipe": {"seed": 2}}
    created = await client.post("/api/v1/versions", json=body)
    assert created.status_code == 202, created.text
    assert created.json()["version"]["status"] == "building"
    task_id = created.json()["task"]["id"]
    refused = await client.delete("/api/v1/versions/api-v1")
    assert refused.status_code == 409 and "being built" in refused.json()["detail"]
    assert (await client.get("/api/v1/versions/api-v1/export")).status_code == 422

    await run_build(seeded, settings, task_id)

    listed = (await client.get("/api/v1/versions")).json()
    assert [v["name"] for v in listed] == ["api-v1"]
    one = (await client.get("/api/v1/versions/API-V1")).json()
    assert one["classes"] == ["Car", "person", "dog"]
    assert one["counts"]["images"] == {"train": 2, "val": 1, "test": 0}
    zipped = await client.get("/api/v1/versions/api-v1/export")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert "data.yaml" in archive.namelist()
        assert "images/train/south__c.png" in archive.namelist()
    duplicate = await client.post("/api/v1/versions", json=body)
    assert duplicate.status_code == 422 and "already exists" in duplicate.json()["detail"]
    unknown = await client.post("/api/v1/versions", json=body | {"projects": ["nope"]})
    assert unknown.status_code == 404

    confirm = await client.get("/versions/api-v1/delete")
    assert "keep every image and label" in parse(confirm.text).text()
    assert (await client.delete("/api/v1/versions/api-v1")).status_code == 204
    assert (await client.get("/api/v1/versions/api-v1")).status_code == 404
    assert not (settings.data_dir / "versions" / "api-v1").exists()


async def test_the_list_page_is_whole_for_browsers_and_its_list_for_htmx(
    client: httpx.AsyncClient, seeded: Stores
) -> None:
    full = await client.get("/versions")
    fragment = await client.get("/versions", headers=HTMX)

    assert "<html" in full.text and "No version yet" in parse(full.text).text()
    assert "<html" not in fragment.text and parse(fragment.text).find("div", id="versions")
    assert "HX-Request" in fragment.headers["vary"]


def test_annotators_build_versions_and_reviewers_delete_them() -> None:
    assert needed_role("POST", "/versions/new") == Role.ANNOTATOR
    assert needed_role("POST", "/api/v1/versions") == Role.ANNOTATOR
    assert needed_role("POST", "/versions/{name}/delete") == Role.REVIEWER
    assert needed_role("DELETE", "/api/v1/versions/{name}") == Role.REVIEWER
    assert needed_role("GET", "/versions/{name}/export") == Role.VIEWER


async def test_the_training_box_offers_current_data_or_a_ready_version(
    client: httpx.AsyncClient, seeded: Stores, settings: Settings
) -> None:
    _, task = await version_service.start_version(seeded, "ready-v", ["north"], {})
    await version_service.start_version(seeded, "still-building", ["south"], {})
    await run_build(seeded, settings, task.id)

    select = parse((await client.get("/projects/north/train/data", headers=HTMX)).text)
    options = [(o.attrs["value"], o.text()) for o in select.find_all("option")]
    assert options == [("", "current data of north"), ("ready-v", "version ready-v")]

    refused = await client.post(
        "/projects/north/train",
        data={"version": "still-building", "epochs": "1"},
        headers=HTMX,
    )
    assert refused.status_code == 422
    box = parse(refused.text)
    assert "no ready version named 'still-building'" in box.find("p", id="training-error").text()
    assert box.find("select", id="training-version").attrs.get("aria-invalid") == "true"
    queued = await client.post(
        "/api/v1/projects/north/train", json={"version": "ready-v", "epochs": 1}
    )
    assert queued.status_code == 202
    assert (await seeded.task.get(queued.json()["id"])).params["version"] == "ready-v"


async def test_a_building_version_s_page_polls_its_card_until_it_is_ready(
    client: httpx.AsyncClient, seeded: Stores, settings: Settings
) -> None:
    _, task = await version_service.start_version(seeded, "slow", ["north"], {})

    page = parse((await client.get("/versions/slow")).text)
    card = page.find("article", id="version-slow")
    assert card.attrs["hx-get"] == "/versions/slow" and card.attrs["hx-swap"] == "outerHTML"
    fragment = await client.get("/versions/slow", headers=HTMX)
    assert parse(fragment.text).find("article", id="version-slow").attrs["hx-get"]
    await run_build(seeded, settings, task.id)
    done = parse((await client.get("/versions/slow", headers=HTMX)).text)
    card = done.find("article", id="version-slow")
    assert "hx-get" not in card.attrs and card.find("table", class_="version-counts")
