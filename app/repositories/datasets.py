"""``DatasetStore`` on SQLAlchemy: projects, their classes and prompts, zip export and import."""

from __future__ import annotations

import asyncio
import builtins
import os
import zipfile
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select, update

from app.db.models import Image, Label, Project, ProjectClass
from app.db.uow import Database
from app.domain.errors import AlreadyExists, Invalid, NotFound
from app.domain.models import SPLITS, ClassInfo, DatasetInfo, ExportResult, LabelStatus
from app.domain.stores import DatasetStore, ImageStore, LabelStore, ProgressCallback
from app.domain.validation import validate_class_name, validate_class_names, validate_project_name
from app.domain.yolo import data_yaml_dict, format_label_lines
from app.repositories.common import (
    class_info,
    classes_of,
    colour_for,
    now,
    project_by_name,
    split_counts,
)
from app.repositories.files import Layout, remove_tree, temp_path, unlink_quietly
from app.repositories.mirror import schedule_all_label_mirrors, schedule_project_mirror
from app.repositories.zip_import import read_yolo_zip

EXPORT_BATCH = 500
Box = tuple[int, float, float, float, float]  # class position, x, y, w, h
# Already-compressed formats are stored in the zip as they are; deflating them wastes time.
COMPRESSED = {".jpg", ".jpeg", ".png", ".webp"}


