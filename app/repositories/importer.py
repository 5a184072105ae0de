"""Import a dataset another tool exported (a zip or a folder on the server) into a project:
the plan comes from ``app.domain.import_plan``, each line and box is judged by
``app.domain.import_rules``, and images go in ``CHUNK`` at a time, each chunk one unit with
its boxes, so a cancel or a crash keeps whole images with whole labels (running the import
again skips what came in as duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import exists, insert, select, update

from app.db.models import Image, Label, Project, ProjectClass
from app.db.uow import Database
from app.domain.errors import AlreadyExists, DuplicateImage, Invalid
from app.domain.import_plan import ImportPlan, PlannedImage, plan_import
from app.domain.import_rules import (
    ImportReport,
    LabelRead,
    Reason,
    class_mapping,
    inside_roots,
    pixel_box,
    read_yolo_labels,
    remap,
    true_suffix,
)
from app.domain.models import ImageInfo, LabelStatus
from app.domain.stores import DatasetStore, ProgressCallback
from app.domain.validation import unsafe_member_path
from app.repositories.files import Layout
from app.repositories.images import PreparedImage, SqlImageStore, discard
from app.repositories.mirror import schedule_label_mirrors
from app.repositories.sync import MAX_TEXT_BYTES, core_table, label_values

CHUNK = 100  # images per unit
PREPARE_AHEAD = 4  # images read, hashed and decoded at once
MAX_JSON_BYTES = 1024 * 1024 * 1024  # a COCO file
MAX_MEMBERS = 2_000_000
# A zip whose content is this many times its size is a bomb, not a dataset (images barely
# compress; label text compresses about 5x).
MAX_RATIO = 100
MAX_RATIO_FROM = 64 * 1024 * 1024  # ... once it unpacks to more than this


# --- sources ----------------------------------------------------------------------------------


class Source:
    """The files of a dataset, by relative POSIX path."""

    name: str
    files: list[str]

    def read(self, path: str) -> bytes:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def read_small(self, path: str) -> bytes:
        """A text file of the dataset (labels, names, lists, YAML, JSON, XML), size-checked."""
        limit = MAX_JSON_BYTES if path.lower().endswith(".json") else MAX_TEXT_BYTES
        if self.size(path) > limit:
            raise Invalid(f"{path} is {self.size(path) / 2**20:.0f} MB: too large to read.")
        return self.read(path)


class ZipSource(Source):
    """A zip archive, read member by member (nothing is extracted). Refused whole: members
    whose path is absolute or climbs out with ``..``, symlinks, and archives that unpack to far
    more than they weigh."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        try:
            self._archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError):
            raise Invalid(f"{path.name} is not a zip archive, or it is damaged.") from None
        try:
            self._infos = self._check(path)
        except BaseException:
            self._archive.close()
            raise
        self.files = sorted(self._infos)

    def _check(self, path: Path) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        entries = self._archive.infolist()
        if len(entries) > MAX_MEMBERS:
            raise Invalid(f"The zip holds {len(entries)} entries; at most {MAX_MEMBERS} are read.")
        total = 0
        for info in entries:
            if unsafe_member_path(info.filename):
                raise Invalid(
                    f"The zip contains a path that leaves the archive: {info.filename!r}. "
                    "Nothing was imported."
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise Invalid(
                    f"The zip contains a symbolic link: {info.filename!r}. ydc does not follow "
                    "links out of an archive; nothing was imported."
                )
            if info.is_dir():
                continue
            total += info.file_size
            name = info.filename.replace("\\", "/")
            if name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("._"):
                continue  # macOS resource forks, not files of the dataset
            infos[name] = info
        packed = max(os.path.getsize(path), 1)
        if total > MAX_RATIO_FROM and total / packed > MAX_RATIO:
            raise Invalid(
                f"The zip would unpack to {total / 2**30:.1f} GB from {packed / 2**20:.1f} MB "
                f"(more than {MAX_RATIO}x): refused as a zip bomb; nothing was imported."
            )
        return infos

    def size(self, path: str) -> int:
        return self._infos[path].file_size

    def read(self, path: str) -> bytes:
        try:
            return self._archive.read(self._infos[path])
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error) as e:
            # Encrypted, damaged or oddly compressed members.
            raise Invalid(f"{path} cannot be read from the zip: {e}") from None

    def close(self) -> None:
        self._archive.close()


@dataclass
class FolderListing:
    """A folder's files (relative POSIX path → size; hidden ones left out) and its symbolic
    links that lead outside the allowed roots (relative paths; never followed)."""

    sizes: dict[str, int] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)


