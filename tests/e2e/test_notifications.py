"""Notifications in a real browser: a task that ends while a page is open shows up on it
without a reload (succeeded and failed), nothing that ended before the page opened does; the
project's webhook box; a failing webhook on the tasks page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, api, shoot, wait_until_finished
from tests.webhook_receiver import webhook_receiver

PROJECT = "notify-e2e"
WAIT_MS = 30_000  # pages poll every 5 s; generous on a loaded machine


def _open(page: Page, path: str) -> None:
    """Open ``path`` and wait for the notice script's first answer (its starting cursor)."""
    with page.expect_response(lambda r: "/api/v1/notifications" in r.url, timeout=WAIT_MS):
        page.goto(path)


@pytest.mark.e2e
def test_a_task_that_ends_while_a_page_is_open_is_shown_there_without_a_reload(
    live: LiveServer, page: Page
) -> None:
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": PROJECT, "classes": ["gull"]}).is_success
        before = http.post(f"/api/v1/projects/{PROJECT}/export").json()["id"]
        assert wait_until_finished(http, before)["status"] == "succeeded"

        _open(page, f"/projects/{PROJECT}")
        page.evaluate("window.notReloaded = true")
        task = http.post(f"/api/v1/projects/{PROJECT}/export").json()["id"]
        assert wait_until_finished(http, task)["status"] == "succeeded"

        notice = page.locator("#notices .task-notice-succeeded")
        expect(notice).to_have_count(1, timeout=WAIT_MS)
        expect(notice).to_contain_text(f"Export #{task} of {PROJECT} succeeded")
        expect(notice.locator("a")).to_have_attribute("href", f"/tasks/{task}")
        assert page.evaluate("window.notReloaded") is True
        # The export that ended before the page opened was never shown.
        expect(page.locator(f"#notices [data-task='{before}']")).to_have_count(0)
        shoot(page, "notify-succeeded", full_page=False)

        # A failing task: its notice stays (with the reason) until closed.
        failing = live.run(live.stores.task.enqueue("no-such-kind", {}, dataset=PROJECT))
        assert wait_until_finished(http, failing.id)["status"] == "failed"
    failed = page.locator("#notices .task-notice-failed")
    expect(failed).to_have_count(1, timeout=WAIT_MS)
    expect(failed).to_contain_text(f"#{failing.id} of {PROJECT} failed")
    expect(failed.locator(".notice-error")).to_contain_text("no task kind")
    shoot(page, "notify-failed", full_page=False)
    failed.get_by_role("button", name="Dismiss").click()
    expect(failed).to_have_count(0)

    # Opening the tasks page anew: what ended before is not announced again.
    _open(page, "/tasks")
    with page.expect_response(lambda r: "after=" in r.url, timeout=WAIT_MS):
        pass
    expect(page.locator("#notices .task-notice")).to_have_count(0)


@pytest.mark.e2e
def test_the_webhook_box_refuses_a_bad_url_and_shows_the_secret_once(
    live: LiveServer, page: Page
) -> None:
    project = "notify-box"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["a"]}).is_success
    page.goto(f"/projects/{project}")
    box = page.locator("#webhook")
    url = box.get_by_label("URL")
    expect(url).to_be_visible(timeout=WAIT_MS)  # loaded after the page

    url.fill("ftp://example.org/hook")
    box.get_by_role("button", name="Set webhook").click()
    expect(box.locator(".error")).to_contain_text("must start with http:// or https://")
    shoot(page, "webhook-box-error")

    with webhook_receiver(500) as receiver:
        url = box.get_by_label("URL")
        url.fill(receiver.url)
        box.get_by_role("button", name="Set webhook").click()
        secret = box.locator("#webhook-secret")
        expect(secret).to_have_text(re.compile(r"^whsec_[0-9a-f]{48}$"))
        shoot(page, "webhook-box-secret")
        shown = secret.inner_text()

        page.reload()
        expect(page.locator("#webhook .webhook-hint")).to_contain_text(
            "whsec_…" + shown[-4:], timeout=WAIT_MS
        )
        assert shown not in page.content()

        # A task of the project ends; the receiver fails; the tasks page says so.
        with api(live) as http:
            task = http.post(f"/api/v1/projects/{project}/export").json()["id"]
            assert wait_until_finished(http, task)["status"] == "succeeded"
        assert len(receiver.wait_for(1)) >= 1
        page.goto("/tasks")
        flag = page.locator(f"#task-row-{task} .webhook-flag")
        expect(flag).to_contain_text("answered 500", timeout=WAIT_MS)
        deliveries = page.locator("#webhook-deliveries")
        expect(deliveries.locator("tr.delivery-row").first).to_contain_text("answered 500")
        shoot(page, "tasks-webhook-failing")
        # The two pages of their own (what the boxes are without JavaScript).
        page.goto(f"/projects/{project}/webhook")
        expect(page.locator("#webhook .webhook-deliveries li").first).to_contain_text(
            f"Export #{task}"
        )
        shoot(page, "webhook-page")
        page.goto("/webhook-deliveries")
        expect(page.locator("#deliveries-title")).to_have_text("Webhook deliveries")
        shoot(page, "webhook-deliveries-page")
        with api(live) as http:
            assert http.delete(f"/api/v1/projects/{project}/webhook").status_code == 204
