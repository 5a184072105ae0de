"""``DatasetStore`` on SQLAlchemy: projects, their classes and prompts, zip export and import,
and the dataset health of a project.

Health counts are grouped SQL queries (never a row per image loaded); only the near-duplicate
grouping reads every image's (id, perceptual hash), and its result is kept in memory per project
under a fingerprint of the project's image rows (see ``_hash_fingerprint``). Splits, names and
files are read afresh on every call, so a move between splits shows at once.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import case, distinct, exists, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import Image, Label, Project, ProjectClass
from app.db.uow import Database
from app.domain.errors import AlreadyExists, Invalid, NotFound
from app.domain.export_formats import (
    COCO,
    ULTRALYTICS,
    YOLO11,
    coco_annotation,
    coco_annotation_name,
    coco_head,
    coco_image,
    export_zip_name,
    obj_data_text,
    obj_names_text,
    ultralytics_yaml_dict,
    validate_export_options,
    yolo11_folder,
    yolo11_list_line,
    yolo11_list_name,
)
from app.domain.import_rules import ImportReport
from app.domain.models import (
    SPLITS,
    ClassBoxes,
    ClassInfo,
    ClassUsage,
    DatasetHealth,
    DatasetInfo,
    ExportResult,
    ImageInfo,
    LabelStatus,
    NearDuplicateGroup,
    Snapshot,
    SplitHealth,
)
from app.domain.reconcile import label_name
from app.domain.splits import validate_ratios
from app.domain.stores import DatasetStore, LabelStore, ProgressCallback
from app.domain.validation import (
    validate_class_name,
    validate_class_names,
    validate_colour,
    validate_project_name,
)
from app.domain.yolo import data_yaml_dict, format_label_lines
from app.repositories.common import (
    class_info,
    classes_of,
    colour_for,
    has_accepted_labels,
    image_info,
    now,
    project_by_name,
    split_counts,
)
from app.repositories.files import Layout, remove_tree, unlink_quietly
from app.repositories.images import SqlImageStore, project_ratios
from app.repositories.imaging import near_duplicate_groups
from app.repositories.importer import Importer, ZipSource, open_source
from app.repositories.mirror import schedule_label_mirrors, schedule_project_mirror

log = logging.getLogger(__name__)

EXPORT_BATCH = 500
# An export hands images to its writing thread at most this many (or this many bytes) at once.
EXPORT_CHUNK_IMAGES = 100
EXPORT_CHUNK_BYTES = 16 * 2**20
Box = tuple[int, float, float, float, float]  # class position, x, y, w, h
# Already-compressed formats are stored in the zip as they are; deflating them wastes time.
COMPRESSED = {".jpg", ".jpeg", ".png", ".webp"}
# Projects whose near-duplicate grouping is kept in memory (the most recently asked for).
GROUPING_CACHE_PROJECTS = 8
IN_CHUNK = 500  # ids per IN (...) list: well under any database's parameter limit


class SqlDatasetStore(DatasetStore):
    def __init__(
        self, db: Database, layout: Layout, images: SqlImageStore, labels: LabelStore
    ) -> None:
        self._db = db
        self._layout = layout
        self._images = images
        self._labels = labels
        # project id -> (fingerprint of its image rows, near-duplicate groups of image ids)
        self._groupings: OrderedDict[int, tuple[tuple[Any, ...], list[list[int]]]] = OrderedDict()
        # One grouping at a time: it is CPU-bound, two at once would only share the GIL.
        self._grouping_lock = asyncio.Lock()

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
            try:
                folder.mkdir(parents=True)  # never adopt (or later remove) a folder we did not make
            except FileExistsError:
                raise AlreadyExists(f"A folder named {name!r} already lies in storage.") from None
            uow.on_rollback(lambda: remove_tree(self._layout, folder))
            for kind in ("images", "labels"):
                for split in SPLITS:
                    (folder / kind / split).mkdir(parents=True)
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
            new_position = {n.casefold(): i for i, n in enumerate(names)}
            removed = [c.id for key, c in current.items() if key not in new_position]
            moved = [
                c.id
                for key, c in current.items()
                if key in new_position and new_position[key] != c.position
            ]
            # Only images with boxes of a removed or moved class need a new label file.
            affected = list(
                await session.scalars(
                    select(Label.image_id)
                    .where(
                        Label.class_id.in_(removed + moved),
                        Label.status == LabelStatus.ACCEPTED,
                    )
                    .distinct()
                )
            )
            if removed:
                # Accepted boxes go with their class: those images changed.
                await session.execute(
                    update(Image)
                    .where(
                        Image.id.in_(
                            select(Label.image_id).where(
                                Label.class_id.in_(removed), Label.status == LabelStatus.ACCEPTED
                            )
                        )
                    )
                    .values(version=Image.version + 1)
                    .execution_options(synchronize_session="fetch")
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
            schedule_label_mirrors(uow, self._layout, affected)
            await uow.commit()

    async def get_classes(self, name: str) -> builtins.list[ClassInfo]:
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            return [class_info(c) for c in await classes_of(session, project.id)]

    async def _class_row(self, session, project: Project, class_id: int) -> ProjectClass:  # type: ignore[no-untyped-def]
        row = await session.get(ProjectClass, class_id)
        if row is None or row.project_id != project.id:
            raise NotFound(
                f"Project {project.name!r} has no class with id {class_id} (it may have been "
                "deleted meanwhile): reload to see the current classes."
            )
        return row  # type: ignore[no-any-return]

    async def _check_free(
        self, session, project: Project, class_name: str, keep_id: int | None = None
    ) -> None:  # type: ignore[no-untyped-def]
        taken = await session.scalar(
            select(ProjectClass.name).where(
                ProjectClass.project_id == project.id,
                ProjectClass.name_key == class_name.casefold(),
                ProjectClass.id != (keep_id or 0),
            )
        )
        if taken is not None:
            raise AlreadyExists(f"Project {project.name!r} already has a class {taken!r}.")

    async def add_class(
        self, name: str, class_name: str, *, colour: str | None = None
    ) -> ClassInfo:
        class_name = validate_class_name(class_name)
        if colour is not None:
            colour = validate_colour(colour)
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            await self._check_free(uow.session, project, class_name)
            position = len(await classes_of(uow.session, project.id))
            row = _new_class(project.id, position, class_name)
            if colour is not None:
                row.colour = colour
            uow.session.add(row)
            project.modified_at = now()
            schedule_project_mirror(uow, self._layout, project.id)
            await uow.commit()
            return class_info(row)

    async def rename_class(self, name: str, class_id: int, new_name: str) -> ClassInfo:
        new_name = validate_class_name(new_name)
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            row = await self._class_row(uow.session, project, class_id)
            await self._check_free(uow.session, project, new_name, keep_id=row.id)
            row.name, row.name_key = new_name, new_name.casefold()
            project.modified_at = now()
            # Label files hold indices, not names: only data.yaml changes.
            schedule_project_mirror(uow, self._layout, project.id)
            await uow.commit()
            return class_info(row)

    async def set_class_colour(self, name: str, class_id: int, colour: str) -> ClassInfo:
        colour = validate_colour(colour)
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            row = await self._class_row(uow.session, project, class_id)
            row.colour = colour
            schedule_project_mirror(uow, self._layout, project.id)
            await uow.commit()
            return class_info(row)

    async def move_class(self, name: str, class_id: int, position: int) -> builtins.list[ClassInfo]:
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            row = await self._class_row(uow.session, project, class_id)
            names = [c.name for c in await classes_of(uow.session, project.id) if c.id != row.id]
            names.insert(max(0, min(position, len(names))), row.name)
            await self.update_classes(project.name, names)
            await uow.commit()
        return await self.get_classes(name)

    async def class_usage(self, name: str, class_id: int) -> ClassUsage:
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            await self._class_row(session, project, class_id)
            return await _usage(session, class_id)

    async def merge_class(self, name: str, source_id: int, target_id: int) -> ClassUsage:
        if source_id == target_id:
            raise Invalid("A class cannot be merged into itself.")
        async with self._db.unit() as uow:
            session = uow.session
            project = await project_by_name(session, name)
            source = await self._class_row(session, project, source_id)
            await self._class_row(session, project, target_id)
            usage = await _usage(session, source_id)
            with_boxes = select(Label.image_id).where(
                Label.class_id == source_id, Label.status == LabelStatus.ACCEPTED
            )
            touched = list(await session.scalars(with_boxes.distinct()))
            await session.execute(
                update(Image)
                .where(Image.id.in_(touched))
                .values(version=Image.version + 1)
                .execution_options(synchronize_session="fetch")
            )
            await session.execute(
                update(Label)
                .where(Label.class_id == source_id)
                .values(class_id=target_id, updated_at=now())
                .execution_options(synchronize_session="fetch")
            )
            names = [c.name for c in await classes_of(session, project.id) if c.id != source.id]
            await self.update_classes(project.name, names)
            schedule_label_mirrors(uow, self._layout, touched)
            await uow.commit()
        return usage

    async def delete_class(self, name: str, class_id: int) -> ClassUsage:
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            row = await self._class_row(uow.session, project, class_id)
            usage = await _usage(uow.session, class_id)
            names = [c.name for c in await classes_of(uow.session, project.id) if c.id != row.id]
            await self.update_classes(project.name, names)
            await uow.commit()
        return usage

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

    async def get_split_ratios(self, name: str) -> dict[str, float]:
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            return project_ratios(project)

    async def set_split_ratios(self, name: str, ratios: dict[str, float]) -> None:
        checked = validate_ratios(dict(ratios))
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, name)
            project.train_ratio = checked["train"]
            project.val_ratio = checked["val"]
            project.test_ratio = checked["test"]
            project.modified_at = now()
            schedule_project_mirror(uow, self._layout, project.id)
            await uow.commit()

    # --- dataset health ---------------------------------------------------------------------

    async def health(
        self, dataset: str, *, max_groups: int = 20, max_members: int = 6
    ) -> DatasetHealth:
        if max_groups < 0 or max_members < 1:
            raise Invalid("Show at least one member per group and no negative number of groups.")
        # One read transaction: every figure comes from the same snapshot.
        async with self._db.reader() as session:
            project = await project_by_name(session, dataset)
            splits, unhashed = await _split_health(session, project.id)
            classes = await _boxes_per_class(session, project.id)
            exact = await _exact_duplicates(session, project.id)
            groups = await self._near_duplicates(session, project.id)
            grouped = [i for g in groups for i in g]
            split_of = await _splits_of(session, project.id, grouped, splits)
            ranked = _ranked_groups(groups, split_of)
            leaking = [g for spans, g in ranked if len(spans) > 1]
            shown_ids = [_shown_members(g, split_of, max_members) for _, g in ranked[:max_groups]]
            infos = await self._image_infos(
                session, project.name, [i for ids in shown_ids for i in ids]
            )
        shown = [
            NearDuplicateGroup(size=len(g), splits=spans, members=[infos[i] for i in ids])
            for (spans, g), ids in zip(ranked[:max_groups], shown_ids, strict=True)
        ]
        return DatasetHealth(
            dataset=project.name,
            splits=splits,
            classes=classes,
            exact_duplicates=exact,
            unhashed=unhashed,
            near_duplicate_groups=len(ranked),
            near_duplicate_images=sum(len(g) for _, g in ranked),
            leaking_groups=len(leaking),
            leaking_images=sum(len(g) for g in leaking),
            groups=shown,
        )

    async def _near_duplicates(
        self, session: AsyncSession, project_id: int
    ) -> builtins.list[builtins.list[int]]:
        """The project's near-duplicate groups (image ids), from the cache while the project's
        image rows are unchanged."""
        key = await _hash_fingerprint(session, project_id)
        async with self._grouping_lock:
            # Checked under the lock: a caller that waited for the same grouping gets it here.
            cached = self._groupings.get(project_id)
            if cached is not None and cached[0] == key:
                self._groupings.move_to_end(project_id)
                return cached[1]
            rows = (
                await session.execute(
                    select(Image.id, Image.phash).where(
                        Image.project_id == project_id, Image.phash.is_not(None)
                    )
                )
            ).all()
            hashes = [(image_id, phash) for image_id, phash in rows]
            # About a second at 100,000 images: off the event loop.
            groups = await asyncio.to_thread(near_duplicate_groups, hashes)
            self._groupings[project_id] = (key, groups)
            self._groupings.move_to_end(project_id)
            while len(self._groupings) > GROUPING_CACHE_PROJECTS:
                self._groupings.popitem(last=False)
            return groups

    async def _image_infos(
        self, session: AsyncSession, project_name: str, ids: builtins.list[int]
    ) -> dict[int, ImageInfo]:
        """``ImageInfo`` of a few images (those a page shows), by id."""
        found: dict[int, ImageInfo] = {}
        for start in range(0, len(ids), IN_CHUNK):
            rows = await session.execute(
                select(Image, has_accepted_labels().label("labelled")).where(
                    Image.id.in_(ids[start : start + IN_CHUNK])
                )
            )
            for row, labelled in rows:
                found[row.id] = image_info(
                    self._layout, project_name, row, bool(labelled) or row.no_objects
                )
        return found

    # --- export ---------------------------------------------------------------------------

    async def export_zip(
        self,
        name: str,
        output_path: Path,
        *,
        progress: ProgressCallback | None = None,
        splits: Sequence[str] | None = None,
        format: str | None = None,
    ) -> Path:
        return (
            await self.export(name, output_path, progress=progress, splits=splits, format=format)
        ).path

    async def export(
        self,
        name: str,
        output_path: Path,
        *,
        progress: ProgressCallback | None = None,
        splits: Sequence[str] | None = None,
        format: str | None = None,
    ) -> ExportResult:
        chosen, fmt = validate_export_options(splits, format)
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            classes = await classes_of(session, project.id)
            counts = (await split_counts(session, [project.id]))[project.id]
        class_names = [c.name for c in classes]
        total = sum(n for split, n in counts.items() if split in chosen)
        output_path = Path(output_path)
        output_path.mkdir(parents=True, exist_ok=True)
        final = output_path / export_zip_name(project.name, fmt)
        # Written next to its final name (maybe another filesystem than the data dir), so
        # the last step is an atomic rename.
        partial = output_path / f".{final.name}.{os.getpid()}.part"
        left_out: dict[str, list[str]] = {"unlabelled": [], "missing": []}
        written_images = written_labels = done = 0
        try:
            archive = zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED)
            # Per-split lists (YOLO 1.1 list files, COCO images and annotations) are spooled
            # to files beside the zip, so memory does not grow with the project.
            with archive, tempfile.TemporaryDirectory(dir=output_path) as spool_dir:
                writer = _ExportWriter(archive, fmt, chosen, class_names, Path(spool_dir))
                folder = self._layout.project(project.name)
                async for batch in self._export_batches(project.id, chosen):
                    # One trip to a thread per chunk, not per image (the hand-off cost as
                    # much as copying the bytes); chunks small enough in bytes that progress
                    # and cancel still come often with large images.
                    for chunk in _by_bytes(batch, EXPORT_CHUNK_IMAGES, EXPORT_CHUNK_BYTES):
                        images, labels = await asyncio.to_thread(
                            writer.add_batch, folder, chunk, left_out
                        )
                        written_images += images
                        written_labels += labels
                        done += len(chunk)
                        if progress is not None:
                            # Images added meanwhile may make done > total.
                            await progress(
                                min(done / total, 0.999) if total else 0.0,
                                chunk[-1][0].filename,
                            )
                writer.finish()
            os.replace(partial, final)
            if progress is not None:
                await progress(1.0, "done")
        finally:
            unlink_quietly(partial)
        return ExportResult(final, written_images, written_labels, left_out)

    async def snapshot(
        self, name: str, folder: Path, *, splits: Sequence[str] = SPLITS
    ) -> Snapshot:
        async with self._db.reader() as session:
            project = await project_by_name(session, name)
            classes = await classes_of(session, project.id)
        folder = Path(folder)
        source = self._layout.project(project.name)
        counts = dict.fromkeys(SPLITS, 0)
        boxes = 0
        digest = hashlib.sha256()
        async for batch in self._export_batches(project.id, splits):
            kept = [
                (image, lines)
                for image, lines in batch
                if not image.missing and (lines or image.no_objects)
            ]
            frozen = await asyncio.to_thread(_freeze, source, folder, kept)
            for image, lines in frozen:
                counts[image.split] += 1
                boxes += len(lines)
                digest.update(f"{image.id}\n".encode())  # ids come in ascending order
        data_yaml = folder / "data.yaml"
        described = {
            "path": str(folder),
            **{split: f"images/{split}" for split in SPLITS if counts[split]},
            "nc": len(classes),
            "names": dict(enumerate(c.name for c in classes)),
        }
        await asyncio.to_thread(data_yaml.write_text, _yaml(described), encoding="utf-8")
        return Snapshot(folder, data_yaml, counts, boxes, digest.hexdigest())

    async def _export_batches(
        self, project_id: int, splits: Sequence[str] = SPLITS
    ) -> AsyncIterator[builtins.list[tuple[Image, builtins.list[Box]]]]:
        """Images of the splits with their accepted boxes, a batch at a time (keyset
        pagination), so memory does not grow with the project."""
        after = 0
        while True:
            async with self._db.reader() as session:
                images = list(
                    await session.scalars(
                        select(Image)
                        .where(
                            Image.project_id == project_id,
                            Image.id > after,
                            Image.split.in_(builtins.list(splits)),
                        )
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
        if await self.get(name) is not None:
            raise AlreadyExists(f"A project named {name!r} already exists.")
        report = await self.import_dataset(name, zip_path, create=True, only_zip=True)
        log.info("imported %s: %s", name, report.summary())
        created = await self.get(name)
        assert created is not None
        return created

    async def import_dataset(
        self,
        name: str,
        source: Path,
        *,
        create: bool = False,
        add_classes: bool = True,
        allowed_links: Sequence[Path] = (),
        progress: ProgressCallback | None = None,
        only_zip: bool = False,
    ) -> ImportReport:
        opener = ZipSource if only_zip else partial(open_source, allowed=allowed_links)
        opened = await asyncio.to_thread(opener, Path(source))
        made = False
        try:
            importer = self._importer()
            plan = await importer.plan(opened)  # a source that is no dataset changes nothing
            if await self.get(name) is None:
                if not create:
                    raise NotFound(f"There is no project named {name!r}.")
                await self.create(name, [])
                made = True
            return await importer.run(
                name, opened, add_classes=add_classes or made, progress=progress, plan=plan
            )
        except BaseException:
            if made and only_zip:
                await self.delete(name)  # import_zip: all or nothing
            raise
        finally:
            opened.close()

    def _importer(self) -> Importer:
        return Importer(self._db, self._layout, self._images, self)


async def _usage(session, class_id: int) -> ClassUsage:  # type: ignore[no-untyped-def]
    counts = dict(
        (
            await session.execute(
                select(Label.status, func.count())
                .where(Label.class_id == class_id)
                .group_by(Label.status)
            )
        ).all()
    )
    other = aliased(Label)
    only_this = (
        select(func.count(distinct(Label.image_id)))
        .where(Label.class_id == class_id, Label.status == LabelStatus.ACCEPTED)
        .where(
            ~exists().where(
                other.image_id == Label.image_id,
                other.status == LabelStatus.ACCEPTED,
                other.class_id != class_id,
            )
        )
    )
    return ClassUsage(
        labels=int(counts.get(LabelStatus.ACCEPTED, 0)),
        suggestions=int(counts.get(LabelStatus.PENDING, 0)),
        images_left_empty=int(await session.scalar(only_this) or 0),
    )


def _count(condition: Any) -> Any:
    """SQL: how many rows of the group meet ``condition``."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _split_health(
    session: AsyncSession, project_id: int
) -> tuple[builtins.list[SplitHealth], int]:
    """Per split: images, labelled, "no objects", with suggestions, missing (one grouped query
    whose label tests are index probes); and how many images have no perceptual hash."""
    pending = exists().where(Label.image_id == Image.id, Label.status == LabelStatus.PENDING)
    rows = await session.execute(
        select(
            Image.split,
            func.count(),
            _count(or_(Image.no_objects.is_(True), has_accepted_labels())),
            _count(Image.no_objects.is_(True)),
            _count(pending),
            _count(Image.missing.is_(True)),
            _count(Image.phash.is_(None)),
        )
        .where(Image.project_id == project_id)
        .group_by(Image.split)
    )
    by_split = {split: SplitHealth(split) for split in SPLITS}
    unhashed = 0
    for split, images, labelled, no_objects, suggested, missing, no_hash in rows:
        by_split[split] = SplitHealth(split, images, labelled, no_objects, suggested, missing)
        unhashed += no_hash
    return [by_split[split] for split in SPLITS], unhashed


