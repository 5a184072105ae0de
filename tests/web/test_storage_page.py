"""The Storage health page: what the start-up reconcile found, the missing images of each
project (located again by uploading their file, or deleted after a confirmation), reconcile and
sync queued as tasks with their latest reports, and the JSON twin under ``/api/v1``.

The app here starts on a data dir that drifted while it was down: ``b.png``'s file was deleted
by hand and a folder no project owns was dropped into ``projects/``.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.domain.errors import NotFound
from app.domain.models import Annotation
from app.domain.reconcile import FOUND_TITLES, Found
from app.domain.stores import Stores
from app.main import create_app
from app.repositories import create_stores
from app.services.storage import StartupReconcile
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse
from tests.web.openapi import assert_documented_error

HTMX = {"HX-Request": "true"}
PROJECT = "birds"
BYTES = {name: encode(make_image(40, 30, seed)) for seed, name in enumerate(["a", "b", "c"])}


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def _image_file(settings: Settings, name: str, split: str = "train") -> Path:
    return settings.data_dir / "projects" / PROJECT / "images" / split / f"{name}.png"


async def _seed(settings: Settings) -> None:
    """birds: a.png and b.png (with a gull) in train, c.png in val; then b.png's file is
    deleted and a folder no project owns appears, as if by hand while the server was down."""
    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        await stores.dataset.create(PROJECT, ["gull"])
        for name, split in (("a", "train"), ("b", "train"), ("c", "val")):
            await stores.image.save_file(PROJECT, split, f"{name}.png", io.BytesIO(BYTES[name]))
        await stores.label.save(PROJECT, "train", "b.png", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    finally:
        await stores.close()
    _image_file(settings, "b").unlink()
    (settings.data_dir / "projects" / "stray").mkdir()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app started on the drifted data dir (its start-up reconcile marks b.png missing)."""
    await _seed(settings)
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


async def _page(client: httpx.AsyncClient, **headers: str) -> Element:
    response = await client.get("/storage", headers=headers)
    assert response.status_code == 200, response.text
    return parse(response.text)


def _missing_names(block: Element) -> list[str]:
    return [li.attrs["data-filename"] for li in block.find_all("li", class_="missing-item")]


def _finding(section: Element, kind: Found) -> Element:
    return section.find("li", class_="finding", **{"data-kind": kind.value})


async def _finish(stores: Stores, kind: str, result: dict[str, object]) -> None:
    """Run the queued task of ``kind`` as a worker would, ending it with ``result``."""
    task = await stores.task.claim("test-worker", kinds=[kind])
    assert task is not None
    await stores.task.finish(task.id, "test-worker", status="succeeded", result=result)


# --- the page ----------------------------------------------------------------------------------


async def test_the_page_shows_what_the_start_up_reconcile_found(
    client: httpx.AsyncClient,
) -> None:
    page = await _page(client)

    startup = page.find("section", id="storage-startup")
    assert "1 project and 3 images" in startup.find("p", class_="report-lead").text()
    missing = _finding(startup, Found.MISSING_IMAGE)
    assert missing.find("summary").text() == f"1 {FOUND_TITLES[Found.MISSING_IMAGE]}"
    assert missing.find("code", class_="finding-path").text() == (
        f"projects/{PROJECT}/images/train/b.png"
    )
    unknown = _finding(startup, Found.UNKNOWN_FOLDER)
    assert unknown.find("code", class_="finding-path").text() == "projects/stray"
    assert "Adopt them with Sync from disk" in unknown.find("p", class_="finding-hint").text()
    # Nothing else drifted.
    assert len(startup.find_all("li", class_="finding")) == 2
    assert page.find("a", href="/storage").attrs["aria-current"] == "page"
    assert page.find("link", href="/static/storage.css")


async def test_htmx_gets_the_page_without_its_frame(client: httpx.AsyncClient) -> None:
    response = await client.get("/storage", headers=HTMX)

    assert "HX-Request" in response.headers["vary"]
    fragment = parse(response.text)
    assert not fragment.find_all("html")
    assert fragment.find("div", id="storage").find("h1").text() == "Storage health"


