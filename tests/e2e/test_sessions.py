"""Capture from a video in a real browser: the project page's form uploads a video, the session
page follows the task until the session completes, and the sessions page lists it; screenshots
of both pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, shoot
from tests.tasks.test_video_capture import make_video


@pytest.mark.e2e
def test_a_video_uploaded_on_the_project_page_becomes_a_completed_session(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    live.run(live.stores.dataset.create("e2e-capture", ["car"]))
    video = make_video(tmp_path / "driveway.avi", scenes=6, per_scene=8)

    page.goto("/projects/e2e-capture")
    form = page.locator("form.session-form")
    form.get_by_label("Video").set_input_files(str(video))
    form.get_by_label("Into").select_option("train")
    form.get_by_role("button", name="Capture frames").click()

    expect(page).to_have_url(re.compile(r"/sessions/\d+$"))
    expect(page.locator("#session-summary-title .session-status")).to_have_text(
        "completed", timeout=60_000
    )
    expect(page.locator("dd.count-frames_seen")).to_have_text("48")
    expect(page.locator("dd.count-kept")).to_have_text("6")
    expect(page.locator(".session-thumbs img")).to_have_count(6)
    expect(page.locator(".session-log li").last).to_contain_text("Done: 48 frames seen, 6 kept")
    shoot(page, "session")

    page.get_by_role("link", name="Sessions").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Capture sessions")
    expect(page.locator("tr.session-row")).to_have_count(1)
    expect(page.locator("tr.session-row td.count-kept")).to_have_text("6")
    shoot(page, "sessions")
