"""``ImageStore`` on SQLAlchemy: rows index the bytes under ``projects/<name>/images/<split>/``.

Ingest is two steps so the write lock is held only briefly: ``prepare`` stages the bytes and
their thumbnail in ``tmp/`` (fsynced), hashes and decodes them, with no transaction open;
``register`` then, inside one unit, links both into place (never overwriting), inserts the row and
commits; a unit that rolls back unlinks exactly the files it linked. A new image without a named
split joins the split of its nearest near-duplicate in the project, or else takes the split its
sha256 draws.

``save_files`` does both steps for a batch: the files are prepared a few at a time (so only a
few are ever decoded at once), then one unit checks them all against the project and each other
with a fixed number of queries, links them in place, syncs each folder once and inserts the rows
together. The unit holds renames, never a file's bytes: those were copied and fsynced in
``prepare``.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import numpy as np
from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CaptureSession, Image, Label, Project, ProjectClass
from app.db.uow import Database
from app.domain.capture import is_near_duplicate
from app.domain.errors import DuplicateImage, Invalid, NearDuplicate, NotFound
from app.domain.models import SPLITS, ImageFilter, ImageInfo, ImageState, LabelStatus
from app.domain.splits import draw_split
from app.domain.stores import ImageStore, ProgressCallback
from app.domain.validation import safe_filename, validate_split
from app.repositories.common import (
    has_accepted_labels,
    id_window,
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
    fsync_dir,
    move_file,
    quarantine,
    replace_atomically,
    stage,
    unlink_quietly,
)
from app.repositories.imaging import (
    NEAR_DUPLICATE_DISTANCE,
    PHASH_BAND_BITS,
    Decoded,
    decode_file,
    encode_frame,
    hamming,
    make_thumbnail,
    near_duplicate_groups,
    phash_bands,
    read_image,
)
from app.repositories.mirror import schedule_label_mirror, schedule_label_mirrors

log = logging.getLogger(__name__)

MAX_SUFFIX_TRIES = 10_000
SUFFIX_CHUNK = 50
# Images a rebalance moves per unit: a unit writes their label files (a fsync each) before it
# commits, so this bounds how long it holds the write lock (about 0.1-0.2 s on this machine).
REBALANCE_CHUNK = 200
# ``save_files``: files registered per unit (the write lock covers one batch's links and
# inserts, a few queries in all), and files of one call being prepared at once (each holds
# its decoded pixels meanwhile; the thread pool bounds all calls together).
SAVE_BATCH = 100
PREPARE_AHEAD = 4
# A file of the batch being registered ranks after every stored image (ids stay below 2**63),
# as it would had the files before it been registered one by one.
BATCH_IDS = 2**63
BAND_COLUMNS = tuple(getattr(Image, f"phash_b{i}") for i in range(len(PHASH_BAND_BITS)))
T = TypeVar("T")


@dataclass(frozen=True)
class PreparedImage:
    """Bytes checked and staged in ``tmp/`` with their thumbnail, not yet an image of any
    project."""

    name: str
    staged: Staged
    decoded: Decoded
    thumb: Staged | None = None


def discard(prepared: PreparedImage) -> None:
    """Remove the staged files that ``register`` did not take."""
    unlink_quietly(prepared.staged.path)
    if prepared.thumb is not None:
        unlink_quietly(prepared.thumb.path)


@dataclass(frozen=True)
class _Plan:
    """Where ``register`` puts an image."""

    project_id: int
    project_name: str
    split: str
    filename: str
    final: Path


class Neighbour(NamedTuple):
    """An image a new one must be checked against: same bytes, same stem or a shared band."""

    id: int
    filename: str
    stem_key: str
    sha256: str
    phash: str | None
    split: str


def nearest_duplicate(candidates: Iterable[Neighbour], phash: str | None) -> str | None:
    """The split of the candidate nearest to ``phash`` within ``NEAR_DUPLICATE_DISTANCE``
    (the oldest on a tie), or ``None``."""
    if phash is None:
        return None
    best: tuple[int, int, str] | None = None
    for candidate in candidates:
        if candidate.phash is None:
            continue
        distance = hamming(phash, candidate.phash)
        if distance <= NEAR_DUPLICATE_DISTANCE and (
            best is None or (distance, candidate.id) < best[:2]
        ):
            best = (distance, candidate.id, candidate.split)
    return best[2] if best else None


class KnownImages:
    """The images a batch is checked against (the project's neighbours, then each file of the
    batch once planned), by sha256, stem and phash band."""

    def __init__(self, images: Iterable[Neighbour]) -> None:
        self.by_sha: dict[str, Neighbour] = {}
        self.stems: set[str] = set()
        self._bands: dict[tuple[int, int | None], builtins.list[Neighbour]] = defaultdict(
            builtins.list
        )
        for image in images:
            self.add(image)

    def add(self, image: Neighbour) -> None:
        self.by_sha.setdefault(image.sha256, image)
        self.stems.add(image.stem_key)
        if image.phash is not None:
            for key in enumerate(phash_bands(image.phash)):
                self._bands[key].append(image)

    def near(self, phash: str | None) -> builtins.list[Neighbour]:
        """The images sharing a band with ``phash`` (near-duplicate candidates)."""
        if phash is None:
            return []
        return [i for key in enumerate(phash_bands(phash)) for i in self._bands.get(key, [])]


def project_ratios(project: Project) -> dict[str, float]:
    return {"train": project.train_ratio, "val": project.val_ratio, "test": project.test_ratio}


def band_values(phash: str | None) -> dict[str, int | None]:
    """The row's band columns for ``phash``."""
    return {column.key: band for column, band in zip(BAND_COLUMNS, phash_bands(phash), strict=True)}


