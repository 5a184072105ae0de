"""``LabelStore`` on SQLAlchemy: label rows are the truth, label files their mirror.

A label row is accepted (in the mirror), pending (a suggestion waiting for review) or rejected
(kept for statistics, never exported). Every change to an image's accepted labels or its "no
objects" mark bumps the image's version and rewrites its label file after the commit; adding
suggestions does neither.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Iterable, Sequence
from functools import partial
from pathlib import Path

from sqlalchemy import and_, bindparam, delete, distinct, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from app.db.models import Image, Label, Model, Project, ProjectClass
from app.db.uow import Database, SqlUnitOfWork
from app.domain.accounts import acting_user
from app.domain.autolabel import Box, screen
from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.labels import (
    UNKNOWN_CONFIDENCE_RANK,
    ImageLabels,
    SuggestionCount,
    UncertainImage,
    validate_confidence,
    validate_min_confidence,
    validate_source,
)
from app.domain.models import Annotation, LabelSource, LabelStatus
from app.domain.stores import ImageStore, LabelStore
from app.domain.validation import validate_annotation, validate_split
from app.domain.yolo import format_label_lines
from app.repositories.common import (
    classes_of,
    image_info,
    image_row,
    now,
    project_by_name,
    stem_key,
)
from app.repositories.files import Layout, replace_atomically, unlink_quietly, write_staged
from app.repositories.mirror import schedule_label_mirror, schedule_label_mirrors

LIVE = (LabelStatus.ACCEPTED, LabelStatus.PENDING)

# The annotator's hot statements are built once: SQLAlchemy memoizes a statement object's cache
# key, so each call skips building the select and hashing it (parameters: ``_image_params``).
_IMAGE_WHERE = (
    Project.name_key == bindparam("name_key"),
    Image.stem_key == bindparam("stem_key"),
    Image.filename == bindparam("filename"),
)
# The image, the project's name and the image's labels of the given ``statuses``, in id order.
_IMAGE_ANNOTATIONS = (
    select(
        Image,
        Project.name,
        Label.id,
        ProjectClass.position,
        Label.x,
        Label.y,
        Label.w,
        Label.h,
        Label.source,
        Label.confidence,
        Label.status,
        Model.name,
    )
    .join(Project, Image.project_id == Project.id)
    .outerjoin(
        Label,
        and_(Label.image_id == Image.id, Label.status.in_(bindparam("statuses", expanding=True))),
    )
    .outerjoin(ProjectClass, Label.class_id == ProjectClass.id)
    .outerjoin(Model, Label.model_id == Model.id)
    .where(*_IMAGE_WHERE)
    .order_by(Label.id)
)
# The image, the project's name and classes, and each class's live labels on the image.
_FOR_SAVE = (
    select(Image, Project.name, ProjectClass.id, ProjectClass.position, Label, Model.name)
    .join(Project, Image.project_id == Project.id)
    .outerjoin(ProjectClass, ProjectClass.project_id == Image.project_id)
    .outerjoin(
        Label,
        and_(
            Label.class_id == ProjectClass.id,
            Label.image_id == Image.id,
            Label.status.in_(LIVE),
        ),
    )
    .outerjoin(Model, Label.model_id == Model.id)
    .where(*_IMAGE_WHERE)
    .order_by(ProjectClass.position, ProjectClass.id)
)


class SqlLabelStore(LabelStore):
    def __init__(self, db: Database, layout: Layout, images: ImageStore) -> None:
        self._db = db
        self._layout = layout
        self._images = images

    async def save(
        self,
        dataset: str,
        split: str | None,
        filename: str,
        annotations: list[Annotation],
        *,
        expected_version: int | None = None,
        no_objects: bool = False,
        reject: Collection[int] = (),
    ) -> ImageLabels:
        if no_objects and annotations:
            raise Invalid(
                f"An image marked \u201cno objects\u201d has no boxes, but {len(annotations)} "
                "were given: remove the boxes or leave the image unmarked."
            )
        rejected = set(reject)
        # The annotator's save, so few statements (BEGIN, one read, the label writes, one
        # UPDATE of the image, COMMIT), and the answer is built from what was written.
        async with self._db.unit() as uow:
            session = uow.session
            project_name, image, classes, current = await _for_save(
                session, dataset, filename, split
            )
            _check_version(image, expected_version)
            for ann in annotations:
                validate_annotation(
                    ann, num_classes=len(classes), width=image.width, height=image.height
                )
                validate_confidence(ann.confidence)
                validate_source(ann.source)
            pending = {i for i, (row, _) in current.items() if row.status == LabelStatus.PENDING}
            if unknown := sorted(rejected - pending):
                raise Invalid(
                    f"Image {image.filename!r} has no pending suggestion "
                    f"{_ids(unknown)} to reject (reload it to see its suggestions)."
                )
            if both := sorted(rejected & {a.id for a in annotations if a.id is not None}):
                raise Invalid(f"Suggestion {_ids(both)} is both kept and rejected.")
            models = await _model_ids(
                session,
                image.project_id,
                (a.model for a in annotations if a.model and a.id not in current),
            )
            stamp = now()
            accepted, added = _apply(session, image, classes, current, annotations, models, stamp)
            kept = {row.id for row, _ in accepted}
            still_pending: list[tuple[Label, str | None]] = []
            for row, model in current.values():
                if row.id in kept:
                    continue
                if row.status == LabelStatus.ACCEPTED:
                    await session.delete(row)
                elif no_objects or row.id in rejected:
                    row.status = LabelStatus.REJECTED
                    row.updated_at = stamp
                    row.reviewed_by, row.reviewed_at = acting_user.get(), stamp
                else:
                    still_pending.append((row, model))
            # The label file is staged (written and fsynced in a thread) while the label rows
            # are flushed. New labels get ids above every existing one, in the order added, so
            # the file's order (by id, as the mirror writes it) is known before the flush.
            positions = {class_id: position for class_id, position in classes}
            accepted = sorted(accepted, key=lambda found: found[0].id) + added
            lines = [(positions[row.class_id], row.x, row.y, row.w, row.h) for row, _ in accepted]
            staging = self._stage_mirror(uow, project_name, image, lines, no_objects)
            try:
                await session.flush()  # the new labels get their ids
            finally:
                mirror = await staging
            if [row.id for row, _ in accepted] != sorted(row.id for row, _ in accepted):
                accepted.sort(key=lambda found: found[0].id)  # never seen; stay exact anyway
                lines = [
                    (positions[row.class_id], row.x, row.y, row.w, row.h) for row, _ in accepted
                ]
                mirror = await self._stage_mirror(uow, project_name, image, lines, no_objects)
            # The image's row changes once, after the flush (an attribute set during a flush
            # could be taken as flushed).
            image.label_size, image.label_mtime_ns = mirror
            image.no_objects = no_objects
            image.version += 1
            await uow.commit()
            info = image_info(self._layout, project_name, image, no_objects or bool(accepted))
            return ImageLabels(
                info,
                [_annotation(row, positions, model) for row, model in accepted],
                [_annotation(row, positions, model) for row, model in still_pending],
            )

    def _stage_mirror(
        self,
        uow: SqlUnitOfWork,
        project_name: str,
        image: Image,
        lines: list[tuple[int, float, float, float, float]],
        no_objects: bool,
    ) -> asyncio.Future[tuple[int | None, int | None]]:
        """Stage the image's label file from ``lines`` (its accepted boxes in id order) in a
        thread, to be put in place after the commit, as ``schedule_label_mirror`` would from
        the rows (without reading back what this unit writes). Resolves to the file's size and
        mtime for the image row (``None`` when the image is unlabelled and has no file)."""
        final = self._layout.label(project_name, image.split, image.filename)
        if not lines and not no_objects:
            # Unlabelled: no label file at all (an empty one would mean "no objects").
            uow.after_commit(partial(unlink_quietly, final))
            done: asyncio.Future[tuple[int | None, int | None]] = (
                asyncio.get_running_loop().create_future()
            )
            done.set_result((None, None))
            return done
        data = format_label_lines(lines).encode()

        async def stage() -> tuple[int | None, int | None]:
            staged, size, mtime_ns = await asyncio.to_thread(_stage, self._layout, data)
            uow.on_rollback(partial(unlink_quietly, staged))
            uow.after_commit(partial(replace_atomically, staged, final))
            return size, mtime_ns

        return asyncio.ensure_future(stage())

    async def load(self, dataset: str, split: str, filename: str) -> list[Annotation]:
        async with self._db.reader() as session:
            _, _, found = await _image_annotations(
                session, dataset, filename, split, LabelStatus.ACCEPTED
            )
            return found

    async def list_suggestions(self, dataset: str, filename: str) -> list[Annotation]:
        async with self._db.reader() as session:
            _, _, found = await _image_annotations(
                session, dataset, filename, None, LabelStatus.PENDING
            )
            return found

    async def image_labels(self, dataset: str, filename: str) -> ImageLabels:
        async with self._db.reader() as session:
            project_name, image, found = await _image_annotations(
                session, dataset, filename, None, *LIVE
            )
            labels = [a for a in found if a.status == LabelStatus.ACCEPTED]
            suggestions = [a for a in found if a.status == LabelStatus.PENDING]
            info = image_info(self._layout, project_name, image, image.no_objects or bool(labels))
            return ImageLabels(info, labels, suggestions)

    async def delete(self, dataset: str, split: str, filename: str) -> bool:
        async with self._db.unit() as uow:
            try:
                _, image = await image_row(uow.session, dataset, filename, split)
            except NotFound:
                return False
            accepted = list(
                await uow.session.scalars(
                    select(Label).where(
                        Label.image_id == image.id, Label.status == LabelStatus.ACCEPTED
                    )
                )
            )
            if not accepted and not image.no_objects:
                return False
            for row in accepted:
                await uow.session.delete(row)
            image.no_objects = False
            image.version += 1
            schedule_label_mirror(uow, self._layout, image.id)
            await uow.commit()
        return True

    async def move(self, dataset: str, filename: str, from_split: str, to_split: str) -> None:
        validate_split(from_split)
        validate_split(to_split)
        async with self._db.reader() as session:
            _, image = await image_row(session, dataset, filename)
            current = image.split
        if current == to_split:
            return  # ImageStore.move already took the labels along
        if current != from_split:
            raise NotFound(f"Image {filename!r} is in {current}, not in {from_split}.")
        await self._images.move(dataset, filename, from_split, to_split)

    async def exists(self, dataset: str, split: str, filename: str) -> bool:
        async with self._db.reader() as session:
            try:
                _, image = await image_row(session, dataset, filename, split)
            except NotFound:
                return False
            if image.no_objects:
                return True
            first = await session.scalar(
                select(Label.id)
                .where(Label.image_id == image.id, Label.status == LabelStatus.ACCEPTED)
                .limit(1)
            )
            return first is not None

    async def set_no_objects(
        self, dataset: str, filename: str, no_objects: bool, *, expected_version: int | None = None
    ) -> None:
        async with self._db.unit() as uow:
            session = uow.session
            _, image = await image_row(session, dataset, filename)
            _check_version(image, expected_version)
            if no_objects:
                accepted = await session.scalars(
                    select(Label).where(
                        Label.image_id == image.id, Label.status == LabelStatus.ACCEPTED
                    )
                )
                for row in accepted:
                    await session.delete(row)
                await session.execute(
                    update(Label)
                    .where(Label.image_id == image.id, Label.status == LabelStatus.PENDING)
                    .values(status=LabelStatus.REJECTED, **_reviewed(now()))
                )
            image.no_objects = no_objects
            image.version += 1
            schedule_label_mirror(uow, self._layout, image.id)
            await uow.commit()

    async def add_suggestions(
        self, dataset: str, filename: str, annotations: list[Annotation]
    ) -> None:
        async with self._db.unit() as uow:
            session = uow.session
            _, image = await _image(session, dataset, filename)
            classes = await classes_of(session, image.project_id)
            for ann in annotations:
                validate_annotation(
                    ann, num_classes=len(classes), width=image.width, height=image.height
                )
                validate_confidence(ann.confidence)
                validate_source(ann.source)
            models = await _model_ids(
                session, image.project_id, (a.model for a in annotations if a.model)
            )
            stamp, actor = now(), acting_user.get()
            session.add_all(
                Label(
                    image_id=image.id,
                    class_id=classes[ann.class_id].id,
                    x=ann.x,
                    y=ann.y,
                    w=ann.width,
                    h=ann.height,
                    source=ann.source if ann.source != LabelSource.MANUAL else LabelSource.MODEL,
                    confidence=ann.confidence,
                    status=LabelStatus.PENDING,
                    model_id=models.get(ann.model) if ann.model else None,
                    created_at=stamp,
                    updated_at=stamp,
                    created_by=actor,
                )
                for ann in annotations
            )
            # Background suggestions never bump the version (an annotator's save must not fail).
            await uow.commit()

    async def replace_suggestions(
        self,
        dataset: str,
        model: str | None,
        predictions: dict[str, Sequence[tuple[int, float, float, float, float, float]]],
        *,
        confidence: float = 0.0,
    ) -> dict[str, int]:
        counts = dict.fromkeys(
            ("added", "replaced", "below_confidence", "overlap_accepted", "matches_rejected"), 0
        )
        counts["gone"] = 0
        if not predictions:
            return counts
        async with self._db.unit() as uow:
            session = uow.session
            project = await project_by_name(session, dataset)
            classes = await classes_of(session, project.id)
            # No model: the text prompts' suggestions (source "prompt", no registry model).
            model_id = (await _model_ids(session, project.id, [model]))[model] if model else None
            source = LabelSource.MODEL if model else LabelSource.PROMPT
            images = {
                image.filename: image
                for image in await session.scalars(
                    select(Image).where(
                        Image.project_id == project.id,
                        Image.filename.in_(list(predictions)),
                    )
                )
            }
            counts["gone"] = len(set(predictions) - set(images))
            ids = [image.id for image in images.values()]
            positions = {c.id: position for position, c in enumerate(classes)}
            accepted: dict[int, list[Box]] = {i: [] for i in ids}
            rejected: dict[int, list[Box]] = {i: [] for i in ids}
            mine: list[int] = []
            rows = await session.execute(
                select(
                    Label.id,
                    Label.image_id,
                    Label.class_id,
                    Label.x,
                    Label.y,
                    Label.w,
                    Label.h,
                    Label.status,
                    Label.model_id,
                    Label.source,
                ).where(Label.image_id.in_(ids))
            )
            for label_id, image_id, class_id, x, y, w, h, status, label_model, label_source in rows:
                box = (positions.get(class_id, -1), x, y, w, h)
                if status == LabelStatus.ACCEPTED:
                    accepted[image_id].append(box)
                elif status == LabelStatus.REJECTED:
                    rejected[image_id].append(box)
                elif label_model == model_id and (model_id is not None or label_source == source):
                    mine.append(label_id)
            if mine:
                await session.execute(
                    delete(Label)
                    .where(Label.id.in_(mine))
                    .execution_options(synchronize_session=False)
                )
            counts["replaced"] = len(mine)
            stamp = now()
            for filename, found in predictions.items():
                image = images.get(filename)
                if image is None:
                    continue
                kept = screen(found, accepted[image.id], rejected[image.id], confidence=confidence)
                counts["below_confidence"] += kept.below_confidence
                counts["overlap_accepted"] += kept.overlap_accepted
                counts["matches_rejected"] += kept.matches_rejected
                for cls, conf, x, y, w, h in kept.kept:
                    ann = Annotation(cls, x, y, w, h, source=source, confidence=conf)
                    validate_annotation(
                        ann, num_classes=len(classes), width=image.width, height=image.height
                    )
                    validate_confidence(ann.confidence)
                    session.add(
                        Label(
                            image_id=image.id,
                            class_id=classes[cls].id,
                            x=x,
                            y=y,
                            w=w,
                            h=h,
                            source=source,
                            confidence=conf,
                            status=LabelStatus.PENDING,
                            model_id=model_id,
                            created_at=stamp,
                            updated_at=stamp,
                            created_by=acting_user.get(),
                        )
                    )
                    counts["added"] += 1
            # Suggestions never bump the version (an annotator's save must not fail).
            await uow.commit()
        return counts

    async def accept_suggestions(
        self,
        dataset: str,
        filename: str,
        ids: Collection[int] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        return await self._review(dataset, filename, ids, LabelStatus.ACCEPTED, expected_version)

    async def reject_suggestions(
        self,
        dataset: str,
        filename: str,
        ids: Collection[int] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        return await self._review(dataset, filename, ids, LabelStatus.REJECTED, expected_version)

    async def _review(
        self,
        dataset: str,
        filename: str,
        ids: Collection[int] | None,
        status: LabelStatus,
        expected_version: int | None,
    ) -> int:
        async with self._db.unit() as uow:
            session = uow.session
            _, image = await _image(session, dataset, filename)
            _check_version(image, expected_version)
            pending = set(
                await session.scalars(
                    select(Label.id).where(
                        Label.image_id == image.id, Label.status == LabelStatus.PENDING
                    )
                )
            )
            chosen = pending if ids is None else set(ids)
            if unknown := sorted(chosen - pending):
                raise NotFound(
                    f"Image {image.filename!r} has no pending suggestion {_ids(unknown)} "
                    "(it may have been accepted or rejected already: reload the image)."
                )
            if not chosen:
                return 0
            await session.execute(
                update(Label)
                .where(Label.id.in_(chosen))
                .values(status=status, **_reviewed(now()))
                .execution_options(synchronize_session=False)
            )
            if status == LabelStatus.ACCEPTED:
                image.no_objects = False
                schedule_label_mirror(uow, self._layout, image.id)
            image.version += 1
            await uow.commit()
            return len(chosen)

    async def suggestion_summary(
        self, dataset: str, min_confidence: float = 0.0
    ) -> SuggestionCount:
        threshold = validate_min_confidence(min_confidence)
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            suggestions, images = (
                await session.execute(
                    select(func.count(Label.id), func.count(distinct(Label.image_id)))
                    .join(Image, Label.image_id == Image.id)
                    .where(Image.project_id == project.id, _pending_above(threshold))
                )
            ).one()
            return SuggestionCount(suggestions, images)

    async def uncertain_images(
        self,
        dataset: str,
        *,
        after: tuple[float, int] | None = None,
        before: tuple[float, int] | None = None,
        limit: int = 50,
    ) -> list[UncertainImage]:
        if limit < 1:
            raise Invalid(f"A page holds at least one image (limit was {limit}).")
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            rank = func.min(func.coalesce(Label.confidence, UNKNOWN_CONFIDENCE_RANK))
            query = (
                select(Image.id, Image.filename, Image.split, rank, func.count(Label.id))
                .join(Label, Label.image_id == Image.id)
                .where(Image.project_id == project.id, Label.status == LabelStatus.PENDING)
                .group_by(Image.id)
                .limit(limit)
            )
            if before is not None:
                low, image_id = before
                query = query.having(
                    or_(rank < low, and_(rank == low, Image.id < image_id))
                ).order_by(rank.desc(), Image.id.desc())
            else:
                if after is not None:
                    low, image_id = after
                    query = query.having(or_(rank > low, and_(rank == low, Image.id > image_id)))
                query = query.order_by(rank, Image.id)
            rows = (await session.execute(query)).all()
        return [
            UncertainImage(
                image_id,
                filename,
                split,
                None if low >= UNKNOWN_CONFIDENCE_RANK else float(low),
                count,
            )
            for image_id, filename, split, low, count in rows
        ]

    async def suggestions_per_class(self, dataset: str) -> dict[int, int]:
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            rows = await session.execute(
                select(Label.class_id, func.count())
                .join(Image, Label.image_id == Image.id)
                .where(Image.project_id == project.id, Label.status == LabelStatus.PENDING)
                .group_by(Label.class_id)
            )
            return {class_id: n for class_id, n in rows}

    async def accept_suggestions_above(
        self, dataset: str, min_confidence: float
    ) -> SuggestionCount:
        threshold = validate_min_confidence(min_confidence)
        async with self._db.unit() as uow:
            session = uow.session
            project = await project_by_name(session, dataset)
            # The write lock is held from the first statement (BEGIN IMMEDIATE): what is
            # counted here is what the updates below change.
            image_ids = list(
                await session.scalars(
                    select(Label.image_id)
                    .distinct()
                    .join(Image, Label.image_id == Image.id)
                    .where(Image.project_id == project.id, _pending_above(threshold))
                    .order_by(Label.image_id)
                )
            )
            if not image_ids:
                return SuggestionCount(0, 0)
            stamp = now()
            # Images first: the EXISTS finds them by the suggestions about to be accepted.
            await session.execute(
                update(Image)
                .where(
                    Image.project_id == project.id,
                    exists().where(Label.image_id == Image.id, _pending_above(threshold)),
                )
                .values(version=Image.version + 1, no_objects=False)
                .execution_options(synchronize_session=False)
            )
            accepted = await session.execute(
                update(Label)
                .where(
                    Label.image_id.in_(select(Image.id).where(Image.project_id == project.id)),
                    _pending_above(threshold),
                )
                .values(status=LabelStatus.ACCEPTED, **_reviewed(stamp))
                .execution_options(synchronize_session=False)
            )
            count = accepted.rowcount  # type: ignore[attr-defined]
            schedule_label_mirrors(uow, self._layout, image_ids)
            await uow.commit()
            return SuggestionCount(count, len(image_ids))


async def _for_save(
    session: AsyncSession, dataset: str, filename: str, split: str | None
) -> tuple[str, Image, list[tuple[int, int]], dict[int, tuple[Label, str | None]]]:
    """The project's name, the image row, the project's classes as (id, position) in YOLO
    order, and the image's live labels (with their model's name) by id, in one query: one row
    per class (the image's columns repeated), more for a class with several labels.
    ``NotFound`` as ``image_row``."""
    rows = (await session.execute(_FOR_SAVE, _image_params(dataset, filename))).all()
    if not rows or (split is not None and rows[0][0].split != split):
        await image_row(session, dataset, filename, split)  # raises the precise NotFound
        raise NotFound(f"There is no image {filename!r} in project {dataset!r}.")
    classes: list[tuple[int, int]] = []
    current: dict[int, tuple[Label, str | None]] = {}
    for _, _, class_id, position, label, model_name in rows:
        if class_id is not None and (not classes or classes[-1][0] != class_id):
            classes.append((class_id, position))
        if label is not None:
            current[label.id] = (label, model_name)
    return rows[0][1], rows[0][0], classes, dict(sorted(current.items()))


def _apply(
    session: AsyncSession,
    image: Image,
    classes: list[tuple[int, int]],
    current: dict[int, tuple[Label, str | None]],
    annotations: list[Annotation],
    models: dict[str, int],
    stamp: float,
) -> tuple[list[tuple[Label, str | None]], list[tuple[Label, str | None]]]:
    """Write the annotations onto the image's label rows: the rows they keep (by id; a pending
    suggestion kept is accepted) and the rows they add, each with its model's name."""
    kept: dict[int, tuple[Label, str | None]] = {}
    added: list[tuple[Label, str | None]] = []
    actor = acting_user.get()
    for ann in annotations:
        class_id = classes[ann.class_id][0]
        found = current.get(ann.id) if ann.id is not None else None
        if found is not None and found[0].id not in kept:
            # Same label (or an accepted suggestion): keep its source, model, confidence. Only
            # what changed is written: an unchanged box costs no UPDATE.
            row = found[0]
            box = (class_id, ann.x, ann.y, ann.width, ann.height)
            if (row.class_id, row.x, row.y, row.w, row.h) != box or (
                row.status != LabelStatus.ACCEPTED
            ):
                if (row.class_id, row.x, row.y, row.w, row.h) != box:
                    row.updated_by = actor
                if row.status != LabelStatus.ACCEPTED:  # a suggestion kept is accepted
                    row.reviewed_by, row.reviewed_at = actor, stamp
                row.class_id, row.x, row.y, row.w, row.h = box
                row.status = LabelStatus.ACCEPTED
                row.updated_at = stamp
            kept[row.id] = found
            continue
        row = Label(
            image_id=image.id,
            class_id=class_id,
            x=ann.x,
            y=ann.y,
            w=ann.width,
            h=ann.height,
            source=ann.source,
            confidence=ann.confidence,
            status=LabelStatus.ACCEPTED,
            model_id=models.get(ann.model) if ann.model else None,
            created_at=stamp,
            updated_at=stamp,
            created_by=actor,
        )
        session.add(row)
        added.append((row, ann.model or None))
    return list(kept.values()), added


