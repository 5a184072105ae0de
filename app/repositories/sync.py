"""sync-from-disk: register what lies under ``projects/`` and the database lacks (DESIGN.md
"Start-up reconcile and recovery"): projects, classes, prompts, images, labels and models. The
recovery path when the database is lost, and the way a YOLO folder copied into ``projects/``
becomes a project.

Invariants:

- Nothing is deleted. Files are renamed inside their project folder into ydc's layout
  (``images/<split>/``, ``labels/<split>/``); a label file whose rewrite would lose lines, and a
  ``data.yaml`` the project mirror replaces, go to ``lost+found/`` first. Only folders this
  emptied are removed (``rmdir``, which refuses a folder with anything left in it).
- No transaction is open while files are hashed and decoded (threads, or a process pool when
  there are many); each batch of at most ``BATCH`` images is then one short unit with
  multi-row inserts.
- Rows record each file's size and mtime as it lies, and a label file's when its text is what
  the mirror would write (else the mirror rewrites it and records its own), so the next
  reconcile sees no drift. A second run finds every file registered and changes nothing.
- A dry run reads, hashes and reports; it writes no row and moves no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Image, Label, Model, Project, ProjectClass
from app.db.uow import Database
from app.domain.errors import Invalid, NotFound
from app.domain.models import SPLITS, LabelSource, LabelStatus
from app.domain.reconcile import Outcome, SyncReport
from app.domain.splits import draw_split
from app.domain.stores import ProgressCallback
from app.domain.sync_rules import (
    SPLIT_ALIASES,
    Admissions,
    Box,
    Home,
    LabelFile,
    ProjectMeta,
    choose_classes,
    image_home,
    is_ydc_data_yaml,
    label_name,
    parse_label_file,
    pick_weights,
    read_meta,
    read_prompts,
    read_training,
    stem_key,
)
from app.domain.validation import IMAGE_SUFFIXES, safe_filename, validate_project_name
from app.domain.yolo import format_label_lines
from app.repositories.common import colour_for, has_accepted_labels, now
from app.repositories.files import Layout, fsync_dir, quarantine
from app.repositories.images import KnownImages, Neighbour, band_values, nearest_duplicate
from app.repositories.imaging import decode_file
from app.repositories.mirror import (
    label_texts,
    schedule_label_mirrors,
    schedule_project_mirror,
)

log = logging.getLogger(__name__)

# Images per unit of work: the write lock covers one batch's inserts (a few statements).
BATCH = 500
MAX_TEXT_BYTES = 10 * 1024 * 1024  # a label file or a YAML: anything larger is no such file
# Images per job handed to a hashing worker (a batch is a whole number of jobs).
HASH_CHUNK = 50
assert BATCH % HASH_CHUNK == 0
# From this many files to hash, a process pool pays for its start: OpenCV releases the GIL
# while it decodes, but the Python around each small image does not.
POOL_THRESHOLD = 2000
DEFAULT_MAX_PIXELS: int = Settings.model_fields["max_image_pixels"].default
# Files of a project folder that are ydc's own, not a dataset description.
MIRROR_YAMLS = ("data.yaml", "prompts.yaml")
# Why a label file went to lost+found (it is rewritten in ydc's form from the rows).
LOSSY = "kept only its usable lines (polygons as boxes)"
# Ids that rank a file of this run after every registered image (near-duplicate ties).
NEW_IDS = 2**62


async def sync_from_disk(
    db: Database,
    layout: Layout,
    *,
    project: str | None = None,
    dry_run: bool = False,
    prefer_disk: bool = False,
    progress: ProgressCallback | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SyncReport:
    """Register the projects under ``projects/`` (only the folder ``project`` when given) and
    what they hold that the database lacks; see the module's docstring. Raises ``NotFound``
    when there is no folder ``project``."""
    started = time.perf_counter()
    report = SyncReport(dry_run=dry_run, prefer_disk=prefer_disk)
    pools = _Pools()
    sync = _Sync(db, layout, report, dry_run, prefer_disk, max_pixels, progress, pools)
    try:
        await sync.run(project)
    finally:
        await pools.close()
    report.seconds = time.perf_counter() - started
    return report


# --- what a folder holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """An image file found in a project folder."""

    src: str  # where it lies, relative to the project folder
    home: Home
    filename: str  # the name it is registered under (``safe_filename`` of its own)
    label_src: str | None  # its label file, relative to the project folder
    mtime_ns: int
    in_place: bool  # already where ydc keeps it, under the name it keeps


@dataclass
class _Scan:
    files: list[_File] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    homes: list[Home] = field(default_factory=list)
    has_label_files: bool = False


@dataclass
class _Described:
    """A folder's description files, parsed (``None``: absent or unusable)."""

    data_yaml: object | None = None
    data_yaml_name: str | None = None
    meta: object | None = None
    prompts: object | None = None
    error: str | None = None  # the folder cannot be adopted
    problems: list[str] = field(default_factory=list)  # parts left out


@dataclass(frozen=True)
class _Seen:
    """An image file hashed and decoded by a worker, with its label file's bytes."""

    size: int = 0
    mtime_ns: int = 0
    sha256: str = ""
    width: int = 0
    height: int = 0
    phash: str | None = None
    error: str | None = None
    label: bytes | None = None
    label_error: str | None = None


@dataclass(frozen=True)
class _Row:
    """A registered image."""

    id: int
    filename: str
    split: str
    sha256: str
    phash: str | None
    width: int
    height: int
    no_objects: bool
    version: int
    labelled: bool


@dataclass
class _Project:
    id: int | None  # None: a dry run of a folder that is not a project yet
    name: str
    folder: Path
    ratios: dict[str, float]
    class_ids: list[int]  # by position (empty in that dry run)
    num_classes: int
    rows: dict[str, _Row] = field(default_factory=dict)  # by stem key
    moved_from: set[Home] = field(default_factory=set)  # homes this run moved files out of


