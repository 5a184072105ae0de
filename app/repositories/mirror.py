"""The derived mirror: ``data.yaml``, ``prompts.yaml``, ``ydc.json`` and ``labels/<split>/*.txt``.

Written from the rows inside the committing transaction (to temp files), put in place after the
commit. The image row records the label file's size and mtime so reconcile can spot drift
without reading every file.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Image, Label, Project, ProjectClass
from app.db.uow import SqlUnitOfWork
from app.domain.models import LabelStatus
from app.domain.yolo import data_yaml_dict, format_label_lines
from app.repositories.common import classes_of
from app.repositories.files import Layout, replace_atomically, unlink_quietly, write_staged

BATCH = 500


async def project_mirror_texts(session: AsyncSession, project_id: int) -> dict[str, str]:
    """What ``data.yaml``, ``prompts.yaml`` and ``ydc.json`` hold for the project's rows
    (empty when the project is gone)."""
    project = await session.get(Project, project_id)
    if project is None:
        return {}
    classes = await classes_of(session, project_id)
    names = [c.name for c in classes]
    prompts = {c.position: list(c.prompts) for c in classes if c.prompts}
    meta = {
        "format": "ydc-project",
        "version": 1,
        "name": project.name,
        "description": project.description,
        "created_at": project.created_at,
        "split_ratios": {
            "train": project.train_ratio,
            "val": project.val_ratio,
            "test": project.test_ratio,
        },
        "classes": [{"name": c.name, "colour": c.colour} for c in classes],
    }
    return {
        "data.yaml": yaml.safe_dump(data_yaml_dict(names), sort_keys=False, allow_unicode=True),
        "prompts.yaml": yaml.safe_dump(prompts, sort_keys=True, allow_unicode=True),
        "ydc.json": json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
    }


def schedule_project_mirror(uow: SqlUnitOfWork, layout: Layout, project_id: int) -> None:
    """Rewrite the project's ``data.yaml``, ``prompts.yaml`` and ``ydc.json`` at commit."""

    async def hook(session: AsyncSession) -> None:
        name = await session.scalar(select(Project.name).where(Project.id == project_id))
        if name is None:
            return
        folder = layout.project(name)
        for filename, text in (await project_mirror_texts(session, project_id)).items():
            staged = write_staged(layout, text.encode())
            final = folder / filename
            uow.on_rollback(partial(unlink_quietly, staged))
            uow.after_commit(partial(replace_atomically, staged, final))

    uow.before_commit(f"project-mirror:{project_id}", hook)


def schedule_label_mirror(uow: SqlUnitOfWork, layout: Layout, image_id: int) -> None:
    """Rewrite one image's label file at commit."""
    uow.before_commit(
        f"label-mirror:{image_id}",
        lambda session: _write_label_mirrors(uow, layout, session, image_ids=[image_id]),
    )


def schedule_label_mirrors(uow: SqlUnitOfWork, layout: Layout, image_ids: list[int]) -> None:
    """Rewrite the label files of many images at commit, a batch per query."""
    for start in range(0, len(image_ids), BATCH):
        batch = image_ids[start : start + BATCH]
        uow.before_commit(
            f"label-mirrors:{uuid.uuid4().hex}",
            partial(_write_label_mirrors, uow, layout, image_ids=batch),
        )


async def _write_label_mirrors(
    uow: SqlUnitOfWork, layout: Layout, session: AsyncSession, *, image_ids: list[int]
) -> None:
    """Stage the label files of these images from the rows (in a thread), record their size
    and mtime on the rows, and put them in place after the commit."""
    rows = (
        await session.execute(
            select(Image, Project.name).join(Project).where(Image.id.in_(image_ids))
        )
    ).all()
    if not rows:
        return
    texts = await label_texts(session, {image.id: image.no_objects for image, _ in rows})
    staged = await asyncio.to_thread(_stage_all, layout, texts)
    for image, project_name in rows:
        final = layout.label(project_name, image.split, image.filename)
        size: int | None = None
        mtime_ns: int | None = None
        if image.id in staged:
            path, size, mtime_ns = staged[image.id]
            uow.on_rollback(partial(unlink_quietly, path))
            uow.after_commit(partial(replace_atomically, path, final))
        else:
            # Unlabelled: no label file at all (an empty one would mean "no objects").
            uow.after_commit(partial(unlink_quietly, final))
        image.label_size, image.label_mtime_ns = size, mtime_ns


async def label_texts(session: AsyncSession, no_objects: Mapping[int, bool]) -> dict[int, bytes]:
    """The label file each image should have, by id (``no_objects``: image id → its flag):
    its accepted boxes as YOLO lines by class position (empty for "no objects"); no entry
    when it should have none (unlabelled: an empty file would mean "no objects")."""
    lines: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    ids = list(no_objects)
    for start in range(0, len(ids), BATCH):
        label_rows = await session.execute(
            select(Label.image_id, ProjectClass.position, Label.x, Label.y, Label.w, Label.h)
            .join(ProjectClass, Label.class_id == ProjectClass.id)
            .where(
                Label.image_id.in_(ids[start : start + BATCH]),
                Label.status == LabelStatus.ACCEPTED,
            )
            .order_by(Label.image_id, Label.id)
        )
        for image_id, position, x, y, w, h in label_rows:
            lines[image_id].append((position, x, y, w, h))
    return {
        image_id: format_label_lines(lines.get(image_id, [])).encode()
        for image_id, empty in no_objects.items()
        if empty or lines.get(image_id)
    }


def _stage_all(layout: Layout, texts: dict[int, bytes]) -> dict[int, tuple[Path, int, int]]:
    staged: dict[int, tuple[Path, int, int]] = {}
    for image_id, data in texts.items():
        path = write_staged(layout, data)
        stat = os.stat(path)
        staged[image_id] = (path, stat.st_size, stat.st_mtime_ns)
    return staged