def _reviewed(stamp: float) -> dict[str, object]:
    """The columns an accept or reject sets: when, and who (``acting_user``; null without
    accounts)."""
    return {"updated_at": stamp, "reviewed_at": stamp, "reviewed_by": acting_user.get()}


def _pending_above(threshold: float) -> ColumnElement[bool]:
    """Pending, with a confidence of at least ``threshold`` (unknown counts only at 0)."""
    pending = Label.status == LabelStatus.PENDING
    if threshold <= 0:
        return pending
    return pending & (Label.confidence >= threshold)


async def _image(
    session: AsyncSession, dataset: str, filename: str, split: str | None = None
) -> tuple[str, Image]:
    """The project's name and the image row, in one query; ``NotFound`` as ``image_row``."""
    found = (
        await session.execute(
            select(Image, Project.name)
            .join(Project, Image.project_id == Project.id)
            .where(*_IMAGE_WHERE),
            _image_params(dataset, filename),
        )
    ).first()
    if found is not None and (split is None or found[0].split == split):
        return found[1], found[0]
    project, image = await image_row(session, dataset, filename, split)  # the precise NotFound
    return project.name, image


def _image_params(dataset: str, filename: str) -> dict[str, str]:
    """``_IMAGE_WHERE``'s parameters: the image of that name in the project of that name
    (found through the unique stem index)."""
    return {"name_key": dataset.casefold(), "stem_key": stem_key(filename), "filename": filename}


