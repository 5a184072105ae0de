"""``VersionStore`` on SQLAlchemy: one ``dataset_version`` row per version, its files under
``<data dir>/versions/<name>/``.

Write protocol (DESIGN.md): the build task writes into ``versions/.building-<name>/`` (same
file system, so the final step is one rename); ``finish`` renames it into place, fsyncs the
parent, and only then commits the row as ready. A crash before that commit leaves a building
row (its task's retry calls ``building_folder`` again, which removes what the crash left: the
half-built folder and a folder renamed into place whose row never said ready). Deleting
commits first and removes the folder after (renamed into ``tmp/`` first, so a crash never
leaves half of it under its name). Reconcile and sync-from-disk look at ``projects/`` only:
``versions/`` is never taken for stray files.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db.models import DatasetVersion, Image, Label
from app.db.uow import Database
from app.domain.box_geometry import YoloBox
from app.domain.errors import AlreadyExists, Conflict, NotFound
from app.domain.models import LabelStatus
from app.domain.stores import VersionStore
from app.domain.versions import (
    BUILDING,
    FAILED,
    READY,
    ProjectSources,
    SourceImage,
    VersionInfo,
    validate_version_name,
)
from app.repositories.common import classes_of, now, project_by_name
from app.repositories.files import Layout, fsync_dir, remove_tree

BUILDING_PREFIX = ".building-"
SOURCE_BATCH = 2000  # images read per query


def versions_root(data_dir: Path) -> Path:
    """Where the versions' folders live."""
    return data_dir / "versions"


