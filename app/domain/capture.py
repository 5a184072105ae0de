"""Capture rules, pure: which frames of a video are sampled (every N frames or every T seconds),
and whether a sampled frame is kept or skipped as too similar to the last kept one; for a webcam,
which posted frames may be skipped (interval captures only: a manual capture is always kept).

A capture's settings travel as a plain dict (the session's ``settings``, the task's params);
``CaptureSettings.from_form`` checks what a person typed and ``to_dict``/``from_dict`` carry it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath
from typing import Any

from app.domain.errors import Invalid
from app.domain.models import SPLITS

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
# A frame whose perceptual hash is within this many bits (of 64) of the last kept frame's is
# skipped: slight noise, compression and a still camera stay within it; a new scene does not.
DEFAULT_NEAR_DUPLICATE_BITS = 6
MAX_NEAR_DUPLICATE_BITS = 32  # past half the bits every two frames would look alike
MAX_EVERY_N = 1_000_000
MAX_EVERY_SECONDS = 24 * 3600.0
DEFAULT_WEBCAM_SECONDS = 2.0  # the webcam page's interval, until the person changes it
DRAWN = "drawn"  # the split is drawn per frame (by the store), not chosen
# Floating error of ``T * fps`` (0.1 s at 30 fps is 3.0000000000000004 frames) must not push a
# sample one frame late.
_EPSILON = 1e-9


@dataclass(frozen=True)
class CaptureSettings:
    """How a video becomes frames: one of ``every_n`` (frames) or ``every_seconds``; the
    near-duplicate threshold in bits (0 keeps every sampled frame); the split (``None``:
    drawn per frame)."""

    every_n: int | None = 1
    every_seconds: float | None = None
    near_duplicate_bits: int = DEFAULT_NEAR_DUPLICATE_BITS
    split: str | None = None

    def __post_init__(self) -> None:
        if (self.every_n is None) == (self.every_seconds is None):
            raise Invalid("Sample every N frames or every T seconds (one of them).")
        if self.every_n is not None and not 1 <= self.every_n <= MAX_EVERY_N:
            raise Invalid(f"Every N frames: N must be a whole number from 1 to {MAX_EVERY_N}.")
        if self.every_seconds is not None and not (
            math.isfinite(self.every_seconds) and 0 < self.every_seconds <= MAX_EVERY_SECONDS
        ):
            raise Invalid("Every T seconds: T must be a number above 0 (at most a day).")
        if not 0 <= self.near_duplicate_bits <= MAX_NEAR_DUPLICATE_BITS:
            raise Invalid(
                f"The near-duplicate threshold must be 0 to {MAX_NEAR_DUPLICATE_BITS} bits."
            )
        if self.split is not None and self.split not in SPLITS:
            raise Invalid(f"The split must be one of {', '.join(SPLITS)} or {DRAWN}.")

    @classmethod
    def from_form(
        cls,
        *,
        every_n: str = "",
        every_seconds: str = "",
        near_duplicate_bits: str = "",
        split: str = "",
    ) -> CaptureSettings:
        """Settings from form text: blank fields take their defaults (every frame, 6 bits,
        a drawn split). ``Invalid`` with a reason for anything else."""
        n_text, t_text = every_n.strip(), every_seconds.strip()
        if n_text and t_text:
            raise Invalid("Sample every N frames or every T seconds, not both.")
        n: int | None = None
        t: float | None = None
        if t_text:
            try:
                t = float(t_text)
            except ValueError:
                raise Invalid(f"Every T seconds: {t_text!r} is not a number.") from None
        else:
            try:
                n = int(n_text or "1")
            except ValueError:
                raise Invalid(f"Every N frames: {n_text!r} is not a whole number.") from None
        bits_text = near_duplicate_bits.strip()
        try:
            bits = int(bits_text) if bits_text else DEFAULT_NEAR_DUPLICATE_BITS
        except ValueError:
            raise Invalid(f"Near-duplicate bits: {bits_text!r} is not a whole number.") from None
        chosen = split.strip().lower()
        return cls(
            every_n=n,
            every_seconds=t,
            near_duplicate_bits=bits,
            split=None if chosen in ("", DRAWN) else chosen,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "every_n": self.every_n,
            "every_seconds": self.every_seconds,
            "near_duplicate_bits": self.near_duplicate_bits,
            "split": self.split or DRAWN,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptureSettings:
        split = data.get("split")
        return cls(
            every_n=data.get("every_n"),
            every_seconds=data.get("every_seconds"),
            near_duplicate_bits=int(data.get("near_duplicate_bits", DEFAULT_NEAR_DUPLICATE_BITS)),
            split=None if split in (None, DRAWN) else split,
        )

    def describe(self) -> str:
        """The rule in words, for the session's page and log."""
        if self.every_n is not None:
            rule = "every frame" if self.every_n == 1 else f"every {self.every_n} frames"
        else:
            rule = f"every {self.every_seconds:g} s"
        skip = (
            f"skip frames within {self.near_duplicate_bits} bits of the last kept one"
            if self.near_duplicate_bits
            else "keep every sampled frame"
        )
        return f"{rule}, {skip}, into {self.split or 'a drawn split'}"


