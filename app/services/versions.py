"""Dataset versions, the use cases: the class list of the projects a person combines (what the
mapping screen shows), queueing a build (everything checked first: name, projects, mapping,
recipe, disk), reading versions (a build whose task ended without finishing is settled here),
deleting one (refused while it builds or a training waits to read it), and its zip.

The build runs in a worker (``app.tasks.versions``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.errors import AlreadyExists, Conflict, Invalid, NotFound
from app.domain.models import TaskStatus
from app.domain.stores import Stores
from app.domain.training import KIND as TRAINING_KIND
from app.domain.validation import CLASS_NAME_MAX
from app.domain.versions import (
    BUILDING,
    READY,
    VERSION_KIND,
    VersionInfo,
    class_key,
    map_classes,
    unmatched_classes,
    validate_recipe,
    validate_version_name,
)
from app.services.projects import get_project
from app.services.system import ensure_disk_room

MAX_PROJECTS = 20
ZIP_CHUNK = 1024 * 1024
VERSION_PARAM = "version"  # a training's param naming the version it trains on


@dataclass
class ClassRow:
    """One class of the combined list: its name and the projects (and their spelling) that
    have it; ``unmatched`` when only one project has it (the mapping screen asks about it)."""

    name: str
    key: str
    spellings: dict[str, str] = field(default_factory=dict)  # project -> its class name

    @property
    def unmatched(self) -> bool:
        return len(self.spellings) == 1


@dataclass
class ClassOverview:
    projects: list[str]
    classes: dict[str, list[str]]  # project -> its classes in YOLO order
    rows: list[ClassRow]
    unmatched: dict[str, list[str]]


async def _projects(stores: Stores, names: list[str]) -> list[str]:
    """The projects' stored names, in the order given; duplicates and blanks refused."""
    cleaned = [n.strip() for n in names if n and n.strip()]
    if not cleaned:
        raise Invalid("Choose at least one project to make the version from.")
    if len(cleaned) > MAX_PROJECTS:
        raise Invalid(f"A version combines at most {MAX_PROJECTS} projects.")
    found = [(await get_project(stores, n)).name for n in cleaned]
    if len({n.casefold() for n in found}) != len(found):
        raise Invalid("A project is chosen twice.")
    return found


async def class_overview(stores: Stores, projects: list[str]) -> ClassOverview:
    """The classes of the chosen projects merged by normalised name (``Car`` and ``car `` are
    one row), with the ones only one project has marked unmatched."""
    names = await _projects(stores, projects)
    classes = {name: [c.name for c in await stores.dataset.get_classes(name)] for name in names}
    rows: dict[str, ClassRow] = {}
    for project, own in classes.items():
        for name in own:
            key = class_key(name)
            row = rows.setdefault(key, ClassRow(" ".join(name.split()), key))
            row.spellings.setdefault(project, name)
    unmatched = unmatched_classes(classes) if len(names) > 1 else {n: [] for n in names}
    return ClassOverview(names, classes, list(rows.values()), unmatched)


def _choices(raw: object) -> dict[str, dict[str, str | None]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in raw.items()
    ):
        raise Invalid("The class mapping must give, per project, its classes' new names.")
    for chosen in raw.values():
        for key, value in chosen.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, str)):
                raise Invalid("A class mapping choice is a class name or null (drop).")
            if isinstance(value, str) and len(value.strip()) > CLASS_NAME_MAX:
                raise Invalid(f"A class name has at most {CLASS_NAME_MAX} characters.")
    return raw


async def start_version(
    stores: Stores,
    name: str,
    projects: list[str],
    recipe: dict[str, Any],
    choices: dict[str, Any] | None = None,
) -> tuple[VersionInfo, Any]:
    """Check everything, then register the version and queue its build in one unit: a
    refusal (``Invalid``, ``AlreadyExists``, ``NotFound``, 507) queues nothing."""
    validate_version_name(name)
    names = await _projects(stores, projects)
    by_lower = {n.casefold(): n for n in names}
    chosen: dict[str, dict[str, str | None]] = {}
    for project, mapping in _choices(choices).items():
        stored = by_lower.get(project.strip().casefold())
        if stored is None:
            raise Invalid(f"Class mapping names project {project!r}, which is not combined.")
        chosen[stored] = {
            k: (v.strip() if isinstance(v, str) else None) for k, v in mapping.items()
        }
    classes = {n: [c.name for c in await stores.dataset.get_classes(n)] for n in names}
    map_classes(classes, chosen)  # refuses a bad mapping now, not in the worker
    checked = validate_recipe(recipe)
    if await stores.version.get(name) is not None:
        raise AlreadyExists(f"A version named {name!r} already exists.")
    await ensure_disk_room(stores, outcome="The version was not built.")
    sources = {"projects": names, "choices": chosen}
    async with stores.unit_of_work() as uow:
        task = await stores.task.enqueue(VERSION_KIND, {"name": name}, max_attempts=1)
        version = await stores.version.create(name, checked.to_dict(), sources, task_id=task.id)
        await uow.commit()
    return version, task