def rebalanced_splits(
    rows: Iterable[tuple[int, str, str | None, str, bool]], ratios: dict[str, float]
) -> dict[int, str]:
    """Where every unpinned image goes on a rebalance; rows are (id, sha256, phash, split,
    pinned).

    A lone image goes where its sha256 draws. A near-duplicate group moves as one: to the split
    of its first pinned member when it has one (a manual choice wins), else to the split its
    first image's sha256 draws (the image the others joined at ingest, so a rebalance with
    unchanged ratios moves nothing).
    """
    rows = builtins.list(rows)
    by_id = {row[0]: row for row in rows}
    wanted = {
        image_id: draw_split(sha, ratios) for image_id, sha, _, _, pinned in rows if not pinned
    }
    for group in near_duplicate_groups((row[0], row[2]) for row in rows):
        pinned = [i for i in group if by_id[i][4]]
        target = by_id[pinned[0]][3] if pinned else draw_split(by_id[group[0]][1], ratios)
        for image_id in group:
            if image_id in wanted:
                wanted[image_id] = target
    return wanted


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
        split: str | None,
        filename: str,
        image: np.ndarray,
        *,
        session_id: int | None = None,
    ) -> ImageInfo:
        """As the ABC says; ``split=None`` draws it (see ``register``)."""
        if split is not None:
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
        split: str | None,
        filename: str,
        source: Path | IO[bytes],
        *,
        session_id: int | None = None,
        skip_within: tuple[str, int] | None = None,
    ) -> ImageInfo:
        """As the ABC says; ``split=None`` draws it (see ``register``)."""
        if split is not None:
            validate_split(split)
        prepared = await self.prepare(filename, source)
        try:
            if skip_within is not None:
                near, bits = skip_within
                distance = hamming(prepared.decoded.phash, near)
                if is_near_duplicate(distance, bits):
                    raise NearDuplicate(
                        f"The image is within {distance} bits of the one it was compared with "
                        f"(at most {bits} are skipped).",
                        distance=distance,
                    )
            return await self.register(dataset, split, prepared, session_id=session_id)
        finally:
            discard(prepared)

    async def prepare(self, filename: str, source: Path | IO[bytes] | bytes) -> PreparedImage:
        """Stage, hash and check the bytes and stage their thumbnail, with no transaction open
        (the slow part of a save).

        The caller ``register``s the result, then ``discard``s it either way.
        """
        name = safe_filename(filename)
        # One hop to a worker thread for all of it: OpenCV and the fsyncs release the GIL.
        return await asyncio.to_thread(self._prepare, name, source)

    def _prepare(self, name: str, source: Path | IO[bytes] | bytes) -> PreparedImage:
        try:
            staged = stage(self._layout, source, max_bytes=self._max_bytes)
        except TooLarge:
            raise Invalid(
                f"The file is larger than the upload limit of {self._max_bytes / 2**20:.0f} MB."
            ) from None
        try:
            decoded = decode_file(staged.path, max_pixels=self._max_pixels, thumbnail=True)
            thumb = stage(self._layout, decoded.thumbnail)
        except BaseException:
            unlink_quietly(staged.path)
            raise
        # The thumbnail's bytes now live in its staged file; a zip import holds many of these.
        return PreparedImage(name, staged, replace(decoded, thumbnail=b""), thumb)

    async def save_files(
        self,
        dataset: str,
        split: str | None,
        files: builtins.list[tuple[str, Path | IO[bytes]]],
    ) -> builtins.list[ImageInfo | DuplicateImage | Invalid]:
        """As the ABC says: ``SAVE_BATCH`` files at a time are prepared (``PREPARE_AHEAD`` at
        once, with no transaction open), then registered in one unit."""
        if split is not None:
            validate_split(split)
        outcomes: builtins.list[ImageInfo | DuplicateImage | Invalid] = []
        for first in range(0, len(files), SAVE_BATCH):
            ready = await self._prepare_all(files[first : first + SAVE_BATCH])
            try:
                prepared = [r for r in ready if isinstance(r, PreparedImage)]
                registered = iter(await self._register_all(dataset, split, prepared))
                outcomes += [next(registered) if isinstance(r, PreparedImage) else r for r in ready]
            finally:
                for item in ready:
                    if isinstance(item, PreparedImage):
                        discard(item)
        return outcomes

    async def _prepare_all(
        self, files: builtins.list[tuple[str, Path | IO[bytes]]]
    ) -> builtins.list[PreparedImage | Invalid]:
        """``prepare`` every file, ``PREPARE_AHEAD`` at a time; an ``Invalid`` is that file's
        outcome. Any other error discards what was prepared and is raised."""
        ready: dict[int, PreparedImage | Invalid] = {}
        queue = iter(enumerate(files))

        async def work() -> None:
            for index, (name, source) in queue:
                try:
                    ready[index] = await self.prepare(name, source)
                except Invalid as error:
                    ready[index] = error

        workers = [work() for _ in range(min(PREPARE_AHEAD, len(files)))]
        failures = [
            e for e in await asyncio.gather(*workers, return_exceptions=True) if e is not None
        ]
        if failures:
            for item in ready.values():
                if isinstance(item, PreparedImage):
                    discard(item)
            raise failures[0]
        return [ready[index] for index in range(len(files))]

    async def register(
        self,
        dataset: str,
        split: str | None,
        prepared: PreparedImage,
        *,
        session_id: int | None = None,
    ) -> ImageInfo:
        """Put prepared bytes (and their thumbnail, at ``thumbs/<sha256>.jpg`` unless one is
        there) in place and insert their row: quick, so it fits in a unit.

        ``split=None``: the split of the nearest near-duplicate already in the project (phash
        within ``NEAR_DUPLICATE_DISTANCE`` bits; ties to the oldest), else the one the sha256
        draws against the project's ratios.
        """
        if split is not None:
            validate_split(split)
        (outcome,) = await self._register_all(dataset, split, [prepared], session_id=session_id)
        if isinstance(outcome, DuplicateImage):
            raise outcome
        return outcome

    async def register_many(
        self, dataset: str, split: str | None, prepared: builtins.list[PreparedImage]
    ) -> builtins.list[ImageInfo | DuplicateImage]:
        """``register`` many prepared files in one unit (the open one, if any): each outcome is
        the stored image or the ``DuplicateImage`` it repeats."""
        if split is not None:
            validate_split(split)
        return await self._register_all(dataset, split, prepared)

    async def _register_all(
        self,
        dataset: str,
        split: str | None,
        prepared: builtins.list[PreparedImage],
        *,
        session_id: int | None = None,
    ) -> builtins.list[ImageInfo | DuplicateImage]:
        """``register`` for many prepared files in one unit, with a fixed number of queries:
        each file is checked against the project and the files before it (``DuplicateImage``
        for the same bytes), then all are linked in place, inserted and committed together."""
        if not prepared:
            return []
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
            # One indexed query answers "same bytes?", "name free?" and, when the split is
            # drawn, "near-duplicates?" for the whole batch.
            known = KnownImages(
                await self._neighbours(session, project.id, prepared, split is None)
            )
            plans: builtins.list[_Plan | DuplicateImage] = []
            for index, item in enumerate(prepared):
                plan = await self._plan(session, project, split, item, known)
                if isinstance(plan, _Plan):
                    known.add(
                        Neighbour(
                            BATCH_IDS + index,
                            plan.filename,
                            stem_key(plan.filename),
                            item.staged.sha256,
                            item.decoded.phash,
                            plan.split,
                        )
                    )
                plans.append(plan)
            placing = [
                (p, item) for p, item in zip(plans, prepared, strict=True) if isinstance(p, _Plan)
            ]
            stored = await self._insert_all(uow, project, placing, session_id) if placing else []
            await uow.commit()
        infos = iter(stored)
        return [p if isinstance(p, DuplicateImage) else next(infos) for p in plans]

    async def _plan(  # type: ignore[no-untyped-def]
        self, session, project: Project, split: str | None, item: PreparedImage, known: KnownImages
    ) -> _Plan | DuplicateImage:
        """Where prepared bytes go: their split and a free name, or the image they duplicate."""
        sha = item.staged.sha256
        twin = known.by_sha.get(sha)
        if twin is not None:
            return DuplicateImage(
                f"The same image is already in project {project.name!r} as {twin.filename!r}.",
                existing_filename=twin.filename,
            )
        if split is None:
            phash = item.decoded.phash
            split = nearest_duplicate(known.near(phash), phash) or draw_split(
                sha, project_ratios(project)
            )
        name = item.name
        if stem_key(name) in known.stems or self._layout.image(project.name, split, name).exists():
            name = await self._free_name(session, project, split, name, known.stems)
        return _Plan(
            project.id, project.name, split, name, self._layout.image(project.name, split, name)
        )

    async def _insert_all(  # type: ignore[no-untyped-def]
        self,
        uow,
        project: Project,
        placing: builtins.list[tuple[_Plan, PreparedImage]],
        session_id: int | None,
    ) -> builtins.list[ImageInfo]:
        """Put the planned files in place (undone if the unit rolls back) and insert their rows
        with one multi-row INSERT (no ORM objects: a batch costs one statement)."""
        placed: builtins.list[Path] = []
        try:
            stats = await _in_thread_to_the_end(self._place_all, project.name, placing, placed)
        finally:
            for path in placed:
                uow.on_rollback(partial(unlink_quietly, path))
        created = now()
        rows = [
            _new_row(plan, item, stat, session_id, created)
            for (plan, item), stat in zip(placing, stats, strict=True)
        ]
        # RETURNING's order is SQLite's to choose (asking SQLAlchemy to sort it would insert
        # row by row): the ids are matched by sha256, unique in the project.
        inserted = await uow.session.execute(insert(Image).returning(Image.sha256, Image.id), rows)
        ids = {sha: image_id for sha, image_id in inserted}
        await uow.session.execute(
            update(Project).where(Project.id == project.id).values(modified_at=created)
        )
        return [
            _new_info(plan.final, project.name, row, ids[row["sha256"]])
            for (plan, _), row in zip(placing, rows, strict=True)
        ]

    def _place_all(
        self,
        project_name: str,
        placing: builtins.list[tuple[_Plan, PreparedImage]],
        placed: builtins.list[Path],
    ) -> builtins.list[os.stat_result]:
        """Link every image (and its thumbnail, unless one is there already: content-addressed,
        it holds the same picture) in place, never overwriting, then sync each folder once
        (not once per file); each path it linked goes into ``placed`` at once, for the caller
        to undo. Returns the images' stats."""
        folders: set[Path] = set()
        stats: builtins.list[os.stat_result] = []
        for plan, item in placing:
            _link_new(item.staged.path, plan.final, folders)
            placed.append(plan.final)
            stats.append(plan.final.stat())
            if item.thumb is None:
                continue
            thumb = self._layout.thumb(project_name, item.staged.sha256)
            if thumb.exists():
                continue
            try:
                _link_new(item.thumb.path, thumb, folders)
            except FileExistsError:
                continue
            placed.append(thumb)
        for folder in folders:
            fsync_dir(folder)
        return stats

    async def _neighbours(  # type: ignore[no-untyped-def]
        self, session, project_id: int, prepared: builtins.list[PreparedImage], near: bool
    ) -> builtins.list[Neighbour]:
        """The project's images with the bytes or the stem of a prepared file, or (``near``) a
        phash band in common with one (the near-duplicate candidates)."""
        terms = [
            Image.sha256.in_(sorted({p.staged.sha256 for p in prepared})),
            Image.stem_key.in_(sorted({stem_key(p.name) for p in prepared})),
        ]
        if near:
            bands = [phash_bands(p.decoded.phash) for p in prepared if p.decoded.phash]
            if bands:
                terms += [
                    col.in_(sorted({band for b in bands if (band := b[n]) is not None}))
                    for n, col in enumerate(BAND_COLUMNS)
                ]
        query = select(
            Image.id, Image.filename, Image.stem_key, Image.sha256, Image.phash, Image.split
        ).where(
            # One (project, column) term per column: SQLite then searches each term's index
            # (MULTI-INDEX OR); "project AND (a OR b …)" would scan the whole project instead.
            or_(*(and_(Image.project_id == project_id, term) for term in terms))
        )
        return [Neighbour(*row) for row in await session.execute(query)]

    async def _free_name(  # type: ignore[no-untyped-def]
        self, session, project: Project, split: str, name: str, reserved: set[str]
    ) -> str:
        """``name``, or ``stem-N.ext`` with the smallest N whose stem is free (ignoring case; not
        in the project nor in ``reserved``) and whose path holds no stray file."""
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
                if stem_key(candidate) in taken or stem_key(candidate) in reserved:
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

    async def _filtered(self, session: AsyncSession, project: Project, filters: ImageFilter | None):  # type: ignore[no-untyped-def]
        """The WHERE clauses of a grid filter (every part combines with AND).

        Raises ``Invalid`` for a split or state that does not exist, or a class that is not one
        of the project's own (a filter that can never match is a mistake, not an empty grid).
        """
        clauses = [Image.project_id == project.id]
        if filters is None:
            return clauses
        if filters.split is not None:
            clauses.append(Image.split == validate_split(filters.split))
        if filters.state is not None:
            clauses.append(_state_clause(_grid_state(filters.state)))
        if filters.class_id is not None:
            owner = await session.scalar(
                select(ProjectClass.project_id).where(ProjectClass.id == filters.class_id)
            )
            if owner != project.id:
                raise Invalid(
                    f"Project {project.name!r} has no class with id {filters.class_id} "
                    "(it may have been deleted): reload to see the current classes."
                )
            clauses.append(
                exists().where(
                    Label.image_id == Image.id,
                    Label.status == LabelStatus.ACCEPTED,
                    Label.class_id == filters.class_id,
                )
            )
        if filters.session_id is not None:
            clauses.append(Image.session_id == filters.session_id)
        if filters.name:
            # Stored names are NFC; SQLite's LIKE folds ASCII case only, so a part of the stem
            # is also looked up in the casefolded stem key (full Unicode case folding).
            needle = unicodedata.normalize("NFC", filters.name)
            clauses.append(
                or_(
                    Image.stem_key.contains(needle.casefold(), autoescape=True),
                    Image.filename.icontains(needle, autoescape=True),
                )
            )
        return clauses

    async def search(
        self,
        dataset: str,
        filters: ImageFilter | None = None,
        *,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[ImageInfo]:
        if limit < 1:
            raise Invalid(f"A page holds at least one image (limit was {limit}).")
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            # Plain columns, not ORM entities: a grid page needs no identity map.
            query = (
                select(*GRID_COLUMNS, has_accepted_labels().label("labelled"))
                .where(*await self._filtered(session, project, filters))
                .order_by(Image.id.desc() if before_id is not None else Image.id)
                .limit(limit)
            )
            query = query.where(
                *id_window(session, Image.id, after_id=after_id, before_id=before_id)
            )
            rows = (await session.execute(query)).all()
        # One folder per split, not five path joins per image.
        folders = {split: self._layout.image(project.name, split, "") for split in SPLITS}
        return [_grid_info(folders[row.split] / row.filename, project.name, row) for row in rows]

    async def count(self, dataset: str, filters: ImageFilter | None = None) -> int:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            total = await session.scalar(
                select(func.count())
                .select_from(Image)
                .where(*await self._filtered(session, project, filters))
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
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, dataset)
            # Every name is looked up before anything moves (or is quarantined out of the way).
            rows = await _rows_named(uow.session, project, filenames)
            moved = self._move_rows(uow, project, rows, to_split)
            await uow.commit()
        return moved

    def _move_rows(self, uow, project: Project, rows: builtins.list[Image], to_split: str) -> int:  # type: ignore[no-untyped-def]
        """``_move_row`` for many rows, with one batched rewrite of their label files (a hook
        per image costs two queries each while the write lock is held). Returns how many
        changed split; all are pinned."""
        moving: builtins.list[Image] = []
        for row in rows:
            row.split_pinned = True
            if row.split != to_split:
                moving.append(row)
        self._schedule_moves(uow, project.name, [(r.filename, r.split) for r in moving], to_split)
        for row in moving:
            row.split = to_split
        schedule_label_mirrors(uow, self._layout, [row.id for row in moving])
        return len(moving)

    def _schedule_moves(  # type: ignore[no-untyped-def]
        self, uow, project_name: str, moves: builtins.list[tuple[str, str]], to_split: str
    ) -> None:
        """After the commit, move these images' files (filename, from split) to ``to_split`` and
        remove their old label files (the caller schedules the new ones)."""
        pairs: builtins.list[tuple[Path, Path]] = []
        old_labels: builtins.list[Path] = []
        for filename, from_split in moves:
            dst = self._layout.image(project_name, to_split, filename)
            if dst.exists():
                # A stray file no row owns sits where the image goes: keep it, out of the way.
                quarantine(self._layout, dst, f"in the way of moving {filename} to {to_split}")
            pairs.append((self._layout.image(project_name, from_split, filename), dst))
            old_labels.append(self._layout.label(project_name, from_split, filename))
        if pairs:
            uow.after_commit(partial(_move_all, pairs))
            uow.after_commit(partial(_unlink_all, old_labels))

    async def delete_many(self, dataset: str, filenames: builtins.list[str]) -> int:
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, dataset)
            rows = await _rows_named(uow.session, project, filenames)
            if not rows:
                return 0
            paths: builtins.list[Path] = []
            for row in rows:
                paths += [
                    self._layout.image(project.name, row.split, row.filename),
                    self._layout.label(project.name, row.split, row.filename),
                    # Keyed by content; no other image of the project shares the sha256.
                    self._layout.thumb(project.name, row.sha256),
                ]
            ids = [row.id for row in rows]
            for start in range(0, len(ids), IN_CHUNK):
                # Labels go with their image (ON DELETE CASCADE).
                await uow.session.execute(
                    delete(Image)
                    .where(Image.id.in_(ids[start : start + IN_CHUNK]))
                    .execution_options(synchronize_session=False)
                )
            for row in rows:
                uow.session.expunge(row)
            project.modified_at = now()
            # Commit first, unlink after: a rollback never loses bytes.
            uow.after_commit(partial(_unlink_all, paths))
            await uow.commit()
        return len(rows)

    async def rebalance(
        self, dataset: str, *, progress: ProgressCallback | None = None
    ) -> dict[str, int]:
        """As the ABC says: planned from one read of the project's (id, hashes, split, pinned)
        rows with no transaction open, then applied ``REBALANCE_CHUNK`` images per unit."""
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            # Plain columns, not ORM rows: a big project's rows are loaded only where they move.
            rows = (
                await session.execute(
                    select(Image.id, Image.sha256, Image.phash, Image.split, Image.split_pinned)
                    .where(Image.project_id == project.id)
                    .order_by(Image.id)
                )
            ).all()
            ratios = project_ratios(project)
        planned = {row[0]: row[3] for row in rows}
        wanted = rebalanced_splits(
            [(i, sha, phash, split, pinned) for i, sha, phash, split, pinned in rows], ratios
        )
        chunks = [
            (to_split, chunk)
            for to_split in SPLITS
            for chunk in _chunks(
                [i for i, split in wanted.items() if split == to_split != planned[i]],
                REBALANCE_CHUNK,
            )
        ]
        total, done, moved = sum(len(chunk) for _, chunk in chunks), 0, 0
        for to_split, chunk in chunks:
            if progress is not None:
                await progress(done / total, f"{moved:,} of {total:,} images moved")
            moved += await self._redraw(project.id, chunk, planned, to_split)
            done += len(chunk)
        if progress is not None:
            await progress(1.0, f"{moved:,} images moved")
        return await self.count_by_split(dataset)

    async def _redraw(
        self, project_id: int, ids: Sequence[int], planned: dict[int, str], to_split: str
    ) -> int:
        """Move these images to ``to_split`` in one unit, unless one was pinned, moved or
        deleted since the plan was made; returns how many moved."""
        async with self._db.unit() as uow:
            project = await uow.session.get(Project, project_id)
            if project is None:
                raise NotFound("The project was deleted while its splits were being redrawn.")
            found = await uow.session.execute(
                select(Image.id, Image.filename, Image.split).where(
                    Image.id.in_(ids), Image.split_pinned.is_(False)
                )
            )
            rows = [row for row in found if row.split == planned[row.id]]
            if rows:
                await uow.session.execute(
                    update(Image)
                    .where(Image.id.in_([row.id for row in rows]))
                    .values(split=to_split)
                    .execution_options(synchronize_session=False)
                )
                moves = [(row.filename, row.split) for row in rows]
                self._schedule_moves(uow, project.name, moves, to_split)
                schedule_label_mirrors(uow, self._layout, [row.id for row in rows])
            await uow.commit()
        return len(rows)

    async def count_by_split(self, dataset: str) -> dict[str, int]:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            return (await split_counts(session, [project.id]))[project.id]


