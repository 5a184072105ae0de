"""Reconcile on SQLAlchemy: scan each registered project's folder, read its rows, let the pure
plan (``app.domain.reconcile``) decide, carry the actions out.

One query per project plus one ``os.scandir`` per folder. Each project is reconciled inside one
write unit (``BEGIN IMMEDIATE`` on SQLite), so no other writer is between placing a file and
committing its row while the folder is compared with the rows: a reconcile run inside a live
server never mistakes an upload in flight for a stray file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select, update

from app.db.models import Image, Project, Task
from app.db.uow import Database, SqlUnitOfWork
from app.domain.errors import Invalid, NotFound, NotMissing
from app.domain.models import ImageInfo, TaskStatus
from app.domain.reconcile import (
    MIRROR_FILES,
    SPLITS,
    Action,
    Do,
    FileStat,
    Found,
    ImageRecord,
    Observed,
    ProjectFiles,
    ReconcileReport,
    Verdict,
    judge_image,
    plan_project,
)
from app.domain.stores import ProgressCallback
from app.repositories.common import project_by_name
from app.repositories.files import (
    CHUNK,
    Layout,
    TooLarge,
    move_file,
    place_new,
    quarantine,
    stage,
    unlink_quietly,
)
from app.repositories.images import SqlImageStore
from app.repositories.imaging import decode_file, phash_bands
from app.repositories.mirror import (
    label_texts,
    project_mirror_texts,
    schedule_label_mirrors,
    schedule_project_mirror,
)

log = logging.getLogger(__name__)

# Tasks that read a file uploaded into imports/ (a dataset zip; a video in imports/capture/).
UPLOAD_KINDS = ("import", "capture_video")

# A temp file younger than this may belong to an upload in flight in another process.
TEMP_GRACE_S = 3600.0
# Files under a project folder that are not ydc's but are expected there: Ultralytics writes
# ``labels/<split>.cache`` next to the label folders when it trains on the project.
IGNORED_SUFFIXES = (".cache",)
TOP_LEVEL = {"images", "labels", "thumbs", "models", *MIRROR_FILES}


class Reconciler:
    def __init__(self, db: Database, layout: Layout) -> None:
        self._db = db
        self._layout = layout

    async def run(
        self,
        *,
        project: str | None = None,
        dry_run: bool = False,
        deep: bool = False,
        exclusive: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ReconcileReport:
        with _collector_paused():
            return await self._run(project, dry_run, deep, exclusive, progress)

    async def _run(
        self,
        project: str | None,
        dry_run: bool,
        deep: bool,
        exclusive: bool,
        progress: ProgressCallback | None,
    ) -> ReconcileReport:
        started = time.perf_counter()
        report = ReconcileReport(dry_run=dry_run, deep=deep)
        async with self._db.reader() as session:
            query = select(Project.id, Project.name, Project.name_key).order_by(Project.name_key)
            projects = (await session.execute(query)).all()
        if project is not None:
            projects = [p for p in projects if p.name_key == project.casefold()]
            if not projects:
                raise NotFound(f"There is no project named {project!r}.")
        else:
            owned = {p.name_key for p in projects}
            await asyncio.to_thread(self._unknown_folders, owned, report)
        await asyncio.to_thread(self._stale_temps, report, dry_run, exclusive)
        if project is None:
            kept = await self._awaited_uploads()
            await asyncio.to_thread(self._stale_uploads, kept, report, dry_run, exclusive)
        for index, (project_id, name, _) in enumerate(projects):
            if progress is not None:
                await progress(index / max(len(projects), 1), f"checking {name}")
            report.images += await self._project(project_id, name, report, dry_run, deep)
            report.projects += 1
        report.seconds = time.perf_counter() - started
        if progress is not None:
            await progress(1.0, report.summary())
        return report

    # --- outside the projects ------------------------------------------------------------------

    def _unknown_folders(self, owned: set[str], report: ReconcileReport) -> None:
        if not self._layout.projects.is_dir():
            return
        with os.scandir(self._layout.projects) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.casefold() in owned:
                    continue
                path = self._layout.relative(Path(entry.path))
                if entry.is_dir(follow_symlinks=False):
                    report.add(
                        Found.UNKNOWN_FOLDER,
                        path,
                        "no project owns this folder; adopt it with sync-from-disk",
                    )
                else:
                    report.add(Found.UNEXPECTED_ENTRY, path, "ydc does not use this; left alone")

    def _stale_temps(self, report: ReconcileReport, dry_run: bool, exclusive: bool) -> None:
        """Temp files of writes that never finished: everything in ``tmp/`` and every ``.part``
        under ``exports/``; when other processes may be writing, only those older than
        ``TEMP_GRACE_S``."""
        cutoff = time.time() - (0.0 if exclusive else TEMP_GRACE_S)
        candidates: list[Path] = []
        if self._layout.tmp.is_dir():
            candidates.extend(Path(e.path) for e in os.scandir(self._layout.tmp))
        if self._layout.exports.is_dir():
            candidates.extend(self._layout.exports.rglob("*.part"))
        for path in sorted(candidates):
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            report.add(
                Found.TEMP_REMOVED,
                self._layout.relative(path),
                "left by a write that never finished",
            )
            if dry_run:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                unlink_quietly(path)

    async def _awaited_uploads(self) -> set[str]:
        """The uploads (dataset zips, capture videos) a task that has not ended will read."""
        async with self._db.reader() as session:
            params = await session.scalars(
                select(Task.params).where(
                    Task.kind.in_(UPLOAD_KINDS),
                    Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
                )
            )
            return {str(p.get("source")) for p in params if isinstance(p, dict)}

    def _stale_uploads(
        self, kept: set[str], report: ReconcileReport, dry_run: bool, exclusive: bool
    ) -> None:
        """Uploads no unfinished task reads (dataset zips in ``imports/``, capture videos in
        ``imports/capture/``): left by a task whose worker died for good (a live task removes
        its own)."""
        cutoff = time.time() - (0.0 if exclusive else TEMP_GRACE_S)
        for folder in (self._layout.imports, self._layout.imports / "capture"):
            if folder.is_dir():
                self._stale_in(folder, kept, report, dry_run, cutoff)

    def _stale_in(
        self, folder: Path, kept: set[str], report: ReconcileReport, dry_run: bool, cutoff: float
    ) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            if str(path) in kept or not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
            report.add(
                Found.TEMP_REMOVED,
                self._layout.relative(path),
                "an upload (a dataset zip, a video) no task will read",
            )
            if not dry_run:
                unlink_quietly(path)

    # --- one project ---------------------------------------------------------------------------

    async def _project(
        self, project_id: int, name: str, report: ReconcileReport, dry_run: bool, deep: bool
    ) -> int:
        folder = self._layout.project(name)
        async with self._db.unit() as uow:
            session = uow.session
            # The first statement takes the write lock: see the module's docstring.
            rows = (
                await session.execute(
                    select(
                        Image.id,
                        Image.split,
                        Image.filename,
                        Image.size_bytes,
                        Image.mtime_ns,
                        Image.missing,
                        Image.sha256,
                        Image.label_size,
                        Image.label_mtime_ns,
                    ).where(Image.project_id == project_id)
                )
            ).all()
            records = list(map(ImageRecord._make, rows))
            files = await asyncio.to_thread(scan_project, folder)
            actions = plan_project(records, files, deep=deep)
            applier = _Applier(uow, self._layout, name, folder, records, report, dry_run)
            await applier.apply(actions)
            await applier.check_project_mirror(project_id)
            if dry_run:
                await uow.rollback()
            else:
                await uow.commit()
        return len(records)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a reconcile runs: it holds a few hundred thousand
    small objects (a stat per file, a record per row) that form no cycles, and each
    collection they set off walks the whole heap, which measured a quarter of a 100,000-image
    reconcile. Reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def scan_project(folder: Path) -> ProjectFiles:
    """One ``os.scandir`` per folder ydc writes into (stat of each image and label file)."""
    files = ProjectFiles()
    if not folder.is_dir():
        return files
    for entry in _entries(folder):
        if entry.name not in TOP_LEVEL:
            files.unexpected.append(entry.name)
    for kind, table in (("images", files.images), ("labels", files.labels)):
        base = folder / kind
        for entry in _entries(base):
            if entry.name in SPLITS and entry.is_dir(follow_symlinks=False):
                table[entry.name] = _stats(Path(entry.path), files, f"{kind}/{entry.name}")
            elif not entry.name.endswith(IGNORED_SUFFIXES):
                files.unexpected.append(f"{kind}/{entry.name}")
    for entry in _entries(folder / "thumbs"):
        if entry.is_file(follow_symlinks=False):
            files.thumbs.add(entry.name)
    return files


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _stats(folder: Path, files: ProjectFiles, relative: str) -> dict[str, FileStat]:
    stats: dict[str, FileStat] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    stats[entry.name] = FileStat(stat.st_size, stat.st_mtime_ns)
                else:
                    files.unexpected.append(f"{relative}/{entry.name}")
    except (FileNotFoundError, NotADirectoryError):
        pass
    return stats


class _Applier:
    """Carries one project's actions out inside its unit (or, dry, only reports them)."""

    def __init__(
        self,
        uow: SqlUnitOfWork,
        layout: Layout,
        name: str,
        folder: Path,
        records: list[ImageRecord],
        report: ReconcileReport,
        dry_run: bool,
    ) -> None:
        self.uow = uow
        self.layout = layout
        self.name = name
        self.folder = folder
        self.records = {record.id: record for record in records}
        self.report = report
        self.dry_run = dry_run
        self.rewrite: list[int] = []

    def _found(self, kind: Found, path: str, detail: str) -> None:
        self.report.add(kind, f"projects/{self.name}/{path}", detail, self.name)

    async def apply(self, actions: list[Action]) -> None:
        by_kind: dict[Do, list[Action]] = {do: [] for do in Do}
        for action in actions:
            by_kind[action.do].append(action)
        await asyncio.to_thread(self._file_actions, by_kind)
        missing = [a.image_id for a in by_kind[Do.MARK_MISSING] if a.image_id is not None]
        for action in by_kind[Do.MARK_MISSING]:
            self._found(Found.MISSING_IMAGE, action.path, "the file is gone: marked missing")
        if missing and not self.dry_run:
            await self._set(missing, missing=True)
        await self._verify(by_kind[Do.VERIFY])
        await self._labels(by_kind[Do.CHECK_LABEL], by_kind[Do.WRITE_LABEL])

    def _file_actions(self, by_kind: dict[Do, list[Action]]) -> None:
        """Moves, quarantines and deletions (in a thread)."""
        for action in by_kind[Do.MOVE]:
            assert action.target is not None
            self._found(Found.MOVED_BACK, action.path, f"{action.reason}: moved to {action.target}")
            if not self.dry_run:
                move_file(self.folder / action.path, self.folder / action.target)
        for action in by_kind[Do.QUARANTINE]:
            kind = Found.STRAY_LABEL if action.path.startswith("labels/") else Found.STRAY_IMAGE
            self._found(kind, action.path, f"{action.reason}: moved to lost+found")
            if not self.dry_run:
                quarantine(self.layout, self.folder / action.path, action.reason)
        for action in by_kind[Do.DELETE_THUMB]:
            self._found(Found.THUMB_DELETED, action.path, action.reason)
            if not self.dry_run:
                unlink_quietly(self.folder / action.path)
        for action in by_kind[Do.REPORT]:
            self._found(Found.UNEXPECTED_ENTRY, action.path, action.reason)

    async def _set(self, image_ids: Iterable[int], **values: Any) -> None:
        ids = list(image_ids)
        for start in range(0, len(ids), 500):
            await self.uow.session.execute(
                update(Image).where(Image.id.in_(ids[start : start + 500])).values(**values)
            )

    async def _verify(self, actions: list[Action]) -> None:
        """Hash the files whose size or mtime changed (all of them, deep) and judge them."""
        if not actions:
            return
        session = self.uow.session
        ids = [a.image_id for a in actions if a.image_id is not None]
        dims = {
            image_id: (width, height)
            for image_id, width, height in (
                await session.execute(
                    select(Image.id, Image.width, Image.height).where(Image.id.in_(ids))
                )
            ).all()
        }
        shas = {record.sha256 for record in self.records.values()}
        work = [(action, self.records[action.image_id]) for action in actions if action.image_id]
        paths = [self._current_path(action, record) for action, record in work]
        # One trip to a thread for all the hashing, not one per file (--deep hashes them all).
        observations = await asyncio.to_thread(
            lambda: [
                _observe(path, record.sha256) for path, (_, record) in zip(paths, work, strict=True)
            ]
        )
        for (action, record), path, observed in zip(work, paths, observations, strict=True):
            if observed is None:  # vanished meanwhile: the next reconcile marks it
                continue
            stat, seen = observed
            width, height = dims[record.id]
            verdict, why = judge_image(
                record.sha256, width, height, seen, sha_taken=seen.sha256 in shas
            )
            if verdict is Verdict.SAME:
                unchanged = FileStat(record.size, record.mtime_ns) == stat
                if record.missing:
                    self._found(
                        Found.FOUND_AGAIN, action.path, "the file is back: no longer missing"
                    )
                elif not unchanged:
                    self._found(Found.STAT_REFRESHED, action.path, "touched, same bytes")
                if not self.dry_run and (record.missing or not unchanged):
                    await self._set(
                        [record.id], missing=False, size_bytes=stat.size, mtime_ns=stat.mtime_ns
                    )
            elif verdict is Verdict.ADOPT:
                self._found(Found.IMAGE_CHANGED, action.path, why)
                if not self.dry_run:
                    await self._adopt(record, path, stat, seen)
            else:
                self._found(
                    Found.IMAGE_REFUSED, action.path, f"{why}: moved to lost+found, marked missing"
                )
                if not self.dry_run:
                    await asyncio.to_thread(quarantine, self.layout, path, why)
                    await self._set([record.id], missing=True)

    def _current_path(self, action: Action, record: ImageRecord) -> Path:
        """Where the file to verify lies: where its row says, unless a dry run left it in
        another split's folder."""
        path = self.folder / action.path
        if self.dry_run and not path.exists():
            for split in SPLITS:
                candidate = self.folder / "images" / split / record.filename
                if candidate.exists():
                    return candidate
        return path

    async def _adopt(self, record: ImageRecord, path: Path, stat: FileStat, seen: Observed) -> None:
        decoded = await asyncio.to_thread(decode_file, path, max_pixels=2**62)
        bands = dict(
            zip((f"phash_b{i}" for i in range(5)), phash_bands(decoded.phash), strict=True)
        )
        # The cached thumbnail shows the old picture.
        await asyncio.to_thread(unlink_quietly, self.layout.thumb(self.name, record.sha256))
        await self._set(
            [record.id],
            missing=False,
            sha256=seen.sha256,
            phash=decoded.phash,
            size_bytes=stat.size,
            mtime_ns=stat.mtime_ns,
            **bands,
        )

    async def _labels(self, check: list[Action], write: list[Action]) -> None:
        """Compare the mirrors whose stat changed with the rows; rewrite those that differ
        (keeping what was there in lost+found) and those that are gone."""
        for action in write:
            self._found(Found.LABEL_REWRITTEN, action.path, action.reason)
        rewrite = [a.image_id for a in write if a.image_id is not None]
        if check:
            session = self.uow.session
            ids = [a.image_id for a in check if a.image_id is not None]
            flags = dict(
                (
                    await session.execute(
                        select(Image.id, Image.no_objects).where(Image.id.in_(ids))
                    )
                ).all()
            )
            expected = await label_texts(session, flags)
            contents = await asyncio.to_thread(
                lambda: [_read_stat(self.folder / action.path) for action in check]
            )
            for action, current in zip(check, contents, strict=True):
                assert action.image_id is not None
                path = self.folder / action.path
                if current is None:
                    continue
                data, stat = current
                if data == expected.get(action.image_id):
                    if not self.report.deep or stat != FileStat(
                        self.records[action.image_id].label_size or 0,
                        self.records[action.image_id].label_mtime_ns or 0,
                    ):
                        self._found(Found.STAT_REFRESHED, action.path, "touched, same labels")
                        if not self.dry_run:
                            await self._set(
                                [action.image_id],
                                label_size=stat.size,
                                label_mtime_ns=stat.mtime_ns,
                            )
                    continue
                self._found(
                    Found.LABEL_REWRITTEN,
                    action.path,
                    "it differed from the database: rewritten (the old file kept in lost+found)",
                )
                rewrite.append(action.image_id)
                if not self.dry_run:
                    await asyncio.to_thread(
                        quarantine, self.layout, path, "label file differed from the database"
                    )
        if rewrite and not self.dry_run:
            schedule_label_mirrors(self.uow, self.layout, rewrite)

    async def check_project_mirror(self, project_id: int) -> None:
        """``data.yaml``, ``prompts.yaml`` and ``ydc.json`` rewritten where they differ."""
        texts = await project_mirror_texts(self.uow.session, project_id)
        differ = False
        for filename, text in texts.items():
            current = await asyncio.to_thread(_read_text, self.folder / filename)
            if current != text:
                differ = True
                what = "missing" if current is None else "differs from the database"
                self._found(Found.MIRROR_REWRITTEN, filename, f"{filename} {what}: rewritten")
        if differ and not self.dry_run:
            schedule_project_mirror(self.uow, self.layout, project_id)


