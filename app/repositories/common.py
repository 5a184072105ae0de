"""Helpers the SQL stores share: lookups that raise the domain errors, row → dataclass maps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Image, Label, Project, ProjectClass
from app.domain.errors import NotFound
from app.domain.models import SPLITS, ClassInfo, ImageInfo, LabelStatus
from app.repositories.files import Layout

# Distinct, readable colours for new classes (Tableau 10 and friends).
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#17becf",
)


def now() -> float:
    return time.time()


def id_window(
    session: AsyncSession, column: Any, *, after_id: int | None, before_id: int | None
) -> list[ColumnElement[bool]]:
    """Keyset bounds on an integer id column. A bound past the largest id the column holds
    (2**31 - 1 on PostgreSQL, 2**63 - 1 on SQLite) means "after none" or "before all", where
    PostgreSQL would refuse the number itself."""
    largest = 2**31 - 1 if session.get_bind().dialect.name == "postgresql" else 2**63 - 1
    clauses: list[ColumnElement[bool]] = []
    if after_id is not None:
        clauses.append(column > min(after_id, largest))
    if before_id is not None and before_id <= largest:
        clauses.append(column < before_id)
    return clauses


def colour_for(position: int) -> str:
    return PALETTE[position % len(PALETTE)]


async def project_by_name(session: AsyncSession, name: str) -> Project:
    row = await session.scalar(select(Project).where(Project.name_key == name.casefold()))
    if row is None:
        raise NotFound(f"There is no project named {name!r}.")
    return row


async def classes_of(session: AsyncSession, project_id: int) -> list[ProjectClass]:
    rows = await session.scalars(
        select(ProjectClass)
        .where(ProjectClass.project_id == project_id)
        .order_by(ProjectClass.position, ProjectClass.id)
    )
    return list(rows)


def class_info(row: ProjectClass) -> ClassInfo:
    return ClassInfo(row.id, row.position, row.name, row.colour, list(row.prompts or []))


async def split_counts(session: AsyncSession, project_ids: list[int]) -> dict[int, dict[str, int]]:
    """Images per split for each project, in one grouped query."""
    counts = {pid: dict.fromkeys(SPLITS, 0) for pid in project_ids}
    if not project_ids:
        return counts
    rows = await session.execute(
        select(Image.project_id, Image.split, func.count())
        .where(Image.project_id.in_(project_ids))
        .group_by(Image.project_id, Image.split)
    )
    for pid, split, n in rows:
        counts[pid][split] = n
    return counts


def has_accepted_labels():  # type: ignore[no-untyped-def]
    """SQL expression: the image has at least one accepted label."""
    return exists().where(and_(Label.image_id == Image.id, Label.status == LabelStatus.ACCEPTED))


async def image_row(
    session: AsyncSession, dataset: str, filename: str, split: str | None = None
) -> tuple[Project, Image]:
    """The project and image rows; ``NotFound`` when absent (or not in ``split``)."""
    project = await project_by_name(session, dataset)
    # Through the unique (project, stem) index: a lookup never scans the project.
    image = await session.scalar(
        select(Image).where(
            Image.project_id == project.id,
            Image.stem_key == stem_key(filename),
            Image.filename == filename,
        )
    )
    if image is None or (split is not None and image.split != split):
        where = f" in {split}" if split else ""
        raise NotFound(f"There is no image {filename!r}{where} in project {project.name!r}.")
    return project, image


def image_info(layout: Layout, project_name: str, row: Image, has_labels: bool) -> ImageInfo:
    return ImageInfo(
        filename=row.filename,
        split=row.split,
        path=layout.image(project_name, row.split, row.filename),
        width=row.width,
        height=row.height,
        size_bytes=row.size_bytes,
        has_labels=has_labels,
        id=row.id,
        dataset=project_name,
        sha256=row.sha256,
        phash=row.phash,
        split_pinned=row.split_pinned,
        missing=row.missing,
        no_objects=row.no_objects,
        version=row.version,
        session_id=row.session_id,
        created_at=row.created_at,
    )


def stem_key(filename: str) -> str:
    return Path(filename).stem.casefold()
