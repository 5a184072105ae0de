"""Acceptance tests of stream feeds, end to end through the app and its task runner: an MJPEG
stream served on 127.0.0.1 feeds a session (interval captures of distinct scenes), the stream is
dropped and comes back (the feed reconnects, and its page says so), ending the session closes
the stream connection; interval captures of a still scene are skipped as near-duplicates while
manual ones are kept; and the live view runs the shapes model on the stream, publishes boxes on
the known shapes, draws them into the derived frame, and a capture keeps them as pending
suggestions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import cv2
import httpx
import numpy as np

from app.config import Settings
from app.domain.models import ImageFilter
from app.domain.stores import Stores
from app.services.labels import review_queue
from tests.feed_stream import mjpeg_stream
from tests.shapes import CLASSES, ShapesModel, iou, shapes_image
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving
from tests.web.htmltree import parse

T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, within: float, what: str
) -> T:
    """``probe()`` every 0.2 s until ``done``; fails naming ``what`` and the last value."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"gave up after {within} s waiting for {what}: {value}"
        await asyncio.sleep(0.2)


def feed_status(client: httpx.AsyncClient, session_id: int) -> Callable[[], Awaitable[Any]]:
    async def probe() -> dict[str, Any]:
        response = await client.get(f"/api/v1/sessions/{session_id}/feed")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    return probe