def _observe(path: Path, expected_sha256: str) -> tuple[FileStat, Observed] | None:
    """Stat and hash a file; decode it for its upright size only when the bytes changed."""
    try:
        stat = path.stat()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    sha = digest.hexdigest()
    width = height = None
    if sha != expected_sha256:
        try:
            decoded = decode_file(path, max_pixels=2**62)
            width, height = decoded.width, decoded.height
        except Invalid:
            pass
    return FileStat(stat.st_size, stat.st_mtime_ns), Observed(sha, width, height)


def _read_stat(path: Path) -> tuple[bytes, FileStat] | None:
    try:
        data = path.read_bytes()
        stat = path.stat()
    except FileNotFoundError:
        return None
    return data, FileStat(stat.st_size, stat.st_mtime_ns)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


# --- a missing image found again ----------------------------------------------------------------


async def locate_missing(
    db: Database,
    layout: Layout,
    images: SqlImageStore,
    dataset: str,
    source: Path | IO[bytes] | bytes,
    *,
    max_bytes: int | None = None,
) -> ImageInfo:
    """Put the bytes of a missing image back where its row says, matched by sha256."""
    try:
        staged = await asyncio.to_thread(stage, layout, source, max_bytes=max_bytes)
    except TooLarge:
        raise Invalid("The file is larger than the upload limit.") from None
    try:
        async with db.unit() as uow:
            session = uow.session
            project = await project_by_name(session, dataset)
            row = await session.scalar(
                select(Image).where(Image.project_id == project.id, Image.sha256 == staged.sha256)
            )
            if row is None:
                missing = await session.scalar(
                    select(func.count()).where(Image.project_id == project.id, Image.missing)
                )
                raise NotFound(
                    f"No image of project {project.name!r} has these bytes "
                    f"({missing} images are missing; a file is matched by its exact contents)."
                )
            final = layout.image(project.name, row.split, row.filename)
            if not row.missing and final.exists():
                raise NotMissing(
                    f"Image {row.filename!r} is not missing: nothing to do.", filename=row.filename
                )
            if final.exists():
                # The row says missing but a file sits there: keep it, out of the way.
                await asyncio.to_thread(
                    quarantine, layout, final, f"in the way of locating {row.filename}"
                )
            await asyncio.to_thread(place_new, staged.path, final)
            uow.on_rollback(lambda: unlink_quietly(final))
            stat = final.stat()
            row.missing = False
            row.size_bytes = stat.st_size
            row.mtime_ns = stat.st_mtime_ns
            filename = row.filename
            await uow.commit()
    finally:
        unlink_quietly(staged.path)
    return await images.get(project.name, filename)
