"""Keeping an uploaded file: copied off the request's spooled temp file into the data dir, in a
thread, never past a size limit (what is over it, or fails half-way, is not left behind)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO

from app.domain.errors import Invalid

COPY_CHUNK = 2**20


class TooLarge(Invalid):
    """The upload is over its limit."""

    status = 413


async def keep_upload(
    handle: IO[bytes], target: Path, *, max_bytes: int | None = None, what: str = "The file"
) -> int:
    """Copy ``handle`` (from its start) to ``target``; the bytes written. ``TooLarge`` past
    ``max_bytes`` (``what`` names the file in the message)."""

    def copy() -> int:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle.seek(0)
        written = 0
        try:
            with open(target, "wb") as out:
                while block := handle.read(COPY_CHUNK):
                    written += len(block)
                    if max_bytes is not None and written > max_bytes:
                        raise TooLarge(
                            f"{what} is larger than the limit of {max_bytes / 2**20:.0f} MB."
                        )
                    out.write(block)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return written

    return await asyncio.to_thread(copy)


__all__ = ["COPY_CHUNK", "TooLarge", "keep_upload"]
