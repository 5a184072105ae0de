"""The ``capture_video`` job: an uploaded video becomes frames of a capture session.

OpenCV reads the video in a worker thread a chunk of frames at a time; within a chunk the pure
rules (``app.domain.capture``) pick the sampled frames and skip those too similar to the last
kept one (perceptual hash), and the kept ones are encoded as JPEG. The kept frames of a chunk
are then stored with the session's id, the session's counts and log are updated (and its new
frames queued for auto-labelling when the session asks for it), and progress is reported
(which is where a cancel stops it). A cancel keeps what was stored and ends the
session ``completed`` (its log says it was cancelled); an error ends it ``failed``. The staged
video is removed at the end whatever the outcome, except when the worker dies (a retry reads it).
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.domain.capture import (
    CaptureSettings,
    frame_filename,
    frame_step,
    is_near_duplicate,
    is_sampled,
)
from app.domain.errors import DuplicateImage, Invalid
from app.domain.models import SessionStatus
from app.domain.stores import Stores
from app.repositories.imaging import hamming, perceptual_hash
from app.tasks.capture_session import Tally, end_session, ending_session_on_exit
from app.tasks.context import TaskContext

log = logging.getLogger(__name__)

KIND = "capture_video"
CHUNK_FRAMES = 50  # frames read per hop to the thread: progress and cancel come between chunks
JPEG_QUALITY = 95
COUNTS = ("frames_seen", "sampled", "kept", "skipped_near_duplicate", "skipped_duplicate")


@dataclass
class Chunk:
    """What one read of the video gave: the kept frames (name, JPEG bytes) and the counts."""

    kept: list[tuple[str, bytes]] = field(default_factory=list)
    seen: int = 0
    sampled: int = 0
    skipped_near_duplicate: int = 0
    ended: bool = False


@dataclass
class Reader:
    """The open video and where the sampling stands (touched by one thread at a time)."""

    capture: Any
    video_name: str
    step: float
    threshold: int
    index: int = 0
    last_kept: str | None = None

    def read_chunk(self, frames: int) -> Chunk:
        chunk = Chunk()
        for _ in range(frames):
            if not self.capture.grab():
                chunk.ended = True
                break
            index = self.index
            self.index += 1
            chunk.seen += 1
            if not is_sampled(index, self.step):
                continue
            ok, frame = self.capture.retrieve()
            if not ok or frame is None:
                chunk.ended = True
                break
            chunk.sampled += 1
            phash = perceptual_hash(frame)
            distance = None if self.last_kept is None else hamming(self.last_kept, phash)
            if is_near_duplicate(distance, self.threshold):
                chunk.skipped_near_duplicate += 1
                continue
            self.last_kept = phash
            chunk.kept.append((frame_filename(self.video_name, index), _jpeg(frame)))
        return chunk


def _jpeg(frame: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise Invalid("A frame of the video could not be encoded as JPEG.")
    return data.tobytes()


def _open(path: Path) -> tuple[Any, float, int]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise Invalid("The file is not a video ydc can read (OpenCV could not open it).")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return capture, fps, max(total, 0)


async def capture_video(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Turn the task's staged video into frames of its session (params ``session``,
    ``source``, ``filename``, ``settings``); returns the session's counts."""
    params = ctx.task.params
    dataset = ctx.task.dataset
    session_id = int(params["session"])
    source = Path(params["source"])
    video_name = str(params.get("filename") or source.name)
    if dataset is None:
        raise Invalid("The capture task names no project.")
    tally = Tally(session_id, dict.fromkeys(COUNTS, 0))

    def cancelled() -> str:
        return (
            f"Cancelled after {tally['frames_seen']} frames; the {tally['kept']} kept frames stay."
        )

    try:
        async with ending_session_on_exit(stores, session_id, cancelled):
            settings = CaptureSettings.from_dict(dict(params.get("settings") or {}))
            capture, fps, total = await asyncio.to_thread(_open, source)
            try:
                reader = Reader(
                    capture, video_name, frame_step(settings, fps), settings.near_duplicate_bits
                )
                await stores.session.record(
                    session_id,
                    log=f"Reading {video_name}: {total or 'unknown number of'} frames at "
                    f"{fps:g} fps; {settings.describe()}.",
                )
                await ctx.progress(0.0, "reading the video")
                while True:
                    chunk = await asyncio.to_thread(reader.read_chunk, CHUNK_FRAMES)
                    added = await _store(stores, dataset, settings.split, session_id, chunk)
                    await tally.add(
                        stores,
                        {
                            "frames_seen": chunk.seen,
                            "sampled": chunk.sampled,
                            "kept": added["kept"],
                            "skipped_near_duplicate": chunk.skipped_near_duplicate,
                            "skipped_duplicate": added["skipped_duplicate"],
                        },
                    )
                    if chunk.ended:
                        break
                    fraction = min(reader.index / total, 0.99) if total else 0.0
                    await ctx.progress(
                        fraction, f"frame {reader.index} of {total or '?'}: {tally['kept']} kept"
                    )
            finally:
                await asyncio.to_thread(capture.release)
    finally:
        # Not reached when the worker dies: then the retry still finds its video.
        await asyncio.to_thread(source.unlink, missing_ok=True)
    await end_session(
        stores,
        session_id,
        f"Done: {tally['frames_seen']} frames seen, {tally['kept']} kept, "
        f"{tally['skipped_near_duplicate']} skipped as near-duplicates"
        + (
            f", {tally['skipped_duplicate']} already in the project"
            if tally["skipped_duplicate"]
            else ""
        )
        + ".",
        SessionStatus.COMPLETED,
    )
    return {"session": session_id, **tally.counts}


async def _store(
    stores: Stores, dataset: str, split: str | None, session_id: int, chunk: Chunk
) -> dict[str, int]:
    """Store a chunk's kept frames with the session's id: a frame whose bytes are already in
    the project is counted, not stored again."""
    added = {"kept": 0, "skipped_duplicate": 0}
    for name, data in chunk.kept:
        try:
            await stores.image.save_file(
                dataset, split, name, io.BytesIO(data), session_id=session_id
            )
        except DuplicateImage:
            added["skipped_duplicate"] += 1
        else:
            added["kept"] += 1
    return added
