"""Import use cases: queue the import of another tool's export (an uploaded zip, or a folder
on the server under ``YDC_IMPORT_ROOTS``) into a new project or an existing one, and read a
finished import's report.

An uploaded zip is copied to ``imports/`` in the data dir and removed when its task ends; the
import itself runs as a task (``app.tasks.jobs.import_dataset``), a chunk of images per unit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from app.domain.errors import AlreadyExists, Forbidden, Invalid, NotFound
from app.domain.import_rules import ImportReport, inside_roots
from app.domain.models import TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.domain.validation import validate_project_name
from app.services.system import ensure_disk_room, size_of
from app.services.uploads import keep_upload

KIND = "import"
MAX_ATTEMPTS = 3  # chunks already in are skipped as duplicates when it runs again
UPLOADS = "imports"  # Layout.imports: reconcile removes what no import task awaits


def server_folder(raw: str, roots: Sequence[Path]) -> Path:
    """The folder a person typed, resolved (links and ``..`` followed), when it lies under one
    of the import roots; ``Forbidden`` otherwise, ``NotFound`` when it is not a folder."""
    if not roots:
        raise Forbidden(
            "Importing from a server folder is off: start ydc with YDC_IMPORT_ROOTS naming "
            "the folders it may read."
        )
    text = raw.strip()
    if not text:
        raise Invalid("Type the path of a folder on the server.")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        raise Invalid(f"{text!r} is not an absolute path (it must start with /).")
    resolved = folder.resolve()
    if not inside_roots(resolved, roots):
        raise Forbidden(
            f"{text} is outside the folders ydc may import from "
            f"({', '.join(str(r) for r in roots)})."
        )
    if not resolved.is_dir():
        raise NotFound(f"There is no folder at {text}.")
    return resolved


async def stage_upload(stores: Stores, handle: IO[bytes], filename: str, *, max_bytes: int) -> Path:
    """Copy an uploaded zip into ``imports/`` (where its task reads it); ``TooLarge`` past
    ``max_bytes``."""
    if not filename.lower().endswith(".zip"):
        raise Invalid(f"{filename!r} is not a .zip file: choose a zip of the dataset.")
    await ensure_disk_room(
        stores,
        incoming=size_of(handle),
        outcome="The import was not queued; nothing was stored.",
    )
    target = stores.data_dir / UPLOADS / f"upload-{uuid.uuid4().hex}.zip"
    await keep_upload(handle, target, max_bytes=max_bytes, what="The zip")
    return target


async def start_import(
    stores: Stores,
    *,
    project: str,
    source: Path,
    create: bool,
    add_classes: bool = True,
    label: str | None = None,
) -> TaskInfo:
    """Queue the import of ``source`` (a staged upload under ``imports/`` or a checked server
    folder) into ``project``: created by the task when ``create`` (``AlreadyExists`` if the
    name is taken now), else it must exist. ``label`` is how the report names the source
    (the uploaded file's name)."""
    uploaded = source.parent == stores.data_dir / UPLOADS
    try:
        if not uploaded:  # an upload was checked (with its size) before it was staged
            await ensure_disk_room(stores, outcome="The import was not queued.")
        if create:
            validate_project_name(project)
            if await stores.dataset.get(project) is not None:
                raise AlreadyExists(f"A project named {project!r} already exists.")
        elif await stores.dataset.get(project) is None:
            raise NotFound(f"There is no project named {project!r}.")
        params = {
            "project": project,
            "source": str(source),
            "uploaded": uploaded,
            "label": label or source.name,
            "create": create,
            "add_classes": add_classes,
        }
        # A new project does not exist until the task has read the source: the task then
        # names it in its params only.
        return await stores.task.enqueue(
            KIND, params, dataset=None if create else project, max_attempts=MAX_ATTEMPTS
        )
    except BaseException:
        if uploaded:
            await asyncio.to_thread(source.unlink, missing_ok=True)
        raise


def project_name_for(filename: str) -> str:
    """A project name from an upload's name (``My Export (2).zip`` → ``My_Export_2``)."""
    stem = Path(filename).stem
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem).strip("_")
    while "__" in cleaned:
        cleaned = cleaned.replace("__", "_")
    return cleaned[:64] or "imported"


async def import_report(stores: Stores, task_id: int) -> tuple[TaskInfo, ImportReport | None]:
    """An import task and its report (``None`` until it has succeeded); ``NotFound`` for an
    unknown task or one that is no import."""
    task = await stores.task.get(task_id)
    if task.kind != KIND:
        raise NotFound(f"Task {task_id} is not an import.")
    if task.status != TaskStatus.SUCCEEDED or not task.result:
        return task, None
    return task, ImportReport.from_dict(task.result)


__all__ = [
    "import_report",
    "project_name_for",
    "server_folder",
    "stage_upload",
    "start_import",
]
