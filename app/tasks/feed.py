"""The ``capture_stream`` job: a stream (RTSP, HTTP MJPEG, a camera of the server) feeds a
capture session until the session is ended or the task cancelled.

A reader thread owns the ``cv2.VideoCapture``: it reads frames into a ring buffer of the last
``RING_FRAMES`` and, when the stream drops or cannot be opened, releases it and tries again after
a back-off (1 s, 2 s, 4 s … 30 s), reporting each change to the job. The capture is released in
the thread's ``finally``, and the job stops the thread in its own ``finally``: when the session
ends, nothing keeps the stream open (and the worker process ends with the task anyway).

The job, on the event loop, looks every ``POLL_S`` seconds at: the reader's events (logged on
the session: "stream lost, reconnecting in 2 s", "reconnected after 3 attempts"); the capture
requests the web left in the feed folder (manual: the ring's frame nearest to when it was
asked, never skipped as a near-duplicate); the interval (the newest frame, skipped within the
session's threshold of the last kept one, like a video's); the live view (the active model on
the newest frame at most ``live_rate`` times a second, in a thread, its boxes drawn with OpenCV
into ``live.jpg``; a frame captured then keeps the model's boxes as pending suggestions, mapped
to the project's classes by name as auto-labelling does; an inference that fails, CUDA out of
memory say, turns the live view off and the feed goes on capturing); and the session (ended by
a person?).
It publishes ``camera.jpg`` and ``status.json`` a few times a second (see ``app.services.feeds``).
torch and Ultralytics are imported here only when the live view is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import queue
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.config import Settings
from app.domain.autolabel import DEFAULT_NMS_IOU, Prediction, clip_box, map_classes
from app.domain.capture import FrameMode, may_skip
from app.domain.errors import DuplicateImage, Invalid, NearDuplicate
from app.domain.feeds import (
    FeedSettings,
    FeedSource,
    FeedState,
    FpsMeter,
    FrameRing,
    RateGate,
    RingFrame,
    backoff_s,
    check_source,
    feed_frame_filename,
)
from app.domain.models import SessionStatus
from app.domain.stores import Stores
from app.services.feeds import (
    REQUESTS,
    RESULTS,
    STATUS,
    VIEWS,
    feed_folder,
    read_json,
    write_atomic,
    write_json,
)
from app.tasks.autolabel import to_project
from app.tasks.capture_session import Tally, end_session, ending_session_on_exit
from app.tasks.context import TaskContext

log = logging.getLogger(__name__)

KIND = "capture_stream"
POLL_S = 0.1
LIVE_WAIT_S = 0.01  # the soonest the live view looks again for the camera's next frame
LATE_FRAME_S = 0.02  # a frame this late (jitter) is looked for every LIVE_WAIT_S, then less
PREVIEW_RATE = 10.0  # camera.jpg rewrites a second at most
STATUS_RATE = 4.0  # status.json rewrites a second at most
SESSION_CHECK_S = 0.5  # how often the session's row is read (ended by a person?)
PROGRESS_S = 2.0
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
CAPTURE_QUALITY = 95
PREVIEW_QUALITY = 80
LIVE_CONFIDENCE = 0.25
MAX_PICK_GAP_S = 2.0  # a manual capture takes a frame read at most this far from its asking
REQUEST_EXPIRES_S = 15.0  # a request with no frame near it for this long is answered no_frame
COUNTS = ("frames_seen", "kept", "skipped_near_duplicate", "skipped_duplicate")
_JOIN_S = 10.0


# --- the reader thread -----------------------------------------------------------------------


def open_capture(source: FeedSource) -> Any | None:
    """The opened ``cv2.VideoCapture`` of ``source``, or ``None`` when it cannot be opened."""
    if source.device is not None:
        capture = cv2.VideoCapture(source.device)
    else:
        capture = cv2.VideoCapture(
            source.url or "",
            cv2.CAP_FFMPEG,
            [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                OPEN_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                READ_TIMEOUT_MS,
            ],
        )
    if not capture.isOpened():
        capture.release()
        return None
    return capture


@dataclass(frozen=True)
class ReaderEvent:
    """A change the reader reports: ``live`` (frames come, after ``failed`` failed tries to
    open the stream since it was last live), ``lost`` (the stream dropped), ``unreachable`` (a
    try to open it failed: ``failed`` so far); ``retry_in`` the back-off before the next try."""

    kind: str
    failed: int
    retry_in: float = 0.0
    width: int = 0
    height: int = 0


class Reader(threading.Thread):
    """Reads the stream into the ring, reconnecting with back-off, until ``stop``."""

    def __init__(
        self,
        source: FeedSource,
        ring: FrameRing[np.ndarray],
        *,
        opener: Callable[[FeedSource], Any | None] = open_capture,
        backoff: Callable[[int], float] = backoff_s,
    ) -> None:
        super().__init__(name="ydc-feed-reader", daemon=True)
        self.source = source
        self.ring = ring
        self.events: queue.SimpleQueue[ReaderEvent] = queue.SimpleQueue()
        self.fps = FpsMeter()
        self._opener = opener
        self._backoff = backoff
        self._stopping = threading.Event()
        self.released = threading.Event()  # set once the capture is closed for good

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        capture = None
        failed = 0  # failed tries to open the stream since it was last live
        lost = False  # it was live, then dropped: the first wait is the back-off's first step
        try:
            while not self._stopping.is_set():
                capture = self._opener(self.source)
                got = 0
                while capture is not None and not self._stopping.is_set():
                    ok, frame = capture.read()
                    if not ok or frame is None:
                        break
                    if got == 0:
                        height, width = frame.shape[:2]
                        self.events.put(ReaderEvent("live", failed, 0.0, width, height))
                        failed, lost = 0, False
                    got += 1
                    self.ring.push(frame, time.time())
                    self.fps.tick(time.monotonic())
                if capture is not None:
                    capture.release()
                    capture = None
                if self._stopping.is_set():
                    break
                if got:  # frames came, then stopped: a new loss
                    lost = True
                    delay = self._backoff(1)
                    self.events.put(ReaderEvent("lost", 0, delay))
                else:  # not opened, or opened without a frame: one more failed try
                    failed += 1
                    delay = self._backoff(failed + lost)
                    self.events.put(ReaderEvent("unreachable", failed, delay))
                if self._stopping.wait(delay):
                    break
        except Exception:  # the job sees the thread gone and fails the session
            log.exception("the feed reader of %s failed", self.source.describe())
        finally:
            if capture is not None:
                capture.release()
            self.released.set()


# --- the live model ---------------------------------------------------------------------------


class LiveModel:
    """A registry model that predicts on frames (one at a time: a lock around ``predict``)."""

    def __init__(self, weights: Path, *, imgsz: int, name: str) -> None:
        import torch
        from ultralytics import YOLO

        self.name = name
        self.model = YOLO(str(weights))
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        self.device: int | str = 0 if torch.cuda.is_available() else "cpu"
        self.imgsz = imgsz
        self._lock = threading.Lock()

    def predict(self, frame: np.ndarray) -> list[Prediction]:
        """The model's boxes on ``frame`` (model class indices, normalised, clipped)."""
        with self._lock:
            (result,) = self.model.predict(
                frame,
                imgsz=self.imgsz,
                conf=LIVE_CONFIDENCE,
                iou=DEFAULT_NMS_IOU,
                device=self.device,
                verbose=False,
            )
        boxes: Any = getattr(result, "boxes", None)
        found: list[Prediction] = []
        if boxes is not None:
            for cls, conf, (x, y, w, h) in zip(
                boxes.cls.tolist(), boxes.conf.tolist(), boxes.xywhn.tolist(), strict=True
            ):
                found.append((int(cls), float(conf), *clip_box(x, y, w, h)))
        return found


