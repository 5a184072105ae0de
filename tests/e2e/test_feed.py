"""A stream feed in a real browser: the sessions page's Stream form opens an MJPEG stream served
on 127.0.0.1 with the live view on (the shapes model); the feed page shows the frames with the
model's boxes, the C key captures one (kept, with suggestions), a dropped stream shows as
reconnecting and then "Reconnected after …", and End session closes the stream. Screenshots of
the form and the feed page at desktop and phone widths."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from app.services.feeds import end_feed_session
from tests.e2e.support import LiveServer, shoot
from tests.feed_stream import mjpeg_stream
from tests.shapes import CLASSES, ShapesModel, shapes_image

PROJECT = "e2e-feed"


def scene(number: int) -> np.ndarray:
    picture, _ = shapes_image(20_000 + number, size=256, classes=[0, 1, 2])
    return picture


@pytest.mark.e2e
def test_a_stream_with_the_live_view_is_shown_captured_reconnected_and_ended(
    live: LiveServer, page: Page, shapes_model: ShapesModel, request: pytest.FixtureRequest
) -> None:
    stores = live.stores
    live.run(stores.dataset.create(PROJECT, list(CLASSES)))
    live.run(
        stores.model.save(
            "e2e-shapes",
            shapes_model.weights,
            "yolo11n.yaml",
            PROJECT,
            40,
            {"args": {"imgsz": 128}},
        )
    )
    live.run(stores.model.set_active("e2e-shapes"))

    with mjpeg_stream(scene, fps=12, scene_s=4.0) as stream:
        page.goto(f"/projects/{PROJECT}/sessions")
        form = page.locator("form.stream-form")
        expect(form).to_be_visible()
        form.get_by_label("Stream URL").fill(stream.url)
        form.get_by_label("Draw the active model's boxes on the frames").check()
        form.get_by_label("At most").fill("4")
        form.get_by_label("Image size").fill("128")
        form.scroll_into_view_if_needed()
        shoot(page, "feed-stream-form")
        form.get_by_role("button", name="Open the stream").click()

        expect(page).to_have_url(re.compile(r"/sessions/\d+/feed$"))
        session_id = int(page.url.rstrip("/").split("/")[-2])
        request.addfinalizer(lambda: live.run(end_feed_session(stores, session_id)))
        badge = page.locator("#feed-status .feed-badge")
        expect(badge).to_have_text("live", timeout=60_000)
        expect(page.locator("#feed-boxes")).not_to_have_text("0", timeout=120_000)
        # A function, not an expression: Playwright polls an expression with eval, which the
        # page's content policy refuses whenever the picture is not loaded at the first look.
        page.wait_for_function(
            "() => document.getElementById('feed-image').naturalWidth > 0", timeout=30_000
        )

        page.keyboard.press("c")
        expect(page.locator("#feed-capture-message")).to_contain_text("kept", timeout=20_000)
        expect(page.locator("#feed-capture-message")).to_contain_text("suggestions")
        expect(page.locator("#feed-status .count-kept")).to_have_text("1", timeout=10_000)
        expect(page.locator("#feed-strip img")).to_have_count(1)
        shoot(page, "feed-live")

        stream.down()
        expect(badge).to_have_text("reconnecting", timeout=30_000)
        expect(page.locator("#feed-message")).to_contain_text(
            re.compile("Stream lost, reconnecting in|Cannot open the stream")
        )
        shoot(page, "feed-reconnecting")
        stream.up()
        expect(badge).to_have_text("live", timeout=60_000)
        expect(page.locator("#feed-message")).to_contain_text("Reconnected after")

        page.get_by_role("button", name="End session").click()
        expect(page.locator("#feed-status")).to_have_attribute("data-state", "ended")
        expect(page.locator(".feed-closed")).to_contain_text("has ended")
        deadline = time.monotonic() + 20
        while stream.active and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stream.active == 0, "the stream stayed open after the session ended"
        shoot(page, "feed-ended")