def list_folder(folder: Path, allowed: Sequence[Path]) -> FolderListing:
    """Walk ``folder``, following a symbolic link only when it stays under one of ``allowed``;
    a folder reached twice (a link back up, or two links to one place) is read once. Also
    used by the folder capture, which refuses the links out one by one."""
    listing = FolderListing()
    allowed = [Path(root).resolve() for root in allowed]
    seen = {folder.resolve()}
    # Links are checked before they are followed.
    for directory, dirs, names in os.walk(folder, followlinks=True):
        base = Path(directory)
        out: set[str] = set()
        for entry in [*dirs, *names]:
            full = base / entry
            if full.is_symlink() and not inside_roots(full.resolve(), allowed):
                listing.outside.append(full.relative_to(folder).as_posix())
                out.add(entry)
        kept = []
        # Real folders before links, so a file is named by its real path when it can be.
        for entry in sorted(dirs, key=lambda d: ((base / d).is_symlink(), d)):
            target = (base / entry).resolve()
            if entry.startswith(".") or entry in out or target in seen:
                continue
            seen.add(target)
            kept.append(entry)
        dirs[:] = kept
        for entry in names:
            full = base / entry
            if entry.startswith(".") or entry in out or not full.is_file():
                continue
            rel = full.relative_to(folder).as_posix()
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                listing.sizes[rel] = full.stat().st_size
            if len(listing.sizes) > MAX_MEMBERS:
                raise Invalid(f"The folder holds more than {MAX_MEMBERS} files.")
    return listing


class FolderSource(Source):
    """A folder on the server. A symbolic link is followed only when it stays under one of
    ``allowed`` (the import roots); one that leads elsewhere refuses the whole import."""

    def __init__(self, folder: Path, allowed: Sequence[Path]) -> None:
        self.name = folder.name
        self._folder = folder
        listing = list_folder(folder, allowed)
        if listing.outside:
            raise Invalid(
                f"{listing.outside[0]} is a symbolic link that leads outside the import roots; "
                "nothing was imported."
            )
        self._sizes = listing.sizes
        self.files = sorted(self._sizes)

    def size(self, path: str) -> int:
        return self._sizes[path]

    def read(self, path: str) -> bytes:
        try:
            return (self._folder / path).read_bytes()
        except OSError as error:
            raise Invalid(f"{path} cannot be read: {error.strerror}") from None


def open_source(path: Path, *, allowed: Sequence[Path] = ()) -> Source:
    """A zip file or a folder as a ``Source``."""
    if path.is_dir():
        return FolderSource(path, allowed)
    if path.is_file():
        return ZipSource(path)
    raise Invalid(f"There is no zip file or folder at {path}.")


# --- the import -------------------------------------------------------------------------------


@dataclass
class _Ready:
    """An image of the plan read and prepared, with its boxes in the project's classes."""

    item: PlannedImage
    prepared: PreparedImage
    boxes: list[tuple[int, float, float, float, float]]
    state: Reason  # LABELLED, NO_OBJECTS or UNLABELLED
    notes: list[tuple[Reason, str]]


