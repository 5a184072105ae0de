"""Trying the active model on one picture in a worker: the boxes it finds come back and are
drawn on the task's page; nothing is stored in the project; refused without an active model."""

from __future__ import annotations

import asyncio
import time

import cv2

from app.config import Settings
from app.domain.evaluation import iou
from app.domain.stores import Stores
from tests.shapes import CLASSES, ShapesModel, shapes_image
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving


async def test_the_active_model_tried_on_a_picture_finds_its_shape_and_stores_nothing(
    settings: Settings, stores: Stores, shapes_model: ShapesModel
) -> None:
    await stores.dataset.create("shapes", list(CLASSES))
    picture, (truth,) = shapes_image(20_000, classes=[1], side=48)  # one square
    ok, encoded = cv2.imencode(".png", picture)
    assert ok

    async with serving(settings) as (_, client):
        files = {"file": ("square.png", encoded.tobytes(), "image/png")}
        refused = await client.post("/api/v1/projects/shapes/models/try", files=files)
        assert refused.status_code == 422
        assert "no active model" in refused.json()["detail"]

        await stores.model.save(
            "shapes-try",
            shapes_model.weights,
            "yolo11n.yaml",
            "shapes",
            40,
            {"args": {"imgsz": 128}},
        )
        await stores.model.set_active("shapes-try")
        response = await client.post("/api/v1/projects/shapes/models/try", files=files)
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        deadline = time.monotonic() + 90
        while (task := await get_task(client, task_id))["status"] not in FINISHED:
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.2)
        assert task["status"] == "succeeded", task["error"]
        page = (await client.get(f"/tasks/{task_id}")).text
        served = await client.get(f"/tries/{task_id}/picture")

    result = task["result"]
    assert (result["width"], result["height"]) == (picture.shape[1], picture.shape[0])
    best = max(
        result["boxes"],
        key=lambda b: iou((b["x"], b["y"], b["w"], b["h"]), truth[1:]),
    )
    assert best["name"] == "square" and best["confidence"] >= 0.25
    assert iou((best["x"], best["y"], best["w"], best["h"]), truth[1:]) >= 0.5
    assert page.count('class="try-box"') == len(result["boxes"])
    assert served.status_code == 200 and served.content == encoded.tobytes()
    info = await stores.dataset.get("shapes")
    assert info is not None and sum(info.num_images.values()) == 0