class SqlVersionStore(VersionStore):
    def __init__(self, db: Database, layout: Layout) -> None:
        self._db = db
        self._layout = layout
        self._root = versions_root(layout.data_dir)

    def _final(self, folder: str) -> Path:
        return self._root / folder

    def _building(self, folder: str) -> Path:
        return self._root / f"{BUILDING_PREFIX}{folder}"

    def _info(self, row: DatasetVersion) -> VersionInfo:
        return VersionInfo(
            name=row.name,
            path=self._final(row.folder),
            recipe=dict(row.recipe or {}),
            sources=dict(row.sources or {}),
            classes=list(row.classes or []),
            counts=dict(row.counts or {}),
            status=row.status,
            created_at=row.created_at,
            task_id=row.task_id,
            error=row.error,
            ready_at=row.ready_at,
            id=row.id,
        )

    async def _row(self, session: Any, name: str) -> DatasetVersion | None:
        row: DatasetVersion | None = await session.scalar(
            select(DatasetVersion).where(DatasetVersion.name_key == name.casefold())
        )
        return row

    async def create(
        self,
        name: str,
        recipe: dict[str, Any],
        sources: dict[str, Any],
        *,
        task_id: int | None = None,
    ) -> VersionInfo:
        validate_version_name(name)
        async with self._db.unit() as uow:
            if await self._row(uow.session, name) is not None:
                raise AlreadyExists(f"A version named {name!r} already exists.")
            if await asyncio.to_thread(self._final(name).exists):
                raise AlreadyExists(
                    f"A folder for version {name!r} already lies in storage "
                    f"({self._final(name)}): remove it or choose another name."
                )
            row = DatasetVersion(
                name=name,
                name_key=name.casefold(),
                folder=name,
                recipe=dict(recipe),
                sources=dict(sources),
                classes=[],
                counts={},
                status=BUILDING,
                task_id=task_id,
                created_at=now(),
            )
            uow.session.add(row)
            try:
                await uow.commit()
            except IntegrityError:
                raise AlreadyExists(f"A version named {name!r} already exists.") from None
            return self._info(row)

    async def get(self, name: str) -> VersionInfo | None:
        async with self._db.reader() as session:
            row = await self._row(session, name)
            return self._info(row) if row is not None else None

    async def list(self) -> builtins.list[VersionInfo]:
        async with self._db.reader() as session:
            rows = await session.scalars(
                select(DatasetVersion).order_by(
                    DatasetVersion.created_at.desc(), DatasetVersion.id.desc()
                )
            )
            return [self._info(row) for row in rows]

    async def building_folder(self, name: str) -> Path:
        found = await self.get(name)
        if found is None:
            raise NotFound(f"There is no version named {name!r}.")
        if found.status == READY:
            raise Conflict(f"Version {found.name!r} is built already.")
        folder = found.path.name
        await asyncio.to_thread(self._clear, [self._building(folder), self._final(folder)])
        return self._building(folder)

    def _clear(self, folders: builtins.list[Path]) -> None:
        for folder in folders:
            if folder.exists():
                remove_tree(self._layout, folder)

    async def finish(
        self, name: str, classes: builtins.list[str], counts: dict[str, Any]
    ) -> VersionInfo:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            if row is None:
                raise NotFound(f"There is no version named {name!r}.")
            if row.status != BUILDING:
                raise Conflict(f"Version {row.name!r} is {row.status}, not building.")
            built, final = self._building(row.folder), self._final(row.folder)
            await asyncio.to_thread(_put_in_place, built, final)
            uow.on_rollback(lambda: _put_back(final, built))
            row.classes = builtins.list(classes)
            row.counts = dict(counts)
            row.status = READY
            row.error = None
            row.ready_at = now()
            await uow.commit()
            return self._info(row)

    async def fail(self, name: str, error: str | None) -> None:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            if row is None:
                return
            if row.status == READY:
                raise Conflict(f"Version {row.name!r} is built: delete it instead.")
            folders = [self._building(row.folder), self._final(row.folder)]
            if error is None:
                await uow.session.delete(row)
            else:
                row.status = FAILED
                row.error = error
            uow.after_commit(lambda: self._clear(folders))
            await uow.commit()

    async def delete(self, name: str) -> bool:
        async with self._db.unit() as uow:
            row = await self._row(uow.session, name)
            if row is None:
                return False
            folders = [self._final(row.folder), self._building(row.folder)]
            await uow.session.delete(row)
            uow.after_commit(lambda: self._clear(folders))
            await uow.commit()
            return True

    async def sources(self, project: str) -> ProjectSources:
        async with self._db.reader() as session:
            found = await project_by_name(session, project)
            classes = await classes_of(session, found.id)
        position = {c.id: c.position for c in classes}
        images: builtins.list[SourceImage] = []
        left_out = 0
        after = 0
        while True:
            async with self._db.reader() as session:
                rows = builtins.list(
                    await session.scalars(
                        select(Image)
                        .where(Image.project_id == found.id, Image.id > after)
                        .order_by(Image.id)
                        .limit(SOURCE_BATCH)
                    )
                )
                if not rows:
                    break
                boxes: dict[int, builtins.list[YoloBox]] = {}
                labels = await session.execute(
                    select(Label.image_id, Label.class_id, Label.x, Label.y, Label.w, Label.h)
                    .where(
                        Label.image_id.in_([r.id for r in rows]),
                        Label.status == LabelStatus.ACCEPTED,
                    )
                    .order_by(Label.image_id, Label.id)
                )
                for image_id, class_id, x, y, w, h in labels:
                    if class_id not in position:
                        continue  # a class added after the classes were read: not in the mapping
                    boxes.setdefault(image_id, []).append(YoloBox(position[class_id], x, y, w, h))
            for row in rows:
                kept = boxes.get(row.id, [])
                if row.missing or not (kept or row.no_objects):
                    left_out += 1
                    continue
                path = self._layout.image(found.name, row.split, row.filename)
                images.append(
                    SourceImage(
                        project=found.name,
                        stem=Path(row.filename).stem,
                        suffix=Path(row.filename).suffix,
                        path=path,
                        split=row.split,
                        sha256=row.sha256,
                        boxes=kept,
                    )
                )
            after = rows[-1].id
        return ProjectSources(found.name, [c.name for c in classes], images, left_out)


def _put_in_place(built: Path, final: Path) -> None:
    if not built.is_dir():
        raise NotFound(f"The built version folder {built} is gone.")
    if final.exists():
        shutil.rmtree(final)  # a crash after an earlier rename, before its commit
    os.rename(built, final)
    fsync_dir(final.parent)


def _put_back(final: Path, built: Path) -> None:
    if final.is_dir() and not built.exists():
        os.rename(final, built)
