"""The ``capture_folder`` job: the images of a server folder become frames of a capture session.

The folder (under ``YDC_IMPORT_ROOTS``, checked again here) is listed recursively in a thread;
its image files (by extension, any case) are taken in name order, ``CHUNK_FILES`` at a time:
each is stored with its original bytes and the session's id into the chosen or drawn split,
unless its perceptual hash lies within the session's threshold of the last kept image's
(``skipped_near_duplicate``) or its bytes are already in the project (``skipped_duplicate``).
A file that is no readable image, or a link that leads out of the import roots, is refused
(counted, and named in the log); it never stops the others. After each chunk the session's
counts are written, its new frames queued for auto-labelling when it asks for that, and
progress reported (a cancel stops between files: what was stored stays, the session ends
``completed``; an error fails it).

With ``watch`` the job then looks at the folder every ``WATCH_POLL_S`` seconds for files not
seen yet, and takes one once its size has held still between two looks (a file still being
copied waits), until the session is ended or the task cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.capture_folder import (
    WATCH_POLL_S,
    FolderSettings,
    images_of,
    in_name_order,
    settled,
)
from app.domain.errors import DuplicateImage, Invalid, NearDuplicate
from app.domain.import_rules import inside_roots
from app.domain.models import SessionStatus
from app.domain.stores import Stores
from app.repositories.importer import list_folder
from app.services.imports import server_folder
from app.tasks.capture_session import Tally, end_session, ending_session_on_exit
from app.tasks.context import TaskContext

KIND = "capture_folder"
CHUNK_FILES = 50  # files per chunk: the session's counts, progress and auto-label between them
COUNTS = ("frames_seen", "kept", "skipped_near_duplicate", "skipped_duplicate", "refused")
_CANCEL_CHECKS = 4  # looks at the cancel flag while waiting for the next look at the folder


@dataclass
class Taker:
    """Takes files of the folder into the session, remembering the last kept image's hash."""

    ctx: TaskContext
    stores: Stores
    dataset: str
    session_id: int
    folder: Path
    settings: FolderSettings
    tally: Tally
    last_kept: str | None = None
    reported: set[str] = field(default_factory=set)  # links out already counted

    async def look(self) -> dict[str, int]:
        """The folder's image files now (relative path → size); its links out of the import
        roots are counted refused and logged, once each."""
        listing = await asyncio.to_thread(list_folder, self.folder, self.ctx.import_roots)
        images, outside = images_of(listing.sizes, listing.outside)
        await self._refuse_outside(outside)
        return images

    async def _refuse_outside(self, outside: list[str]) -> None:
        new = [rel for rel in outside if rel not in self.reported]
        if not new:
            return
        self.reported.update(new)
        for rel in new:
            await self.stores.session.record(
                self.session_id,
                log=f"Refused {rel}: a symbolic link that leads outside the import roots.",
            )
        await self.tally.add(self.stores, {"frames_seen": len(new), "refused": len(new)})

    async def take(self, names: list[str]) -> None:
        """Store ``names`` a chunk at a time; raises ``Cancelled`` between files."""
        for first in range(0, len(names), CHUNK_FILES):
            step = dict.fromkeys(COUNTS, 0)
            try:
                for rel in names[first : first + CHUNK_FILES]:
                    step["frames_seen"] += 1
                    step[await self._take_one(rel)] += 1
                    if self.ctx.cancel_requested:
                        break
            finally:
                await self.tally.add(self.stores, step)
            self.ctx.check_cancelled()

    async def _take_one(self, rel: str) -> str:
        """Store one file; which count it goes to."""
        path = (self.folder / rel).resolve()
        if not inside_roots(path, self.ctx.import_roots):  # a link made since the listing
            await self._log(f"Refused {rel}: a symbolic link that leads outside the import roots.")
            return "refused"
        bits = self.settings.near_duplicate_bits
        near = (self.last_kept, bits) if self.last_kept is not None and bits else None
        try:
            image = await self.stores.image.save_file(
                self.dataset,
                self.settings.split,
                rel,
                path,
                session_id=self.session_id,
                skip_within=near,
            )
        except NearDuplicate:
            return "skipped_near_duplicate"
        except DuplicateImage:
            return "skipped_duplicate"
        except Invalid as error:
            await self._log(f"Refused {rel}: {error}")
            return "refused"
        except OSError as error:
            await self._log(f"Refused {rel}: it cannot be read ({error.strerror or error}).")
            return "refused"
        self.last_kept = image.phash
        return "kept"

    async def _log(self, line: str) -> None:
        await self.stores.session.record(self.session_id, log=line)

    async def session_ended(self) -> bool:
        session = await self.stores.session.get(self.session_id)
        return session.status != SessionStatus.IN_PROGRESS