def _load_model(data_dir: Path, weights: Path, imgsz: int, name: str) -> LiveModel:
    from app.tasks.training import prepare_ultralytics

    prepare_ultralytics(data_dir)
    return LiveModel(weights, imgsz=imgsz, name=name)


def _bgr(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    try:
        r, g, b = int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except (ValueError, IndexError):
        return (200, 200, 200)
    return (b, g, r)


def draw_boxes(
    frame: np.ndarray, boxes: list[dict[str, Any]], colours: dict[int, tuple[int, int, int]]
) -> np.ndarray:
    """A copy of ``frame`` with ``boxes`` (normalised, with ``name``, ``confidence`` and the
    project's ``class_id`` or -1) drawn on it: a rectangle and a label in the class's colour."""
    out = frame.copy()
    height, width = out.shape[:2]
    thick = max(1, round(min(width, height) / 240))
    scale = max(0.35, min(width, height) / 800)
    for box in boxes:
        colour = colours.get(int(box["class_id"]), (200, 200, 200))
        x0 = int((box["x"] - box["w"] / 2) * width)
        y0 = int((box["y"] - box["h"] / 2) * height)
        x1 = int((box["x"] + box["w"] / 2) * width)
        y1 = int((box["y"] + box["h"] / 2) * height)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        text = f"{box['name']} {box['confidence']:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else y0 + th + base + 2
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 2, ty + 1), colour, -1)
        luma = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
        ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
        cv2.putText(out, text, (x0 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1)
    return out


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise Invalid("A frame of the stream could not be encoded as JPEG.")
    return data.tobytes()


# --- the job ----------------------------------------------------------------------------------


@dataclass
class Live:
    """The live view: the model (once loaded), its class mapping and what it last saw."""

    on: bool
    rate: float
    imgsz: int
    model_name: str | None = None
    model: LiveModel | None = None
    loading: asyncio.Task[LiveModel] | None = None
    running: asyncio.Task[tuple[RingFrame[np.ndarray], list[Prediction], float]] | None = None
    state: str = "off"
    mapping: dict[int, int] = field(default_factory=dict)
    project_names: list[str] = field(default_factory=list)
    colours: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    frame_at: float | None = None
    seq: int = 0
    inferences: int = 0
    inference_ms: float | None = None
    fps: FpsMeter = field(default_factory=FpsMeter)


class Feed:
    """One feed's job state, driven by ``step`` every ``POLL_S`` seconds."""

    def __init__(
        self,
        ctx: TaskContext,
        stores: Stores,
        dataset: str,
        session_id: int,
        settings: FeedSettings,
        source: FeedSource,
    ) -> None:
        self.ctx = ctx
        self.stores = stores
        self.dataset = dataset
        self.session_id = session_id
        self.settings = settings
        self.source = source
        self.folder = feed_folder(stores.data_dir, session_id)
        self.ring: FrameRing[np.ndarray] = FrameRing()
        self.reader = Reader(source, self.ring)
        self.tally = Tally(session_id, dict.fromkeys(COUNTS, 0))
        self.state = FeedState.CONNECTING
        self.message = f"Connecting to {source.describe()}…"
        self.attempt = 0
        self.retry_at: float | None = None
        self.reconnects = 0
        self.connected_once = False
        self.size: tuple[int, int] | None = None
        self.last_kept: str | None = None
        self.last_interval_seq = 0
        self.last_capture: dict[str, Any] | None = None
        self.preview_seq = 0
        self.preview_gate = RateGate(PREVIEW_RATE)
        self.status_gate = RateGate(STATUS_RATE)
        self.session_gate = RateGate(1 / SESSION_CHECK_S)
        # Capture requests are listed every poll, even while the live view looks more often.
        self.chores_gate = RateGate(1 / (POLL_S * 0.9))
        self.progress_gate = RateGate(1 / PROGRESS_S)
        every = settings.every_seconds
        self.interval_gate = RateGate(1 / every) if every else None
        self.live = Live(settings.live, settings.live_rate, settings.imgsz)
        self.live_gate = RateGate(settings.live_rate)
        self._pending_lines: list[str] = []  # log lines for the session, written by the loop
        self._last_predictions: list[Prediction] = []  # the live model's, on frame live.seq

    # -- the loop --

    async def run(self) -> str:
        """Read until the session ends; the line that ends it."""
        await asyncio.to_thread(self._prepare_folder)
        if self.live.on:
            await self._start_model()
        self.reader.start()
        try:
            while True:
                if not self.reader.is_alive():
                    raise Invalid("The stream reader stopped unexpectedly (see the worker's log).")
                now = time.monotonic()
                self._drain_events()
                await self._log_pending()
                if self.session_gate.take(now) and await self._session_ended():
                    return "the session was ended"
                self.ctx.check_cancelled()
                await self._step_live(now)
                if self.chores_gate.take(now):  # the live view may look more often than this
                    await self._take_requests()
                await self._take_interval(now)
                await self._publish(now)
                if self.progress_gate.take(now):
                    await self.ctx.progress(
                        0.5,
                        f"{self.state}: {self.tally['kept']} kept, {self.reconnects} reconnects",
                    )
                running = self.live.running
                if running is not None and not running.done():
                    # An inference ends: publish it and start the next at once, not a poll later.
                    await asyncio.wait([running], timeout=POLL_S)
                elif self.live.model is not None and self.state == FeedState.LIVE:
                    # The live view waits for its rate or for the camera's next frame: a whole
                    # poll here held it to ~8 inferences a second on a 25 fps stream.
                    await asyncio.sleep(self._live_wait_s(time.monotonic(), time.time()))
                else:
                    await asyncio.sleep(POLL_S)
        finally:
            await self._close()

    def _live_wait_s(self, now: float, wall: float) -> float:
        """How long the live view waits before it looks again (``now`` monotonic, ``wall``
        the clock the ring's frames are timed by): until its rate allows the next inference
        and the camera's next frame is due (from the reader's frame rate); looking every
        ``LIVE_WAIT_S`` only just after a frame was due, then every half frame interval: a
        1 fps or stalled camera is not looked at 100 times a second. Within ``LIVE_WAIT_S``
        and ``POLL_S``."""
        fps = self.reader.fps.rate(now)
        latest = self.ring.latest()
        if fps <= 0 or latest is None:
            frame = POLL_S  # no frames lately: stalled or reconnecting
        else:
            due = latest.at + 1 / fps - wall
            frame = due if due > -LATE_FRAME_S else 0.5 / fps
        return min(POLL_S, max(LIVE_WAIT_S, self.live_gate.wait_s(now), frame))

    async def _close(self) -> None:
        self.reader.stop()
        await asyncio.to_thread(self.reader.join, _JOIN_S)
        for task in (self.live.running, self.live.loading):
            if task is not None and not task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, _JOIN_S)
        self.state = FeedState.ENDED
        self.message = "The feed has stopped; the stream is closed."
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._write_status)
            await asyncio.to_thread(self._clear_requests)

    def _prepare_folder(self) -> None:
        for sub in (REQUESTS, RESULTS):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._write_status()

    def _clear_requests(self) -> None:
        for sub in (REQUESTS, RESULTS):
            shutil.rmtree(self.folder / sub, ignore_errors=True)

    async def _session_ended(self) -> bool:
        session = await self.stores.session.get(self.session_id)
        return session.status != SessionStatus.IN_PROGRESS

    # -- the reader's events --

    def _drain_events(self) -> None:
        while True:
            try:
                event = self.reader.events.get_nowait()
            except queue.Empty:
                return
            self._pending_lines.append(self._apply(event))

    def _apply(self, event: ReaderEvent) -> str:
        shown = self.source.describe()
        if event.kind == "live":
            self.size = (event.width, event.height)
            self.retry_at = None
            self.attempt = 0
            self.state = FeedState.LIVE
            if self.connected_once:
                self.reconnects += 1
                self.message = f"Reconnected after {_attempts(event.failed + 1)}."
                return self.message
            self.connected_once = True
            if event.failed:
                self.message = f"Connected after {_attempts(event.failed + 1)}."
                return f"Connected to {shown} after {_attempts(event.failed + 1)}."
            self.message = f"Connected: {event.width}x{event.height}."
            return f"Connected to {shown}: {event.width}x{event.height}."
        self.attempt = event.failed
        self.retry_at = time.time() + event.retry_in
        self.state = FeedState.RECONNECTING
        wait = f"{event.retry_in:g} s"
        if event.kind == "lost":
            self.message = f"Stream lost, reconnecting in {wait}."
        else:
            self.message = (
                f"Cannot open the stream ({_attempts(event.failed)} failed); trying again in "
                f"{wait}."
            )
        return self.message

    async def _log_pending(self) -> None:
        lines, self._pending_lines = self._pending_lines, []
        for line in lines:
            await self.stores.session.record(self.session_id, log=line)

    # -- captures --

    async def _take_requests(self) -> None:
        requests = await asyncio.to_thread(self._list_requests)
        for path in requests:
            asked = await asyncio.to_thread(read_json, path)
            if asked is None:
                continue  # being written: the next look takes it
            at = float(asked.get("at") or 0.0)
            picked = self.ring.nearest(at)
            if picked is None or abs(picked.at - at) > MAX_PICK_GAP_S:
                if time.time() - at < REQUEST_EXPIRES_S:
                    continue  # connecting or reconnecting: it waits for a frame
                result: dict[str, Any] = {
                    "outcome": "no_frame",
                    "message": "No frame of the stream near that moment: it was not connected.",
                }
            else:
                result = await self._capture(picked, FrameMode.MANUAL)
            result["id"] = str(asked.get("id") or path.stem)
            await asyncio.to_thread(write_json, self.folder / RESULTS / path.name, result)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(path.unlink)

    def _list_requests(self) -> list[Path]:
        with contextlib.suppress(OSError):
            return sorted(p for p in (self.folder / REQUESTS).iterdir() if p.suffix == ".json")
        return []

    async def _take_interval(self, now: float) -> None:
        if self.interval_gate is None or self.state != FeedState.LIVE:
            return
        latest = self.ring.latest()
        if latest is None or latest.seq == self.last_interval_seq:
            return  # no new frame since the last interval capture
        if self.interval_gate.take(now):
            self.last_interval_seq = latest.seq
            await self._capture(latest, FrameMode.INTERVAL)

    async def _capture(self, picked: RingFrame[np.ndarray], mode: FrameMode) -> dict[str, Any]:
        """Store one frame of the ring into the session (and, live, the model's boxes on it as
        pending suggestions); what became of it."""
        number = self.tally["frames_seen"] + 1
        data = await asyncio.to_thread(_jpeg, picked.frame, CAPTURE_QUALITY)
        bits = self.settings.near_duplicate_bits
        skip_within = (
            (self.last_kept, bits) if may_skip(mode, bits) and self.last_kept is not None else None
        )
        name = feed_frame_filename(self.session_id, number)
        outcome, image, suggested = "kept", None, 0
        try:
            image = await self.stores.image.save_file(
                self.dataset,
                self.settings.split,
                name,
                io.BytesIO(data),
                session_id=self.session_id,
                skip_within=skip_within,
            )
        except NearDuplicate as error:
            outcome = "skipped_near_duplicate"
            message = f"Frame {number} ({mode}): skipped, {error.distance} bits from the last kept."
        except DuplicateImage as error:
            outcome = "skipped_duplicate"
            message = (
                f"Frame {number} ({mode}): the same picture is already in the project as "
                f"{error.existing_filename}."
            )
        else:
            self.last_kept = image.phash
            live_on = self.live.model is not None
            if live_on:
                suggested = await self._suggest(picked, image)
            boxes = f"; {suggested} model boxes as pending suggestions" if self.live.model else ""
            if live_on and self.live.model is None:
                boxes = "; no suggestions (the live view stopped)"
            message = f"Frame {number} ({mode}): kept as {image.filename} in {image.split}{boxes}."
        step = dict.fromkeys(COUNTS, 0)
        step["frames_seen"] = 1
        step[outcome] = 1
        await self.tally.add(self.stores, step)
        await self.stores.session.record(self.session_id, log=message)
        self.last_capture = {
            "outcome": outcome,
            "mode": str(mode),
            "message": message,
            "filename": image.filename if image else None,
            "split": image.split if image else None,
            "sha256": image.sha256 if image else None,
            "suggestions": suggested,
            "frame_at": picked.at,
        }
        return dict(self.last_capture)

    async def _suggest(self, picked: RingFrame[np.ndarray], image: Any) -> int:
        """The model's boxes on the captured frame become its pending suggestions."""
        model = self.live.model
        assert model is not None
        if self.live.seq == picked.seq and self.live.running is None:
            rows = list(self._last_predictions)
        else:
            try:
                rows = await asyncio.to_thread(model.predict, picked.frame)
            except Exception as error:  # the frame stays, without suggestions
                self._stop_live(error)
                return 0
        unmatched: Counter[str] = Counter()
        mapped = to_project(rows, self.live.mapping, image, unmatched, model.names)
        counts = await self.stores.label.replace_suggestions(
            self.dataset, model.name, {image.filename: mapped}, confidence=LIVE_CONFIDENCE
        )
        return int(counts.get("added", 0)) + int(counts.get("replaced", 0))

    # -- the live view --

    async def _start_model(self) -> None:
        info = await self.stores.model.get_active(dataset=self.dataset)
        if info is None:
            self.live.state = "no active model: the live view is off"
            self._pending_lines.append("The project has no active model: the live view is off.")
            self.live.on = False
            return
        weights = await self.stores.model.load(info.name)
        classes = await self.stores.dataset.get_classes(self.dataset)
        self.live.model_name = info.name
        self.live.project_names = [c.name for c in classes]
        self.live.colours = {c.position: _bgr(c.colour) for c in classes}
        self.live.state = "loading"
        self.live.loading = asyncio.create_task(
            asyncio.to_thread(
                _load_model, self.stores.data_dir, weights, self.settings.imgsz, info.name
            )
        )

    async def _step_live(self, now: float) -> None:
        live = self.live
        if live.running is not None and live.running.done():
            done, live.running = live.running, None
            try:
                picked, rows, seconds = done.result()
            except Exception as error:  # CUDA out of memory, a driver error: captures go on
                self._stop_live(error)
            else:
                if live.on and live.model is not None:
                    await asyncio.to_thread(self._publish_live, picked, rows)
                    live.inferences += 1
                    live.inference_ms = round(seconds * 1000, 1)
                    live.fps.tick(now)
        if not live.on:
            return
        if live.loading is not None and live.loading.done():
            loaded, live.loading = live.loading, None
            try:
                live.model = loaded.result()
            except Exception as error:
                live.on = False
                live.state = f"failed to load: {error}"
                self._pending_lines.append(
                    f"The live view is off: the model failed to load ({error})."
                )
                return
            live.mapping, unmatched = map_classes(live.model.names, live.project_names)
            live.state = "ready"
            missing = (
                f" (its classes {', '.join(unmatched)} are not the project's)" if unmatched else ""
            )
            self._pending_lines.append(f"Live view on with model {live.model_name}{missing}.")
        if live.model is None:
            return
        latest = self.ring.latest()
        if (
            live.running is None
            and latest is not None
            and latest.seq != live.seq
            and self.state == FeedState.LIVE
            and self.live_gate.take(now)
        ):
            live.seq = latest.seq
            live.running = asyncio.create_task(asyncio.to_thread(_timed, live.model, latest))

    def _stop_live(self, error: Exception) -> None:
        """The model failed on a frame: the live view goes off (its model let go, which frees
        its memory), the feed goes on capturing frames without suggestions."""
        live = self.live
        if live.model is None:
            return  # stopped already (a capture's inference and the live one both failed)
        log.warning("the live view of session %s stopped", self.session_id, exc_info=error)
        lines = str(error).strip().splitlines()
        said = (lines[0] if lines else type(error).__name__)[:200]  # CUDA's run to many lines
        live.on = False
        live.model = None
        live.boxes = []
        live.state = f"stopped: {said}"
        self._last_predictions = []
        self._pending_lines.append(
            f"The live view stopped: the model failed on a frame ({said}); the feed goes on "
            "capturing, without suggestions."
        )

    def _publish_live(self, picked: RingFrame[np.ndarray], rows: list[Prediction]) -> None:
        live = self.live
        assert live.model is not None
        boxes = []
        for cls, conf, x, y, w, h in rows:
            boxes.append(
                {
                    "class_id": live.mapping.get(cls, -1),
                    "name": live.model.names.get(cls, str(cls)),
                    "confidence": round(conf, 4),
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                }
            )
        drawn = draw_boxes(picked.frame, boxes, live.colours)
        write_atomic(self.folder / VIEWS["live"], _jpeg(drawn, PREVIEW_QUALITY))
        live.boxes = boxes
        live.frame_at = picked.at
        self._last_predictions = rows

    # -- publishing --

    async def _publish(self, now: float) -> None:
        latest = self.ring.latest()
        if latest is not None and latest.seq != self.preview_seq and self.preview_gate.take(now):
            self.preview_seq = latest.seq
            data = await asyncio.to_thread(_jpeg, latest.frame, PREVIEW_QUALITY)
            await asyncio.to_thread(write_atomic, self.folder / VIEWS["camera"], data)
        if self.status_gate.take(now):
            await asyncio.to_thread(self._write_status)

    def _write_status(self) -> None:
        latest = self.ring.latest()
        now = time.time()
        live = self.live
        write_json(
            self.folder / STATUS,
            {
                "session": self.session_id,
                "state": str(self.state),
                "message": self.message,
                "source": self.source.describe(),
                "fps": round(self.reader.fps.rate(time.monotonic()), 2),
                "width": self.size[0] if self.size else None,
                "height": self.size[1] if self.size else None,
                "frames_read": self.ring.pushed,
                "frame_at": latest.at if latest else None,
                "camera_seq": self.preview_seq,
                "reconnects": self.reconnects,
                "attempt": self.attempt,
                "retry_in_s": round(max(0.0, self.retry_at - now), 1) if self.retry_at else None,
                "interval_s": self.settings.every_seconds,
                "counts": dict(self.tally.counts),
                "last_capture": self.last_capture,
                "live": {
                    "on": live.on,
                    "state": live.state,
                    "model": live.model_name,
                    "imgsz": live.imgsz,
                    "rate": live.rate,
                    "fps": round(live.fps.rate(time.monotonic()), 2),
                    "inferences": live.inferences,
                    "inference_ms": live.inference_ms,
                    "frame_at": live.frame_at,
                    "boxes": live.boxes,
                },
                "worker_pid": os.getpid(),
                "updated_at": now,
            },
        )