async def _boxes_per_class(session: AsyncSession, project_id: int) -> builtins.list[ClassBoxes]:
    """Accepted boxes of each class, in class order (a class without boxes counts 0)."""
    # Grouped by an expression, not the bare column: SQLite would otherwise walk the labels in
    # class order (ix_label_class) and read every label row for its status; so it walks the
    # project's images and their accepted labels on two covering indexes instead (2-3x faster).
    class_id = Label.class_id + literal_column("0")
    counts = dict(
        (
            await session.execute(
                select(class_id, func.count())
                .select_from(Image)
                .join(Label, Label.image_id == Image.id)
                .where(Image.project_id == project_id, Label.status == LabelStatus.ACCEPTED)
                .group_by(class_id)
            )
        ).all()
    )
    return [
        ClassBoxes(c.id, c.position, c.name, c.colour, int(counts.get(c.id, 0)))
        for c in await classes_of(session, project_id)
    ]


async def _exact_duplicates(session: AsyncSession, project_id: int) -> int:
    """Stored copies of a file beyond its first (same sha256). The unique index on (project,
    sha256) keeps this at 0; it is counted, not assumed, so a schema change would show."""
    copies = (
        select(func.count().label("n"))
        .where(Image.project_id == project_id)
        .group_by(Image.sha256)
        .having(func.count() > 1)
        .subquery()
    )
    return int(await session.scalar(select(func.coalesce(func.sum(copies.c.n - 1), 0))) or 0)


