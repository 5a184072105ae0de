"""Stream feeds, pure rules: which stream sources the admin allows (``YDC_FEED_SCHEMES``), a
feed session's settings, the reconnect back-off, the ring buffer of recent frames, the gate that
bounds how often something runs (interval captures, live inference, preview frames), the frame
rate meter, and how a URL is shown without its password.

A feed is read by a task in a worker (``app.tasks.feed``); the web reads what it publishes. Only
schemes the admin lists are opened: OpenCV's FFmpeg would otherwise read ``file:`` (any file the
server can read), ``concat:``, ``subfile,`` and other protocols that are no camera.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from app.domain.capture import DEFAULT_NEAR_DUPLICATE_BITS, DRAWN, CaptureSettings
from app.domain.errors import Forbidden, Invalid

DEFAULT_FEED_SCHEMES = ("rtsp", "rtsps", "http", "https")
DEVICE = "device"  # in YDC_FEED_SCHEMES: a camera on the server by its index ("0")
MAX_URL_LENGTH = 2048
MAX_DEVICE_INDEX = 63
# Reconnects: 1 s, 2 s, 4 s … doubling up to 30 s between attempts.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
RING_FRAMES = 64  # recent frames kept in memory: ~2 s at 30 fps, what a capture picks from
# ... and at most this many bytes of them (64 frames are 400 MB at 1080p, 1.6 GB at 4K): ~21
# frames at 1080p, 5 at 4K; never fewer than RING_MIN_FRAMES.
RING_BYTES = 128 * 1024**2
RING_MIN_FRAMES = 2
DEFAULT_LIVE_RATE = 2.0  # inferences per second at most
MAX_LIVE_RATE = 30.0
DEFAULT_LIVE_IMGSZ = 320
MIN_EVERY_SECONDS = 0.2
TRUE = ("1", "true", "on", "yes")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")

T = TypeVar("T")


class FeedState(StrEnum):
    """Where a feed's reader stands, as the page shows it."""

    WAITING = "waiting"  # the task has not started yet (a task slot is busy)
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    STALLED = "stalled"  # the worker stopped publishing while the session is in progress


@dataclass(frozen=True)
class FeedSource:
    """What OpenCV opens: a URL, or a camera of the server by its index."""

    url: str | None = None
    device: int | None = None

    def describe(self) -> str:
        """The source for a page or a log line (no password)."""
        return (
            f"camera {self.device} of the server"
            if self.device is not None
            else redact_url(self.url or "")
        )


def parse_schemes(text: str | Iterable[str]) -> tuple[str, ...]:
    """The allowed schemes of a setting (comma-separated or a list), lower case, no blanks."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(item.strip().lower() for item in items if item.strip()))


def check_source(text: str, allowed: Iterable[str]) -> FeedSource:
    """The source a person typed, when the admin allows it: a URL whose scheme is in
    ``allowed``, with a host for network schemes; or a device index when ``device`` is in
    ``allowed``. ``Invalid`` (422) for what is no URL at all, ``Forbidden`` (403) for a scheme
    or a device the admin does not allow (``file:`` included)."""
    allowed_set = set(parse_schemes(allowed))
    source = text.strip()
    if not source:
        raise Invalid("Give the stream's URL (rtsp://…, http://…) or a camera index.")
    if len(source) > MAX_URL_LENGTH:
        raise Invalid(f"The stream's URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in source):
        raise Invalid("The stream's URL holds spaces or control characters: encode them.")
    if source.isdigit():
        if DEVICE not in allowed_set:
            raise Forbidden(
                "Cameras of the server (a device index) are not allowed here: the admin "
                f"allows {_allowed_words(allowed_set)} (setting YDC_FEED_SCHEMES; add "
                f"{DEVICE!r} to allow cameras)."
            )
        index = int(source)
        if index > MAX_DEVICE_INDEX:
            raise Invalid(f"A camera index is 0 to {MAX_DEVICE_INDEX}.")
        return FeedSource(device=index)
    scheme, sep, _ = source.partition(":")
    scheme = scheme.lower()
    if not sep or not _SCHEME.fullmatch(scheme):
        raise Invalid(
            f"{redact_url(source)!r} is not a stream URL: give one like rtsp://camera/stream "
            "or http://camera/video.mjpg."
        )
    if scheme not in allowed_set or scheme == DEVICE:
        raise Forbidden(
            f"Stream URLs of scheme {scheme!r} are not allowed: the admin allows "
            f"{_allowed_words(allowed_set)} (setting YDC_FEED_SCHEMES)."
        )
    try:
        parts = urlsplit(source)
        host = parts.hostname
        _ = parts.port  # raises on a port that is no number
    except ValueError:
        raise Invalid(f"{redact_url(source)!r} is not a well-formed URL.") from None
    if not host:
        raise Invalid(f"{redact_url(source)!r} names no host: give scheme://host/path.")
    return FeedSource(url=source)


def _allowed_words(allowed: set[str]) -> str:
    shown = [s for s in sorted(allowed) if s != DEVICE]
    words = ", ".join(f"{s}:" for s in shown) if shown else "no stream URLs"
    return words + (" and camera indexes" if DEVICE in allowed else "")


def redact_url(url: str) -> str:
    """``url`` with its password (if any) and every query value replaced by ``***`` (the keys
    stay), for pages, logs, the API and ``status.json``: cameras take tokens and passwords in
    the query string too (``?user=admin&password=…``, ``?token=…``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    if parts.query:
        fields = (field.partition("=") for field in parts.query.split("&"))
        parts = parts._replace(
            query="&".join(f"{key}=***" if sep else key for key, sep, _ in fields)
        )
    return urlunsplit(parts)


def backoff_s(attempt: int) -> float:
    """Seconds to wait before reconnect ``attempt`` (from 1): 1, 2, 4 … at most 30."""
    if attempt < 1:
        return 0.0
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(attempt - 1, 30))