async def _image_annotations(
    session: AsyncSession,
    dataset: str,
    filename: str,
    split: str | None,
    *statuses: LabelStatus,
) -> tuple[str, Image, list[Annotation]]:
    """The project's name, the image row and its labels of these statuses (id order), in one
    query (the image's columns repeat on each label's row); ``NotFound`` as ``image_row``."""
    params = {**_image_params(dataset, filename), "statuses": [str(s) for s in statuses]}
    rows = (await session.execute(_IMAGE_ANNOTATIONS, params)).all()
    if not rows or (split is not None and rows[0][0].split != split):
        project, image = await image_row(session, dataset, filename, split)  # precise NotFound
        return project.name, image, []
    image, project_name = rows[0][0], rows[0][1]
    found = [
        Annotation(
            position,
            x,
            y,
            w,
            h,
            id=label_id,
            source=source,
            confidence=confidence,
            status=status,
            model=model,
        )
        for _, _, label_id, position, x, y, w, h, source, confidence, status, model in rows
        if label_id is not None
    ]
    return project_name, image, found


def _annotation(row: Label, positions: dict[int, int], model: str | None) -> Annotation:
    return Annotation(
        positions[row.class_id],
        row.x,
        row.y,
        row.w,
        row.h,
        id=row.id,
        source=row.source,
        confidence=row.confidence,
        status=row.status,
        model=model,
    )


def _stage(layout: Layout, data: bytes) -> tuple[Path, int, int]:
    path = write_staged(layout, data)
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


def _check_version(image: Image, expected: int | None) -> None:
    if expected is not None and image.version != expected:
        raise Conflict(
            f"Image {image.filename!r} was changed elsewhere (version {image.version}, "
            f"you had {expected}); reload it and apply your change again."
        )


async def _model_ids(
    session: AsyncSession, project_id: int, names: Iterable[str]
) -> dict[str, int]:
    """The ids of the project's models of these names; ``Invalid`` for a name it lacks."""
    wanted = set(names)
    if not wanted:
        return {}
    found: dict[str, int] = {
        name: model_id
        for name, model_id in await session.execute(
            select(Model.name, Model.id).where(
                Model.project_id == project_id, Model.name.in_(wanted)
            )
        )
    }
    if missing := sorted(wanted - set(found)):
        raise Invalid(f"The project has no model named {missing[0]!r}.")
    return found


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)