async def _hash_fingerprint(session: AsyncSession, project_id: int) -> tuple[Any, ...]:
    """What the near-duplicate grouping of a project depends on, in one aggregate: the set of
    its (image id, perceptual hash) pairs.

    An image added gets an id above every current one, so it raises the count or the highest
    id; a delete lowers the count or the sum of ids, and a delete and an add together leave
    count, highest id and id sum all equal only when the new rows reuse exactly the deleted
    ids (SQLite hands out max(id) + 1 again), and then their hashes differ from the old ones,
    which the sums of the hash bands catch (the same hash again groups the same way anyway).
    The splits are not part of it: a move changes no group, and splits are read afresh.
    """
    row = (
        await session.execute(
            select(
                func.count(),
                func.max(Image.id),
                func.sum(Image.id),
                *(func.sum(getattr(Image, f"phash_b{i}")) for i in range(5)),
            ).where(Image.project_id == project_id)
        )
    ).one()
    return (project_id, *row)


async def _splits_of(
    session: AsyncSession, project_id: int, ids: Sequence[int], counts: builtins.list[SplitHealth]
) -> dict[int, str]:
    """The current split of each of ``ids``, images of the project whose per-split ``counts``
    were read in the same transaction.

    A few are looked up by id. Many (a big project's near-duplicates) would take many IN lists,
    so the images outside the project's biggest split are read instead (one covering-index
    search, a fifth of the project at the default ratios) and the others are in the biggest.
    """
    if len(ids) <= IN_CHUNK:
        rows = await session.execute(select(Image.id, Image.split).where(Image.id.in_(ids)))
        return {image_id: split for image_id, split in rows}
    biggest = max(counts, key=lambda s: s.images).split
    rows = await session.execute(
        select(Image.id, Image.split).where(
            Image.project_id == project_id, Image.split.in_([s for s in SPLITS if s != biggest])
        )
    )
    elsewhere = {image_id: split for image_id, split in rows}
    return {image_id: elsewhere.get(image_id, biggest) for image_id in ids}


