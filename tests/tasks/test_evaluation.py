"""Evaluation of a model that really detects (the ``shapes_model`` fixture) on its project's
val split, in a worker process: per-class AP, a confusion matrix whose true columns add up to
the val boxes, and the mistakes' images."""

from __future__ import annotations

import asyncio
import time

from app.config import Settings
from app.domain.stores import Stores
from tests.shapes import ShapesModel
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving


async def test_the_shapes_model_scores_per_class_and_its_confusion_adds_up_to_the_val_boxes(
    settings: Settings, stores: Stores, shapes_model: ShapesModel
) -> None:
    await stores.dataset.import_dataset("shapes", shapes_model.dataset, create=True)
    info = await stores.dataset.get("shapes")
    assert info is not None and info.classes == shapes_model.names
    assert info.num_images["val"] > 0
    await stores.model.save(
        "shapes-1", shapes_model.weights, "yolo11n.yaml", "shapes", 40, {"args": {"imgsz": 128}}
    )
    val_boxes = [0] * len(shapes_model.names)
    for label in (shapes_model.dataset / "labels" / "val").glob("*.txt"):
        for line in label.read_text().splitlines():
            val_boxes[int(line.split()[0])] += 1

    async with serving(settings) as (_, client):
        response = await client.post("/api/v1/models/shapes-1/evaluate")
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while (task := await get_task(client, task_id))["status"] not in FINISHED:
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.2)
        assert task["status"] == "succeeded", task["error"]
        result = (await client.get(f"/api/v1/evaluations/{task_id}")).json()
        page = await client.get(f"/evaluations/{task_id}")
        panel = (await client.get(f"/tasks/{task_id}")).text
        models = (await client.get("/projects/shapes/models")).text

    assert page.status_code == 200
    assert f'href="/evaluations/{task_id}"' in panel
    assert 'action="/models/shapes-1/evaluate"' in models
    assert result["boxes"] == sum(val_boxes)
    matrix = result["confusion"]
    for c, boxes in enumerate(val_boxes):
        assert sum(row[c] for row in matrix) == boxes
    for score, boxes in zip(result["classes"], val_boxes, strict=True):
        assert score["boxes"] == boxes
        assert score["found"] + score["missed"] == boxes
        assert score["ap50"] is not None and 0.0 <= score["ap50"] <= 1.0
    # It really detects: the mean AP is what the fixture's own validation promised, roughly.
    assert result["map50"] >= 0.4
    for mistake in result["mistakes"]:
        assert mistake["false_positives"] or mistake["missed"] or mistake["wrong_class"]
