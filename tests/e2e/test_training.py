"""Training in a real browser: coco8 imported into a project, a training started from the project
page's training box (yolo11n from scratch, 3 epochs at image size 64, batch 2), its panel's
progress bar advancing and its chart appearing while it trains, then the model on the models
page. Screenshots of the form, the running panel with its chart and the models page."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TEST_DATA
from tests.e2e.support import LiveServer, shoot

PROJECT = "e2e-coco8"
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.mark.e2e
def test_a_training_started_from_the_form_shows_progress_and_a_chart_then_its_model(
    live: LiveServer, page: Page
) -> None:
    live.run(live.stores.dataset.import_dataset(PROJECT, TEST_DATA / "coco8", create=True))

    page.goto(f"/projects/{PROJECT}")
    box = page.locator("#training")
    base = box.get_by_label("Start from")
    expect(base.locator("option[value='yolov8n.yaml']")).to_be_attached()  # the full list came
    base.select_option("yolo11n.yaml")
    box.get_by_label("Epochs").fill("3")
    box.get_by_label("Image size").fill("64")
    box.get_by_label("Batch").fill("2")
    box.scroll_into_view_if_needed()
    shoot(page, "training-form")
    box.get_by_role("button", name="Start training").click()

    panel = box.locator(".task-panel")
    expect(panel).to_be_visible()
    # Watch the bar as the panel polls itself: it moves between 0 and 100 while it trains.
    progress_seen: list[int] = []
    shot = False
    deadline = time.monotonic() + 240
    while True:
        status = panel.locator(".task-status").inner_text(timeout=10_000)
        value = panel.locator("progress").get_attribute("value", timeout=10_000)
        progress_seen.append(int(value or 0))
        if status == "running" and not shot and panel.locator("circle.chart-point").count():
            expect(panel.locator("svg.training-chart")).to_have_count(2)
            expect(panel.locator(".training-epoch")).to_contain_text("of 3")
            shoot(page, "training-running")
            page.goto(f"/tasks/{panel.get_attribute('id', timeout=10_000)[5:]}")
            panel = page.locator(".task-panel")
            expect(panel.locator("svg.training-chart").first).to_be_visible()
            shoot(page, "training-running-task-page")
            shot = True
        if status in FINISHED:
            break
        assert time.monotonic() < deadline, f"the training is still {status}"
        page.wait_for_timeout(100)

    expect(panel.locator(".task-status")).to_have_text("succeeded")
    assert any(0 < p < 100 for p in progress_seen), progress_seen
    assert progress_seen == sorted(progress_seen), "the bar went backwards"
    assert shot, "no moment with a running training and a chart point was seen"
    # The finished panel keeps its chart: three epochs, a dot each.
    expect(panel.locator("circle.chart-point[data-series='mAP50']")).to_have_count(3)
    outcome = panel.locator(".training-outcome")
    expect(outcome).to_contain_text("best mAP50")
    expect(outcome).to_contain_text("3 epochs")
    # What it took at its peak: the worker's RAM, and no GPU here (or its memory on one).
    expect(panel.locator(".training-resources")).to_contain_text(
        re.compile(r"Peak memory: RAM [\d.]+ [MG]B")
    )
    shoot(page, "training-finished")

    outcome.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(rf"/projects/{PROJECT}/models#model-{PROJECT}-\d+$"))
    card = page.locator("article.model-card").first
    expect(card.get_by_role("heading", level=2)).to_have_text(re.compile(rf"^{PROJECT}-\d+$"))
    expect(card).to_contain_text("From yolo11n.yaml")
    expect(card).to_contain_text("Trained on 4 train images, 4 val images")
    expect(card.locator(".metric-peak-ram")).to_have_text(re.compile(r"^[\d.]+ [MG]B$"))
    shoot(page, "training-models")

    card.get_by_role("button", name="Make active").click()
    expect(card.locator(".model-badge")).to_have_text("active")
