"""``ImageStore`` on SQLAlchemy: rows index the bytes under ``projects/<name>/images/<split>/``."""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

import numpy as np
from sqlalchemy import and_, exists, func, or_, select

from app.db.models import CaptureSession, Image, Label, Project
from app.db.uow import Database
from app.domain.errors import DuplicateImage, Invalid, NotFound
from app.domain.models import ImageFilter, ImageInfo, ImageState, LabelStatus
from app.domain.splits import draw_split
from app.domain.stores import ImageStore
from app.domain.validation import safe_filename, validate_split
from app.repositories.common import (
    has_accepted_labels,
    image_info,
    image_row,
    now,
    project_by_name,
    split_counts,
    stem_key,
)
from app.repositories.files import (
    Layout,
    Staged,
    TooLarge,
    move_file,
    place_new,
    quarantine,
    replace_atomically,
    stage,
    unlink_quietly,
)
from app.repositories.imaging import (
    Decoded,
    decode_file,
    encode_frame,
    make_thumbnail,
    read_image,
)
from app.repositories.mirror import schedule_label_mirror

MAX_SUFFIX_TRIES = 10_000
SUFFIX_CHUNK = 50


@dataclass(frozen=True)
class PreparedImage:
    """Bytes checked and staged in ``tmp/``, not yet an image of any project."""

    name: str
    staged: Staged
    decoded: Decoded


def discard(prepared: PreparedImage) -> None:
    """Remove the staged bytes if ``register`` did not take them."""
    unlink_quietly(prepared.staged.path)


