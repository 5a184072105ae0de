"""Keeping an upload: copied whole, or refused past its limit with nothing left behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.services.uploads import TooLarge, keep_upload


async def test_an_upload_is_copied_from_its_start(tmp_path: Path) -> None:
    handle = io.BytesIO(b"x" * 3000)
    handle.read(100)  # already read from, as a header check does

    written = await keep_upload(handle, tmp_path / "in" / "a.zip", max_bytes=3000)

    assert written == 3000
    assert (tmp_path / "in" / "a.zip").read_bytes() == b"x" * 3000


async def test_an_upload_over_its_limit_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a.mp4"

    with pytest.raises(TooLarge, match="The video is larger than the limit") as refused:
        await keep_upload(io.BytesIO(b"x" * 3001), target, max_bytes=3000, what="The video")

    assert refused.value.status == 413
    assert not target.exists()