async def status_panel(client: httpx.AsyncClient, session_id: int) -> tuple[str, str]:
    """The feed page's status panel (the htmx fragment): its state badge and its message."""
    response = await client.get(f"/sessions/{session_id}/feed", headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text
    panel = parse(response.text).find("div", id="feed-status")
    badge = panel.find("span", **{"class": "feed-badge"}).text()
    message = panel.find("span", id="feed-message").text()
    return badge, message


def scene(number: int) -> np.ndarray:
    """A distinct shapes picture per scene number (its own noise, shapes and colours)."""
    picture, _ = shapes_image(50_000 + number, size=160)
    return picture


async def test_a_stream_feeds_a_session_reconnects_after_a_drop_and_closes_when_ended(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("feed", list(CLASSES))
    with mjpeg_stream(scene, fps=15, scene_s=0.3) as stream:
        async with serving(settings) as (_, client):
            started = await client.post(
                "/api/v1/projects/feed/sessions/stream",
                json={"source": stream.url, "every_seconds": 1.0, "split": "train"},
            )
            assert started.status_code == 202, started.text
            session_id = started.json()["session"]["id"]
            task_id = started.json()["task"]["id"]
            assert started.json()["task"]["kind"] == "capture_stream"

            status = await poll(
                feed_status(client, session_id),
                lambda s: s["session"]["counts"].get("kept", 0) >= 3,
                within=120,
                what="three interval captures",
            )
            assert status["state"] == "live" and status["fps"] > 0, status
            assert (status["width"], status["height"]) == (160, 160)
            assert stream.active == 1

            # The stream drops: the feed says so and retries with back-off.
            stream.down()
            status = await poll(
                feed_status(client, session_id),
                lambda s: s["state"] == "reconnecting",
                within=30,
                what="the feed to notice the drop",
            )
            badge, message = await status_panel(client, session_id)
            assert badge == "reconnecting"
            assert message.startswith(("Stream lost, reconnecting in", "Cannot open the stream"))
            page = parse((await client.get(f"/sessions/{session_id}/feed")).text)
            assert page.find("span", **{"class": "feed-badge"}).text() == "reconnecting"
            await asyncio.sleep(2.5)  # at least one failed attempt while it is down

            stream.up()
            status = await poll(
                feed_status(client, session_id),
                lambda s: s["state"] == "live" and s["reconnects"] == 1,
                within=60,
                what="the feed to reconnect",
            )
            badge, message = await status_panel(client, session_id)
            assert badge == "live"
            assert message.startswith("Reconnected after ") and message.endswith("attempts."), (
                message
            )
            log = (await client.get(f"/api/v1/sessions/{session_id}")).json()["log"]
            assert "Stream lost, reconnecting in 1 s." in log, log
            assert any(line.startswith("Reconnected after ") for line in log), log
            assert stream.connections >= 2 and stream.active == 1

            # Ending the session closes the stream connection; the task ends by itself.
            ended = await client.post(f"/api/v1/sessions/{session_id}/feed/end")
            assert ended.status_code == 200 and ended.json()["status"] == "completed"

            async def open_connections() -> int:
                return stream.active

            await poll(open_connections, lambda n: n == 0, within=20, what="the stream to close")
            task = await poll(
                lambda: get_task(client, task_id),
                lambda t: t["status"] in FINISHED,
                within=30,
                what="the feed task to end",
            )
            assert task["status"] == "succeeded", task
            assert task["result"]["reconnects"] == 1
            await asyncio.sleep(1.0)
            assert stream.active == 0, "the stream was opened again after the session ended"
            refused = await client.post(f"/api/v1/sessions/{session_id}/feed/capture")
            assert refused.status_code == 409
            closed = await status_panel(client, session_id)
            assert closed[0] == "ended"

    frames = await stores.image.search("feed", ImageFilter(session_id=session_id), limit=50)
    assert len(frames) >= 3
    assert {f.split for f in frames} == {"train"}
    assert len({f.sha256 for f in frames}) == len(frames)
    assert all((f.width, f.height) == (160, 160) for f in frames)


async def test_interval_captures_of_a_still_scene_are_skipped_but_manual_ones_kept(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("still", ["thing"])
    rng = np.random.default_rng(7)
    base = scene(0)

    def jittered(_: int) -> np.ndarray:
        # The same scene with a little noise: never the same bytes, always a near-duplicate.
        noise = rng.integers(-3, 4, size=base.shape)
        return np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    with mjpeg_stream(jittered, fps=15, scene_s=0.2) as stream:
        async with serving(settings) as (_, client):
            started = await client.post(
                "/api/v1/projects/still/sessions/stream",
                json={"source": stream.url, "every_seconds": 0.5, "near_duplicate_bits": 10},
            )
            assert started.status_code == 202, started.text
            session_id = started.json()["session"]["id"]
            status = await poll(
                feed_status(client, session_id),
                lambda s: s["session"]["counts"].get("skipped_near_duplicate", 0) >= 2,
                within=120,
                what="interval captures skipped as near-duplicates",
            )
            assert status["session"]["counts"]["kept"] == 1
            outcomes = []
            for _ in range(2):
                response = await client.post(f"/api/v1/sessions/{session_id}/feed/capture")
                assert response.status_code == 200, response.text
                outcomes.append(response.json())
                await asyncio.sleep(0.3)
            assert [o["outcome"] for o in outcomes] == ["kept", "kept"], outcomes
            assert all(o["filename"].startswith(f"stream{session_id}-") for o in outcomes)
            await client.post(f"/api/v1/sessions/{session_id}/feed/end")
            await poll(
                lambda: asyncio.sleep(0, stream.active),
                lambda n: n == 0,
                within=20,
                what="the stream to close",
            )


async def test_the_live_view_draws_the_models_boxes_and_a_capture_keeps_them_as_suggestions(
    settings: Settings, stores: Stores, shapes_model: ShapesModel
) -> None:
    await stores.dataset.create("shapes", list(CLASSES))
    await stores.model.save(
        "shapes-live", shapes_model.weights, "yolo11n.yaml", "shapes", 40, {"args": {"imgsz": 128}}
    )
    await stores.model.set_active("shapes-live")
    picture, truth = shapes_image(20_000, classes=[1], side=48)  # one square, as try_model's
    (square,) = truth

    with mjpeg_stream(lambda _: picture, fps=10) as stream:
        async with serving(settings) as (_, client):
            started = await client.post(
                "/api/v1/projects/shapes/sessions/stream",
                json={"source": stream.url, "live": True, "live_rate": 4, "imgsz": 128},
            )
            assert started.status_code == 202, started.text
            session_id = started.json()["session"]["id"]
            status = await poll(
                feed_status(client, session_id),
                lambda s: s["live"] is not None and s["live"]["inferences"] >= 2,
                within=180,
                what="the live view's first inferences",
            )
            live = status["live"]
            assert live["model"] == "shapes-live" and live["imgsz"] == 128
            assert live["on"] and live["state"] == "ready"
            best = max(
                live["boxes"], key=lambda b: iou((b["x"], b["y"], b["w"], b["h"]), square[1:])
            )
            assert best["name"] == "square" and best["class_id"] == CLASSES.index("square")
            assert iou((best["x"], best["y"], best["w"], best["h"]), square[1:]) >= 0.5
            assert best["confidence"] >= 0.25

            # The derived frame carries the drawn boxes; the camera frame does not.
            derived = await client.get(f"/sessions/{session_id}/feed/frame.jpg?view=live")
            camera = await client.get(f"/sessions/{session_id}/feed/frame.jpg?view=camera")
            assert derived.status_code == 200 and camera.status_code == 200
            assert derived.headers["content-type"] == "image/jpeg"
            drawn = cv2.imdecode(np.frombuffer(derived.content, np.uint8), cv2.IMREAD_COLOR)
            plain = cv2.imdecode(np.frombuffer(camera.content, np.uint8), cv2.IMREAD_COLOR)
            assert drawn is not None and plain is not None
            assert drawn.shape == plain.shape == picture.shape
            difference = np.abs(drawn.astype(int) - plain.astype(int)).sum(axis=2) > 60
            x0 = int((best["x"] - best["w"] / 2) * 128)
            x1 = int((best["x"] + best["w"] / 2) * 128)
            y0 = int((best["y"] - best["h"] / 2) * 128)
            edge = difference[max(0, y0 - 2) : y0 + 3, max(0, x0) : x1].mean()
            assert edge > 0.5, "no box edge drawn where the model found the square"
            inside = difference[y0 + 8 : y0 + 16, x0 + 8 : x1 - 8].mean()
            assert inside < 0.2, "the frame itself changed, not only the box outline"

            captured = await client.post(f"/api/v1/sessions/{session_id}/feed/capture")
            assert captured.status_code == 200, captured.text
            result = captured.json()
            assert result["outcome"] == "kept" and result["suggestions"] >= 1, result
            await client.post(f"/api/v1/sessions/{session_id}/feed/end")
            await poll(
                lambda: asyncio.sleep(0, stream.active),
                lambda n: n == 0,
                within=30,
                what="the stream to close",
            )

    suggestions = await stores.label.list_suggestions("shapes", result["filename"])
    assert suggestions, "the capture stored no suggestions"
    assert all(s.status == "pending" and s.source == "model" for s in suggestions)
    assert {s.model for s in suggestions} == {"shapes-live"}
    match = max(suggestions, key=lambda s: iou((s.x, s.y, s.width, s.height), square[1:]))
    assert match.class_id == CLASSES.index("square")
    assert iou((match.x, match.y, match.width, match.height), square[1:]) >= 0.5
    assert match.confidence is not None and match.confidence >= 0.25
    queue = await review_queue(stores, "shapes")
    assert queue.pending.suggestions >= 1 and queue.first_filename == result["filename"]