def _ranked_groups(
    groups: builtins.list[builtins.list[int]], split_of: dict[int, str]
) -> builtins.list[tuple[tuple[str, ...], builtins.list[int]]]:
    """Each group with the splits it is in (split order): those spanning splits first, then
    the biggest, then the oldest."""
    ranked = []
    for group in groups:
        present = {split_of[i] for i in group}
        ranked.append((tuple(s for s in SPLITS if s in present), group))
    ranked.sort(key=lambda item: (len(item[0]) < 2, -len(item[1]), item[1][0]))
    return ranked


def _shown_members(
    group: builtins.list[int], split_of: dict[int, str], limit: int
) -> builtins.list[int]:
    """Up to ``limit`` ids of the group, taken from each of its splits in turn (so a leak into
    val shows even in a big train group), listed split by split in id order."""
    queues = {split: [i for i in group if split_of[i] == split] for split in SPLITS}
    picked: builtins.list[int] = []
    while len(picked) < limit and any(queues.values()):
        for split in SPLITS:
            if queues[split] and len(picked) < limit:
                picked.append(queues[split].pop(0))
    order = {split: n for n, split in enumerate(SPLITS)}
    return sorted(picked, key=lambda i: (order[split_of[i]], i))


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


def _by_bytes(
    batch: builtins.list[tuple[Image, builtins.list[Box]]], most: int, most_bytes: int
) -> Iterator[builtins.list[tuple[Image, builtins.list[Box]]]]:
    """The batch in order, cut into chunks of at most ``most`` images and about ``most_bytes``
    (an image larger than that is a chunk of its own)."""
    chunk: builtins.list[tuple[Image, builtins.list[Box]]] = []
    size = 0
    for item in batch:
        if chunk and (len(chunk) >= most or size + item[0].size_bytes > most_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item[0].size_bytes
    if chunk:
        yield chunk


class _ExportWriter:
    """Writes one export format into an open zip, an image at a time. Per-split lists are
    appended to spool files and copied into the zip by ``finish`` (a zip takes one entry at a
    time, so a COCO file cannot stay open while images go in)."""

    def __init__(
        self,
        archive: zipfile.ZipFile,
        fmt: str,
        splits: Sequence[str],
        classes: builtins.list[str],
        spool_dir: Path,
    ) -> None:
        self._archive = archive
        self._format = fmt
        self._splits = splits
        self._classes = classes
        self._spools: dict[str, IO[str]] = {}
        self._spool_dir = spool_dir
        self._next_annotation = 1
        if fmt == ULTRALYTICS:
            data_yaml = ultralytics_yaml_dict(data_yaml_dict(classes), splits)
            archive.writestr("data.yaml", _yaml(data_yaml))
        elif fmt == YOLO11:
            archive.writestr("obj.names", obj_names_text(classes))
            archive.writestr("obj.data", obj_data_text(len(classes), splits))

    def _spool(self, key: str) -> IO[str]:
        if key not in self._spools:
            self._spools[key] = open(self._spool_dir / key, "w+", encoding="utf-8")  # noqa: SIM115
        return self._spools[key]

    def add_batch(
        self,
        project_folder: Path,
        batch: builtins.list[tuple[Image, builtins.list[Box]]],
        left_out: dict[str, builtins.list[str]],
    ) -> tuple[int, int]:
        """Add a batch's labelled images (in a thread); the missing and unlabelled ones go
        into ``left_out``. Returns the images and boxes written."""
        images = boxes = 0
        for image, lines in batch:
            if image.missing:
                left_out["missing"].append(image.filename)
            elif not lines and not image.no_objects:
                left_out["unlabelled"].append(image.filename)
            else:
                path = os.path.join(project_folder, "images", image.split, image.filename)
                try:
                    self.add(path, image, lines)
                except FileNotFoundError:  # gone since the last reconcile
                    left_out["missing"].append(image.filename)
                    continue
                images += 1
                boxes += len(lines)
        return images, boxes

    def add(self, path: str, image: Image, lines: builtins.list[Box]) -> None:
        """Put the image's original bytes and its boxes in the format's places."""
        yolo11 = self._format == YOLO11
        folder = yolo11_folder(image.split) if yolo11 else f"images/{image.split}"
        suffix = os.path.splitext(image.filename)[1].lower()
        compress = zipfile.ZIP_STORED if suffix in COMPRESSED else zipfile.ZIP_DEFLATED
        self._archive.write(path, f"{folder}/{image.filename}", compress)
        stem = label_name(image.filename)[: -len(".txt")]
        # Label texts of a few dozen bytes: deflating them saves nothing worth its time.
        if self._format == ULTRALYTICS:
            self._archive.writestr(
                f"labels/{image.split}/{stem}.txt", format_label_lines(lines), zipfile.ZIP_STORED
            )
        elif self._format == YOLO11:
            self._archive.writestr(
                f"{folder}/{stem}.txt", format_label_lines(lines), zipfile.ZIP_STORED
            )
            self._spool(f"list-{image.split}").write(yolo11_list_line(image.split, image.filename))
        else:
            images = self._spool(f"images-{image.split}")
            entry = coco_image(image.id, image.filename, image.width, image.height)
            images.write(("," if images.tell() else "") + json.dumps(entry))
            annotations = self._spool(f"annotations-{image.split}")
            for box in lines:
                entry = coco_annotation(
                    self._next_annotation, image.id, box, image.width, image.height
                )
                annotations.write(("," if annotations.tell() else "") + json.dumps(entry))
                self._next_annotation += 1

    def finish(self) -> None:
        """Write the per-split files (an empty list for an exported split with no images)."""
        try:
            for split in self._splits:
                if self._format == YOLO11:
                    with self._archive.open(yolo11_list_name(split), "w") as raw:
                        self._copy(f"list-{split}", raw)
                elif self._format == COCO:
                    head = json.dumps(coco_head(self._classes))
                    with self._archive.open(coco_annotation_name(split), "w") as raw:
                        raw.write(head[:-1].encode() + b', "images": [')
                        self._copy(f"images-{split}", raw)
                        raw.write(b'], "annotations": [')
                        self._copy(f"annotations-{split}", raw)
                        raw.write(b"]}")
        finally:
            for spool in self._spools.values():
                spool.close()

    def _copy(self, key: str, raw: IO[bytes]) -> None:
        spool = self._spools.get(key)
        if spool is None:
            return
        spool.seek(0)
        while chunk := spool.read(1 << 16):
            raw.write(chunk.encode("utf-8"))


def _freeze(
    source: Path, folder: Path, kept: builtins.list[tuple[Image, builtins.list[Box]]]
) -> builtins.list[tuple[Image, builtins.list[Box]]]:
    """Link (or copy, across filesystems) each image into the snapshot and write its label
    file from the boxes (empty for "no objects"). Returns those frozen: a file gone since the
    last reconcile is left out, as an export leaves it out."""
    made: set[Path] = set()
    frozen: builtins.list[tuple[Image, builtins.list[Box]]] = []
    for image, lines in kept:
        images, labels = folder / "images" / image.split, folder / "labels" / image.split
        if images not in made:
            images.mkdir(parents=True, exist_ok=True)
            labels.mkdir(parents=True, exist_ok=True)
            made.add(images)
        original = source / "images" / image.split / image.filename
        target = images / image.filename
        try:
            os.link(original, target)
        except FileNotFoundError:
            continue
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            try:
                shutil.copy2(original, target)
            except FileNotFoundError:
                continue
        (labels / label_name(image.filename)).write_text(
            format_label_lines(lines), encoding="utf-8"
        )
        frozen.append((image, lines))
    return frozen