@dataclass(frozen=True)
class FeedSettings:
    """A feed session: its source (as typed, checked by ``check_source``), the interval of its
    automatic captures (``None``: manual captures only), the near-duplicate threshold of those
    (bits; manual captures are always kept), the split (``None``: drawn per frame), and the
    live view: the active model's boxes drawn on the frames, at most ``live_rate`` inferences a
    second at ``imgsz``; a frame captured then keeps the model's boxes as pending suggestions."""

    source: str
    every_seconds: float | None = None
    near_duplicate_bits: int = DEFAULT_NEAR_DUPLICATE_BITS
    split: str | None = None
    live: bool = False
    live_rate: float = DEFAULT_LIVE_RATE
    imgsz: int = DEFAULT_LIVE_IMGSZ

    def __post_init__(self) -> None:
        # The same checks as a video's for the threshold and the split.
        CaptureSettings(near_duplicate_bits=self.near_duplicate_bits, split=self.split)
        if self.every_seconds is not None and not (
            math.isfinite(self.every_seconds)
            and MIN_EVERY_SECONDS <= self.every_seconds <= 24 * 3600
        ):
            raise Invalid(
                f"Capture every T seconds: T must be {MIN_EVERY_SECONDS:g} to 86400, or blank "
                "for manual captures only."
            )
        if not (math.isfinite(self.live_rate) and 0.1 <= self.live_rate <= MAX_LIVE_RATE):
            raise Invalid(f"The live view's rate must be 0.1 to {MAX_LIVE_RATE:g} a second.")
        if not (32 <= self.imgsz <= 1920 and self.imgsz % 32 == 0):
            raise Invalid("The live view's image size must be a multiple of 32 from 32 to 1920.")

    @classmethod
    def from_form(
        cls,
        source: str,
        *,
        every_seconds: str = "",
        near_duplicate_bits: str = "",
        split: str = "",
        live: str = "",
        live_rate: str = "",
        imgsz: str = "",
    ) -> FeedSettings:
        """Settings from form text (blank: manual captures, 6 bits, a drawn split, live view
        off, 2 a second at 320); ``Invalid``. The source is checked by the service."""
        video = CaptureSettings.from_form(near_duplicate_bits=near_duplicate_bits, split=split)
        return cls(
            source=source.strip(),
            every_seconds=_number(every_seconds, "Capture every T seconds", float),
            near_duplicate_bits=video.near_duplicate_bits,
            split=video.split,
            live=live.strip().lower() in TRUE,
            live_rate=_number(live_rate, "The live view's rate", float) or DEFAULT_LIVE_RATE,
            imgsz=int(_number(imgsz, "The live view's image size", int) or DEFAULT_LIVE_IMGSZ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "every_seconds": self.every_seconds,
            "near_duplicate_bits": self.near_duplicate_bits,
            "split": self.split or DRAWN,
            "live": self.live,
            "live_rate": self.live_rate,
            "imgsz": self.imgsz,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedSettings:
        split = data.get("split")
        every = data.get("every_seconds")
        return cls(
            source=str(data.get("source") or ""),
            every_seconds=None if every is None else float(every),
            near_duplicate_bits=int(data.get("near_duplicate_bits", DEFAULT_NEAR_DUPLICATE_BITS)),
            split=None if split in (None, DRAWN) else split,
            live=bool(data.get("live", False)),
            live_rate=float(data.get("live_rate") or DEFAULT_LIVE_RATE),
            imgsz=int(data.get("imgsz") or DEFAULT_LIVE_IMGSZ),
        )

    def describe(self) -> str:
        """The rule in words, for the session's log."""
        if self.every_seconds is None:
            rule = "manual captures only"
        else:
            skip = (
                f"skipping frames within {self.near_duplicate_bits} bits of the last kept one"
                if self.near_duplicate_bits
                else "keeping every one"
            )
            rule = f"a capture every {self.every_seconds:g} s ({skip}) and manual captures"
        live = (
            f"; live view with the active model, at most {self.live_rate:g} a second at "
            f"{self.imgsz} px, captured frames keep its boxes as suggestions"
            if self.live
            else ""
        )
        return f"{rule}, into {self.split or 'a drawn split'}{live}"


def _number(text: str, what: str, kind: type[float] | type[int]) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise Invalid(f"{what}: {text!r} is not {noun}.") from None


def feed_frame_filename(session_id: int, number: int) -> str:
    """``stream<session>-<capture number, from 1>.jpg``."""
    return f"stream{session_id}-{number:05d}.jpg"


@dataclass(frozen=True)
class RingFrame(Generic[T]):
    """A frame in the ring: its number (from 1, in reading order), when it was read (wall
    clock seconds) and the frame itself."""

    seq: int
    at: float
    frame: T


class FrameRing(Generic[T]):
    """The last ``capacity`` frames a reader pushed, oldest first, holding at most
    ``max_bytes`` of them (a frame's size is its ``nbytes``; the newest ``RING_MIN_FRAMES``
    stay whatever their size); safe across threads (the reader pushes, the task picks)."""

    def __init__(self, capacity: int = RING_FRAMES, *, max_bytes: int = RING_BYTES) -> None:
        if capacity < 1:
            raise ValueError("A ring holds at least one frame.")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._frames: deque[RingFrame[T]] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._seq = 0

    def push(self, frame: T, at: float) -> int:
        """Keep ``frame`` (the oldest drop out past the capacity or the bytes); its number."""
        size = int(getattr(frame, "nbytes", 0))
        with self._lock:
            self._seq += 1
            self._frames.append(RingFrame(self._seq, at, frame))
            self._sizes.append(size)
            self._bytes += size
            keep = min(self.capacity, RING_MIN_FRAMES)
            while len(self._frames) > self.capacity or (
                self._bytes > self.max_bytes and len(self._frames) > keep
            ):
                self._frames.popleft()
                self._bytes -= self._sizes.popleft()
            return self._seq

    @property
    def nbytes(self) -> int:
        """The bytes of the frames held."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    @property
    def pushed(self) -> int:
        """How many frames were ever pushed."""
        with self._lock:
            return self._seq

    def latest(self) -> RingFrame[T] | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def nearest(self, at: float) -> RingFrame[T] | None:
        """The frame read closest to ``at`` (the later one on a tie); ``None`` when empty."""
        with self._lock:
            frames = list(self._frames)
        if not frames:
            return None
        times = [f.at for f in frames]
        i = bisect.bisect_left(times, at)
        candidates = frames[max(0, i - 1) : i + 1]
        return min(reversed(candidates), key=lambda f: abs(f.at - at))


class RateGate:
    """Lets something happen at most ``rate`` times a second: ``ready(now)`` says whether the
    interval since the last ``mark`` has passed (the first time always)."""

    def __init__(self, rate: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError("A rate is a positive number of times a second.")
        self.interval = 1.0 / rate
        self._last: float | None = None

    def ready(self, now: float) -> bool:
        return self._last is None or now - self._last >= self.interval

    def mark(self, now: float) -> None:
        self._last = now

    def wait_s(self, now: float) -> float:
        """Seconds until ``ready`` (0 when it is)."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - now)

    def take(self, now: float) -> bool:
        """``ready`` and, if so, ``mark``."""
        if self.ready(now):
            self.mark(now)
            return True
        return False


class FpsMeter:
    """Frames a second over the last ``window`` seconds of ``tick`` times; safe across threads
    (the reader ticks, the job reads the rate)."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._ticks: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._ticks.append(now)
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._ticks) < 2:
                return 0.0
            span = now - self._ticks[0]
            return (len(self._ticks) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._ticks and self._ticks[0] < now - self.window:
            self._ticks.popleft()


def page_state(status: Mapping[str, Any] | None, *, now: float, in_progress: bool) -> str:
    """The state a page shows: the published one, ``waiting`` when nothing was published yet,
    ``ended`` once the session has ended, ``stalled`` when the worker of a session in progress
    has not published for ``STALE_S`` seconds."""
    if not in_progress:
        return FeedState.ENDED
    if not status:
        return FeedState.WAITING
    state = str(status.get("state") or FeedState.CONNECTING)
    updated = status.get("updated_at")
    if state != FeedState.ENDED and isinstance(updated, int | float) and now - updated > STALE_S:
        return FeedState.STALLED
    return state


STALE_S = 10.0  # the worker publishes its status several times a second