async def _in_thread_to_the_end(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in a worker thread; a cancelled caller still waits for it to end, so
    what it did (files it placed) is known before the unit rolls back."""
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def _new_row(
    plan: _Plan,
    prepared: PreparedImage,
    stat: os.stat_result,
    session_id: int | None,
    created: float,
) -> dict[str, Any]:
    """The values of a new image's row."""
    decoded = prepared.decoded
    return {
        "project_id": plan.project_id,
        "split": plan.split,
        "split_pinned": False,
        "filename": plan.filename,
        "stem_key": stem_key(plan.filename),
        "sha256": prepared.staged.sha256,
        "phash": decoded.phash,
        **band_values(decoded.phash),
        "width": decoded.width,
        "height": decoded.height,
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "missing": False,
        "no_objects": False,
        "version": 0,
        "session_id": session_id,
        "created_at": created,
    }


def _new_info(path: Path, project_name: str, row: dict[str, Any], image_id: int) -> ImageInfo:
    """The ``ImageInfo`` of a row just inserted from ``_new_row`` values."""
    return ImageInfo(
        filename=row["filename"],
        split=row["split"],
        path=path,
        width=row["width"],
        height=row["height"],
        size_bytes=row["size_bytes"],
        has_labels=False,
        id=image_id,
        dataset=project_name,
        sha256=row["sha256"],
        phash=row["phash"],
        session_id=row["session_id"],
        created_at=row["created_at"],
    )


def _link_new(staged: Path, final: Path, folders: set[Path]) -> None:
    """``place_new`` without its folder sync: link a staged file in place (``FileExistsError``
    rather than overwrite), drop the temp name, and add the folder to ``folders``, which the
    caller syncs once for all its files before the commit."""
    if final.parent not in folders:
        final.parent.mkdir(parents=True, exist_ok=True)
    os.link(staged, final)
    folders.add(final.parent)
    staged.unlink()


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


# --- helpers of the grid ------------------------------------------------------------------------

IN_CHUNK = 500  # names or ids per IN (...) list: well under any database's parameter limit

GRID_COLUMNS = (
    Image.id,
    Image.filename,
    Image.split,
    Image.width,
    Image.height,
    Image.size_bytes,
    Image.sha256,
    Image.phash,
    Image.split_pinned,
    Image.missing,
    Image.no_objects,
    Image.version,
    Image.session_id,
    Image.created_at,
)


def _grid_state(state: ImageState | str) -> ImageState:
    try:
        return ImageState(state)
    except ValueError:
        raise Invalid(
            f"State {state!r} is not one of {', '.join(s.value for s in ImageState)}."
        ) from None


def _state_clause(state: ImageState):  # type: ignore[no-untyped-def]
    accepted = has_accepted_labels()
    if state == ImageState.LABELLED:
        return or_(accepted, Image.no_objects.is_(True))
    if state == ImageState.UNLABELLED:
        return and_(~accepted, Image.no_objects.is_(False))
    if state == ImageState.NO_OBJECTS:
        return Image.no_objects.is_(True)
    if state == ImageState.SUGGESTIONS:
        return exists().where(Label.image_id == Image.id, Label.status == LabelStatus.PENDING)
    return Image.missing.is_(True)


def _grid_info(path: Path, project_name: str, row: Any) -> ImageInfo:
    """An ``ImageInfo`` from a result row of ``GRID_COLUMNS`` plus ``labelled``."""
    return ImageInfo(
        filename=row.filename,
        split=row.split,
        path=path,
        width=row.width,
        height=row.height,
        size_bytes=row.size_bytes,
        has_labels=bool(row.labelled) or bool(row.no_objects),
        id=row.id,
        dataset=project_name,
        sha256=row.sha256,
        phash=row.phash,
        split_pinned=bool(row.split_pinned),
        missing=bool(row.missing),
        no_objects=bool(row.no_objects),
        version=row.version,
        session_id=row.session_id,
        created_at=row.created_at,
    )


async def _rows_named(
    session: AsyncSession, project: Project, filenames: builtins.list[str]
) -> builtins.list[Image]:
    """The image rows of these names (each once, in the order given); ``NotFound`` naming the
    first unknown one (and how many more there are) before anything is changed."""
    wanted = list(dict.fromkeys(filenames))
    found: dict[str, Image] = {}
    keys = sorted({stem_key(name) for name in wanted})
    for start in range(0, len(keys), IN_CHUNK):
        # Through the unique (project, stem) index, never a scan of the project.
        rows = await session.scalars(
            select(Image).where(
                Image.project_id == project.id, Image.stem_key.in_(keys[start : start + IN_CHUNK])
            )
        )
        found.update((row.filename, row) for row in rows)
    unknown = [name for name in wanted if name not in found]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise NotFound(
            f"There is no image {unknown[0]!r}{more} in project {project.name!r}: "
            "nothing was changed."
        )
    return [found[name] for name in wanted]


def _move_all(pairs: builtins.list[tuple[Path, Path]]) -> None:
    """``move_file`` for many files (after a commit), syncing each folder once; a file that
    cannot be moved is logged and left for reconcile, the others still move."""
    folders: set[Path] = set()
    for src, dst in pairs:
        if not src.exists():
            continue
        try:
            if dst.parent not in folders:
                dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                raise FileExistsError(dst)
            os.rename(src, dst)
        except OSError:
            log.exception("moving %s to %s after the commit failed", src, dst)
            continue
        folders.add(dst.parent)
    for folder in folders:
        fsync_dir(folder)


def _unlink_all(paths: builtins.list[Path]) -> None:
    for path in paths:
        unlink_quietly(path)