async def _settled(stores: Stores, version: VersionInfo) -> VersionInfo | None:
    """A building version whose task has ended without finishing it (cancelled before it ran,
    its worker lost) is failed, or removed when cancelled; ``None`` once removed."""
    if version.status != BUILDING or version.task_id is None:
        return version
    try:
        task = await stores.task.get(version.task_id)
    except NotFound:
        task = None
    if task is not None and not task.finished:
        return version
    if task is not None and task.status == TaskStatus.SUCCEEDED:
        return version  # finished between the two reads
    cancelled = task is not None and task.status == TaskStatus.CANCELLED
    error = None if cancelled else (task.error if task else None) or "Its build task is gone."
    try:
        await stores.version.fail(version.name, error)
    except Conflict:
        return await stores.version.get(version.name)
    return None if cancelled else await stores.version.get(version.name)


async def list_versions(stores: Stores) -> list[VersionInfo]:
    """Every version, newest first."""
    found = []
    for version in await stores.version.list():
        settled = await _settled(stores, version)
        if settled is not None:
            found.append(settled)
    return found


async def get_version(stores: Stores, name: str) -> VersionInfo:
    """The version; ``NotFound``."""
    version = await stores.version.get(name)
    settled = await _settled(stores, version) if version is not None else None
    if settled is None:
        raise NotFound(f"There is no version named {name!r}.")
    return settled


async def ready_versions(stores: Stores) -> list[VersionInfo]:
    """The versions a training may use."""
    return [v for v in await stores.version.list() if v.status == READY]


async def trainings_using(stores: Stores, name: str) -> list[int]:
    """Queued or running trainings that will read the version (every training looked at:
    an old queued one counts as much as a new one)."""
    using: list[int] = []
    before: int | None = None
    while True:
        page = await stores.task.list(kinds=[TRAINING_KIND], limit=200, before_id=before)
        using += [
            t.id
            for t in page
            if not t.finished and str(t.params.get(VERSION_PARAM, "")).casefold() == name.casefold()
        ]
        if len(page) < 200:
            return using
        before = page[-1].id


async def delete_version(stores: Stores, name: str) -> None:
    """Delete the version and its folder (never the projects' images). ``Conflict`` while it
    builds or a queued or running training will read it."""
    version = await get_version(stores, name)
    if version.status == BUILDING:
        raise Conflict(f"Version {version.name!r} is being built: cancel its task first.")
    waiting = await trainings_using(stores, version.name)
    if waiting:
        raise Conflict(
            f"Version {version.name!r} is used by training task {waiting[0]}: "
            "let it end or cancel it first."
        )
    await stores.version.delete(version.name)


async def version_for_training(stores: Stores, name: str) -> VersionInfo:
    """A ready version to train on; ``Invalid`` otherwise."""
    version = await stores.version.get(name)
    if version is None or version.status != READY:
        raise Invalid(f"There is no ready version named {name!r} to train on.")
    for split in ("train", "val"):
        if not version.counts.get("images", {}).get(split):
            raise Invalid(f"Version {version.name!r} has no {split} images to train with.")
    return version


def zip_chunks(folder: Path, prefix: str = "") -> Iterator[bytes]:
    """The version's folder as a zip, made as it is sent: ``data.yaml``, ``images/<split>/``,
    ``labels/<split>/``; stored, not deflated (JPEG and PNG do not shrink)."""
    buffer = _Chunks()
    with zipfile.ZipFile(
        buffer, "w", compression=zipfile.ZIP_STORED, strict_timestamps=False
    ) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
                yield from buffer.take()
    yield from buffer.take()


class _Chunks:
    """A write-only stream ``zipfile`` writes into (no seeking: it adds data descriptors)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._position = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> Iterator[bytes]:
        parts, self._parts = self._parts, []
        for part in parts:
            for start in range(0, len(part), ZIP_CHUNK):
                yield part[start : start + ZIP_CHUNK]


__all__ = [
    "VERSION_PARAM",
    "ClassOverview",
    "class_overview",
    "delete_version",
    "get_version",
    "list_versions",
    "ready_versions",
    "start_version",
    "trainings_using",
    "version_for_training",
    "zip_chunks",
]