class SqlDatasetStore(DatasetStore):
    def __init__(
        self, db: Database, layout: Layout, images: ImageStore, labels: LabelStore
    ) -> None:
        self._db = db
        self._layout = layout
        self._images = images
        self._labels = labels

    # --- CRUD -----------------------------------------------------------------------------

    async def create(self, name: str, classes: list[str], *, description: str = "") -> DatasetInfo:
        validate_project_name(name)
        names = validate_class_names(list(classes))
        async with self._db.unit() as uow:
            session = uow.session
            taken = await session.scalar(
                select(Project.name).where(Project.name_key == name.casefold())
            )
            if taken is not None:
                raise AlreadyExists(f"A project named {taken!r} already exists.")
            folder = self._layout.project(name)
            if folder.exists() or _clashes_ignoring_case(self._layout.projects, name):
                raise AlreadyExists(
                    f"A folder named {name!r} already lies in storage/projects but no project "
                    "owns it; adopt it with `ydc sync-from-disk` or choose another name."
                )
            stamp = now()
            project = Project(
                name=name,
                name_key=name.casefold(),
                description=description,
                created_at=stamp,
                modified_at=stamp,
            )
            session.add(project)
            await session.flush()
            for position, class_name in enumerate(names):
                session.add(_new_class(project.id, position, class_name))
            for kind in ("images", "labels"):
                for split in SPLITS:
                    (folder / kind / split).mkdir(parents=True, exist_ok=True)
            uow.on_rollback(lambda: remove_tree(self._layout, folder))
            schedule_project_mirror(uow, self._layout, project.id)
            await uow.commit()
            return await self._info(session, project)

    async def _info(self, session, project: Project) -> DatasetInfo:  # type: ignore[no-untyped-def]
        classes = await classes_of(session, project.id)
        counts = (await split_counts(session, [project.id]))[project.id]
        return self._info_from(project, [class_info(c) for c in classes], counts)

    def _info_from(
        self, project: Project, classes: list[ClassInfo], counts: dict[str, int]
    ) -> DatasetInfo:
        return DatasetInfo(
            name=project.name,
            path=self._layout.project(project.name),
            classes=[c.name for c in classes],
            num_images=counts,
            created_at=project.created_at,
            modified_at=project.modified_at,
            id=project.id,
            description=project.description,
            class_details=classes,
        )

    async def list(self) -> list[DatasetInfo]:
        async with self._db.reader() as session:
            projects = list(await session.scalars(select(Project).order_by(Project.name_key)))
            ids = [p.id for p in projects]
            counts = await split_counts(session, ids)
            by_project: dict[int, list[ClassInfo]] = defaultdict(list)
            if ids:
                rows = await session.scalars(
                    select(ProjectClass)
                    .where(ProjectClass.project_id.in_(ids))
                    .order_by(ProjectClass.project_id, ProjectClass.position)
                )
                for row in rows:
                    by_project[row.project_id].append(class_info(row))
        return [self._info_from(p, by_project[p.id], counts[p.id]) for p in projects]

    async def get(self, name: str) -> DatasetInfo | None:
        async with self._db.reader() as session:
            try:
                project = await project_by_name(session, name)
            except NotFound:
                return None
            return await self._info(session, project)

    async def delete(self, name: str) -> bool:
        async with self._db.unit() as uow:
            try:
                project = await project_by_name(uow.session, name)
            except NotFound:
                return False
            folder = self._layout.project(project.name)
            await uow.session.delete(project)
            uow.after_commit(lambda: remove_tree(self._layout, folder))
            await uow.commit()
        return True

    # --- classes and prompts --------------------------------------------------------------

    async def update_classes(self, name: str, classes: builtins.list[str]) -> None:
        names = validate_class_names(list(classes))
        async with self._db.unit() as uow:
            session = uow.session
            project = await project_by_name(session, name)
            current = {c.name_key: c for c in await classes_of(session, project.id)}
            wanted = {n.casefold() for n in names}
            removed = [c.id for key, c in current.items() if key not in wanted]
            if removed:
                # Accepted labels go with their class: those images changed.
                affected = select(Label.image_id).where(
                    Label.class_id.in_(removed), Label.status == LabelStatus.ACCEPTED
                )
                await session.execute(
                    update(Image)
                    .where(Image.id.in_(affected))
                    .values(version=Image.version + 1)
                    .execution_options(synchronize_session=False)
                )
                for key, row in list(current.items()):
                    if row.id in removed:
                        await session.delete(row)
                        del current[key]
                await session.flush()
            for position, class_name in enumerate(names):
                kept = current.get(class_name.casefold())
                if kept is None:
                    session.add(_new_class(project.id, position, class_name))
                else:
                    kept.position, kept.name = position, class_name
            project.modified_at = now()
            schedule_project_mirror(uow, self._layout, project.id)
            schedule_all_label_mirrors(uow, self._layout, project.id)
            await uow.commit()

    async def get_classes(self, name: str) -> builtins.list[ClassInfo]:
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            return [class_info(c) for c in await classes_of(session, project.id)]

    async def get_prompts(self, name: str) -> dict[int, builtins.list[str]]:
        classes = await self.get_classes(name)
        return {c.position: list(c.prompts) for c in classes if c.prompts}

    async def save_prompts(self, name: str, prompts: dict[int, builtins.list[str]]) -> None:
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            classes = await classes_of(uow.session, project.id)
            for index, texts in prompts.items():
                if not isinstance(index, int) or not 0 <= index < len(classes):
                    raise Invalid(
                        f"Prompt class index {index!r} is out of range "
                        f"(the project has {len(classes)} classes)."
                    )
                cleaned = []
                for text in texts:
                    try:
                        cleaned.append(validate_class_name(text))
                    except Invalid:
                        raise Invalid(
                            f"Prompt {text!r} for class {classes[index].name!r} must be one "
                            "non-empty line."
                        ) from None
                classes[index].prompts = cleaned
            project.modified_at = now()
            schedule_project_mirror(uow, self._layout, project.id)
            await uow.commit()

    # --- export ---------------------------------------------------------------------------

    async def export_zip(
        self, name: str, output_path: Path, *, progress: ProgressCallback | None = None
    ) -> Path:
        return (await self.export(name, output_path, progress=progress)).path

    async def export(
        self, name: str, output_path: Path, *, progress: ProgressCallback | None = None
    ) -> ExportResult:
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            classes = await classes_of(session, project.id)
            counts = (await split_counts(session, [project.id]))[project.id]
        total = sum(counts.values())
        output_path = Path(output_path)
        output_path.mkdir(parents=True, exist_ok=True)
        final = output_path / f"{project.name}.zip"
        partial = temp_path(self._layout, ".zip")
        left_out: dict[str, list[str]] = {"unlabelled": [], "missing": []}
        written_images = written_labels = done = 0
        try:
            archive = zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED)
            with archive:
                yaml_text = _yaml(data_yaml_dict([c.name for c in classes]))
                archive.writestr("data.yaml", yaml_text)
                async for batch in self._export_batches(project.id):
                    for image, lines in batch:
                        done += 1
                        path = self._layout.image(project.name, image.split, image.filename)
                        if image.missing or not path.is_file():
                            left_out["missing"].append(image.filename)
                        elif not lines and not image.no_objects:
                            left_out["unlabelled"].append(image.filename)
                        else:
                            compress = (
                                zipfile.ZIP_STORED
                                if path.suffix.lower() in COMPRESSED
                                else zipfile.ZIP_DEFLATED
                            )
                            await asyncio.to_thread(
                                archive.write,
                                path,
                                f"images/{image.split}/{image.filename}",
                                compress,
                            )
                            stem = Path(image.filename).stem
                            archive.writestr(
                                f"labels/{image.split}/{stem}.txt", format_label_lines(lines)
                            )
                            written_images += 1
                            written_labels += len(lines)
                        if progress is not None:
                            await progress(done / total if total else 1.0, image.filename)
            os.replace(partial, final)
        finally:
            unlink_quietly(partial)
        return ExportResult(final, written_images, written_labels, left_out)

    async def _export_batches(
        self, project_id: int
    ) -> AsyncIterator[builtins.list[tuple[Image, builtins.list[Box]]]]:
        """Images with their accepted boxes, a batch at a time (keyset pagination), so memory
        does not grow with the project."""
        after = 0
        while True:
            async with self._db.reader() as session:
                images = list(
                    await session.scalars(
                        select(Image)
                        .where(Image.project_id == project_id, Image.id > after)
                        .order_by(Image.id)
                        .limit(EXPORT_BATCH)
                    )
                )
                if not images:
                    return
                lines: dict[int, builtins.list[Box]] = defaultdict(list)
                rows = await session.execute(
                    select(
                        Label.image_id, ProjectClass.position, Label.x, Label.y, Label.w, Label.h
                    )
                    .join(ProjectClass, Label.class_id == ProjectClass.id)
                    .where(
                        Label.image_id.in_([i.id for i in images]),
                        Label.status == LabelStatus.ACCEPTED,
                    )
                    .order_by(Label.image_id, Label.id)
                )
                for image_id, position, x, y, w, h in rows:
                    lines[image_id].append((position, x, y, w, h))
            yield [(image, lines[image.id]) for image in images]
            after = images[-1].id

    # --- import ---------------------------------------------------------------------------

    async def import_zip(self, zip_path: Path, name: str | None = None) -> DatasetInfo:
        zip_path = Path(zip_path)
        if name is None:
            name = zip_path.stem
        validate_project_name(name)
        if not zip_path.is_file():
            raise NotFound(f"There is no zip file at {zip_path}.")
        plan = await asyncio.to_thread(read_yolo_zip, zip_path)
        async with self._db.unit() as uow:
            await self.create(name, plan.classes)
            with zipfile.ZipFile(zip_path) as archive:
                for item in plan.images:
                    with archive.open(item.member) as handle:
                        try:
                            info = await self._images.save_file(
                                name, item.split, item.filename, handle
                            )
                        except Invalid as error:
                            raise Invalid(f"{item.member}: {error}") from None
                    if item.annotations is not None:
                        for ann in item.annotations:
                            ann.source = "import"
                        try:
                            if item.annotations:
                                await self._labels.save(
                                    name, info.split, info.filename, item.annotations
                                )
                            else:
                                await self._labels.set_no_objects(name, info.filename, True)
                        except Invalid as error:
                            raise Invalid(f"{item.label_member}: {error}") from None
            await uow.commit()
        created = await self.get(name)
        assert created is not None
        return created


def _new_class(project_id: int, position: int, name: str) -> ProjectClass:
    return ProjectClass(
        project_id=project_id,
        position=position,
        name=name,
        name_key=name.casefold(),
        colour=colour_for(position),
        prompts=[],
    )


def _clashes_ignoring_case(projects_dir: Path, name: str) -> bool:
    if not projects_dir.is_dir():
        return False
    key = name.casefold()
    return any(entry.name.casefold() == key for entry in os.scandir(projects_dir))


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
