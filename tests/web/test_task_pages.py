"""The task pages: the panel that polls itself until its task ends, cancel, the task list with
keyset paging, and starting an export from the project page's export box."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.models import Annotation, DatasetInfo, TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.tasks.runner import TaskRunner
from app.web.csrf import COOKIE
from app.web.task_pages import PAGE_SIZE
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

HTMX = {"HX-Request": "true"}
HISTORY_RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
EXPORT_RESULT: dict[str, Any] = {
    "path": "exports/task-1/birds.zip",
    "filename": "birds.zip",
    "bytes": 12_345,
    "images": 3,
    "labels": 7,
    "left_out": {"unlabelled": 2, "missing": 1},
    "left_out_examples": {"unlabelled": ["a.jpg", "b.jpg"], "missing": ["c.jpg"]},
}


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def queued_export(app: FastAPI, project: str = "birds") -> TaskInfo:
    stores = stores_of(app)
    if project not in {p.name for p in await stores.dataset.list()}:
        await stores.dataset.create(project, ["gull", "crow"])
    return await stores.task.enqueue("export", {}, dataset=project)


async def running_export(app: FastAPI, *, progress: float, message: str) -> TaskInfo:
    task = await queued_export(app)
    claimed = await stores_of(app).task.claim("w")
    assert claimed is not None and claimed.id == task.id
    await stores_of(app).task.heartbeat(task.id, "w", progress=progress, message=message)
    return await stores_of(app).task.get(task.id)


async def finished_export(app: FastAPI, status: str, **outcome: Any) -> TaskInfo:
    task = await queued_export(app)
    claimed = await stores_of(app).task.claim("w")
    assert claimed is not None and claimed.id == task.id
    return await stores_of(app).task.finish(task.id, "w", status=status, **outcome)


def panel_of(markup: str, task_id: int) -> Element:
    return parse(markup).find("article", id=f"task-{task_id}")


def polls(panel: Element) -> bool:
    return "hx-trigger" in panel.attrs or "hx-get" in panel.attrs


def without_csrf_header(client: httpx.AsyncClient, url: str, **kw: Any) -> httpx.Request:
    """A POST as a browser without JS makes it: the cookie, but no ``X-CSRF-Token`` header."""
    request = client.build_request("POST", url, **kw)
    del request.headers["x-csrf-token"]
    return request


def form_token(client: httpx.AsyncClient) -> str:
    token = client.cookies.get(COOKIE)
    assert token
    return token


# --- starting an export ------------------------------------------------------------------------


async def test_starting_an_export_with_htmx_answers_a_panel_that_polls(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stores_of(app).dataset.create("birds", ["gull"])

    response = await client.post("/projects/birds/export", headers=HTMX)

    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"
    assert "<html" not in response.text
    [task] = await stores_of(app).task.list()
    assert (task.kind, task.dataset, task.status) == ("export", "birds", "queued")
    panel = panel_of(response.text, task.id)
    assert panel.attrs["hx-get"] == f"/tasks/{task.id}/panel"
    assert panel.attrs["hx-trigger"] == "every 1s"
    assert panel.attrs["hx-swap"] == "outerHTML"
    assert panel.find("span", class_="task-status").text() == "queued"


async def test_starting_an_export_without_javascript_goes_to_the_task_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stores_of(app).dataset.create("birds", ["gull"])

    request = without_csrf_header(
        client, "/projects/birds/export", data={"csrf_token": form_token(client)}
    )
    response = await client.send(request)

    assert response.status_code == 303
    [task] = await stores_of(app).task.list()
    assert response.headers["location"] == f"/tasks/{task.id}"
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    assert "<html" in page.text
    assert polls(panel_of(page.text, task.id))


async def test_exporting_an_unknown_project_is_a_404_page_and_queues_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post("/projects/nope/export")

    assert response.status_code == 404
    assert "nope" in parse(response.text).find("p", class_="error").text()
    assert await stores_of(app).task.list() == []


async def test_the_export_box_posts_to_the_export_route_and_has_an_empty_target(
    app: FastAPI,
) -> None:
    project = DatasetInfo(
        name="birds",
        path=stores_of(app).data_dir,
        classes=["gull"],
        num_images={},
        created_at=0,
        modified_at=0,
    )
    template = app.state.templates.get_template("projects/_export.html")

    box = parse(template.render(project=project, csrf_token="tok")).find("section", id="export")

    assert "yolo train" in box.text()
    assert "labelled" in box.text()
    form = box.find("form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == "/projects/birds/export"
    assert form.attrs["hx-post"] == "/projects/birds/export"
    assert form.attrs["hx-target"] == "#export-task"
    assert form.attrs["hx-swap"] == "innerHTML"
    assert form.find("input", name="csrf_token").attrs["value"] == "tok"
    assert form.find("button").text() == "Export zip"
    target = box.find("div", id="export-task")
    assert target.children == []


# --- the panel -----------------------------------------------------------------------------------


async def test_the_panel_of_a_running_task_polls_and_shows_its_progress(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await running_export(app, progress=0.426, message="gull-017.jpg")

    response = await client.get(f"/tasks/{task.id}/panel")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "<html" not in response.text  # a fragment even without HX-Request
    panel = panel_of(response.text, task.id)
    assert panel.attrs["hx-get"] == f"/tasks/{task.id}/panel"
    assert panel.attrs["hx-trigger"] == "every 1s"
    assert panel.attrs["hx-swap"] == "outerHTML"
    assert panel.find("span", class_="task-status").text() == "running"
    assert panel.find("progress").attrs["value"] == "42"
    assert panel.find("span", class_="task-pct").text() == "42%"
    assert panel.find("p", class_="task-message").text() == "gull-017.jpg"
    assert "birds" in panel.find("p", class_="task-title").text()
    assert "Export" in panel.find("p", class_="task-title").text()
    cancel = panel.find("form", class_="task-cancel")
    assert cancel.attrs["action"] == cancel.attrs["hx-post"] == f"/tasks/{task.id}/cancel"
    assert cancel.attrs["hx-target"] == f"#task-{task.id}"
    assert cancel.attrs["hx-swap"] == "outerHTML"
    assert cancel.find("input", name="csrf_token").attrs["value"] == form_token(client)


async def test_the_panel_of_a_finished_task_stops_polling(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await finished_export(app, TaskStatus.SUCCEEDED, result=EXPORT_RESULT)

    panel = panel_of((await client.get(f"/tasks/{task.id}/panel")).text, task.id)

    assert not polls(panel)
    assert panel.find_all("form") == []
    assert panel.find("progress").attrs["value"] == "100"


async def test_a_succeeded_export_panel_links_to_the_download_with_its_name_size_and_counts(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await finished_export(app, TaskStatus.SUCCEEDED, result=EXPORT_RESULT)

    panel = panel_of((await client.get(f"/tasks/{task.id}/panel")).text, task.id)

    link = panel.find("div", class_="task-download").find("a")
    assert link.attrs["href"] == f"/api/v1/tasks/{task.id}/download"
    assert link.attrs["download"] == "birds.zip"
    assert panel.find("span", class_="task-file").text() == "birds.zip"
    assert panel.find("span", class_="task-size").text() == "12.3 kB"
    assert panel.find("li", class_="count-images").text() == "3 images"
    assert panel.find("li", class_="count-boxes").text() == "7 boxes"
    left_out = panel.find("details", class_="task-left-out")
    assert left_out.find("span", class_="count-unlabelled").text() == "2 unlabelled"
    assert left_out.find("span", class_="count-missing").text() == "1 missing"
    assert "c.jpg" in left_out.text()


async def test_a_failed_task_panel_shows_the_error(app: FastAPI, client: httpx.AsyncClient) -> None:
    task = await finished_export(app, TaskStatus.FAILED, error="No space left on device")

    panel = panel_of((await client.get(f"/tasks/{task.id}/panel")).text, task.id)

    assert panel.find("span", class_="task-status").text() == "failed"
    alert = panel.find("p", class_="task-error")
    assert alert.attrs["role"] == "alert"
    assert alert.text() == "No space left on device"
    assert not polls(panel)
    assert panel.find_all("div", class_="task-download") == []


async def test_an_export_run_by_the_task_runner_ends_in_a_panel_whose_link_downloads_the_zip(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("birds", ["gull", "crow"])
    labelled = await stores.image.save_file(
        "birds", "train", "a.png", io.BytesIO(encode(make_image(seed=1)))
    )
    await stores.image.save_file("birds", "train", "b.png", io.BytesIO(encode(make_image(seed=2))))
    box = Annotation(class_id=1, x=0.5, y=0.5, width=0.25, height=0.25)
    await stores.label.save("birds", "train", labelled.filename, [box])
    started = await client.post("/projects/birds/export", headers=HTMX)
    task_id = int(parse(started.text).find("article").attrs["id"].removeprefix("task-"))

    runner = TaskRunner(stores.task, settings, poll_s=0.05)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not (await stores.task.get(task_id)).finished:
            assert time.monotonic() < deadline, "the export did not finish within 60 s"
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()

    panel = panel_of((await client.get(f"/tasks/{task_id}/panel", headers=HTMX)).text, task_id)
    assert panel.find("span", class_="task-status").text() == "succeeded", panel.text()
    assert not polls(panel)
    link = panel.find("div", class_="task-download").find("a")
    assert link.attrs["download"] == "birds.zip"
    assert panel.find("span", class_="task-file").text() == "birds.zip"
    assert panel.find("li", class_="count-images").text() == "1 image"
    assert panel.find("li", class_="count-boxes").text() == "1 box"
    assert panel.find("span", class_="count-unlabelled").text() == "1 unlabelled"
    assert panel.find("span", class_="count-missing").text() == "0 missing"
    download = await client.get(link.attrs["href"])
    assert download.status_code == 200
    assert 'filename="birds.zip"' in download.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert sorted(names) == ["data.yaml", "images/train/a.png", "labels/train/a.txt"]


# --- cancel --------------------------------------------------------------------------------------


async def test_cancelling_a_queued_task_with_htmx_answers_its_cancelled_panel(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await queued_export(app)

    response = await client.post(f"/tasks/{task.id}/cancel", headers=HTMX)

    assert response.status_code == 200
    assert "<html" not in response.text
    assert (await stores_of(app).task.get(task.id)).status == "cancelled"
    panel = panel_of(response.text, task.id)
    assert panel.find("span", class_="task-status").text() == "cancelled"
    assert panel.find_all("form") == []
    assert panel.find_all("button") == []
    assert not polls(panel)


async def test_cancelling_without_javascript_goes_back_to_the_task_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await queued_export(app)

    request = without_csrf_header(
        client, f"/tasks/{task.id}/cancel", data={"csrf_token": form_token(client)}
    )
    response = await client.send(request)

    assert response.status_code == 303
    assert response.headers["location"] == f"/tasks/{task.id}"
    assert (await stores_of(app).task.get(task.id)).status == "cancelled"


async def test_cancelling_a_running_task_asks_it_to_stop_and_keeps_polling(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await running_export(app, progress=0.5, message="half way")

    response = await client.post(f"/tasks/{task.id}/cancel", headers=HTMX)

    stored = await stores_of(app).task.get(task.id)
    assert (stored.status, stored.cancel_requested) == ("running", True)
    panel = panel_of(response.text, task.id)
    assert polls(panel)  # until the worker has stopped
    assert panel.find_all("form", class_="task-cancel") == []


async def test_cancelling_without_the_csrf_token_is_refused_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await queued_export(app)

    response = await client.send(without_csrf_header(client, f"/tasks/{task.id}/cancel"))
    forged = await client.send(
        without_csrf_header(client, f"/tasks/{task.id}/cancel", data={"csrf_token": "x" * 43})
    )

    assert response.status_code == 403
    assert forged.status_code == 403
    assert "security token" in parse(response.text).find("p", class_="error").text()
    assert (await stores_of(app).task.get(task.id)).status == "queued"


# --- the task list -------------------------------------------------------------------------------


def listed_ids(markup: str) -> list[int]:
    rows = parse(markup).find("div", id="task-list").find_all("tr", class_="task-row")
    return [int(row.find("td", class_="col-id").find("a").text().lstrip("#")) for row in rows]


async def test_the_tasks_page_lists_tasks_newest_first_and_pages_to_older_ones(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = [(await queued_export(app)).id for _ in range(PAGE_SIZE + 3)]
    newest_first = ids[::-1]

    first = await client.get("/tasks")

    assert first.status_code == 200
    document = parse(first.text)
    assert document.find("a", href="/tasks").attrs.get("aria-current") == "page"
    assert listed_ids(first.text) == newest_first[:PAGE_SIZE]
    for row in document.find_all("tr", class_="task-row"):
        task_id = row.attrs["id"].removeprefix("task-row-")
        assert row.find("td", class_="col-id").find("a").attrs["href"] == f"/tasks/{task_id}"
    older = document.find("a", class_="task-older")
    assert older.attrs["href"] == f"/tasks?before_id={newest_first[PAGE_SIZE - 1]}"
    assert older.attrs["hx-get"] == older.attrs["href"]
    assert older.attrs["hx-target"] == "#task-list"
    assert older.attrs["hx-push-url"] == "true"

    second = await client.get(older.attrs["href"])

    assert listed_ids(second.text) == newest_first[PAGE_SIZE:]
    assert parse(second.text).find_all("a", class_="task-older") == []


async def test_the_tasks_page_without_tasks_says_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks")

    main = parse(response.text).find("main")
    assert main.find_all("table") == []
    assert "No tasks yet" in main.text()


async def test_the_task_list_refreshes_itself_only_while_a_task_is_unfinished(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await queued_export(app)

    waiting = parse((await client.get("/tasks")).text).find("div", id="task-list")
    await stores_of(app).task.request_cancel(task.id)
    done = parse((await client.get("/tasks")).text).find("div", id="task-list")

    assert waiting.attrs["hx-get"] == "/tasks"
    assert waiting.attrs["hx-trigger"] == "every 2s"
    assert "hx-trigger" not in done.attrs


# --- full page or fragment -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fragment_root"),
    [("/tasks", ("div", "task-list")), ("/tasks/{id}", ("article", "task-{id}"))],
)
async def test_each_task_page_is_a_full_page_or_for_htmx_its_fragment(
    app: FastAPI, client: httpx.AsyncClient, path: str, fragment_root: tuple[str, str]
) -> None:
    task = await queued_export(app)
    url = path.format(id=task.id)
    tag, root_id = fragment_root[0], fragment_root[1].format(id=task.id)

    full = await client.get(url)
    fragment = await client.get(url, headers=HTMX)
    restored = await client.get(url, headers=HISTORY_RESTORE)

    for response in (full, fragment, restored):
        assert response.status_code == 200
        assert response.headers["vary"] == "HX-Request"
    assert "<html" in full.text
    parse(full.text).find(tag, id=root_id)
    assert "<html" not in fragment.text
    assert parse(fragment.text).find(tag, id=root_id)
    assert "<html" in restored.text


async def test_the_panel_route_is_always_a_fragment(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task = await queued_export(app)

    for headers in ({}, HTMX, HISTORY_RESTORE):
        response = await client.get(f"/tasks/{task.id}/panel", headers=headers)
        assert "<html" not in response.text
        panel_of(response.text, task.id)


@pytest.mark.parametrize("path", ["/tasks/999", "/tasks/999/panel"])
async def test_an_unknown_task_is_a_404_page(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert "<html" in response.text
    assert "999" in parse(response.text).find("p", class_="error").text()


async def test_cancelling_an_unknown_task_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/tasks/999/cancel")

    assert response.status_code == 404


async def test_a_finished_reconcile_or_sync_panel_says_what_it_did_and_links_the_report(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    reconcile = await stores.task.enqueue("reconcile", {"deep": False})
    sync = await stores.task.enqueue("sync", {})
    for task, result in (
        (
            reconcile,
            {"drift": True, "images": 12, "counts": {"missing_image": 2, "stray_image": 1}},
        ),
        (
            sync,
            {
                "changed": True,
                "counts": [
                    {"project": "p", "kind": "image", "outcome": "added", "count": 5},
                    {"project": "p", "kind": "label", "outcome": "added", "count": 4},
                    {"project": "p", "kind": "image", "outcome": "skipped", "count": 2},
                ],
            },
        ),
    ):
        claimed = await stores.task.claim("w")
        assert claimed is not None and claimed.id == task.id
        await stores.task.finish(task.id, "w", status=TaskStatus.SUCCEEDED, result=result)

    page = parse((await client.get(f"/tasks/{reconcile.id}")).text)
    report = page.find("p", class_="task-report")
    assert "Found 3 differences" in report.text() and "12 images checked" in report.text()
    assert report.find("a").attrs["href"] == "/storage#storage-reconcile"
    page = parse((await client.get(f"/tasks/{sync.id}")).text)
    report = page.find("p", class_="task-report")
    assert "9 things added" in report.text() and "2 skipped" in report.text()
    assert report.find("a").attrs["href"] == "/storage#storage-sync"


async def test_a_second_storage_run_is_refused_while_one_is_queued(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/v1/storage/reconcile", json={})
    assert first.status_code == 202
    for url in ("/api/v1/storage/reconcile", "/api/v1/storage/sync"):
        refused = await client.post(url, json={})
        assert refused.status_code == 409
        assert f"already queued (task {first.json()['id']})" in refused.json()["detail"]
