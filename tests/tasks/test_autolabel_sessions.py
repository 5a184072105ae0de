"""A capture session set to auto-label its frames as they arrive: each arrival queues at most one
follower task with the active model, and each follower labels only the frames after the ones
an earlier follower covered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from app.config import Settings
from app.domain.models import SessionInfo, TaskInfo
from app.domain.stores import Stores
from app.services.autolabel import NO_ACTIVE_MODEL, follow_session_frames
from app.services.preferences import update_preferences
from tests.shapes import ShapesModel, shapes_image
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving


async def finished(client: httpx.AsyncClient, task: TaskInfo) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (found := await get_task(client, task.id))["status"] not in FINISHED:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)
    assert found["status"] == "succeeded", found["error"]
    return found["result"]


async def add_frames(stores: Stores, session: SessionInfo, first: int, count: int) -> list[str]:
    names = []
    for i in range(first, first + count):
        image, _ = shapes_image(400_000 + i)
        saved = await stores.image.save(
            "shapes", "train", f"frame-{i}.png", image, session_id=session.id
        )
        names.append(saved.filename)
    return names


async def test_arriving_frames_are_auto_labelled_once_each_by_one_follower_at_a_time(
    settings: Settings, stores: Stores, shapes_model: ShapesModel
) -> None:
    await stores.dataset.create("shapes", shapes_model.names)
    await stores.model.save(
        "shapes-1", shapes_model.weights, "yolo11n.yaml", "shapes", 40, {"args": {"imgsz": 128}}
    )
    await stores.model.set_active("shapes-1")
    session = await stores.session.create("shapes", "webcam", {"autolabel": True})
    other = await stores.image.save("shapes", "train", "not-a-frame.png", shapes_image(1)[0])
    first_frames = await add_frames(stores, session, 0, 3)

    follower = await follow_session_frames(stores, session)
    assert follower is not None and follower.params["selection"] == f"session:{session.id}"
    # A second arrival while one is queued adds nothing: the queued one will see its frame.
    assert await follow_session_frames(stores, session) is None

    async with serving(settings) as (_, client):
        result = await finished(client, follower)
        assert result["images"] == 3
        for name in first_frames:
            assert await stores.label.list_suggestions("shapes", name)
        assert await stores.label.list_suggestions("shapes", other.filename) == []

        later_frames = await add_frames(stores, session, 3, 2)
        second = await follow_session_frames(stores, session)
        assert second is not None
        result = await finished(client, second)

    assert result["images"] == 2  # only the frames after the first follower's last one
    for name in later_frames:
        assert await stores.label.list_suggestions("shapes", name)


async def test_a_session_not_set_to_auto_label_or_without_an_active_model_queues_nothing(
    stores: Stores,
) -> None:
    await stores.dataset.create("plain", ["cat"])
    quiet = await stores.session.create("plain", "webcam", {"autolabel": False})
    assert await follow_session_frames(stores, quiet) is None

    eager = await stores.session.create("plain", "webcam", {"autolabel": True})
    assert await follow_session_frames(stores, eager) is None
    eager = await stores.session.get(eager.id)
    assert await follow_session_frames(stores, eager) is None

    assert (await stores.session.get(eager.id)).log.count(NO_ACTIVE_MODEL) == 1
    assert await stores.task.list(dataset="plain") == []


async def test_followers_start_from_the_thresholds_of_the_settings_page(
    stores: Stores, shapes_model: ShapesModel
) -> None:
    await update_preferences(stores, {"autolabel": {"conf": 0.4, "iou": 0.55}})
    await stores.dataset.create("shapes", shapes_model.names)
    await stores.model.save(
        "shapes-1", shapes_model.weights, "yolo11n.yaml", "shapes", 40, {"args": {"imgsz": 128}}
    )
    await stores.model.set_active("shapes-1")
    session = await stores.session.create("shapes", "webcam", {"autolabel": True})
    await add_frames(stores, session, 0, 1)

    follower = await follow_session_frames(stores, session)

    assert follower is not None
    assert (follower.params["conf"], follower.params["iou"]) == (0.4, 0.55)
