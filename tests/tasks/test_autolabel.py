"""Auto-labelling with a model that really detects (the ``shapes_model`` fixture), in a worker
process: its pending suggestions find the known boxes of fresh images; accepted ones become
labels; a second run adds no duplicates and resurrects neither rejected nor accepted boxes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from app.config import Settings
from app.domain.evaluation import iou
from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.shapes import Box, ShapesModel, shapes_image
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving

IMAGES = 10


async def run_autolabel(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/projects/shapes/autolabel", json=body)
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while (task := await get_task(client, task_id))["status"] not in FINISHED:
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.2)
    assert task["status"] == "succeeded", task["error"]
    assert task["kind"] == "autolabel"
    return task


def matches(suggestion: Annotation, box: Box, threshold: float = 0.5) -> bool:
    c, x, y, w, h = box
    return (
        suggestion.class_id == c
        and iou((suggestion.x, suggestion.y, suggestion.width, suggestion.height), (x, y, w, h))
        >= threshold
    )


def same_object(a: Annotation, b: Annotation) -> bool:
    return (
        a.class_id == b.class_id
        and iou((a.x, a.y, a.width, a.height), (b.x, b.y, b.width, b.height)) >= 0.7
    )


async def test_auto_labelling_suggests_the_known_boxes_and_a_rerun_adds_no_duplicates(
    settings: Settings, stores: Stores, shapes_model: ShapesModel
) -> None:
    # The project spells one class differently: classes are matched by name, ignoring case.
    names = [shapes_model.names[0].title(), *shapes_model.names[1:]]
    await stores.dataset.create("shapes", names)
    known: dict[str, list[Box]] = {}
    for i in range(IMAGES):
        image, boxes = shapes_image(300_000 + i)  # never seen in training
        info = await stores.image.save("shapes", "train", f"fresh-{i}.png", image)
        known[info.filename] = boxes
    await stores.model.save(
        "shapes-1", shapes_model.weights, "yolo11n.yaml", "shapes", 40, {"args": {"imgsz": 128}}
    )
    await stores.model.set_active("shapes-1")

    async with serving(settings) as (_, client):
        first = await run_autolabel(client, {})  # the active model, unlabelled images

        result = first["result"]
        assert result["model"] == "shapes-1" and result["imgsz"] == 128
        assert result["images"] == IMAGES
        assert result["unmatched_classes"] == {}
        assert result["images_per_second"] > 0
        suggested = {name: await stores.label.list_suggestions("shapes", name) for name in known}
        assert sum(map(len, suggested.values())) == result["suggestions_added"]
        for found in suggested.values():
            for s in found:
                assert s.status == "pending" and s.source == "model" and s.model == "shapes-1"
                assert s.confidence is not None and s.confidence >= 0.25
        boxes = [(name, box) for name, found in known.items() for box in found]
        hits = [(n, b) for n, b in boxes if any(matches(s, b) for s in suggested[n])]
        assert len(hits) >= 0.8 * len(boxes), (len(hits), len(boxes))

        # The user rejects one suggestion on the first image and accepts all the others.
        first_name, *others = sorted(suggested, key=lambda n: -len(suggested[n]))
        rejected = suggested[first_name][0]
        assert await stores.label.reject_suggestions("shapes", first_name, [rejected.id]) == 1
        still = await stores.label.list_suggestions("shapes", first_name)
        for name in others:
            await stores.label.accept_suggestions("shapes", name)
        for name in others:
            labels = await stores.label.load("shapes", "train", name)
            assert len(labels) == len(suggested[name])
            assert all(label.status == "accepted" for label in labels)

        second = await run_autolabel(client, {"model": "shapes-1", "selection": "all"})

    result = second["result"]
    assert result["images"] == IMAGES
    assert result["skipped"]["matches_rejected"] >= 1
    assert result["skipped"]["overlap_accepted"] >= sum(len(suggested[n]) for n in others)
    again = await stores.label.list_suggestions("shapes", first_name)
    # The first image's pending suggestions were replaced, not doubled; the rejected one stays out.
    assert len(again) == len(still)
    assert not any(same_object(s, rejected) for s in again)
    for name in others:  # accepted boxes are not suggested again
        assert await stores.label.list_suggestions("shapes", name) == []
        assert len(await stores.label.load("shapes", "train", name)) == len(suggested[name])
