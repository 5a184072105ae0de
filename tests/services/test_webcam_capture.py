"""Webcam capture at the service layer: frames posted into a session are stored with its id and
counted; a manual capture is never skipped, an interval capture near the last kept frame is;
an ended session and a file that is no image are refused with nothing stored; a kept frame of
a session set to auto-label queues the follower task."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.domain.capture import FrameMode, WebcamSettings
from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.models import ImageFilter, SessionSource
from app.domain.stores import Stores
from app.services import webcam
from app.services.autolabel import NO_ACTIVE_MODEL

MANUAL, INTERVAL = FrameMode.MANUAL, FrameMode.INTERVAL


def scene(seed: int, grain: int = 0) -> io.BytesIO:
    """A JPEG webcam frame: smooth colour fields of scene ``seed`` under sensor noise
    ``grain`` (the same scene with other grain is a near-duplicate with other bytes)."""
    fields = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = cv2.resize(fields, (320, 240), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    noise = np.random.default_rng(10_000 + grain).normal(0, 3, base.shape)
    ok, data = cv2.imencode(".jpg", np.clip(base + noise, 0, 255).astype(np.uint8))
    assert ok
    return io.BytesIO(data.tobytes())


async def open_session(stores: Stores, **settings: object) -> int:
    await stores.dataset.create("desk", ["mug"])
    chosen = WebcamSettings(**settings)  # type: ignore[arg-type]
    session = await webcam.start_webcam_capture(stores, "desk", chosen)
    assert session.source == SessionSource.WEBCAM
    return session.id


async def frames_of(stores: Stores, session_id: int) -> list[str]:
    found = await stores.image.search("desk", ImageFilter(session_id=session_id))
    return [image.filename for image in found]


async def test_a_manual_capture_is_kept_even_right_after_a_near_duplicate(stores: Stores) -> None:
    session_id = await open_session(stores, near_duplicate_bits=10, split="train")

    first = await webcam.add_webcam_frame(stores, session_id, scene(1), mode=MANUAL)
    second = await webcam.add_webcam_frame(stores, session_id, scene(1, grain=1), mode=MANUAL)

    assert (first.outcome, second.outcome) == ("kept", "kept")
    assert second.image is not None and second.image.split == "train"
    assert await frames_of(stores, session_id) == ["webcam1-00001.jpg", "webcam1-00002.jpg"]
    assert second.session.counts == {
        "frames_seen": 2,
        "kept": 2,
        "skipped_near_duplicate": 0,
        "skipped_duplicate": 0,
    }


async def test_an_interval_capture_near_the_last_kept_frame_is_skipped_and_not_stored(
    stores: Stores,
) -> None:
    session_id = await open_session(stores, near_duplicate_bits=10)

    kept = await webcam.add_webcam_frame(stores, session_id, scene(1), mode=INTERVAL)
    skipped = await webcam.add_webcam_frame(stores, session_id, scene(1, grain=1), mode=INTERVAL)
    moved = await webcam.add_webcam_frame(stores, session_id, scene(2), mode=INTERVAL)
    # Compared with the last KEPT frame (scene 2), not with the first one.
    back = await webcam.add_webcam_frame(stores, session_id, scene(2, grain=2), mode=INTERVAL)

    assert [kept.outcome, skipped.outcome, moved.outcome, back.outcome] == [
        "kept",
        "skipped_near_duplicate",
        "kept",
        "skipped_near_duplicate",
    ]
    assert skipped.image is None and skipped.distance is not None and skipped.distance <= 10
    assert await frames_of(stores, session_id) == ["webcam1-00001.jpg", "webcam1-00003.jpg"]
    session = await stores.session.get(session_id)
    assert session.counts["frames_seen"] == 4
    assert session.counts["kept"] == 2
    assert session.counts["skipped_near_duplicate"] == 2
    assert session.log[-1].startswith("Frame 4 (interval): skipped")


async def test_a_threshold_of_zero_keeps_every_interval_capture(stores: Stores) -> None:
    session_id = await open_session(stores, near_duplicate_bits=0)

    for grain in range(3):
        done = await webcam.add_webcam_frame(stores, session_id, scene(1, grain), mode=INTERVAL)
        assert done.outcome == "kept"

    assert len(await frames_of(stores, session_id)) == 3


async def test_the_same_bytes_again_are_counted_as_already_in_the_project(
    stores: Stores,
) -> None:
    session_id = await open_session(stores)

    await webcam.add_webcam_frame(stores, session_id, scene(1), mode=MANUAL)
    again = await webcam.add_webcam_frame(stores, session_id, scene(1), mode=MANUAL)

    assert again.outcome == "skipped_duplicate"
    assert again.session.counts["skipped_duplicate"] == 1
    assert "already in the project as webcam1-00001.jpg" in again.message
    assert len(await frames_of(stores, session_id)) == 1


async def test_a_frame_into_an_ended_session_is_refused_with_nothing_stored(
    stores: Stores,
) -> None:
    session_id = await open_session(stores)
    await webcam.add_webcam_frame(stores, session_id, scene(1), mode=MANUAL)

    ended = await webcam.end_webcam_session(stores, session_id)
    with pytest.raises(Conflict, match="has ended"):
        await webcam.add_webcam_frame(stores, session_id, scene(2), mode=MANUAL)

    assert ended.status == "completed" and ended.ended_at is not None
    assert ended.log[-1].startswith("Ended: 1 frames seen, 1 kept")
    assert await stores.image.count("desk") == 1
    assert (await stores.session.get(session_id)).counts["frames_seen"] == 1
    assert (await webcam.end_webcam_session(stores, session_id)).log == ended.log


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not a picture at all", "not an image"),
        (scene(1).getvalue()[:400], "corrupt"),
        (b"", "empty"),
    ],
)
async def test_a_file_that_is_no_image_is_refused_with_nothing_stored_or_counted(
    stores: Stores, data: bytes, reason: str
) -> None:
    session_id = await open_session(stores)

    with pytest.raises(Invalid, match=reason):
        await webcam.add_webcam_frame(stores, session_id, io.BytesIO(data), mode=MANUAL)

    assert await stores.image.count("desk") == 0
    session = await stores.session.get(session_id)
    assert session.counts.get("frames_seen", 0) == 0
    assert session.log[-1].startswith("A frame was refused")


async def test_only_a_webcam_session_takes_webcam_frames(stores: Stores) -> None:
    await stores.dataset.create("desk", ["mug"])
    video = await stores.session.create("desk", SessionSource.VIDEO, {})

    with pytest.raises(NotFound, match="not the webcam"):
        await webcam.add_webcam_frame(stores, video.id, scene(1), mode=MANUAL)
    with pytest.raises(NotFound):
        await webcam.start_webcam_capture(stores, "nope", WebcamSettings())


async def test_a_kept_frame_of_an_autolabel_session_queues_one_follower_with_the_active_model(
    stores: Stores, tmp_path: Path
) -> None:
    session_id = await open_session(stores, autolabel=True)
    quiet = await webcam.start_webcam_capture(stores, "desk", WebcamSettings(autolabel=False))

    without_model = await webcam.add_webcam_frame(stores, session_id, scene(1), mode=MANUAL)
    assert without_model.autolabel_task is None
    assert NO_ACTIVE_MODEL in (await stores.session.get(session_id)).log

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"PK\x03\x04 weights")
    await stores.model.save("desk-1", weights, "yolo11n.yaml", "desk", 3, {})
    await stores.model.set_active("desk-1")
    first = await webcam.add_webcam_frame(stores, session_id, scene(2), mode=MANUAL)
    second = await webcam.add_webcam_frame(stores, session_id, scene(3), mode=MANUAL)
    skipped = await webcam.add_webcam_frame(stores, session_id, scene(3, 1), mode=INTERVAL)
    other = await webcam.add_webcam_frame(stores, quiet.id, scene(4), mode=MANUAL)

    assert first.autolabel_task is not None
    assert first.autolabel_task.kind == "autolabel"
    assert first.autolabel_task.params["selection"] == f"session:{session_id}"
    assert first.autolabel_task.params["model"] == "desk-1"
    # The queued follower will see the next frames too; a skipped frame queues nothing.
    assert second.autolabel_task is None and skipped.autolabel_task is None
    assert other.autolabel_task is None
    assert len(await stores.task.list(kinds=["autolabel"])) == 1
