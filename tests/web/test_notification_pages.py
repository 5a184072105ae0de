"""Notifications over HTTP: the cursor endpoint pages poll, the project's webhook settings box
and API (a bad URL is a 422 that changes nothing; the secret is shown once), deliveries on the
tasks page (a failing receiver shows there), and who may see and change what with accounts on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.domain.stores import Stores
from app.main import create_app
from app.services import accounts
from tests.conftest import arm_csrf
from tests.web.htmltree import parse
from tests.webhook_receiver import webhook_receiver

PROJECT = "birds"
BOX = f"/projects/{PROJECT}/webhook"
API = f"/api/v1/projects/{PROJECT}/webhook"
HTMX = {"HX-Request": "true"}


@pytest.fixture
async def birds(app: FastAPI) -> Stores:
    stores: Stores = app.state.stores
    await stores.dataset.create(PROJECT, ["gull"])
    return stores


async def _end_a_task(stores: Stores, status: str = "succeeded", error: str | None = None) -> int:
    task = await stores.task.enqueue("export", {}, dataset=PROJECT)
    assert (await stores.task.claim("w")) is not None
    await stores.task.finish(
        task.id, "w", status=status, result={"images": 1, "labels": 2}, error=error
    )
    return task.id


# --- the notifications endpoint --------------------------------------------------------------


async def test_notifications_start_at_the_current_cursor_and_then_give_later_ends(
    client: httpx.AsyncClient, birds: Stores
) -> None:
    await _end_a_task(birds)  # before the page opened: never notified

    opened = await client.get("/api/v1/notifications")
    assert opened.status_code == 200
    assert opened.headers["cache-control"] == "no-store"
    cursor = opened.json()["cursor"]
    assert opened.json()["tasks"] == [] and cursor >= 1

    assert (await client.get(f"/api/v1/notifications?after={cursor}")).json() == {
        "cursor": cursor,
        "tasks": [],
    }
    done = await _end_a_task(birds)
    failed = await _end_a_task(birds, "failed", "out of disk")

    later = (await client.get(f"/api/v1/notifications?after={cursor}")).json()
    assert [t["id"] for t in later["tasks"]] == [done, failed]
    assert later["cursor"] == later["tasks"][-1]["seq"] > cursor
    first, second = later["tasks"]
    assert (first["kind"], first["title"], first["status"], first["project"]) == (
        "export", "Export", "succeeded", PROJECT,
    )  # fmt: skip
    assert first["url"] == f"/tasks/{done}"
    assert (second["status"], second["error"]) == ("failed", "out of disk")
    again = await client.get(f"/api/v1/notifications?after={later['cursor']}")
    assert again.json()["tasks"] == []


@pytest.mark.parametrize("after", ["-1", "x", str(2**63)])
async def test_a_bad_cursor_is_a_422(client: httpx.AsyncClient, after: str) -> None:
    response = await client.get(f"/api/v1/notifications?after={after}")
    assert response.status_code == 422
    assert "after" in response.json()["detail"]


async def test_every_page_has_the_notice_area_and_its_script(client: httpx.AsyncClient) -> None:
    page = parse((await client.get("/tasks")).text)

    area = page.find("div", id="notices")
    assert area.attrs["data-source"] == "/api/v1/notifications"
    assert area.attrs["aria-live"] == "polite"
    assert int(area.attrs["data-every-ms"]) == 5000
    assert page.find("script", src="/static/notify.js")
    assert (await client.get("/static/notify.js")).status_code == 200


# --- the settings box ------------------------------------------------------------------------


async def test_the_box_is_a_page_and_a_fragment(client: httpx.AsyncClient, birds: Stores) -> None:
    full = await client.get(BOX)
    fragment = await client.get(BOX, headers=HTMX)

    assert full.status_code == fragment.status_code == 200
    assert "<html" in full.text.lower() and "<html" not in fragment.text.lower()
    box = parse(fragment.text).find("section", id="webhook")
    assert box.find("form", class_="webhook-form").attrs["action"] == BOX
    assert box.find("input", name="url").attrs["value"] == ""
    assert "Set webhook" in box.text()
    project = parse((await client.get(f"/projects/{PROJECT}")).text)
    assert project.find("section", id="webhook").attrs["hx-get"] == BOX


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://example.org/x", "must start with http:// or https://"),
        ("example.org", "must start with http:// or https://"),
        ("", "Give the webhook's URL"),
        ("http://", "no host"),
        ("http://example.org/höök", "must be plain ASCII"),
        ("https://ada:pw@example.org/hook", "cannot carry a user name or password"),
    ],
)
async def test_a_bad_url_is_refused_in_the_box_and_changes_nothing(
    client: httpx.AsyncClient, birds: Stores, url: str, said: str
) -> None:
    await client.post(BOX, data={"url": "https://good.example/hook"}, headers=HTMX)
    before = await birds.notification.webhook(PROJECT)

    response = await client.post(BOX, data={"url": url}, headers=HTMX)

    assert response.status_code == 422
    box = parse(response.text).find("section", id="webhook")
    assert said in box.find("p", class_="error").text()
    assert box.find("input", name="url").attrs["value"] == url  # what was typed stays
    assert box.find("input", name="url").attrs["aria-invalid"] == "true"
    assert await birds.notification.webhook(PROJECT) == before


async def test_the_secret_is_shown_once_then_masked_and_can_be_renewed(
    client: httpx.AsyncClient, birds: Stores
) -> None:
    made = await client.post(BOX, data={"url": " https://hooks.example/ydc "}, headers=HTMX)

    assert made.status_code == 200
    hook = await birds.notification.webhook(PROJECT)
    assert hook.url == "https://hooks.example/ydc" and hook.secret
    shown = parse(made.text).find("code", id="webhook-secret").text()
    assert shown == hook.secret
    assert made.headers["cache-control"] == "no-store"

    later = await client.get(BOX, headers=HTMX)
    assert hook.secret not in later.text
    assert f"whsec_…{hook.secret[-4:]}" in parse(later.text).text()
    assert parse(later.text).find("input", name="url").attrs["value"] == hook.url

    moved = await client.post(BOX, data={"url": "http://127.0.0.1:9/h"}, headers=HTMX)
    assert hook.secret not in moved.text  # changing the URL keeps the secret, unshown
    assert (await birds.notification.webhook(PROJECT)).secret == hook.secret

    renewed = await client.post(f"{BOX}/secret", headers=HTMX)
    new = (await birds.notification.webhook(PROJECT)).secret
    assert new and new != hook.secret
    assert parse(renewed.text).find("code", id="webhook-secret").text() == new

    removed = await client.post(f"{BOX}/remove", headers=HTMX)
    assert removed.status_code == 200 and "Set webhook" in removed.text
    assert not (await birds.notification.webhook(PROJECT)).configured
    assert (await client.post(f"{BOX}/secret", headers=HTMX)).status_code == 422


async def test_a_plain_form_post_gets_the_page_back(
    client: httpx.AsyncClient, birds: Stores
) -> None:
    response = await client.post(BOX, data={"url": "https://hooks.example/ydc"})
    assert response.status_code == 200 and "<html" in response.text.lower()
    assert (await birds.notification.webhook(PROJECT)).configured


# --- the JSON API ----------------------------------------------------------------------------


async def test_the_api_sets_reads_renews_and_removes_a_webhook(
    client: httpx.AsyncClient, birds: Stores
) -> None:
    assert (await client.get(API)).json()["configured"] is False

    bad = await client.put(API, json={"url": "gopher://example.org"})
    assert bad.status_code == 422 and "http://" in bad.json()["detail"]
    assert not (await birds.notification.webhook(PROJECT)).configured

    made = (await client.put(API, json={"url": "https://hooks.example/ydc"})).json()
    assert made["secret"].startswith("whsec_") and made["configured"] is True
    read = (await client.get(API)).json()
    assert read["secret"] is None and read["secret_hint"] == "whsec_…" + made["secret"][-4:]
    assert read["url"] == "https://hooks.example/ydc"

    kept = (await client.put(API, json={"url": "https://other.example/"})).json()
    assert kept["secret"] is None
    renewed = (await client.post(f"{API}/secret")).json()
    assert renewed["secret"] and renewed["secret"] != made["secret"]

    assert (await client.delete(API)).status_code == 204
    assert (await client.get(API)).json()["url"] is None
    assert (await client.get("/api/v1/projects/nope/webhook")).status_code == 404


async def test_the_api_lists_deliveries_and_retries_one(
    client: httpx.AsyncClient, birds: Stores
) -> None:
    await client.put(API, json={"url": "http://127.0.0.1:9/h"})
    task_id = await _end_a_task(birds)

    [listed] = (await client.get(f"{API}/deliveries")).json()
    assert (listed["task_id"], listed["event"], listed["task_kind"]) == (
        task_id, "task.succeeded", "export",
    )  # fmt: skip
    assert listed["state"] in ("pending", "sending", "failed")
    everyone = (await client.get("/api/v1/webhook-deliveries")).json()
    assert [d["id"] for d in everyone] == [listed["id"]]
    one = await client.get(f"/api/v1/webhook-deliveries/{listed['id']}")
    assert one.json()["id"] == listed["id"]
    assert (await client.get("/api/v1/webhook-deliveries/999")).status_code == 404
    assert (await client.post("/api/v1/webhook-deliveries/999/retry")).status_code == 404


async def test_the_deliveries_list_is_a_page_and_the_fragment_the_tasks_page_polls(
    client: httpx.AsyncClient, birds: Stores
) -> None:
    assert (
        "None yet"
        in parse((await client.get("/tasks")).text).find("section", id="webhook-deliveries").text()
    )
    await client.put(API, json={"url": "http://127.0.0.1:9/h"})
    task_id = await _end_a_task(birds)

    full = await client.get("/webhook-deliveries")
    fragment = await client.get("/webhook-deliveries", headers=HTMX)

    assert "<html" in full.text.lower() and "<html" not in fragment.text.lower()
    section = parse(fragment.text).find("section", id="webhook-deliveries")
    assert f"Export #{task_id}" in section.text()
    assert "127.0.0.1:9" not in fragment.text  # URLs stay on the admins' box
    assert (await client.post("/webhook-deliveries/999/retry")).status_code == 404


# --- failures on the tasks page --------------------------------------------------------------


@pytest.fixture
def quick_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_attempts": 2, "webhook_backoff_s": 0.1})


@pytest.fixture
async def quick_app(quick_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(quick_settings)
    async with LifespanManager(application):
        yield application


async def test_a_failing_webhook_is_retried_and_shown_on_the_tasks_page(
    quick_app: FastAPI,
) -> None:
    stores: Stores = quick_app.state.stores
    await stores.dataset.create(PROJECT, ["gull"])
    transport = httpx.ASGITransport(app=quick_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await arm_csrf(http)
        with webhook_receiver(500) as receiver:
            await http.put(API, json={"url": receiver.url})
            task_id = await _end_a_task(stores)
            # The server's own sender loop tries twice (0.1 s apart), then gives up.
            deadline = time.monotonic() + 30
            while (await stores.notification.deliveries())[0].state != "failed":
                assert time.monotonic() < deadline, "the delivery did not fail in 30 s"
                await asyncio.sleep(0.05)
            assert len(await receiver.arrived(2)) == 2

        page = parse((await http.get("/tasks")).text)
        row = page.find("tr", id=f"task-row-{task_id}")
        assert "webhook failed: answered 500" in row.find("a", class_="webhook-flag").text()
        section = page.find("section", id="webhook-deliveries")
        [delivery] = await stores.notification.deliveries()
        line = section.find("tr", id=f"delivery-{delivery.id}")
        assert "failed" in line.text() and "answered 500" in line.text()
        assert line.find("form").attrs["action"] == f"/webhook-deliveries/{delivery.id}/retry"
        fragment = await http.get("/tasks", headers=HTMX)  # the list's own polling
        assert "webhook failed" in fragment.text

        with webhook_receiver(200) as fixed:
            await http.put(API, json={"url": fixed.url})
            retried = await http.post(f"/webhook-deliveries/{delivery.id}/retry", headers=HTMX)
            assert retried.status_code == 200
            assert parse(retried.text).find("section", id="webhook-deliveries")
            assert len(await fixed.arrived(1)) == 1
            deadline = time.monotonic() + 30
            while (await stores.notification.delivery(delivery.id)).state != "delivered":
                assert time.monotonic() < deadline, "the retry was not delivered in 30 s"
                await asyncio.sleep(0.05)
        again = await http.post(f"/api/v1/webhook-deliveries/{delivery.id}/retry")
        assert again.status_code == 409 and "delivered already" in again.json()["detail"]
        calm = parse((await http.get("/tasks")).text)
        assert not calm.find("tr", id=f"task-row-{task_id}").find_all("a", class_="webhook-flag")


# --- accounts --------------------------------------------------------------------------------


@pytest.fixture
async def accounts_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"accounts": True}))
    async with LifespanManager(application):
        stores: Stores = application.state.stores
        for role in ("admin", "reviewer", "viewer"):
            await accounts.add_user(stores.account, role, role, "correct horse battery")
        await stores.dataset.create(PROJECT, ["gull"])
        yield application


async def _login(app: FastAPI, name: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await http.get("/login")
    http.headers["X-CSRF-Token"] = http.cookies["ydc_csrf"]
    response = await http.post("/login", data={"name": name, "password": "correct horse battery"})
    assert response.status_code == 303
    return http


async def test_with_accounts_only_admins_see_and_change_the_webhook(
    accounts_app: FastAPI,
) -> None:
    anonymous = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=accounts_app), base_url="http://testserver"
    )
    assert (await anonymous.get("/api/v1/notifications")).status_code == 401
    admin, viewer = await _login(accounts_app, "admin"), await _login(accounts_app, "viewer")
    try:
        assert (await viewer.get("/api/v1/notifications")).status_code == 200
        made = await admin.put(API, json={"url": "https://secret-token.example/hook"})
        assert made.status_code == 200

        assert (await viewer.get(API)).status_code == 403
        assert (await viewer.get("/api/v1/webhook-deliveries")).status_code == 403
        refused = await viewer.put(API, json={"url": "https://evil.example/"})
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        assert (await viewer.post(BOX, data={"url": "https://evil.example/"})).status_code == 403

        box = await viewer.get(BOX, headers=HTMX)
        assert box.status_code == 200
        assert "A webhook is set" in box.text and "secret-token" not in box.text
        assert "secret-token" in (await admin.get(BOX, headers=HTMX)).text
    finally:
        for http in (anonymous, admin, viewer):
            await http.aclose()
