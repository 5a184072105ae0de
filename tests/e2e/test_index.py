"""The index page in a real browser: projects and the footer; its export on the tasks page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.main import SOURCE_URL

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results"
FINISHED = {"succeeded", "failed", "cancelled"}


def _wait_until_finished(http: httpx.Client, task_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task = http.get(f"/api/v1/tasks/{task_id}").json()
        if task["status"] in FINISHED or time.monotonic() > deadline:
            return task
        time.sleep(0.2)


@pytest.mark.e2e
def test_the_index_shows_a_project_its_export_task_and_the_source_link(
    live_server: str, page: Page
) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        http.headers["X-CSRF-Token"] = http.get("/api/v1/csrf").json()["token"]
        created = http.post(
            "/api/v1/projects", json={"name": "street-scenes", "classes": ["car", "bicycle"]}
        )
        assert created.status_code == 201, created.text
        started = http.post("/api/v1/projects/street-scenes/export")
        assert started.status_code == 202, started.text
        task = _wait_until_finished(http, started.json()["id"])
    assert task["status"] == "succeeded", task

    page.goto("/")

    expect(page).to_have_title("Projects · ydc")
    row = page.locator("#projects tbody tr", has_text="street-scenes")
    expect(row).to_have_count(1)
    expect(row.locator("td.name")).to_have_text("street-scenes")
    expect(row.locator("td").nth(1)).to_have_text("car, bicycle")
    source = page.locator("footer a", has_text="source code")
    expect(source).to_have_attribute("href", SOURCE_URL)
    expect(page.locator("footer a", has_text="AGPL")).to_have_count(1)
    assert page.evaluate("typeof htmx") == "object", "htmx did not load"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "index.png"), full_page=True)

    # The recent tasks live on the tasks page, linked from the header.
    page.get_by_role("navigation").get_by_role("link", name="Tasks").click()
    expect(page).to_have_title("Tasks · ydc")
    task_row = page.locator(f"#task-row-{task['id']}")
    expect(task_row).to_have_count(1)
    expect(task_row.locator("td.col-id")).to_have_text(f"#{task['id']}")
    expect(task_row.locator("td.col-kind")).to_have_text("Export")
    expect(task_row.locator("td.col-project")).to_have_text("street-scenes")
    expect(task_row.locator("td.col-status")).to_have_text("succeeded")
