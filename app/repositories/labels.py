"""``LabelStore`` on SQLAlchemy: label rows are the truth, label files their mirror."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Image, Label, Model, ProjectClass
from app.db.uow import Database
from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.models import Annotation, LabelSource, LabelStatus
from app.domain.stores import ImageStore, LabelStore
from app.domain.validation import validate_annotation, validate_split
from app.repositories.common import classes_of, image_row, now
from app.repositories.files import Layout
from app.repositories.mirror import schedule_label_mirror


class SqlLabelStore(LabelStore):
    def __init__(self, db: Database, layout: Layout, images: ImageStore) -> None:
        self._db = db
        self._layout = layout
        self._images = images

    async def save(
        self,
        dataset: str,
        split: str,
        filename: str,
        annotations: list[Annotation],
        *,
        expected_version: int | None = None,
    ) -> None:
        async with self._db.unit() as uow:
            session = uow.session
            _, image = await image_row(session, dataset, filename, split)
            _check_version(image, expected_version)
            classes = await classes_of(session, image.project_id)
            for ann in annotations:
                validate_annotation(
                    ann, num_classes=len(classes), width=image.width, height=image.height
                )
                if ann.source not in LabelSource.__members__.values():
                    raise Invalid(f"Label source {ann.source!r} is not one of {list(LabelSource)}.")
            current = {
                row.id: row
                for row in await session.scalars(
                    select(Label).where(
                        Label.image_id == image.id,
                        Label.status.in_([LabelStatus.ACCEPTED, LabelStatus.PENDING]),
                    )
                )
            }
            stamp = now()
            kept: set[int] = set()
            for ann in annotations:
                class_id = classes[ann.class_id].id
                row = current.get(ann.id) if ann.id is not None else None
                if row is not None and row.id not in kept:
                    # Same label (or an accepted suggestion): keep its source, model, confidence.
                    row.class_id, row.x, row.y, row.w, row.h = (
                        class_id,
                        ann.x,
                        ann.y,
                        ann.width,
                        ann.height,
                    )
                    row.status = LabelStatus.ACCEPTED
                    row.updated_at = stamp
                    kept.add(row.id)
                    continue
                session.add(
                    Label(
                        image_id=image.id,
                        class_id=class_id,
                        x=ann.x,
                        y=ann.y,
                        w=ann.width,
                        h=ann.height,
                        source=ann.source,
                        confidence=ann.confidence,
                        status=LabelStatus.ACCEPTED,
                        model_id=await _model_id(session, ann.model),
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
            for row in current.values():
                if row.id not in kept and row.status == LabelStatus.ACCEPTED:
                    await session.delete(row)
            if annotations:
                image.no_objects = False
            image.version += 1
            schedule_label_mirror(uow, self._layout, image.id)
            await uow.commit()

    async def load(self, dataset: str, split: str, filename: str) -> list[Annotation]:
        return await self._annotations(dataset, filename, split, LabelStatus.ACCEPTED)

    async def list_suggestions(self, dataset: str, filename: str) -> list[Annotation]:
        return await self._annotations(dataset, filename, None, LabelStatus.PENDING)

    async def _annotations(
        self, dataset: str, filename: str, split: str | None, status: LabelStatus
    ) -> list[Annotation]:
        async with self._db.reader() as session:
            _, image = await image_row(session, dataset, filename, split)
            rows = await session.execute(
                select(Label, ProjectClass.position, Model.name)
                .join(ProjectClass, Label.class_id == ProjectClass.id)
                .outerjoin(Model, Label.model_id == Model.id)
                .where(Label.image_id == image.id, Label.status == status)
                .order_by(Label.id)
            )
            return [
                Annotation(
                    position,
                    row.x,
                    row.y,
                    row.w,
                    row.h,
                    id=row.id,
                    source=row.source,
                    confidence=row.confidence,
                    status=row.status,
                    model=model_name,
                )
                for row, position, model_name in rows
            ]

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
                    .values(status=LabelStatus.REJECTED, updated_at=now())
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
            _, image = await image_row(session, dataset, filename)
            classes = await classes_of(session, image.project_id)
            stamp = now()
            for ann in annotations:
                validate_annotation(
                    ann, num_classes=len(classes), width=image.width, height=image.height
                )
                session.add(
                    Label(
                        image_id=image.id,
                        class_id=classes[ann.class_id].id,
                        x=ann.x,
                        y=ann.y,
                        w=ann.width,
                        h=ann.height,
                        source=ann.source
                        if ann.source != LabelSource.MANUAL
                        else LabelSource.MODEL,
                        confidence=ann.confidence,
                        status=LabelStatus.PENDING,
                        model_id=await _model_id(session, ann.model),
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
            # Background suggestions never bump the version (an annotator's save must not fail).
            await uow.commit()


def _check_version(image: Image, expected: int | None) -> None:
    if expected is not None and image.version != expected:
        raise Conflict(
            f"Image {image.filename!r} was changed elsewhere (version {image.version}, "
            f"you had {expected}); reload it and apply your change again."
        )


async def _model_id(session: AsyncSession, name: str | None) -> int | None:
    if name is None:
        return None
    return await session.scalar(select(Model.id).where(Model.name == name))