async def test_a_start_where_disk_and_database_agree_says_so(settings: Settings) -> None:
    await upgrade_to_head(settings.database_url)
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = await _page(http)

    startup = page.find("section", id="storage-startup")
    assert "Disk and database agree." in startup.text()
    assert not startup.find_all("li", class_="finding")
    assert page.find("p", id="missing-none").text().startswith("No image is missing")


async def test_a_start_up_reconcile_that_failed_shows_why(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.reconcile_at_start = StartupReconcile(time.time(), None, "OSError: disk on fire")

    startup = (await _page(client)).find("section", id="storage-startup")

    assert startup.find("p", class_="error").text() == "The check failed: OSError: disk on fire"


async def test_a_file_deleted_before_start_is_listed_missing_with_its_project(
    client: httpx.AsyncClient,
) -> None:
    block = (await _page(client)).find("section", id=f"missing-{PROJECT}")

    assert _missing_names(block) == ["b.png"]
    assert block.find("span", class_="missing-count").text() == "1 image missing"
    assert block.find("a", href=f"/projects/{PROJECT}").text() == PROJECT
    item = block.find("li", class_="missing-item")
    assert item.find("span", class_="split-train").text() == "train"
    assert item.find("span", class_="state-labelled").text() == "labelled"
    # No more than the first page: no link to the grid.
    assert not block.find_all("p", class_="missing-more")


async def test_delete_asks_first_then_removes_the_row(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    url = f"/storage/projects/{PROJECT}/delete"

    asked = await client.post(url, data={"filename": "b.png"})
    assert asked.status_code == 200
    confirm = parse(asked.text).find("section", class_="confirm")
    assert confirm.find("h1").text() == "Delete b.png?"
    form = confirm.find("form")
    assert form.attrs["action"] == url
    assert form.find("input", name="confirm").attrs["value"] == "yes"
    assert (await _stores(app).image.get(PROJECT, "b.png")).missing  # nothing deleted yet

    done = await client.post(url, data={"filename": "b.png", "confirm": "yes"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/storage#missing-{PROJECT}"
    with pytest.raises(NotFound):
        await _stores(app).image.get(PROJECT, "b.png")
    page = await _page(client)
    assert not page.find_all("section", id=f"missing-{PROJECT}")
    assert page.find("p", id="missing-none")


async def test_delete_with_htmx_confirms_in_place_of_the_block(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    url = f"/storage/projects/{PROJECT}/delete"
    block = (await _page(client)).find("section", id=f"missing-{PROJECT}")
    button_form = block.find("form", class_="missing-delete")
    assert button_form.attrs["hx-post"] == url
    assert button_form.attrs["hx-target"] == f"#missing-{PROJECT}"

    asked = parse((await client.post(url, data={"filename": "b.png"}, headers=HTMX)).text)
    confirm = asked.find("section", id=f"missing-{PROJECT}")
    assert "confirm" in confirm.attrs["class"].split()
    assert not asked.find_all("html")
    cancel = confirm.find("a", class_="button")
    assert cancel.attrs["hx-get"] == f"/storage/projects/{PROJECT}"
    back = parse((await client.get(cancel.attrs["hx-get"], headers=HTMX)).text)
    assert _missing_names(back.find("section", id=f"missing-{PROJECT}")) == ["b.png"]

    done = await client.post(url, data={"filename": "b.png", "confirm": "yes"}, headers=HTMX)
    block = parse(done.text).find("section", id=f"missing-{PROJECT}")
    assert block.find("p", class_="storage-notice").text() == "Deleted b.png."
    assert _missing_names(block) == []
    assert await _stores(app).image.count(PROJECT) == 2
    total = parse(done.text).find("span", id="missing-total")
    assert total.attrs["hx-swap-oob"] == "true" and "hidden" in total.attrs


async def test_delete_refuses_an_image_whose_file_is_there(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    url = f"/storage/projects/{PROJECT}/delete"

    response = await client.post(url, data={"filename": "a.png", "confirm": "yes"})

    assert response.status_code == 409
    assert "a.png is not missing" in parse(response.text).find("main").text()
    assert not (await _stores(app).image.get(PROJECT, "a.png")).missing


async def test_locating_the_right_bytes_puts_the_file_back(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    files = [("files", ("renamed-copy.png", BYTES["b"], "image/png"))]

    response = await client.post(f"/storage/projects/{PROJECT}/locate", files=files)

    assert response.status_code == 200
    block = parse(response.text).find("section", id=f"missing-{PROJECT}")
    result = block.find("li", class_="locate-result")
    assert "locate-restored" in result.attrs["class"].split()
    assert result.find("span", class_="detail").text() == "restored b.png (train)"
    assert block.find("span", class_="missing-count").text() == "0 images missing"
    assert _image_file(settings, "b").read_bytes() == BYTES["b"]
    assert not (await _stores(app).image.get(PROJECT, "b.png")).missing
    # A whole page: its total once, updated, not out of band.
    total = parse(response.text).find("span", id="missing-total")
    assert "hidden" in total.attrs and "hx-swap-oob" not in total.attrs


async def test_locating_other_bytes_says_no_missing_image_has_them(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    files = [
        ("files", ("other.png", encode(make_image(40, 30, 99)), "image/png")),
        ("files", ("a-again.png", BYTES["a"], "image/png")),
    ]

    response = await client.post(f"/storage/projects/{PROJECT}/locate", files=files, headers=HTMX)

    block = parse(response.text).find("section", id=f"missing-{PROJECT}")
    assert not parse(response.text).find_all("html")
    other, again = block.find_all("li", class_="locate-result")
    assert "locate-no_match" in other.attrs["class"].split()
    assert other.find("span", class_="detail").text() == "no missing image has these bytes"
    assert "locate-not_missing" in again.attrs["class"].split()
    assert "a.png" in again.find("span", class_="detail").text()
    assert "is not missing" in again.find("span", class_="detail").text()
    assert _missing_names(block) == ["b.png"]
    assert not _image_file(settings, "b").exists()
    # The page's total comes along out of band, unchanged.
    total = parse(response.text).find("span", id="missing-total")
    assert (total.text(), total.attrs["hx-swap-oob"]) == ("1", "true")


async def test_locate_with_no_file_chosen_says_so(client: httpx.AsyncClient) -> None:
    # What a browser sends for a file input left empty: one part with no name and no bytes.
    files = [("files", ("", b"", "application/octet-stream"))]

    response = await client.post(f"/storage/projects/{PROJECT}/locate", files=files)

    assert response.status_code == 422
    assert "Choose the files to locate" in parse(response.text).find("main").text()


async def _cancel_queued(app: FastAPI) -> None:
    for task in await _stores(app).task.list():
        if task.status == "queued":
            await _stores(app).task.request_cancel(task.id)


async def test_the_run_buttons_queue_tasks_and_go_to_their_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    page = await _page(client)
    assert page.find("form", action="/storage/reconcile").find("input", name="deep")
    assert page.find("form", action="/storage/sync").find("input", name="prefer_disk")

    reconcile = await client.post("/storage/reconcile", data={"deep": "yes"})
    await _cancel_queued(app)  # one storage run at a time
    sync = await client.post("/storage/sync", data={}, headers=HTMX)

    tasks = {t.kind: t for t in await _stores(app).task.list()}
    assert reconcile.status_code == 303
    assert reconcile.headers["location"] == f"/tasks/{tasks['reconcile'].id}"
    assert tasks["reconcile"].params["deep"] is True
    assert sync.status_code == 204
    assert sync.headers["hx-redirect"] == f"/tasks/{tasks['sync'].id}"
    assert tasks["sync"].params["prefer_disk"] is False


async def test_an_unfinished_run_polls_and_a_finished_one_shows_its_report(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    stores = _stores(app)
    await client.post("/storage/reconcile", data={})
    latest = (await _page(client)).find("div", id="latest-reconcile")
    assert latest.find("span", class_="task-status").text() == "queued"
    assert latest.attrs["hx-get"] == "/storage/runs/reconcile"
    assert "every" in latest.attrs["hx-trigger"]
    # Without htmx the same URL is the whole page.
    whole = parse((await client.get("/storage/runs/reconcile")).text)
    assert whole.find_all("html") and whole.find("div", id="latest-reconcile")

    _image_file(settings, "c", "val").unlink()
    await _finish(stores, "reconcile", (await stores.storage.reconcile()).to_dict())
    polled = await client.get("/storage/runs/reconcile", headers=HTMX)
    latest = parse(polled.text).find("div", id="latest-reconcile")
    assert polled.headers["cache-control"] == "no-store"
    assert "hx-get" not in latest.attrs  # finished: the polling stops
    assert latest.find("span", class_="task-status").text() == "succeeded"
    finding = _finding(latest, Found.MISSING_IMAGE)
    assert finding.find("code").text() == f"projects/{PROJECT}/images/val/c.png"
    assert "1 project and 3 images" in latest.find("p", class_="report-lead").text()


async def test_a_finished_sync_shows_what_it_added_per_project_and_kind(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    stores = _stores(app)
    stray = settings.data_dir / "projects" / "stray"
    (stray / "images" / "train").mkdir(parents=True)
    (stray / "data.yaml").write_text("names:\n  0: cat\n")
    (stray / "images" / "train" / "x.png").write_bytes(encode(make_image(40, 30, 7)))
    (stray / "images" / "train" / "bad.png").write_bytes(b"not an image")
    await client.post("/storage/sync", data={"prefer_disk": "yes"})
    await _finish(stores, "sync", (await stores.storage.sync_from_disk()).to_dict())

    latest = (await _page(client)).find("div", id="latest-sync")

    assert latest.find("span", class_="run-flag").text() == "prefer disk labels"
    row = latest.find("tr", **{"data-project": "stray", "data-kind": "image"})
    assert row.find("td", **{"data-outcome": "added"}).text() == "1"
    assert row.find("td", **{"data-outcome": "skipped"}).text() == "1"
    assert latest.find("tr", **{"data-project": "stray", "data-kind": "project"})
    skipped = latest.find("details", class_="sync-skipped")
    assert "bad.png" in skipped.text()


# --- the JSON API ------------------------------------------------------------------------------


async def test_the_api_reports_the_start_up_reconcile_and_the_missing_images(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/storage")

    assert response.status_code == 200
    body = response.json()
    report = body["startup"]["report"]
    assert report["counts"] == {"missing_image": 1, "unknown_folder": 1}
    assert report["titles"]["missing_image"] == FOUND_TITLES[Found.MISSING_IMAGE]
    assert {f["path"] for f in report["findings"]} == {
        f"projects/{PROJECT}/images/train/b.png",
        "projects/stray",
    }
    assert body["missing"] == [{"project": PROJECT, "missing": 1}]
    assert body["reconcile_task"] is None and body["sync_task"] is None


async def test_the_api_queues_reconcile_and_sync(app: FastAPI, client: httpx.AsyncClient) -> None:
    deep = await client.post("/api/v1/storage/reconcile", json={"deep": True})
    await _cancel_queued(app)  # one storage run at a time
    plain = await client.post("/api/v1/storage/reconcile")
    await _cancel_queued(app)
    sync = await client.post("/api/v1/storage/sync", json={"prefer_disk": True})

    assert deep.status_code == plain.status_code == sync.status_code == 202
    assert (deep.json()["kind"], deep.json()["status"]) == ("reconcile", "queued")
    assert sync.json()["kind"] == "sync"
    body = (await client.get("/api/v1/storage")).json()
    assert body["reconcile_task"]["id"] == plain.json()["id"]
    assert body["sync_task"]["id"] == sync.json()["id"]


async def test_the_api_locates_files_and_says_what_became_of_each(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    files = [
        ("files", ("b.png", BYTES["b"], "image/png")),
        ("files", ("nope.png", b"other bytes", "image/png")),
    ]

    response = await client.post(f"/api/v1/projects/{PROJECT}/locate", files=files)

    assert response.status_code == 200
    body = response.json()
    assert [(r["original_name"], r["status"]) for r in body["results"]] == [
        ("b.png", "restored"),
        ("nope.png", "no_match"),
    ]
    assert body["results"][0]["filename"] == "b.png" and body["results"][0]["split"] == "train"
    assert body["totals"] == {"restored": 1, "no_match": 1, "not_missing": 0, "refused": 0}
    assert _image_file(settings, "b").read_bytes() == BYTES["b"]


async def test_the_api_refuses_an_unknown_project_and_a_request_without_files(
    client: httpx.AsyncClient,
) -> None:
    files = [("files", ("b.png", BYTES["b"], "image/png"))]

    unknown = await client.post("/api/v1/projects/nope/locate", files=files)
    empty = await client.post(f"/api/v1/projects/{PROJECT}/locate", json={})

    assert unknown.status_code == 404
    assert "nope" in unknown.json()["detail"]
    assert empty.status_code == 422
    assert "multipart/form-data" in empty.json()["detail"]


async def test_the_api_is_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert "get" in paths["/api/v1/storage"]
    assert "202" in paths["/api/v1/storage/reconcile"]["post"]["responses"]
    assert "202" in paths["/api/v1/storage/sync"]["post"]["responses"]
    locate = paths["/api/v1/projects/{name}/locate"]["post"]
    assert "multipart/form-data" in locate["requestBody"]["content"]
    assert not any(p.startswith("/storage") for p in paths)  # the pages stay out


# --- CSRF --------------------------------------------------------------------------------------


async def test_a_post_without_the_token_is_refused_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    wrong = {"X-CSRF-Token": "not-the-token"}
    files = [("files", ("b.png", BYTES["b"], "image/png"))]

    refused = [
        await client.post("/storage/reconcile", data={}, headers=wrong),
        await client.post("/storage/sync", data={}, headers=wrong),
        await client.post(
            f"/storage/projects/{PROJECT}/delete",
            data={"filename": "b.png", "confirm": "yes"},
            headers=wrong,
        ),
        await client.post(f"/storage/projects/{PROJECT}/locate", files=files, headers=wrong),
        await client.post("/api/v1/storage/reconcile", headers=wrong),
        await client.post(f"/api/v1/projects/{PROJECT}/locate", files=files, headers=wrong),
    ]

    assert [r.status_code for r in refused] == [403] * len(refused)
    assert await _stores(app).task.list() == []
    assert (await _stores(app).image.get(PROJECT, "b.png")).missing
    assert not _image_file(settings, "b").exists()


async def test_the_project_health_section_links_its_missing_images_here(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/projects/{PROJECT}/health", headers=HTMX)

    link = parse(response.text).find("p", id="health-storage").find("a")
    assert link.attrs["href"] == f"/storage#missing-{PROJECT}"


async def test_a_second_storage_run_gets_a_409_the_openapi_document_declares(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/v1/storage/reconcile")
    second = await client.post("/api/v1/storage/sync", json={"prefer_disk": True})

    assert first.status_code == 202
    assert second.status_code == 409
    await assert_documented_error(client, second, "/api/v1/storage/sync")


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        pytest.param("/api/v1/storage/reconcile", {"deep": 0}, "deep", id="reconcile-deep-0"),
        pytest.param("/api/v1/storage/sync", {"prefer_disk": "yes"}, "prefer_disk", id="sync"),
    ],
)
async def test_a_storage_run_asked_with_a_flag_that_is_no_boolean_gets_a_422_and_queues_nothing(
    client: httpx.AsyncClient, url: str, body: dict[str, object], field: str
) -> None:
    response = await client.post(url, json=body)

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}: ")
    assert "boolean" in response.json()["detail"]
    assert (await client.get("/api/v1/tasks")).json() == []