def _timed(
    model: LiveModel, picked: RingFrame[np.ndarray]
) -> tuple[RingFrame[np.ndarray], list[Prediction], float]:
    started = time.perf_counter()
    rows = model.predict(picked.frame)
    return picked, rows, time.perf_counter() - started


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


async def capture_stream(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Feed the task's session from its stream (params ``session``, ``settings``) until the
    session is ended or the task cancelled; returns the session's counts."""
    params = ctx.task.params
    session_id = int(params["session"])
    dataset = ctx.task.dataset
    if dataset is None:
        raise Invalid("The feed task names no project.")
    feed: Feed | None = None

    def cancelled() -> str:
        kept = feed.tally["kept"] if feed else 0
        return f"Cancelled: the stream is closed; the {kept} kept frames stay."

    async with ending_session_on_exit(stores, session_id, cancelled):
        settings = FeedSettings.from_dict(dict(params.get("settings") or {}))
        # Checked again here: the admin may have narrowed YDC_FEED_SCHEMES since it was queued.
        source = check_source(settings.source, Settings().feed_schemes)
        feed = Feed(ctx, stores, dataset, session_id, settings, source)
        await stores.session.record(
            session_id, log=f"Feed started in worker {os.getpid()}: opening {source.describe()}."
        )
        why = await feed.run()
    c = feed.tally
    await end_session(
        stores,
        session_id,
        f"Done ({why}): the stream is closed; {c['frames_seen']} captures, {c['kept']} kept, "
        f"{c['skipped_near_duplicate']} skipped as near-duplicates, "
        f"{c['skipped_duplicate']} already in the project; {feed.reconnects} reconnects.",
        SessionStatus.COMPLETED,
    )
    return {"session": session_id, "reconnects": feed.reconnects, **c.counts}


__all__ = ["KIND", "Feed", "LiveModel", "Reader", "capture_stream", "draw_boxes", "open_capture"]
