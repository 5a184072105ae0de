"""The feed's reader thread with a fake capture: it retries an unreachable stream on the
back-off schedule, reports a loss and the reconnect with how many tries it took, fills the ring,
and releases every capture it opened (the last one when stopped while reading, and when a read
raises)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from app.domain.feeds import FeedSource, FrameRing
from app.tasks.feed import Reader, ReaderEvent


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