class SqlImageStore(ImageStore):
    def __init__(
        self, db: Database, layout: Layout, *, max_upload_bytes: int, max_image_pixels: int
    ) -> None:
        self._db = db
        self._layout = layout
        self._max_bytes = max_upload_bytes
        self._max_pixels = max_image_pixels

    async def save(
        self,
        dataset: str,
        split: str,
        filename: str,
        image: np.ndarray,
        *,
        session_id: int | None = None,
    ) -> ImageInfo:
        validate_split(split)
        name = safe_filename(filename)
        data = await asyncio.to_thread(encode_frame, image, Path(name).suffix)
        prepared = await self.prepare(name, data)
        try:
            return await self.register(dataset, split, prepared, session_id=session_id)
        finally:
            discard(prepared)

    async def save_file(
        self,
        dataset: str,
        split: str,
        filename: str,
        source: Path | IO[bytes],
        *,
        session_id: int | None = None,
    ) -> ImageInfo:
        validate_split(split)
        prepared = await self.prepare(filename, source)
        try:
            return await self.register(dataset, split, prepared, session_id=session_id)
        finally:
            discard(prepared)

    async def prepare(self, filename: str, source: Path | IO[bytes] | bytes) -> PreparedImage:
        """Stage, hash and check the bytes, with no transaction open (the slow part of a save).

        The caller ``register``s the result, then ``discard``s it either way.
        """
        name = safe_filename(filename)
        try:
            staged = await asyncio.to_thread(stage, self._layout, source, max_bytes=self._max_bytes)
        except TooLarge:
            raise Invalid(
                f"The file is larger than the upload limit of {self._max_bytes / 2**20:.0f} MB."
            ) from None
        try:
            decoded = await asyncio.to_thread(decode_file, staged.path, max_pixels=self._max_pixels)
        except BaseException:
            unlink_quietly(staged.path)
            raise
        return PreparedImage(name, staged, decoded)

    async def register(
        self,
        dataset: str,
        split: str,
        prepared: PreparedImage,
        *,
        session_id: int | None = None,
    ) -> ImageInfo:
        """Put prepared bytes in place and insert their row: quick, so it fits in a unit."""
        validate_split(split)
        name, staged, decoded = prepared.name, prepared.staged, prepared.decoded
        async with self._db.unit() as uow:
            session = uow.session
            project = await project_by_name(session, dataset)
            if session_id is not None:
                owner = await session.scalar(
                    select(CaptureSession.project_id).where(CaptureSession.id == session_id)
                )
                if owner != project.id:
                    raise NotFound(
                        f"There is no capture session {session_id} in project {project.name!r}."
                    )
            existing = await session.scalar(
                select(Image.filename).where(
                    Image.project_id == project.id, Image.sha256 == staged.sha256
                )
            )
            if existing is not None:
                raise DuplicateImage(
                    f"The same image is already in project {project.name!r} as {existing!r}.",
                    existing_filename=existing,
                )
            final_name = await self._free_name(session, project, split, name)
            final = self._layout.image(project.name, split, final_name)
            place_new(staged.path, final)
            uow.on_rollback(lambda: unlink_quietly(final))
            stat = final.stat()
            row = Image(
                project_id=project.id,
                split=split,
                split_pinned=False,
                filename=final_name,
                stem_key=stem_key(final_name),
                sha256=staged.sha256,
                phash=decoded.phash,
                width=decoded.width,
                height=decoded.height,
                size_bytes=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                missing=False,
                no_objects=False,
                version=0,
                session_id=session_id,
                created_at=now(),
            )
            session.add(row)
            project.modified_at = now()
            await uow.commit()
            return image_info(self._layout, project.name, row, has_labels=False)

    async def _free_name(self, session, project: Project, split: str, name: str) -> str:  # type: ignore[no-untyped-def]
        """``name``, or ``stem-N.ext`` with the smallest N whose stem is free (ignoring case) and
        whose path holds no stray file."""
        stem, suffix = Path(name).stem, Path(name).suffix
        # Ask for the candidates a chunk at a time, by the unique stem index.
        for first in range(0, MAX_SUFFIX_TRIES, SUFFIX_CHUNK):
            candidates = [
                name if n == 0 else f"{stem}-{n}{suffix}"
                for n in range(first, first + SUFFIX_CHUNK)
            ]
            taken = set(
                await session.scalars(
                    select(Image.stem_key).where(
                        Image.project_id == project.id,
                        Image.stem_key.in_([stem_key(c) for c in candidates]),
                    )
                )
            )
            for candidate in candidates:
                if stem_key(candidate) in taken:
                    continue
                if self._layout.image(project.name, split, candidate).exists():
                    continue  # a stray file no row owns: never overwritten
                return candidate
        raise Invalid(f"Too many images are named like {name!r}.")

    async def load(self, dataset: str, split: str, filename: str) -> np.ndarray:
        async with self._db.reader() as session:
            project, row = await image_row(session, dataset, filename, split)
        path = self._layout.image(project.name, row.split, row.filename)
        image = await asyncio.to_thread(read_image, path) if path.exists() else None
        if image is None:
            raise NotFound(f"The file of image {filename!r} is missing or unreadable.")
        return image

    async def delete(self, dataset: str, split: str, filename: str) -> bool:
        async with self._db.unit() as uow:
            try:
                project, row = await image_row(uow.session, dataset, filename, split)
            except NotFound:
                return False
            paths = [
                self._layout.image(project.name, row.split, row.filename),
                self._layout.label(project.name, row.split, row.filename),
            ]
            # Thumbnails are keyed by content; no other image of the project shares the sha256.
            paths.append(self._layout.thumb(project.name, row.sha256))
            await uow.session.delete(row)
            project.modified_at = now()
            for path in paths:
                uow.after_commit(partial(unlink_quietly, path))
            await uow.commit()
        return True

    async def move(self, dataset: str, filename: str, from_split: str, to_split: str) -> None:
        validate_split(from_split)
        validate_split(to_split)
        async with self._db.unit() as uow:
            project, row = await image_row(uow.session, dataset, filename, from_split)
            await self._move_row(uow, project, row, to_split)
            await uow.commit()

    async def _move_row(self, uow, project: Project, row: Image, to_split: str) -> None:  # type: ignore[no-untyped-def]
        from_split = row.split
        row.split_pinned = True
        if from_split == to_split:
            return
        row.split = to_split
        src = self._layout.image(project.name, from_split, row.filename)
        dst = self._layout.image(project.name, to_split, row.filename)
        if dst.exists():
            # A stray file no row owns sits where the image goes: keep it, out of the way.
            quarantine(self._layout, dst, f"in the way of moving {row.filename} to {to_split}")
        old_label = self._layout.label(project.name, from_split, row.filename)
        uow.after_commit(lambda: move_file(src, dst))
        uow.after_commit(lambda: unlink_quietly(old_label))
        schedule_label_mirror(uow, self._layout, row.id)

    async def list(
        self,
        dataset: str,
        split: str | None = None,
        *,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[ImageInfo]:
        if split is not None:
            validate_split(split)
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            query = (
                select(Image, has_accepted_labels().label("labelled"))
                .where(Image.project_id == project.id)
                .order_by(Image.id)
            )
            if split is not None:
                query = query.where(Image.split == split)
            if after_id is not None:
                query = query.where(Image.id > after_id)
            if limit is not None:
                query = query.limit(limit)
            rows = (await session.execute(query)).all()
        return [
            image_info(self._layout, project.name, row, bool(labelled) or row.no_objects)
            for row, labelled in rows
        ]

    async def get(self, dataset: str, filename: str) -> ImageInfo:
        async with self._db.reader() as session:
            project, row = await image_row(session, dataset, filename)
            labelled = await session.scalar(select(has_accepted_labels()).where(Image.id == row.id))
        return image_info(self._layout, project.name, row, bool(labelled) or row.no_objects)

    async def exists(self, dataset: str, split: str, filename: str) -> bool:
        async with self._db.reader() as session:
            try:
                await image_row(session, dataset, filename, split)
            except NotFound:
                return False
        return True

    # --- the grid and bulk actions -------------------------------------------------------------

    def _filtered(self, project: Project, filters: ImageFilter | None):  # type: ignore[no-untyped-def]
        """The WHERE clauses of a grid filter (every part combines with AND)."""
        clauses = [Image.project_id == project.id]
        if filters is None:
            return clauses
        if filters.split is not None:
            clauses.append(Image.split == validate_split(filters.split))
        accepted = has_accepted_labels()
        if filters.state == ImageState.LABELLED:
            clauses.append(or_(accepted, Image.no_objects))
        elif filters.state == ImageState.UNLABELLED:
            clauses.append(and_(~accepted, ~Image.no_objects))
        elif filters.state == ImageState.NO_OBJECTS:
            clauses.append(Image.no_objects.is_(True))
        elif filters.state == ImageState.SUGGESTIONS:
            clauses.append(
                exists().where(Label.image_id == Image.id, Label.status == LabelStatus.PENDING)
            )
        elif filters.state == ImageState.MISSING:
            clauses.append(Image.missing.is_(True))
        if filters.class_id is not None:
            clauses.append(
                exists().where(
                    Label.image_id == Image.id,
                    Label.class_id == filters.class_id,
                    Label.status == LabelStatus.ACCEPTED,
                )
            )
        if filters.name:
            clauses.append(Image.filename.icontains(filters.name, autoescape=True))
        return clauses

    async def search(
        self,
        dataset: str,
        filters: ImageFilter | None = None,
        *,
        after_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[ImageInfo]:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            query = (
                select(Image, has_accepted_labels().label("labelled"))
                .where(*self._filtered(project, filters))
                .order_by(Image.id)
                .limit(limit)
            )
            if after_id is not None:
                query = query.where(Image.id > after_id)
            rows = (await session.execute(query)).all()
        return [
            image_info(self._layout, project.name, row, bool(labelled) or row.no_objects)
            for row, labelled in rows
        ]

    async def count(self, dataset: str, filters: ImageFilter | None = None) -> int:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            total = await session.scalar(
                select(func.count()).select_from(Image).where(*self._filtered(project, filters))
            )
        return int(total or 0)

    async def thumbnail(self, dataset: str, filename: str) -> Path:
        async with self._db.reader() as session:
            project, row = await image_row(session, dataset, filename)
        thumb = self._layout.thumb(project.name, row.sha256)
        if not thumb.exists():
            source = self._layout.image(project.name, row.split, row.filename)
            if not source.exists():
                raise NotFound(f"The file of image {filename!r} is missing.")
            data = await asyncio.to_thread(make_thumbnail, source)
            staged = await asyncio.to_thread(stage, self._layout, data)
            try:
                # Content-addressed: whoever wrote it first wrote the same bytes.
                await asyncio.to_thread(replace_atomically, staged.path, thumb)
            finally:
                unlink_quietly(staged.path)
        return thumb

    async def move_many(self, dataset: str, filenames: builtins.list[str], to_split: str) -> int:
        validate_split(to_split)
        moved = 0
        async with self._db.unit() as uow:
            for filename in filenames:
                project, row = await image_row(uow.session, dataset, filename)
                moved += row.split != to_split
                await self._move_row(uow, project, row, to_split)
            await uow.commit()
        return moved

    async def delete_many(self, dataset: str, filenames: builtins.list[str]) -> int:
        async with self._db.unit() as uow:
            for filename in filenames:
                await image_row(uow.session, dataset, filename)  # NotFound before any delete
            for filename in filenames:
                await self.delete(dataset, (await self.get(dataset, filename)).split, filename)
            await uow.commit()
        return len(filenames)

    async def rebalance(self, dataset: str) -> dict[str, int]:
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, dataset)
            ratios = {
                "train": project.train_ratio,
                "val": project.val_ratio,
                "test": project.test_ratio,
            }
            rows = await uow.session.scalars(
                select(Image).where(Image.project_id == project.id, ~Image.split_pinned)
            )
            for row in rows:
                wanted = draw_split(row.sha256, ratios)
                if wanted != row.split:
                    await self._move_row(uow, project, row, wanted)
                    row.split_pinned = False  # a redraw is not a manual move
            await uow.commit()
        counts = await self.count_by_split(dataset)
        return counts

    async def count_by_split(self, dataset: str) -> dict[str, int]:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            return (await split_counts(session, [project.id]))[project.id]