@dataclass
class _Planned:
    """A new image that joins the project, and its label file read against it."""

    file: _File
    seen: _Seen
    split: str
    labels: LabelFile | None = None  # None: no usable label file: unlabelled
    label_state: str = "none"  # see ``_label_state``

    @property
    def target(self) -> str:
        return f"images/{self.split}/{self.filename}"

    @property
    def label_target(self) -> str:
        return f"labels/{self.split}/{label_name(self.filename)}"

    @property
    def filename(self) -> str:
        return self.file.filename


@dataclass(frozen=True)
class _Placed:
    """A planned image after its move: its stat (or why it could not be placed) and where its
    label file lies now."""

    stat: os.stat_result | None
    error: str | None = None
    label_path: Path | None = None
    label_stat: os.stat_result | None = None


@dataclass(frozen=True)
class _ModelDir:
    name: str
    weights: Path | None
    reason: str = ""
    args: object | None = None
    results: str | None = None
    created_at: float = 0.0


# --- the run ------------------------------------------------------------------------------------


class _Sync:
    def __init__(
        self,
        db: Database,
        layout: Layout,
        report: SyncReport,
        dry_run: bool,
        prefer_disk: bool,
        max_pixels: int,
        progress: ProgressCallback | None,
        pools: _Pools,
    ) -> None:
        self.pools = pools
        self.db = db
        self.layout = layout
        self.report = report
        self.dry_run = dry_run
        self.prefer_disk = prefer_disk
        self.max_pixels = max_pixels
        self.progress = progress
        # model name casefolded -> (project id, project name) of the model holding it
        self.models: dict[str, tuple[int | None, str]] = {}
        self.position = (0, 1)  # (project index, projects) for the progress fraction
        self.new_ids = itertools.count(NEW_IDS)

    async def run(self, only: str | None) -> None:
        entries = await asyncio.to_thread(_folders, self.layout.projects)
        async with self.db.reader() as session:
            projects = {
                key: (project_id, name)
                for project_id, name, key in await session.execute(
                    select(Project.id, Project.name, Project.name_key)
                )
            }
            self.models = {
                name.casefold(): (project_id, project_name)
                for name, project_id, project_name in await session.execute(
                    select(Model.name, Model.project_id, Project.name).join(Project)
                )
            }
        if only is not None:
            exact = [e for e in entries if e[0] == only]
            entries = exact or [e for e in entries if e[0].casefold() == only.casefold()]
            if not entries:
                raise NotFound(f"There is no folder {only!r} in {self.layout.projects}.")
        claimed = {key: name for key, (_, name) in projects.items()}
        for index, (name, is_dir) in enumerate(entries):
            self.position = (index, len(entries))
            await self._progress(0.0, name)
            if not is_dir:
                self._add(name, "project", name, Outcome.SKIPPED, "not a folder: left alone")
                continue
            registered = projects.get(name.casefold())
            if registered is not None and registered[1] == name:
                await self._registered(registered[0], name)
                continue
            holder = claimed.get(name.casefold())
            if holder is not None:
                self._add(
                    name,
                    "project",
                    name,
                    Outcome.SKIPPED,
                    f"its name clashes with project {holder!r} (names are unique, ignoring case)",
                )
                continue
            try:
                validate_project_name(name)
            except Invalid as error:
                self._add(
                    name,
                    "project",
                    name,
                    Outcome.SKIPPED,
                    f"{error.message} Rename the folder to adopt it.",
                )
                continue
            claimed[name.casefold()] = name
            await self._adopt(name)
        self.position = (len(entries), max(len(entries), 1))
        await self._progress(0.0, "done")

    def _add(self, project: str, kind: str, name: str, outcome: Outcome, reason: str = "") -> None:
        self.report.add(project, kind, name, outcome, reason)

    async def _progress(self, within: float, message: str) -> None:
        if self.progress is None:
            return
        index, total = self.position
        await self.progress(min(1.0, (index + within) / total), message)

    # --- one project folder ---------------------------------------------------------------------

    async def _adopt(self, name: str) -> None:
        """A folder no project owns becomes a project (classes from ``data.yaml``, the rest
        from ``ydc.json`` and ``prompts.yaml``), then its images, labels and models join it."""
        folder = self.layout.project(name)
        described = await asyncio.to_thread(_describe, folder)
        scan = await asyncio.to_thread(_scan, folder)
        if described.error is not None:
            self._add(name, "project", name, Outcome.SKIPPED, described.error)
            return
        meta = read_meta(described.meta)
        try:
            names = choose_classes(described.data_yaml, meta, has_label_files=scan.has_label_files)
        except Invalid as error:
            self._add(name, "project", name, Outcome.SKIPPED, error.message)
            return
        prompts, problems = read_prompts(described.prompts, names)
        project = _Project(None, name, folder, meta.ratios, [], len(names))
        if not self.dry_run:
            created = await self._create(project, names, meta, prompts, described)
            if not created:
                return
        source = described.data_yaml_name or ("ydc.json" if meta.class_names else "no classes")
        self._add(name, "project", name, Outcome.ADDED, f"{len(names)} classes from {source}")
        for class_name in names:
            self._add(name, "class", class_name, Outcome.ADDED)
        for position, texts in sorted(prompts.items()):
            self._add(name, "prompt", names[position], Outcome.ADDED, f"{len(texts)} prompts")
        for problem in [*described.problems, *problems]:
            self._add(name, "prompt", "prompts.yaml", Outcome.SKIPPED, problem)
        await self._images(project, scan)
        await self._models_of(project)

    async def _create(
        self,
        project: _Project,
        names: list[str],
        meta: ProjectMeta,
        prompts: dict[int, list[str]],
        described: _Described,
    ) -> bool:
        """Insert the project and its classes; the project mirror rewrites ``data.yaml``,
        ``prompts.yaml`` and ``ydc.json`` in ydc's form at the commit."""
        async with self.db.unit() as uow:
            session = uow.session
            taken = await session.scalar(
                select(Project.name).where(Project.name_key == project.name.casefold())
            )
            if taken is not None:
                self._add(
                    project.name,
                    "project",
                    project.name,
                    Outcome.SKIPPED,
                    f"project {taken!r} was created meanwhile; run sync-from-disk again",
                )
                return False
            stamp = now()
            row = Project(
                name=project.name,
                name_key=project.name.casefold(),
                description=meta.description,
                train_ratio=meta.ratios["train"],
                val_ratio=meta.ratios["val"],
                test_ratio=meta.ratios["test"],
                created_at=meta.created_at or stamp,
                modified_at=stamp,
            )
            session.add(row)
            await session.flush()
            classes = [
                ProjectClass(
                    project_id=row.id,
                    position=position,
                    name=class_name,
                    name_key=class_name.casefold(),
                    colour=meta.colour(class_name) or colour_for(position),
                    prompts=prompts.get(position, []),
                )
                for position, class_name in enumerate(names)
            ]
            session.add_all(classes)
            await session.flush()
            await asyncio.to_thread(_make_layout, project.folder)
            if described.data_yaml_name == "data.yaml" and not is_ydc_data_yaml(
                described.data_yaml, names
            ):
                # Registered before the mirror's hook runs, so it goes first after the commit.
                uow.after_commit(
                    partial(
                        _keep,
                        self.layout,
                        project.folder / "data.yaml",
                        "data.yaml as it was before sync-from-disk adopted the folder",
                    )
                )
            schedule_project_mirror(uow, self.layout, row.id)
            await uow.commit()
        project.id = row.id
        project.class_ids = [c.id for c in classes]
        return True

    async def _registered(self, project_id: int, name: str) -> None:
        """A registered project: its classes and prompts are the database's; files with no
        row join it, and label files fill images the database has unlabelled."""
        folder = self.layout.project(name)
        async with self.db.reader() as session:
            project = await session.get(Project, project_id)
            if project is None:
                return  # deleted meanwhile
            ratios = {
                "train": project.train_ratio,
                "val": project.val_ratio,
                "test": project.test_ratio,
            }
            class_ids = list(
                await session.scalars(
                    select(ProjectClass.id)
                    .where(ProjectClass.project_id == project_id)
                    .order_by(ProjectClass.position, ProjectClass.id)
                )
            )
            # Plain columns: a big project's rows are never ORM objects here.
            found = await session.execute(
                select(
                    Image.id,
                    Image.filename,
                    Image.split,
                    Image.sha256,
                    Image.phash,
                    Image.width,
                    Image.height,
                    Image.no_objects,
                    Image.version,
                    has_accepted_labels().label("labelled"),
                ).where(Image.project_id == project_id)
            )
            rows = {stem_key(r.filename): _Row(*r) for r in found}
        scan = await asyncio.to_thread(_scan, folder)
        state = _Project(project_id, name, folder, ratios, class_ids, len(class_ids), rows)
        await self._images(state, scan)
        await self._models_of(state)

    # --- images -------------------------------------------------------------------------------

    async def _images(self, project: _Project, scan: _Scan) -> None:
        for src, reason in scan.skipped:
            self._add(project.name, "image", src, Outcome.SKIPPED, reason)
        new: list[_File] = []
        relabel: list[tuple[_File, _Row]] = []
        for file in scan.files:
            row = project.rows.get(stem_key(file.filename))
            if row is None:
                new.append(file)
                continue
            if file.in_place and (row.split, row.filename) == (file.home.split, file.filename):
                self._add(project.name, "image", file.src, Outcome.SKIPPED, "already registered")
                wanted = self.prefer_disk or not (row.labelled or row.no_objects)
                if file.label_src is not None and wanted:
                    relabel.append((file, row))
                continue
            self._add(
                project.name,
                "image",
                file.src,
                Outcome.SKIPPED,
                f"the project already has images/{row.split}/{row.filename} "
                "(file stems are unique, ignoring case)",
            )
        await self._relabel(project, relabel)
        await self._register(project, new)
        if project.moved_from:
            await asyncio.to_thread(_remove_emptied, project.folder, project.moved_from)

    async def _register(self, project: _Project, files: list[_File]) -> None:
        """Hash and decode the new files (workers, no transaction open), then register them a
        batch per unit, in order: the first of two files with one stem or the same bytes wins."""
        if not files:
            return
        admissions = Admissions(
            {key: f"images/{r.split}/{r.filename}" for key, r in project.rows.items()},
            {r.sha256: f"images/{r.split}/{r.filename}" for r in project.rows.values()},
        )
        known: KnownImages | None = None
        if any(f.home.split is None for f in files):
            # Files with no split folder join a near-duplicate's split, as an upload would.
            known = KnownImages(
                Neighbour(r.id, r.filename, key, r.sha256, r.phash, r.split)
                for key, r in project.rows.items()
            )
        jobs = [
            [
                (
                    str(project.folder / f.src),
                    str(project.folder / f.label_src) if f.label_src else None,
                )
                for f in files[start : start + HASH_CHUNK]
            ]
            for start in range(0, len(files), HASH_CHUNK)
        ]
        hasher = _Hasher(jobs, self.max_pixels, self.pools)
        try:
            for start in range(0, len(files), BATCH):
                batch = files[start : start + BATCH]
                seen = await hasher.results(start // HASH_CHUNK, -(-len(batch) // HASH_CHUNK))
                planned = self._plan(project, batch, seen, admissions, known)
                await self._insert(project, planned)
                await self._progress(
                    (start + len(batch)) / len(files),
                    f"{project.name}: {start + len(batch):,} of {len(files):,} new files",
                )
        finally:
            await hasher.close()

    def _plan(
        self,
        project: _Project,
        batch: list[_File],
        seen: list[_Seen],
        admissions: Admissions,
        known: KnownImages | None,
    ) -> list[_Planned]:
        planned: list[_Planned] = []
        for file, observed in zip(batch, seen, strict=True):
            if observed.error is not None:
                self._add(project.name, "image", file.src, Outcome.SKIPPED, observed.error)
                continue
            refusal = admissions.refusal(file.filename, observed.sha256)
            if refusal is not None:
                self._add(project.name, "image", file.src, Outcome.SKIPPED, refusal)
                continue
            split = file.home.split
            if split is None:
                assert known is not None
                split = nearest_duplicate(known.near(observed.phash), observed.phash) or draw_split(
                    observed.sha256, project.ratios
                )
            item = _Planned(file, observed, split)
            admissions.admit(file.filename, observed.sha256, item.target)
            if known is not None:
                known.add(
                    Neighbour(
                        next(self.new_ids),
                        file.filename,
                        stem_key(file.filename),
                        observed.sha256,
                        observed.phash,
                        split,
                    )
                )
            item.labels = self._read_labels(project, file, observed)
            item.label_state = _label_state(item.labels, observed.label)
            planned.append(item)
        return planned

    def _read_labels(self, project: _Project, file: _File, seen: _Seen) -> LabelFile | None:
        if file.label_src is None:
            return None
        if seen.label_error is not None or seen.label is None:
            reason = seen.label_error or "it cannot be read"
            self._add(project.name, "label", file.label_src, Outcome.SKIPPED, reason)
            return None
        return self._parse(project, file.label_src, seen.label, seen.width, seen.height)

    def _parse(
        self, project: _Project, where: str, data: bytes, width: int, height: int
    ) -> LabelFile | None:
        """The label file read against the project's classes; each line left out is reported
        with its file and line number."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self._add(project.name, "label", where, Outcome.SKIPPED, "it is not UTF-8 text")
            return None
        labels = parse_label_file(text, num_classes=project.num_classes, width=width, height=height)
        for line, reason in labels.problems:
            self._add(project.name, "label", f"{where}:{line}", Outcome.SKIPPED, reason)
        return labels

    async def _insert(self, project: _Project, planned: list[_Planned]) -> None:
        """Move a batch's files into place, then insert their rows and labels in one unit."""
        if not planned:
            return
        if self.dry_run:
            for item in planned:
                self._report_added(project, item)
            return
        assert project.id is not None
        placed = await asyncio.to_thread(_place_all, project.folder, planned)
        created = now()
        images: list[dict[str, Any]] = []
        kept: list[tuple[_Planned, _Placed]] = []
        async with self.db.unit() as uow:
            session = uow.session
            # Another process (the server) may have stored one of these meanwhile.
            stems, shas = await _taken(session, project.id, planned)
            for item, where in zip(planned, placed, strict=True):
                if where.error is not None or where.stat is None:
                    reason = where.error or "it could not be placed"
                    self._add(project.name, "image", item.file.src, Outcome.SKIPPED, reason)
                    continue
                if stem_key(item.filename) in stems or item.seen.sha256 in shas:
                    self._add(
                        project.name,
                        "image",
                        item.file.src,
                        Outcome.SKIPPED,
                        "an image of this name or these bytes was stored meanwhile",
                    )
                    continue
                if item.label_state == "as is" and where.label_stat is None:
                    item.label_state = "rewrite"  # its move failed: the mirror writes it
                images.append(_image_values(project.id, item, where, created))
                kept.append((item, where))
            if not images:
                return
            project.moved_from.update(item.file.home for item, _ in kept if not item.file.in_place)
            # Core, not ORM, inserts: a batch is a few statements with no per-row bookkeeping.
            inserted = await session.execute(
                insert(core_table(Image)).returning(
                    core_table(Image).c.sha256, core_table(Image).c.id
                ),
                images,
            )
            ids = {sha: image_id for sha, image_id in inserted}
            labels: list[dict[str, Any]] = []
            rewrite: list[int] = []
            for item, where in kept:
                image_id = ids[item.seen.sha256]
                boxes = item.labels.boxes if item.labels is not None else []
                labels += label_values(image_id, boxes, project.class_ids, created)
                if item.label_state == "rewrite":
                    rewrite.append(image_id)
                if item.labels is not None and item.labels.lossy and where.label_path is not None:
                    # Registered before the mirror's hook runs, so it goes first after the commit.
                    uow.after_commit(
                        partial(
                            _keep,
                            self.layout,
                            where.label_path,
                            f"label file of {item.target} as it was, before ydc {LOSSY}",
                        )
                    )
            if labels:
                await session.execute(insert(core_table(Label)), labels)
            await session.execute(
                update(Project).where(Project.id == project.id).values(modified_at=created)
            )
            schedule_label_mirrors(uow, self.layout, rewrite)
            await uow.commit()
        for item, _ in kept:
            self._report_added(project, item)

    def _report_added(self, project: _Project, item: _Planned) -> None:
        src = item.file.src
        if item.file.in_place:
            reason = ""
        elif item.file.home.split is None:
            reason = f"moved from {src}; split drawn"
        else:
            reason = f"moved from {src}"
        self._add(project.name, "image", item.target, Outcome.ADDED, reason)
        if item.labels is not None:
            self._report_labels(project, item.label_target, item.labels, Outcome.ADDED)

    def _report_labels(
        self, project: _Project, name: str, labels: LabelFile, outcome: Outcome
    ) -> None:
        if not labels.boxes and labels.problems:
            reason = "no usable line; the file as it was goes to lost+found/"
            self._add(project.name, "label", name, Outcome.SKIPPED, reason)
            return
        parts = ["no objects" if labels.no_objects else _count(len(labels.boxes), "box")]
        if labels.polygons:
            parts.append(f"{_count(labels.polygons, 'polygon')} kept as boxes")
        if labels.problems:
            parts.append(f"{_count(len(labels.problems), 'line')} left out")
        if labels.lossy:
            parts.append("the file as it was goes to lost+found/")
        self._add(project.name, "label", name, outcome, "; ".join(parts))

    # --- labels of registered images ------------------------------------------------------------

    async def _relabel(self, project: _Project, pairs: list[tuple[_File, _Row]]) -> None:
        """Label files of registered images: taken where the database has no labels for the
        image, and, with ``prefer_disk``, in place of the labels it has."""
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            paths = [project.folder / f.label_src for f, _ in batch if f.label_src]
            read = await asyncio.to_thread(_read_label_files, paths)
            current: dict[int, bytes] = {}
            if any(row.labelled or row.no_objects for _, row in batch):
                current = await self._current_labels([row for _, row in batch])
            changes: list[tuple[_File, _Row, LabelFile, os.stat_result, str]] = []
            for (file, row), (data, error, stat) in zip(batch, read, strict=True):
                assert file.label_src is not None
                if error is not None or data is None or stat is None:
                    reason = error or "it cannot be read"
                    self._add(project.name, "label", file.label_src, Outcome.SKIPPED, reason)
                    continue
                labels = self._parse(project, file.label_src, data, row.width, row.height)
                if labels is None:
                    continue
                has_labels = row.labelled or row.no_objects
                if has_labels and labels.problems:
                    self._add(
                        project.name,
                        "label",
                        file.label_src,
                        Outcome.SKIPPED,
                        "it has lines ydc cannot use; the labels in the database are kept",
                    )
                    continue
                if has_labels and format_label_lines(labels.boxes).encode() == current.get(row.id):
                    self._add(
                        project.name,
                        "label",
                        file.label_src,
                        Outcome.SKIPPED,
                        "the database has the same labels",
                    )
                    continue
                changes.append((file, row, labels, stat, _label_state(labels, data)))
            await self._apply_labels(project, changes)

    async def _current_labels(self, rows: list[_Row]) -> dict[int, bytes]:
        """The label file each image's rows make, as the mirror writes it."""
        async with self.db.reader() as session:
            return await label_texts(session, {row.id: row.no_objects for row in rows})

    async def _apply_labels(
        self,
        project: _Project,
        changes: list[tuple[_File, _Row, LabelFile, os.stat_result, str]],
    ) -> None:
        if not changes:
            return
        if not self.dry_run:
            changed_meanwhile = await self._write_labels(project, changes)
            for file, row, _, _, _ in changes:
                if row.id in changed_meanwhile:
                    reason = "the image's labels were saved meanwhile; run sync-from-disk again"
                    self._add(project.name, "label", file.label_src or "", Outcome.SKIPPED, reason)
            changes = [c for c in changes if c[1].id not in changed_meanwhile]
        for file, row, labels, _, _ in changes:
            replaced = row.labelled or row.no_objects
            outcome = Outcome.UPDATED if replaced else Outcome.ADDED
            assert file.label_src is not None
            self._report_labels(project, file.label_src, labels, outcome)

    async def _write_labels(
        self,
        project: _Project,
        changes: list[tuple[_File, _Row, LabelFile, os.stat_result, str]],
    ) -> set[int]:
        """Write the label rows of ``changes`` in one unit; returns the ids of images whose
        version moved since they were read (someone saved labels): left as they are."""
        stamp = now()
        table = core_table(Image)
        async with self.db.unit() as uow:
            session = uow.session
            versions = dict(
                (
                    await session.execute(
                        select(Image.id, Image.version).where(
                            Image.id.in_([row.id for _, row, _, _, _ in changes])
                        )
                    )
                ).all()
            )
            moved = {row.id for _, row, _, _, _ in changes if versions.get(row.id) != row.version}
            changes = [c for c in changes if c[1].id not in moved]
            # A file with no usable line changes no row: it only goes to lost+found.
            labelling = [c for c in changes if c[4] != "none"]
            replaced = [row.id for _, row, _, _, _ in labelling if row.labelled or row.no_objects]
            if replaced:
                await session.execute(
                    delete(Label).where(
                        Label.image_id.in_(replaced), Label.status == LabelStatus.ACCEPTED
                    )
                )
            emptied = [row.id for _, row, labels, _, _ in labelling if labels.no_objects]
            if emptied:
                # "No objects" rejects the image's pending suggestions, as a save marking it does.
                await session.execute(
                    update(Label)
                    .where(Label.image_id.in_(emptied), Label.status == LabelStatus.PENDING)
                    .values(status=LabelStatus.REJECTED, updated_at=stamp)
                )
            values: list[dict[str, Any]] = []
            labels_rows: list[dict[str, Any]] = []
            rewrite: list[int] = []
            for file, row, labels, stat, state in changes:
                path = project.folder / (file.label_src or "")
                if labels.lossy:
                    uow.after_commit(
                        partial(
                            _keep,
                            self.layout,
                            path,
                            f"label file of images/{row.split}/{row.filename} as it was, "
                            f"before ydc {LOSSY}",
                        )
                    )
                if state == "none":
                    continue
                labels_rows += label_values(row.id, labels.boxes, project.class_ids, stamp)
                if state == "rewrite":
                    rewrite.append(row.id)
                as_is = state == "as is"
                values.append(
                    {
                        "b_id": row.id,
                        "b_no_objects": labels.no_objects,
                        "b_size": stat.st_size if as_is else None,
                        "b_mtime": stat.st_mtime_ns if as_is else None,
                    }
                )
            if labels_rows:
                await session.execute(insert(core_table(Label)), labels_rows)
            # Core executemany: one statement, a parameter set per image.
            if values:
                await session.execute(
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values(
                        no_objects=bindparam("b_no_objects"),
                        version=table.c.version + 1,
                        label_size=bindparam("b_size"),
                        label_mtime_ns=bindparam("b_mtime"),
                    ),
                    values,
                )
            await session.execute(
                update(Project).where(Project.id == project.id).values(modified_at=stamp)
            )
            schedule_label_mirrors(uow, self.layout, rewrite)
            await uow.commit()
        return moved

    # --- models ---------------------------------------------------------------------------------

    async def _models_of(self, project: _Project) -> None:
        """Each ``models/<name>/`` with weights becomes a model of the project (not active);
        its training record comes from ``args.yaml`` and ``results.csv`` when they are there."""
        found = await asyncio.to_thread(_scan_models, project.folder / "models")
        adding: list[tuple[_ModelDir, Any]] = []
        for model in found:
            where = f"models/{model.name}"
            if model.reason:
                self._add(project.name, "model", where, Outcome.SKIPPED, model.reason)
                continue
            try:
                validate_project_name(model.name)
            except Invalid as error:
                reason = error.message.replace("Project name", "Model name")
                self._add(project.name, "model", where, Outcome.SKIPPED, reason)
                continue
            holder = self.models.get(model.name.casefold())
            if holder is not None:
                mine = holder[1] == project.name
                reason = (
                    "already registered"
                    if mine
                    else f"the name is taken by a model of project {holder[1]!r}"
                )
                self._add(project.name, "model", where, Outcome.SKIPPED, reason)
                continue
            self.models[model.name.casefold()] = (project.id, project.name)
            adding.append((model, read_training(model.args, model.results)))
        if adding and not self.dry_run:
            assert project.id is not None
            async with self.db.unit() as uow:
                for model, record in adding:
                    assert model.weights is not None
                    uow.session.add(
                        Model(
                            project_id=project.id,
                            name=model.name,
                            base_model=record.base_model,
                            weights_path=self.layout.relative(model.weights),
                            epochs_completed=record.epochs_completed,
                            metrics=record.metrics,
                            best_map50=record.best_map50,
                            is_active=False,
                            created_at=model.created_at,
                        )
                    )
                await uow.commit()
        for model, record in adding:
            assert model.weights is not None
            detail = f"{model.weights.name}, {_count(record.epochs_completed, 'epoch')}"
            if record.best_map50 is not None:
                detail += f", best mAP50 {record.best_map50:.3f}"
            self._add(project.name, "model", f"models/{model.name}", Outcome.ADDED, detail)


def _count(n: int, noun: str) -> str:
    plural = "es" if noun.endswith("x") else "s"
    return f"{n} {noun}{'' if n == 1 else plural}"


# --- rows ---------------------------------------------------------------------------------------


async def _taken(
    session: AsyncSession, project_id: int, planned: list[_Planned]
) -> tuple[set[str], set[str]]:
    """Stem keys and sha256s of ``planned`` that the project holds now."""
    keys = sorted({stem_key(p.filename) for p in planned})
    shas = sorted({p.seen.sha256 for p in planned})
    found = await session.execute(
        select(Image.stem_key, Image.sha256).where(
            # One (project, column) term each, so SQLite searches both unique indexes.
            or_(
                (Image.project_id == project_id) & Image.stem_key.in_(keys),
                (Image.project_id == project_id) & Image.sha256.in_(shas),
            )
        )
    )
    rows = found.all()
    return {r.stem_key for r in rows} & set(keys), {r.sha256 for r in rows} & set(shas)


def core_table(model: type[Image] | type[Label]) -> Table:
    """The table of a model, for Core inserts (no per-row ORM bookkeeping)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _label_state(labels: LabelFile | None, raw: bytes | None) -> str:
    """What an image row records of its label file: ``"none"`` (unlabelled: no file),
    ``"as is"`` (the file already holds what the mirror would write: its stat is kept) or
    ``"rewrite"`` (the mirror rewrites it and records its own stat)."""
    if labels is None or (not labels.boxes and not labels.no_objects):
        return "none"
    if labels.lossy or raw != format_label_lines(labels.boxes).encode():
        return "rewrite"
    return "as is"


def _image_values(
    project_id: int, item: _Planned, placed: _Placed, created: float
) -> dict[str, Any]:
    """The row of a new image, with its file's stat as it lies (and its label file's, when
    the mirror keeps that file as it is)."""
    assert placed.stat is not None
    seen = item.seen
    labels = item.labels
    keep = item.label_state == "as is"
    return {
        "project_id": project_id,
        "split": item.split,
        "split_pinned": False,
        "filename": item.filename,
        "stem_key": stem_key(item.filename),
        "sha256": seen.sha256,
        "phash": seen.phash,
        **band_values(seen.phash),
        "width": seen.width,
        "height": seen.height,
        "size_bytes": placed.stat.st_size,
        "mtime_ns": placed.stat.st_mtime_ns,
        "missing": False,
        "no_objects": labels is not None and labels.no_objects,
        "version": 0,
        "session_id": None,
        "label_size": placed.label_stat.st_size if keep and placed.label_stat else None,
        "label_mtime_ns": placed.label_stat.st_mtime_ns if keep and placed.label_stat else None,
        # When the file was written: ydc wrote it at upload, so ids follow upload order.
        "created_at": placed.stat.st_mtime_ns / 1e9,
    }


def label_values(
    image_id: int, boxes: Iterable[Box], class_ids: list[int], stamp: float
) -> list[dict[str, Any]]:
    return [
        {
            "image_id": image_id,
            "class_id": class_ids[position],
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "source": LabelSource.IMPORT.value,
            "confidence": None,
            "status": LabelStatus.ACCEPTED.value,
            "model_id": None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for position, x, y, w, h in boxes
    ]


# --- hashing workers ----------------------------------------------------------------------------


class _Pools:
    """The workers of one sync run, started once and shared by every project: a spawned
    process costs about a second of imports, so a pool per project cost twenty cold starts
    over ten projects. Processes for many files (spawned: forking a process that runs an
    event loop and threads is unsafe), threads for a few or when processes cannot start."""

    def __init__(self) -> None:
        self._processes: ProcessPoolExecutor | None = None
        self._threads: ThreadPoolExecutor | None = None
        self.processes_broken = False

    def for_files(self, count: int) -> Executor:
        cpus = os.cpu_count() or 1
        if count < POOL_THRESHOLD or cpus < 2 or self.processes_broken:
            return self.threads()
        if self._processes is None:
            self._processes = ProcessPoolExecutor(
                cpus, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
        return self._processes

    def threads(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                min(4, (os.cpu_count() or 1) + 1), thread_name_prefix="ydc-sync"
            )
        return self._threads

    async def processes_failed(self) -> None:
        """Spawned workers import the main module again; one not guarded by
        ``if __name__ == "__main__"`` kills them. The threads do the work from then on."""
        self.processes_broken = True
        pool, self._processes = self._processes, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def close(self) -> None:
        for pool in (self._processes, self._threads):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        self._processes = self._threads = None


class _Hasher:
    """Hashes one project's jobs of files, all queued at once so workers run ahead while
    batches are registered."""

    def __init__(
        self, jobs: list[list[tuple[str, str | None]]], max_pixels: int, pools: _Pools
    ) -> None:
        self._jobs = jobs
        self._max_pixels = max_pixels
        self._pools = pools
        self._pool = pools.for_files(sum(len(job) for job in jobs))
        self._futures = [self._submit(job) for job in jobs]

    def _submit(self, job: list[tuple[str, str | None]]) -> asyncio.Future[list[_Seen]]:
        return asyncio.get_running_loop().run_in_executor(
            self._pool, _observe_all, job, self._max_pixels
        )

    async def results(self, first: int, count: int) -> list[_Seen]:
        """What jobs ``first`` .. ``first + count - 1`` saw, in order."""
        try:
            return [s for job in self._futures[first : first + count] for s in await job]
        except BrokenProcessPool:
            log.warning("the hashing processes failed to start; hashing in threads instead")
            for failed in self._futures[first:]:
                failed.add_done_callback(_retrieved)  # their error is this one, handled
            await self._pools.processes_failed()
            self._pool = self._pools.threads()
            self._futures[first:] = [self._submit(job) for job in self._jobs[first:]]
            return [s for job in self._futures[first : first + count] for s in await job]

    async def close(self) -> None:
        """Drop the work not yet taken (a failed batch stops the project); the pools stay for
        the next project."""
        for future in self._futures:
            if not future.done():
                future.cancel()


def _retrieved(future: asyncio.Future[list[_Seen]]) -> None:
    if not future.cancelled():
        future.exception()


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool already keeps every core busy


def _observe_all(job: list[tuple[str, str | None]], max_pixels: int) -> list[_Seen]:
    return [
        _observe(Path(image), Path(label) if label else None, max_pixels) for image, label in job
    ]


def _observe(image: Path, label: Path | None, max_pixels: int) -> _Seen:
    """Stat, hash and decode an image as ingest does (upright size, perceptual hash), and read
    its label file."""
    data, label_error = _read_label(label) if label is not None else (None, None)
    try:
        stat = image.stat()
        with open(image, "rb") as handle:
            sha = hashlib.file_digest(handle, "sha256").hexdigest()
        decoded = decode_file(image, max_pixels=max_pixels)
    except Invalid as error:
        return _Seen(error=error.message, label=data, label_error=label_error)
    except OSError as error:
        return _Seen(error=f"it cannot be read: {error.strerror or error}")
    return _Seen(
        stat.st_size,
        stat.st_mtime_ns,
        sha,
        decoded.width,
        decoded.height,
        decoded.phash,
        None,
        data,
        label_error,
    )


def _read_label(path: Path) -> tuple[bytes | None, str | None]:
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            return None, "it is too large to be a label file"
        return path.read_bytes(), None
    except OSError as error:
        return None, f"it cannot be read: {error.strerror or error}"


def _read_label_files(
    paths: list[Path],
) -> list[tuple[bytes | None, str | None, os.stat_result | None]]:
    read: list[tuple[bytes | None, str | None, os.stat_result | None]] = []
    for path in paths:
        data, error = _read_label(path)
        try:
            stat = path.stat() if data is not None else None
        except OSError:
            stat = None
        read.append((data, error, stat))
    return read


# --- the disk -----------------------------------------------------------------------------------


def _folders(projects: Path) -> list[tuple[str, bool]]:
    """The entries of ``projects/`` (name, is a folder), sorted; hidden ones left out."""
    try:
        with os.scandir(projects) as entries:
            return sorted(
                (e.name, e.is_dir(follow_symlinks=False))
                for e in entries
                if not e.name.startswith(".")
            )
    except FileNotFoundError:
        return []


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _homes(folder: Path) -> list[Home]:
    """The image folders of the layouts ``image_home`` knows, that exist in ``folder``."""
    homes: list[Home] = []
    for entry in _entries(folder):
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name == "images":
            homes.append(Home(("images",), None, ("labels",)))
            for sub in _entries(Path(entry.path)):
                home = image_home(("images", sub.name))
                if home is not None and sub.is_dir(follow_symlinks=False):
                    homes.append(home)
        elif entry.name in SPLIT_ALIASES and (Path(entry.path) / "images").is_dir():
            home = image_home((entry.name, "images"))
            if home is not None:
                homes.append(home)
    return homes


def _scan(folder: Path) -> _Scan:
    """The image files of every home, each with its label file; files ydc cannot take are
    listed with the reason. In-place files first (they keep their names), then by mtime."""
    scan = _Scan(homes=_homes(folder))
    for home in scan.homes:
        labels = {
            e.name
            for e in _entries(folder.joinpath(*home.labels))
            if e.name.endswith(".txt") and e.is_file(follow_symlinks=False)
        }
        scan.has_label_files = scan.has_label_files or bool(labels)
        for entry in _entries(folder.joinpath(*home.folder)):
            name = entry.name
            src = "/".join((*home.folder, name))
            if name.startswith(".") or entry.is_dir(follow_symlinks=False):
                continue  # split folders are homes of their own
            if not entry.is_file(follow_symlinks=False):
                scan.skipped.append((src, "not a regular file (a link?): left alone"))
                continue
            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                reason = f"not an image type ydc stores ({', '.join(IMAGE_SUFFIXES)})"
                scan.skipped.append((src, reason))
                continue
            try:
                filename = safe_filename(name)
            except Invalid as error:
                scan.skipped.append((src, error.message))
                continue
            label = label_name(name)
            label_src = "/".join((*home.labels, label)) if label in labels else None
            mtime = entry.stat(follow_symlinks=False).st_mtime_ns
            in_place = home.canonical and name == filename
            scan.files.append(_File(src, home, filename, label_src, mtime, in_place))
    scan.files.sort(key=lambda f: (not f.in_place, f.mtime_ns, f.src))
    return scan


def _describe(folder: Path) -> _Described:
    """Read ``data.yaml`` (or, without one, the one YAML file at the top that names classes,
    as coco8's ``coco8.yaml``), ``ydc.json`` and ``prompts.yaml``."""
    described = _Described()
    candidates = [folder / "data.yaml"]
    if not candidates[0].is_file():
        candidates = [
            Path(e.path)
            for e in _entries(folder)
            if e.name.endswith((".yaml", ".yml"))
            and e.name not in MIRROR_YAMLS
            and e.is_file(follow_symlinks=False)
        ]
    for path in candidates:
        raw, error = _load_yaml(path)
        if path.name == "data.yaml" and error is not None:
            described.error = error
            return described
        if path.name == "data.yaml" or (isinstance(raw, dict) and "names" in raw):
            described.data_yaml, described.data_yaml_name = raw, path.name
            break
    try:
        described.meta = json.loads((folder / "ydc.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        described.meta = None  # absent or unusable: the YOLO files alone decide
    prompts = folder / "prompts.yaml"
    if prompts.is_file():
        described.prompts, error = _load_yaml(prompts)
        if error is not None:
            described.problems.append(error)
    return described


def _load_yaml(path: Path) -> tuple[object | None, str | None]:
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            return None, f"{path.name} is too large to be a dataset description"
        return yaml.safe_load(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{path.name} cannot be read: {error}"
    except yaml.YAMLError as error:
        return None, f"{path.name} is not valid YAML: {error}"


def _make_layout(folder: Path) -> None:
    for kind in ("images", "labels"):
        for split in SPLITS:
            (folder / kind / split).mkdir(parents=True, exist_ok=True)


def _place_all(folder: Path, planned: list[_Planned]) -> list[_Placed]:
    """Rename each planned image (and its label file, unless that one goes to lost+found)
    into ydc's layout, never over an existing file, and stat them where they lie; each folder
    is synced once."""
    placed: list[_Placed] = []
    folders: set[Path] = set()
    for item in planned:
        src = folder / item.file.src
        dst = folder / item.target
        try:
            if src != dst:
                _rename(src, dst, folders)
            stat = dst.stat()
        except FileExistsError:
            placed.append(_Placed(None, f"{item.target} is already taken by another file"))
            continue
        except OSError as error:
            placed.append(_Placed(None, f"it could not be moved: {error.strerror or error}"))
            continue
        if (stat.st_size, stat.st_mtime_ns) != (item.seen.size, item.seen.mtime_ns):
            placed.append(_Placed(None, "it changed while it was read; run sync-from-disk again"))
            continue
        label_path, label_stat = _place_label(folder, item, folders)
        placed.append(_Placed(stat, None, label_path, label_stat))
    for moved_into in folders:
        fsync_dir(moved_into)
    return placed


def _place_label(
    folder: Path, item: _Planned, folders: set[Path]
) -> tuple[Path | None, os.stat_result | None]:
    """Where the image's label file lies once placed, and its stat; a file that goes to
    lost+found stays where it is, one in the way of the move is left alone (the mirror then
    writes the label file from the rows)."""
    if item.labels is None or item.file.label_src is None:
        return None, None
    src = folder / item.file.label_src
    dst = folder / item.label_target
    if item.labels.lossy:
        return src, None
    try:
        if src != dst:
            _rename(src, dst, folders)
        return dst, dst.stat()
    except OSError:
        log.warning("label file %s could not be moved to %s", src, dst)
        return None, None


def _rename(src: Path, dst: Path, folders: set[Path]) -> None:
    """Rename within the project folder, never over an existing file (``FileExistsError``)."""
    if dst.parent not in folders:
        dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise FileExistsError(dst)
    os.rename(src, dst)
    folders.add(dst.parent)
    folders.add(src.parent)


def _remove_emptied(folder: Path, homes: Iterable[Home]) -> None:
    """Remove the folders of other layouts that files were moved out of, once empty
    (``rmdir`` refuses any folder with something left in it)."""
    for home in homes:
        if home.canonical or home.folder == ("images",):
            continue
        parents = {home.folder[:-1], home.labels[:-1]} - {(), ("images",), ("labels",)}
        for parts in (home.folder, home.labels, *sorted(parents)):
            with contextlib.suppress(OSError):
                os.rmdir(folder.joinpath(*parts))


def _keep(layout: Layout, path: Path, reason: str) -> None:
    """Move a file the sync is about to replace into lost+found/ (never deleted)."""
    if path.is_file():
        quarantine(layout, path, reason)


def _scan_models(models: Path) -> list[_ModelDir]:
    found: list[_ModelDir] = []
    for entry in _entries(models):
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        folder = Path(entry.path)
        weights: Path | None = None
        reason = ""
        # Ultralytics keeps a run's weights in weights/; ydc keeps them at the top.
        for place in (folder, folder / "weights"):
            names = [e.name for e in _entries(place) if e.is_file(follow_symlinks=False)]
            chosen = pick_weights(names)
            if chosen is not None:
                weights = place / chosen
                break
            if any(n.endswith(".pt") for n in names):
                reason = "several .pt files and no best.pt or last.pt: which one is the model?"
        if weights is None:
            found.append(_ModelDir(entry.name, None, reason or "no weights (.pt) file"))
            continue
        args, _ = (
            _load_yaml(folder / "args.yaml")
            if (folder / "args.yaml").is_file()
            else (
                None,
                None,
            )
        )
        try:
            results: str | None = (folder / "results.csv").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            results = None
        found.append(_ModelDir(entry.name, weights, "", args, results, weights.stat().st_mtime))
    return found