def check_video_name(filename: str) -> str:
    """The upload's name when it ends in a video extension ydc reads; ``Invalid`` otherwise."""
    suffix = PurePath(filename).suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise Invalid(
            f"{filename!r} is not a video ydc reads: choose a "
            f"{', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)} file."
        )
    return filename


def frame_step(settings: CaptureSettings, fps: float | None) -> float:
    """How many frames lie between two samples (at least one). Every T seconds needs the
    video's frame rate: ``Invalid`` when it does not say one."""
    if settings.every_n is not None:
        return float(settings.every_n)
    assert settings.every_seconds is not None
    if fps is None or not math.isfinite(fps) or fps <= 0:
        raise Invalid(
            "The video does not say its frame rate, so every T seconds cannot be used: "
            "sample every N frames instead."
        )
    return max(1.0, settings.every_seconds * fps)


def is_sampled(index: int, step: float) -> bool:
    """Whether frame ``index`` (from 0) is sampled: the first frame at or after each multiple
    of ``step`` (so 2.5 samples frames 0, 3, 5, 8, 10…)."""
    if index == 0:
        return True
    return math.floor(index / step + _EPSILON) != math.floor((index - 1) / step + _EPSILON)


def sampled_indices(total: int, step: float) -> list[int]:
    """The sampled frames among the first ``total``."""
    return [i for i in range(total) if is_sampled(i, step)]


def is_near_duplicate(distance: int | None, threshold: int) -> bool:
    """Whether a sampled frame at ``distance`` bits from the last kept one is skipped
    (``None``: nothing kept yet; a threshold of 0 skips nothing)."""
    return distance is not None and threshold > 0 and distance <= threshold


def frame_filename(video_name: str, index: int) -> str:
    """``<video stem>-f<frame index>.jpg``."""
    stem = PurePath(video_name).stem or "video"
    return f"{stem}-f{index}.jpg"


class FrameMode(StrEnum):
    """How a webcam frame was taken: a person pressed Capture, or the interval timer fired."""

    MANUAL = "manual"
    INTERVAL = "interval"


def frame_mode(text: str) -> FrameMode:
    """The mode a frame was posted with; ``Invalid`` for anything but manual or interval."""
    try:
        return FrameMode(text.strip().lower())
    except ValueError:
        raise Invalid(
            f"The mode must be {FrameMode.MANUAL} or {FrameMode.INTERVAL}, not {text!r}."
        ) from None


def may_skip(mode: FrameMode, threshold: int) -> bool:
    """Whether a webcam frame is compared with the last kept one at all: only interval
    captures are, and only with a threshold above 0 (a manual capture is what the person
    chose to keep)."""
    return mode is FrameMode.INTERVAL and threshold > 0


@dataclass(frozen=True)
class WebcamSettings:
    """A webcam session: the near-duplicate threshold of its interval captures (bits, 0 keeps
    every frame), the split (``None``: drawn per frame), and whether its frames are
    auto-labelled with the active model as they arrive."""

    near_duplicate_bits: int = DEFAULT_NEAR_DUPLICATE_BITS
    split: str | None = None
    autolabel: bool = False

    def __post_init__(self) -> None:
        # The same checks as a video's: one rule for the threshold and the split.
        CaptureSettings(near_duplicate_bits=self.near_duplicate_bits, split=self.split)

    @classmethod
    def from_form(
        cls, *, near_duplicate_bits: str = "", split: str = "", autolabel: str = ""
    ) -> WebcamSettings:
        """Settings from form text (a checkbox sends ``on`` or nothing); ``Invalid``."""
        video = CaptureSettings.from_form(near_duplicate_bits=near_duplicate_bits, split=split)
        chosen = autolabel.strip().lower() in ("on", "true", "1", "yes")
        return cls(video.near_duplicate_bits, video.split, chosen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "near_duplicate_bits": self.near_duplicate_bits,
            "split": self.split or DRAWN,
            "autolabel": self.autolabel,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebcamSettings:
        split = data.get("split")
        return cls(
            near_duplicate_bits=int(data.get("near_duplicate_bits", DEFAULT_NEAR_DUPLICATE_BITS)),
            split=None if split in (None, DRAWN) else split,
            autolabel=bool(data.get("autolabel", False)),
        )


def webcam_frame_filename(session_id: int, number: int) -> str:
    """``webcam<session>-<frame number, from 1>.jpg``."""
    return f"webcam{session_id}-{number:05d}.jpg"
