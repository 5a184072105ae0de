"""Webcam capture in a real browser with Chromium's fake camera: the sessions page opens a
webcam session, three frames are captured (the C key, the button, the Space key) into it, the
interval mode takes frames on its own, and End session completes it; a refused camera says so.
Screenshots of the capture page at desktop and phone widths."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.domain.models import ImageFilter
from tests.e2e.support import LiveServer, api, shoot

PROJECT = "e2e-webcam"


@pytest.mark.e2e
def test_three_frames_captured_from_the_fake_camera_land_in_the_session(
    live: LiveServer, page: Page
) -> None:
    live.run(live.stores.dataset.create(PROJECT, ["mug"]))

    page.goto(f"/projects/{PROJECT}")
    form = page.locator("form.webcam-form")
    form.get_by_label("Into").select_option("train")
    form.get_by_role("button", name="Open the webcam").click()

    expect(page).to_have_url(re.compile(r"/sessions/\d+/webcam$"))
    session_id = int(page.url.rsplit("/", 2)[1])
    expect(page.locator("#webcam-message")).to_contain_text("Camera on", timeout=15_000)
    capture = page.get_by_role("button", name=re.compile("Capture frame"))
    expect(capture).to_be_enabled()
    kept = page.locator("#webcam-count-kept")

    page.keyboard.press("c")
    expect(kept).to_have_text("1")
    capture.click()
    expect(kept).to_have_text("2")
    page.locator("h1").click()  # focus off the button: Space is the page's key again
    page.keyboard.press("Space")
    expect(kept).to_have_text("3")

    expect(page.locator("#webcam-count-frames_seen")).to_have_text("3")
    expect(page.locator("#webcam-strip img")).to_have_count(3)
    expect(page.locator("#webcam-strip-empty")).to_be_hidden()
    frames = live.run(
        live.stores.image.search(PROJECT, ImageFilter(session_id=session_id), limit=10)
    )
    assert len(frames) == 3
    assert {f.split for f in frames} == {"train"}
    assert all(f.width > 0 and f.height > 0 for f in frames)
    with api(live) as http:
        session = http.get(f"/api/v1/sessions/{session_id}").json()
    assert session["source"] == "webcam"
    assert session["counts"] == {
        "frames_seen": 3,
        "kept": 3,
        "skipped_near_duplicate": 0,
        "skipped_duplicate": 0,
    }
    shoot(page, "webcam")

    # The interval mode takes frames by itself until stopped.
    page.get_by_label("Every").fill("0.5")
    interval = page.locator("#webcam-interval")
    interval.click()
    expect(interval).to_have_text("Stop")
    expect(page.locator(".webcam.webcam-running")).to_be_attached()
    expect(page.locator("#webcam-count-frames_seen")).to_have_text(
        re.compile(r"^([5-9]|\d\d+)$"), timeout=15_000
    )
    interval.click()
    expect(interval).to_have_text("Start")

    page.get_by_role("button", name="End session").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{session_id}$"))
    expect(page.locator("#session-summary-title .session-status")).to_have_text("completed")
    seen = int(page.locator("dd.count-frames_seen").inner_text())
    counted = sum(
        int(page.locator(f"dd.count-{key}").inner_text())
        for key in ("kept", "skipped_near_duplicate")
    )
    assert seen >= 5 and counted <= seen
    expect(page.get_by_role("link", name="Open the webcam page")).to_have_count(0)
    shoot(page, "webcam-session")
    assert live.run(live.stores.image.count(PROJECT, ImageFilter(session_id=session_id))) == int(
        page.locator("dd.count-kept").inner_text()
    )


@pytest.mark.e2e
def test_a_refused_camera_is_explained_on_the_page(live: LiveServer, page: Page) -> None:
    live.run(live.stores.dataset.create(f"{PROJECT}-refused", ["mug"]))
    session = live.run(
        live.stores.session.create(f"{PROJECT}-refused", "webcam", {"near_duplicate_bits": 6})
    )
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )

    page.goto(f"/sessions/{session.id}/webcam")

    expect(page.locator("#webcam-problem-text")).to_contain_text("The camera was refused")
    expect(page.locator("#webcam-message")).to_have_text("The camera is not available.")
    expect(page.get_by_role("button", name=re.compile("Capture frame"))).to_be_disabled()
    expect(page.get_by_role("button", name="Try the camera again")).to_be_visible()
    shoot(page, "webcam-refused")
