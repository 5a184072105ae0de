"""Trying the active model from the models page in a real browser: a picture of shapes goes up,
the task's page shows it with the boxes found; screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, shoot
from tests.shapes import CLASSES, ShapesModel, shapes_image


@pytest.mark.e2e
def test_a_picture_tried_on_the_models_page_comes_back_with_its_boxes(
    live: LiveServer, page: Page, shapes_model: ShapesModel, tmp_path: Path
) -> None:
    project = "try-shapes"

    async def ready() -> None:
        await live.stores.dataset.create(project, list(CLASSES))
        await live.stores.model.save(
            "try-shapes-1",
            shapes_model.weights,
            "yolo11n.yaml",
            project,
            40,
            {"args": {"imgsz": 128}},
        )
        await live.stores.model.set_active("try-shapes-1")

    live.run(ready())
    picture, boxes = shapes_image(20_001, classes=[0, 2], size=256, side=72)
    path = tmp_path / "two shapes.png"
    cv2.imwrite(str(path), picture)

    page.goto(f"/projects/{project}/models")
    form = page.locator("#model-try")
    form.get_by_label("Picture").set_input_files(str(path))
    form.get_by_role("button", name="Try it").click()

    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(page.locator(".task-panel .task-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator(".try-box")).not_to_have_count(0)
    expect(page.locator(".try-stage")).to_contain_text("circle")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=page.locator(".try-stage img").element_handle(),
    )
    shoot(page, "try-model")
    assert len(boxes) == 2