async def capture_folder(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Take the images of the task's folder into its session (params ``session``,
    ``settings``); returns the session's counts."""
    params = ctx.task.params
    session_id = int(params["session"])
    dataset = ctx.task.dataset
    if dataset is None:
        raise Invalid("The capture task names no project.")
    tally = Tally(session_id, dict.fromkeys(COUNTS, 0))
    stopped = ""

    def cancelled() -> str:
        return (
            f"Cancelled after {tally['frames_seen']} files; the {tally['kept']} kept images stay."
        )

    async with ending_session_on_exit(stores, session_id, cancelled):
        settings = FolderSettings.from_dict(dict(params.get("settings") or {}))
        roots = ctx.import_roots
        folder = await asyncio.to_thread(server_folder, settings.folder, roots)
        taker = Taker(ctx, stores, dataset, session_id, folder, settings, tally)
        names = in_name_order(await taker.look())
        await stores.session.record(
            session_id,
            log=f"Reading {folder}: {len(names)} image files; {settings.describe()}.",
        )
        await ctx.progress(0.0, f"0 of {len(names)} files")
        for first in range(0, len(names), CHUNK_FILES):
            if await taker.session_ended():
                stopped = " The session was ended before the folder was read to the end."
                break
            await taker.take(names[first : first + CHUNK_FILES])
            done = min(first + CHUNK_FILES, len(names))
            await ctx.progress(
                min(done / len(names), 0.99), f"{done} of {len(names)} files: {tally['kept']} kept"
            )
        if settings.watch and not stopped:
            await _watch(ctx, taker, set(names))
            stopped = " Stopped watching: the session was ended."
    await end_session(
        stores,
        session_id,
        f"Done: {tally['frames_seen']} files seen, {tally['kept']} kept, "
        f"{tally['skipped_near_duplicate']} skipped as near-duplicates, "
        f"{tally['skipped_duplicate']} already in the project, {tally['refused']} refused."
        + stopped,
        SessionStatus.COMPLETED,
    )
    return {"session": session_id, **tally.counts}


async def _watch(ctx: TaskContext, taker: Taker, seen: set[str]) -> None:
    """Look at the folder every ``WATCH_POLL_S`` seconds and take the files not seen before
    once their size holds still, until the session is ended (or a cancel raises)."""
    await taker.stores.session.record(
        taker.session_id, log=f"Watching {taker.folder} for new files every {WATCH_POLL_S:g} s."
    )
    before: dict[str, int] = {}
    while not await taker.session_ended():
        for _ in range(_CANCEL_CHECKS):
            await asyncio.sleep(WATCH_POLL_S / _CANCEL_CHECKS)
            await ctx.progress(0.99, f"watching the folder: {taker.tally['kept']} kept")
        new = {rel: size for rel, size in (await taker.look()).items() if rel not in seen}
        ready = settled(new, before)
        before = {rel: size for rel, size in new.items() if rel not in ready}
        if ready and not await taker.session_ended():
            seen.update(ready)
            await taker.take(ready)
