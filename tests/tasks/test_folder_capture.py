"""Capture from a server folder (issue 9, 3c): the images of a folder under the import roots
become frames of a session (name order, nested folders, any-case extensions, original bytes),
near-duplicates of the last kept image and bytes already in the project are counted and
skipped, files that are no image and links out of the roots are refused without stopping the
rest; watch mode takes a file added later and stops
when the session is ended; a cancel keeps what was stored; the session auto-labels on arrival
when asked."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.config import Settings
from app.domain.capture_folder import FolderSettings
from app.domain.errors import Cancelled
from app.domain.models import SessionInfo, TaskInfo
from app.domain.stores import Stores
from app.services.autolabel import NO_ACTIVE_MODEL
from app.services.capture_folder import end_folder_session, start_folder_capture
from app.tasks import capture_folder as folder_job
from app.tasks.context import TaskContext
from app.tasks.worker import run_task
from tests.conftest import encode, make_image
from tests.tasks.conftest import wait_until
from tests.tasks.test_video_capture import CancelAfter

WIDTH, HEIGHT = 160, 120


def scene(seed: int, *, noise_seed: int | None = None) -> np.ndarray:
    """Coloured blocks, distinct for every seed; with ``noise_seed`` a little noise on top (a
    near-duplicate of the same seed's scene, never the same bytes)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = cv2.resize(blocks, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).integers(-4, 5, size=image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return image


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path / "incoming"
    root.mkdir()
    return root


@pytest.fixture
def settings(tmp_path: Path, roots: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        task_heartbeat_s=2.0,
        run_tasks=False,
        allowed_hosts=["testserver"],
        import_roots=[roots],
    )


async def start(
    stores: Stores, settings: Settings, folder: Path, **fields: str
) -> tuple[SessionInfo, TaskInfo]:
    chosen = FolderSettings.from_form(str(folder), **fields)
    return await start_folder_capture(stores, "cam", chosen, roots=settings.import_roots)


async def claim(stores: Stores) -> TaskInfo:
    claimed = await stores.task.claim("test-worker")
    assert claimed is not None and claimed.kind == "capture_folder"
    return claimed


async def test_a_folder_becomes_frames_of_its_session_with_duplicates_skipped_and_bad_files_refused(
    stores: Stores, settings: Settings, roots: Path, tmp_path: Path
) -> None:
    await stores.dataset.create("cam", ["thing"])
    already = write(tmp_path / "already.png", encode(scene(9)))
    await stores.image.save_file("cam", "val", "already.png", already)
    outside = write(tmp_path / "elsewhere" / "secret.png", encode(scene(10)))

    folder = roots / "shoot"
    files = {
        "a.png": write(folder / "a.png", encode(scene(1))),
        "b.png": write(folder / "b.png", encode(scene(1, noise_seed=2))),  # near a
        "broken.jpg": write(folder / "broken.jpg", b"\xff\xd8 not really a jpeg"),
        "c.png": write(folder / "c.png", encode(scene(3))),
        "d.JPG": write(folder / "d.JPG", encode(scene(4), ".jpg")),
        "f-dup.png": write(folder / "f-dup.png", already.read_bytes()),  # in the project
        "sub/deeper/e.bmp": write(folder / "sub" / "deeper" / "e.bmp", encode(scene(5), ".bmp")),
        "sub/é x.png": write(folder / "sub" / "é x.png", encode(scene(6))),
    }
    write(folder / "notes.txt", b"not an image by its name: left alone")
    write(folder / ".hidden.png", encode(scene(7)))
    (folder / "link-out.png").symlink_to(outside)

    session, task = await start(stores, settings, folder, split="train")
    assert session.source == "folder" and session.status == "in_progress"
    assert session.settings["folder"] == str(folder.resolve())
    assert task.kind == "capture_folder" and task.max_attempts == 1
    claimed = await claim(stores)
    assert await run_task(settings, claimed.id, "test-worker") == 0

    done = await stores.session.get(session.id)
    assert done.status == "completed"
    assert done.counts == {
        "frames_seen": 9,
        "kept": 5,
        "skipped_near_duplicate": 1,
        "skipped_duplicate": 1,
        "refused": 2,
    }
    assert any("broken.jpg" in line and line.startswith("Refused") for line in done.log)
    assert any("link-out.png" in line and "outside the import roots" in line for line in done.log)
    assert done.log[-1].startswith("Done: 9 files seen, 5 kept")
    images = [i for i in await stores.image.list("cam") if i.filename != "already.png"]
    # In name order, folder by folder; original bytes; the session's id; the chosen split.
    assert [i.filename for i in images] == ["a.png", "c.png", "d.jpg", "e.bmp", "é x.png"]
    kept = ["a.png", "c.png", "d.JPG", "sub/deeper/e.bmp", "sub/é x.png"]
    assert [i.sha256 for i in images] == [sha(files[name]) for name in kept]
    assert {i.session_id for i in images} == {session.id}
    assert {i.split for i in images} == {"train"}
    result = (await stores.task.get(claimed.id)).result
    assert result is not None and result["kept"] == 5


async def test_watch_mode_takes_a_file_added_later_and_stops_when_the_session_is_ended(
    stores: Stores, settings: Settings, roots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_job, "WATCH_POLL_S", 0.1)
    await stores.dataset.create("cam", ["thing"])
    folder = roots / "live"
    write(folder / "001.png", encode(scene(1)))
    session, _ = await start(stores, settings, folder, watch="on")
    session_id = session.id
    claimed = await claim(stores)
    ctx = TaskContext(claimed, "test-worker", stores.task, 2.0, import_roots=settings.import_roots)

    async def kept() -> int:
        return (await stores.session.get(session_id)).counts.get("kept", 0)

    async with ctx:
        job = asyncio.create_task(folder_job.capture_folder(ctx, stores))
        try:
            await wait_until(kept, lambda n: n == 1, within=10, what="the first pass")
            # A file being written (growing faster than the looks) waits until its size holds
            # still; then it is taken whole.
            growing = folder / "sub" / "002.png"
            data = encode(scene(2))
            pieces = 16
            write(growing, b"")
            for n in range(pieces):
                with growing.open("ab") as out:
                    out.write(data[n * len(data) // pieces : (n + 1) * len(data) // pieces])
                await asyncio.sleep(0.03)
            assert (await stores.session.get(session_id)).counts == {
                "frames_seen": 1,
                "kept": 1,
                "skipped_near_duplicate": 0,
                "skipped_duplicate": 0,
                "refused": 0,
            }
            await wait_until(kept, lambda n: n == 2, within=10, what="the new file")
            assert not job.done()
            assert (await end_folder_session(stores, session_id)).status == "completed"
            result = await asyncio.wait_for(job, 10)
        finally:
            job.cancel()
    assert result["kept"] == 2 and result["refused"] == 0
    ended = await stores.session.get(session_id)
    assert ended.status == "completed"
    assert "Stopped watching" in ended.log[-1]
    names = sorted(i.filename for i in await stores.image.list("cam"))
    assert names == ["001.png", "002.png"]
    # The stored file is the whole one, not the half seen first.
    assert {i.sha256 for i in await stores.image.list("cam")} >= {hashlib.sha256(data).hexdigest()}


async def test_a_cancel_keeps_the_images_stored_and_completes_the_session(
    stores: Stores, settings: Settings, roots: Path
) -> None:
    await stores.dataset.create("cam", ["thing"])
    folder = roots / "many"
    for n in range(60):
        write(folder / f"{n:03d}.png", encode(make_image(32, 24, seed=n)))
    session, info = await start(stores, settings, folder, near_duplicate_bits="0")

    # The first progress report (before reading) passes, the second (after 50 files) cancels.
    ctx = CancelAfter(info, stores, calls=1)
    ctx.import_roots = list(settings.import_roots)
    with pytest.raises(Cancelled):
        await folder_job.capture_folder(ctx, stores)

    ended = await stores.session.get(session.id)
    assert ended.status == "completed"
    assert ended.counts["frames_seen"] == ended.counts["kept"] == 50
    assert len(await stores.image.list("cam")) == 50
    assert ended.log[-1].startswith("Cancelled after 50 files")


async def test_a_session_that_auto_labels_asks_for_it_after_each_chunk_it_kept(
    stores: Stores, settings: Settings, roots: Path
) -> None:
    await stores.dataset.create("cam", ["thing"])
    folder = roots / "auto"
    write(folder / "a.png", encode(scene(1)))
    session, _ = await start(stores, settings, folder, autolabel="on")
    assert session.settings["autolabel"] is True
    claimed = await claim(stores)
    assert await run_task(settings, claimed.id, "test-worker") == 0
    # Without an active model the follower says so in the session's log (and queues nothing).
    done = await stores.session.get(session.id)
    assert NO_ACTIVE_MODEL in done.log
    assert [t.kind for t in await stores.task.list()] == ["capture_folder"]
