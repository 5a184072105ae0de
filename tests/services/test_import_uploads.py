"""Uploaded dataset zips waiting in ``imports/``: reconcile removes those no unfinished import
task will read, and keeps the ones a queued import still needs."""

from __future__ import annotations

import os
import time

from app.domain.reconcile import Found
from app.domain.stores import Stores


async def test_reconcile_removes_uploads_no_import_awaits_and_keeps_a_queued_ones(
    stores: Stores,
) -> None:
    folder = stores.data_dir / "imports"
    folder.mkdir(parents=True)
    awaited = folder / "upload-awaited.zip"
    orphan = folder / "upload-orphan.zip"
    fresh = folder / "upload-fresh.zip"
    for path in (awaited, orphan, fresh):
        path.write_bytes(b"PK")
    two_hours_ago = time.time() - 7200
    for path in (awaited, orphan):
        os.utime(path, (two_hours_ago, two_hours_ago))
    await stores.task.enqueue("import", {"project": "p", "source": str(awaited)}, dataset=None)

    report = await stores.storage.reconcile()

    assert awaited.exists()
    assert not orphan.exists()
    assert fresh.exists()  # maybe an upload whose task is being queued right now
    removed = [f.path for f in report.findings if f.kind == Found.TEMP_REMOVED]
    assert removed == ["imports/upload-orphan.zip"]


async def test_a_reconcile_alone_also_removes_fresh_uploads_nobody_awaits(stores: Stores) -> None:
    folder = stores.data_dir / "imports"
    folder.mkdir(parents=True)
    (folder / "upload-fresh.zip").write_bytes(b"PK")

    await stores.storage.reconcile(exclusive=True)

    assert list(folder.iterdir()) == []


async def test_a_capture_video_awaited_by_its_task_is_kept_and_an_orphan_one_removed(
    stores: Stores,
) -> None:
    folder = stores.data_dir / "imports" / "capture"
    folder.mkdir(parents=True)
    awaited, orphan = folder / "video-awaited.avi", folder / "video-orphan.avi"
    for path in (awaited, orphan):
        path.write_bytes(b"RIFF")
    await stores.dataset.create("clips", [])
    await stores.task.enqueue(
        "capture_video", {"session": 1, "source": str(awaited)}, dataset="clips"
    )

    report = await stores.storage.reconcile(exclusive=True)

    assert awaited.exists()
    assert not orphan.exists()
    removed = [f.path for f in report.findings if f.kind == Found.TEMP_REMOVED]
    assert removed == ["imports/capture/video-orphan.avi"]
