"""The feed's reader thread with a fake capture: it retries an unreachable stream on the
back-off schedule, reports a loss and the reconnect with how many tries it took, fills the ring,
and releases every capture it opened (the last one when stopped while reading, and when a read
raises). The feed job's live view with a fake model: a failed inference (CUDA out of memory)
turns the live view off and the feed goes on capturing; the live view waits about half a camera
frame between looks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

from app.domain.capture import FrameMode
from app.domain.feeds import FeedSettings, FeedSource, FeedState, FrameRing
from app.domain.models import SessionSource
from app.domain.stores import Stores
from app.tasks.feed import LIVE_WAIT_S, POLL_S, Feed, Reader, ReaderEvent


class FakeCapture:
    """Gives ``frames`` frames (``None``: until released), then a failed read."""

    def __init__(self, frames: int | None, log: list[str], *, boom: bool = False) -> None:
        self.left = frames
        self.log = log
        self.boom = boom
        self.released = False

    def read(self) -> tuple[bool, Any]:
        if self.boom:
            raise RuntimeError("the driver fell over")
        if self.left == 0 or self.released:
            return False, None
        if self.left is not None:
            self.left -= 1
        time.sleep(0.005)
        return True, np.zeros((6, 8, 3), np.uint8)

    def release(self) -> None:
        self.released = True
        self.log.append("release")


def run_reader(plan: list[int | str | None], *, until: int) -> tuple[list[ReaderEvent], list[str]]:
    """A reader whose opener follows ``plan`` (``"none"``: cannot open; a number of frames, or
    ``None`` for frames until stopped, or ``"boom"``), stopped once ``until`` events came."""
    log: list[str] = []
    delays: list[int] = []
    steps = iter(plan)

    def opener(source: FeedSource) -> FakeCapture | None:
        step = next(steps, "none")
        log.append(f"open {step}")
        if step == "none":
            return None
        if step == "boom":
            return FakeCapture(None, log, boom=True)
        return FakeCapture(step if isinstance(step, int) else None, log)  # type: ignore[arg-type]

    def backoff(attempt: int) -> float:
        delays.append(attempt)
        return 0.01

    ring: FrameRing[np.ndarray] = FrameRing(4)
    reader = Reader(FeedSource(url="http://cam/x"), ring, opener=opener, backoff=backoff)
    reader.start()
    events: list[ReaderEvent] = []
    deadline = time.monotonic() + 10
    while len(events) < until and time.monotonic() < deadline:
        try:
            events.append(reader.events.get(timeout=0.1))
        except Exception:  # queue.Empty
            continue
    time.sleep(0.05)
    reader.stop()
    reader.join(5)
    assert not reader.is_alive()
    assert reader.released.is_set()
    log.append(f"delays {delays}")
    return events, log


def test_an_unreachable_stream_is_retried_on_the_back_off_then_read_and_reconnected() -> None:
    events, log = run_reader(["none", "none", 3, "none", None], until=6)
    kinds = [(e.kind, e.failed) for e in events[:6]]
    assert kinds == [
        ("unreachable", 1),
        ("unreachable", 2),
        ("live", 2),  # connected after two failed tries
        ("lost", 0),
        ("unreachable", 1),
        ("live", 1),  # reconnected at the second try
    ]
    assert events[2].width == 8 and events[2].height == 6
    # Back-off steps: 1, 2 before the first connection; after the loss 1, then 2.
    assert log[-1] == "delays [1, 2, 1, 2]"
    opened = sum(1 for line in log if line.startswith("open") and "none" not in line)
    assert log.count("release") == opened == 2  # the live one released when stopped


def test_a_capture_whose_read_raises_is_still_released() -> None:
    _, log = run_reader(["boom"], until=0)
    time.sleep(0.1)
    assert "release" in log


def test_the_ring_holds_the_newest_frames() -> None:
    ring: FrameRing[np.ndarray] = FrameRing(4)
    done = threading.Event()

    def opener(source: FeedSource) -> FakeCapture | None:
        if done.is_set():
            return None
        done.set()
        return FakeCapture(10, [])

    reader = Reader(FeedSource(url="http://cam/x"), ring, opener=opener, backoff=lambda _: 0.05)
    reader.start()
    deadline = time.monotonic() + 5
    while ring.pushed < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    reader.stop()
    reader.join(5)
    assert ring.pushed == 10 and len(ring) == 4
    latest = ring.latest()
    assert latest is not None and latest.seq == 10


class FailingModel:
    """A live model whose every prediction fails as a GPU out of memory does."""

    name = "broken"
    names = {0: "thing"}

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, frame: np.ndarray) -> list[Any]:
        self.calls += 1
        raise RuntimeError("CUDA out of memory")


async def live_feed(stores: Stores) -> tuple[Feed, FailingModel]:
    """A feed job whose live view runs ``FailingModel``, its stream live with one frame."""
    await stores.dataset.create("cam", ["thing"])
    settings = FeedSettings(source="http://cam/x", live=True, live_rate=30)
    session = await stores.session.create("cam", SessionSource.STREAM, settings.to_dict())
    feed = Feed(None, stores, "cam", session.id, settings, FeedSource(url="http://cam/x"))  # type: ignore[arg-type]
    await asyncio.to_thread(feed._prepare_folder)
    model = FailingModel()
    feed.live.model = model  # type: ignore[assignment]
    feed.live.state = "ready"
    feed.state = FeedState.LIVE
    frame = np.random.default_rng(3).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    feed.ring.push(frame, time.time())
    return feed, model


async def test_a_failed_inference_turns_the_live_view_off_and_the_feed_goes_on_capturing(
    stores: Stores,
) -> None:
    feed, model = await live_feed(stores)
    await feed._step_live(time.monotonic())
    running = feed.live.running
    assert running is not None
    await asyncio.wait([running], timeout=5)

    await feed._step_live(time.monotonic())  # raised out of the job before

    assert model.calls == 1 and feed.live.running is None
    assert not feed.live.on and feed.live.model is None
    assert feed.live.state == "stopped: CUDA out of memory"
    assert any(line.startswith("The live view stopped") for line in feed._pending_lines)
    latest = feed.ring.latest()
    assert latest is not None
    result = await feed._capture(latest, FrameMode.MANUAL)
    assert result["outcome"] == "kept" and result["suggestions"] == 0, result
    assert model.calls == 1
    feed._write_status()
    assert feed.live.state in (feed.folder / "status.json").read_text()


async def test_a_capture_whose_inference_fails_is_kept_without_suggestions(
    stores: Stores,
) -> None:
    feed, model = await live_feed(stores)
    latest = feed.ring.latest()
    assert latest is not None

    result = await feed._capture(latest, FrameMode.MANUAL)  # raised out of the job before

    assert result["outcome"] == "kept" and result["suggestions"] == 0, result
    assert "the live view stopped" in result["message"]
    assert model.calls == 1 and not feed.live.on and feed.live.model is None
    assert feed.live.state == "stopped: CUDA out of memory"
    await feed._step_live(time.monotonic())
    assert feed.live.running is None  # off: no inference starts


def test_the_live_view_looks_when_the_next_frame_is_due_not_every_ten_ms(
    tmp_path: Any,
) -> None:
    class Folder:
        data_dir = tmp_path

    def feed_at(fps: float, seconds: float, now: float) -> Feed:
        """A feed whose camera gave frames at ``fps`` for ``seconds`` up to ``now``."""
        settings = FeedSettings(source="http://cam/x", live=True, live_rate=30)
        feed = Feed(None, Folder(), "cam", 1, settings, FeedSource(url="http://cam/x"))  # type: ignore[arg-type]
        for index in range(int(seconds * fps)):
            at = now - seconds + (index + 1) / fps
            feed.reader.fps.tick(at)
            feed.ring.push(np.zeros((2, 2, 3), np.uint8), at)
        return feed

    now = 1000.0
    stalled = feed_at(25, 0, now)
    assert stalled._live_wait_s(now, now) == POLL_S  # no frame: stalled or reconnecting
    slow = feed_at(1, 4, now)
    assert slow._live_wait_s(now, now + 0.5) == POLL_S  # 1 fps: the next is 0.5 s away
    assert slow._live_wait_s(now, now + 1.005) == LIVE_WAIT_S  # just due: looked for
    assert slow._live_wait_s(now, now + 1.5) == POLL_S  # late: half a frame, at most a poll
    fast = feed_at(25, 2, now)
    assert abs(fast._live_wait_s(now, now + 0.015) - 0.025) < 0.002  # the next due in 25 ms
    assert fast._live_wait_s(now, now + 0.045) == LIVE_WAIT_S  # 5 ms late
    assert abs(fast._live_wait_s(now, now + 0.1) - 0.02) < 0.002  # later: half a frame