class Importer:
    def __init__(
        self, db: Database, layout: Layout, images: SqlImageStore, datasets: DatasetStore
    ) -> None:
        self._db = db
        self._layout = layout
        self._images = images
        self._datasets = datasets

    async def plan(self, source: Source) -> ImportPlan:
        return await asyncio.to_thread(plan_import, source.files, source.read_small)

    async def run(
        self,
        project: str,
        source: Source,
        *,
        add_classes: bool = True,
        progress: ProgressCallback | None = None,
        plan: ImportPlan | None = None,
    ) -> ImportReport:
        started = time.perf_counter()
        if plan is None:
            plan = await self.plan(source)
        report = ImportReport(project=project, format=plan.format, source=source.name)
        for reason, example in plan.findings:
            report.add(reason, example)
        mapping = await self._classes(project, plan.classes, add_classes, report)
        total = len(plan.images)
        if progress is not None:
            await progress(0.0, f"0 of {total} images")
        for first in range(0, total, CHUNK):
            chunk = plan.images[first : first + CHUNK]
            ready = await self._prepare_chunk(source, plan, chunk, mapping, report)
            try:
                await self._store_chunk(project, ready, report)
            finally:
                for item in ready:
                    discard(item.prepared)
            done = min(first + CHUNK, total)
            if progress is not None:
                await progress(done / total if total else 1.0, f"{done} of {total} images")
        report.classes = [c.name for c in await self._datasets.get_classes(project)]
        report.seconds = time.perf_counter() - started
        return report

    async def _classes(
        self, project: str, names: list[str], add: bool, report: ImportReport
    ) -> dict[int, int]:
        """Source class index → project position; the names the project lacks are added (in
        the source's order) when asked, else their boxes are left out."""
        existing = [c.name for c in await self._datasets.get_classes(project)]
        mapping, missing = class_mapping(names, existing)
        if missing and add:
            # One unit for all (coco8 adds 80): data.yaml is written once, not once a class.
            async with self._db.unit() as uow:
                for name in missing:
                    try:
                        await self._datasets.add_class(project, name)
                    except AlreadyExists:
                        continue  # added meanwhile (a person, another import): boxes map to it
                    except Invalid as error:
                        # One unusable name (too long, a control character) skips its boxes.
                        report.add(Reason.BAD_CLASS_NAME, f"{name[:40]!r} ({error.message})")
                        continue
                    report.add(Reason.CLASSES_ADDED, name)
                await uow.commit()
            existing = [c.name for c in await self._datasets.get_classes(project)]
            mapping, _ = class_mapping(names, existing)
        return mapping

    async def _prepare_chunk(
        self,
        source: Source,
        plan: ImportPlan,
        chunk: list[PlannedImage],
        mapping: dict[int, int],
        report: ImportReport,
    ) -> list[_Ready]:
        """Read, hash and decode the chunk's images ``PREPARE_AHEAD`` at a time (no
        transaction open), and judge their boxes against their upright size."""
        gate = asyncio.Semaphore(PREPARE_AHEAD)

        async def one(item: PlannedImage) -> _Ready | None:
            async with gate:
                try:
                    data, label_text, notes = await asyncio.to_thread(self._read, source, item)
                    name = PurePosixPath(item.path).name
                    suffix = true_suffix(data[:16], name)
                    if suffix is not None:
                        renamed = PurePosixPath(name).stem + suffix
                        # Reported with the image, once it is stored (not for a duplicate).
                        notes.append((Reason.RETYPED, f"{item.path} → {renamed}"))
                        name = renamed
                    prepared = await self._images.prepare(name, data)
                except Invalid as error:
                    report.add(Reason.NOT_IMAGE, f"{item.path} ({error.message})")
                    return None
            try:
                ready = self._judge(item, prepared, label_text, plan, mapping)
                ready.notes[:0] = notes
                return ready
            except BaseException:
                discard(prepared)
                raise

        results = await asyncio.gather(*(one(item) for item in chunk), return_exceptions=True)
        ready = [r for r in results if isinstance(r, _Ready)]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for item in ready:
                discard(item.prepared)
            raise failures[0]
        return ready

    @staticmethod
    def _read(
        source: Source, item: PlannedImage
    ) -> tuple[bytes, str | None, list[tuple[Reason, str]]]:
        """The image's bytes and its label file's text; a label file that cannot be read
        (too large, damaged in the zip) leaves the image unlabelled and is reported."""
        data = source.read(item.path)
        if item.label_path is None:
            return data, None, []
        try:
            raw = source.read_small(item.label_path)
        except Invalid as error:
            return data, None, [(Reason.MALFORMED, f"{item.label_path} ({error.message})")]
        # Bytes that are no UTF-8 spoil their line only (it reads as malformed), never the
        # image or the other lines.
        return data, raw.decode("utf-8-sig", errors="replace"), []

    @staticmethod
    def _judge(
        item: PlannedImage,
        prepared: PreparedImage,
        label_text: str | None,
        plan: ImportPlan,
        mapping: dict[int, int],
    ) -> _Ready:
        width, height = prepared.decoded.width, prepared.decoded.height
        read = LabelRead()
        labelled_source = False
        empty = False
        if label_text is not None and item.label_path is not None:
            labelled_source = True
            read = read_yolo_labels(
                label_text,
                where=item.label_path,
                num_names=len(plan.classes),
                width=width,
                height=height,
            )
            empty = read.empty
        elif item.pixels is not None:
            labelled_source = True
            frame = item.pixels.frame or (width, height)
            for number, (class_id, edges) in enumerate(item.pixels.boxes, start=1):
                line = pixel_box(class_id, edges, frame=frame, width=width, height=height)
                where = f"{item.where}: box {number} of {PurePosixPath(item.path).name}"
                if line.box is None:
                    assert line.refusal is not None
                    read.notes.append((line.refusal, f"{where} ({line.detail})"))
                else:
                    read.boxes.append(line.box)
                    read.notes += [(note, where) for note in line.notes]
            empty = not item.pixels.annotated
        boxes, dropped = remap(read.boxes, mapping)
        notes = list(read.notes)
        if dropped:
            notes.append((Reason.NOT_IN_PROJECT, f"{item.where or item.path} ({dropped} boxes)"))
        if boxes:
            state = Reason.LABELLED
        elif labelled_source and empty:
            state = Reason.NO_OBJECTS
        else:
            # No label file, or every line of it left out: not "no objects", which would be
            # a claim about the picture nobody made.
            state = Reason.UNLABELLED
        return _Ready(item, prepared, boxes, state, notes)

    async def _store_chunk(self, project: str, ready: list[_Ready], report: ImportReport) -> None:
        """Register the chunk's images and insert their boxes in one unit; an image whose bytes
        the project already holds gets the boxes only when it has none of its own."""
        if not ready:
            return
        by_split: dict[str | None, list[_Ready]] = {}
        for item in ready:
            by_split.setdefault(item.item.split, []).append(item)
        async with self._db.unit() as uow:
            session = uow.session
            project_id, class_ids = await _class_ids(session, project)
            outcomes: list[tuple[_Ready, ImageInfo | DuplicateImage]] = []
            for split, items in by_split.items():
                registered = await self._images.register_many(
                    project, split, [i.prepared for i in items]
                )
                outcomes += list(zip(items, registered, strict=True))
            targets: list[tuple[_Ready, int, bool]] = []  # (item, image id, filled)
            # The images this chunk stores have no boxes in the database yet: only those it
            # stores unlabelled may be filled by a later copy of the same bytes.
            fresh = {
                o.filename: o.id
                for item, o in outcomes
                if not isinstance(o, DuplicateImage) and item.state == Reason.UNLABELLED
            }
            stored_now = {o.filename for _, o in outcomes if not isinstance(o, DuplicateImage)}
            duplicates = {
                o.existing_filename
                for _, o in outcomes
                if isinstance(o, DuplicateImage) and o.existing_filename not in stored_now
            }
            fillable = await _unlabelled(session, project_id, sorted(duplicates))
            fillable.update(fresh)
            for item, outcome in outcomes:
                if isinstance(outcome, DuplicateImage):
                    image_id = fillable.get(outcome.existing_filename)
                    if image_id is not None and item.state != Reason.UNLABELLED:
                        targets.append((item, image_id, True))
                        fillable.pop(outcome.existing_filename)
                    else:
                        report.add(
                            Reason.DUPLICATE, f"{item.item.path} = {outcome.existing_filename}"
                        )
                    continue
                if outcome.filename != item.prepared.name:
                    report.add(Reason.RENAMED, f"{item.item.path} → {outcome.filename}")
                targets.append((item, outcome.id, False))
            rows: list[dict[str, Any]] = []
            no_objects: list[int] = []
            for item, image_id, _ in targets:
                rows += label_values(image_id, item.boxes, class_ids, time.time())
                if item.state == Reason.NO_OBJECTS:
                    no_objects.append(image_id)
            if rows:
                await session.execute(insert(core_table(Label)), rows)
            if no_objects:
                await session.execute(
                    update(Image).where(Image.id.in_(no_objects)).values(no_objects=True)
                )
            schedule_label_mirrors(
                uow, self._layout, [i for item, i, _ in targets if item.state != Reason.UNLABELLED]
            )
            await uow.commit()
        filled_ids = {image_id for _, image_id, filled in targets if filled}
        for item, image_id, filled in targets:
            if filled:
                report.add(Reason.FILLED, item.item.path)
            else:
                report.add(Reason.IMAGES)
            if filled or image_id not in filled_ids:
                # An image of this chunk filled by a later copy is not left unlabelled.
                # Labelled images are the rule: their names would only crowd the report.
                example = None if item.state == Reason.LABELLED else item.item.path
                report.add(item.state, example)
            report.add(Reason.BOXES, count=len(item.boxes))
            for reason, example in item.notes:
                report.add(reason, example)


async def _class_ids(session: Any, project: str) -> tuple[int, list[int]]:
    project_id = await session.scalar(select(Project.id).where(Project.name == project))
    if project_id is None:
        raise Invalid(f"There is no project named {project!r}.")
    ids = list(
        await session.scalars(
            select(ProjectClass.id)
            .where(ProjectClass.project_id == project_id)
            .order_by(ProjectClass.position)
        )
    )
    return project_id, ids


async def _unlabelled(session: Any, project_id: int, filenames: list[str]) -> dict[str, int]:
    """Of these images, those with no accepted box and not marked "no objects": name → id."""
    if not filenames:
        return {}
    has_box = exists().where(Label.image_id == Image.id, Label.status == LabelStatus.ACCEPTED)
    rows = await session.execute(
        select(Image.filename, Image.id).where(
            Image.project_id == project_id,
            Image.filename.in_(filenames),
            Image.no_objects.is_(False),
            ~has_box,
        )
    )
    return {name: image_id for name, image_id in rows}


__all__ = [
    "FolderListing",
    "FolderSource",
    "Importer",
    "Source",
    "ZipSource",
    "list_folder",
    "open_source",
]
