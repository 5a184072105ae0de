"""Storage use cases: the start-up reconcile, reconcile and sync-from-disk as tasks inside the
server, their latest reports, and missing images located again."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.domain.errors import Conflict
from app.domain.models import ImageInfo, TaskInfo, TaskStatus
from app.domain.reconcile import FOUND_TITLES, ReconcileReport, SyncReport
from app.domain.stores import Stores
from app.services.projects import get_project
from app.services.system import ensure_disk_room, size_of

log = logging.getLogger("ydc.reconcile")

RECONCILE = "reconcile"
SYNC = "sync"
# Both are idempotent: a worker killed halfway is simply run again.
MAX_ATTEMPTS = {RECONCILE: 3, SYNC: 3}
# How many findings the log gets word for word (the counts are always there).
LOGGED_FINDINGS = 50


@dataclass(frozen=True)
class StartupReconcile:
    """The reconcile the server ran as it started (kept in memory: a task row per start
    would bury the task list)."""

    finished_at: float
    report: ReconcileReport | None
    error: str | None = None


async def reconcile_at_start(stores: Stores, *, exclusive: bool) -> StartupReconcile:
    """Reconcile every registered project and log the summary. A failing reconcile is logged
    and returned: it must not keep the server from starting."""
    try:
        report = await stores.storage.reconcile(exclusive=exclusive)
    except Exception as error:
        log.exception("start-up reconcile failed")
        return StartupReconcile(time.time(), None, f"{type(error).__name__}: {error}")
    log_report(report)
    return StartupReconcile(time.time(), report)


def log_report(report: ReconcileReport) -> None:
    level = logging.WARNING if report.drift else logging.INFO
    log.log(level, "reconcile: %s", report.summary())
    for finding in report.findings[:LOGGED_FINDINGS]:
        log.log(
            level,
            "reconcile: %s: %s (%s)",
            FOUND_TITLES[finding.kind],
            finding.path,
            finding.detail,
        )
    if len(report.findings) > LOGGED_FINDINGS:
        log.log(
            level,
            "reconcile: … and %d more findings",
            sum(report.counts.values()) - LOGGED_FINDINGS,
        )


async def start_reconcile(stores: Stores, *, deep: bool = False) -> TaskInfo:
    """Queue a reconcile of every project (a worker runs it beside the server). ``Conflict``
    while a reconcile or sync is queued or running."""
    await _refuse_overlap(stores)
    return await stores.task.enqueue(
        RECONCILE, {"trigger": "page", "deep": deep}, max_attempts=MAX_ATTEMPTS[RECONCILE]
    )


async def start_sync(stores: Stores, *, prefer_disk: bool = False) -> TaskInfo:
    """Queue a sync-from-disk (adopts folders no project owns, registers files with no row).
    ``Conflict`` while a reconcile or sync is queued or running."""
    await _refuse_overlap(stores)
    return await stores.task.enqueue(
        SYNC, {"prefer_disk": prefer_disk}, max_attempts=MAX_ATTEMPTS[SYNC]
    )


async def _refuse_overlap(stores: Stores) -> None:
    """One storage run at a time: a sync moving files under a reconcile (or a second reconcile)
    would make each report the other's work."""
    for task in await stores.task.list(kinds=[RECONCILE, SYNC], limit=10):
        if task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
            raise Conflict(
                f"A {'sync from disk' if task.kind == SYNC else 'reconcile'} is already "
                f"{task.status} (task {task.id}); wait for it to finish."
            )


async def latest_reconcile(stores: Stores) -> tuple[TaskInfo, ReconcileReport | None] | None:
    """The newest reconcile task and its report (``None`` until it has one)."""
    tasks = await stores.task.list(kinds=[RECONCILE], limit=1)
    if not tasks:
        return None
    task = tasks[0]
    return task, ReconcileReport.from_dict(task.result) if task.result else None


async def latest_sync(stores: Stores) -> tuple[TaskInfo, SyncReport | None] | None:
    tasks = await stores.task.list(kinds=[SYNC], limit=1)
    if not tasks:
        return None
    task = tasks[0]
    return task, SyncReport.from_dict(task.result) if task.result else None


async def locate_image(stores: Stores, project: str, source: Path | IO[bytes] | bytes) -> ImageInfo:
    """Put a missing image's bytes back (matched by sha256). ``NotFound`` when no image of the
    project has them; ``NotMissing`` when that image has its file."""
    found = await get_project(stores, project)
    await ensure_disk_room(stores, incoming=_size(source), outcome="Nothing was restored.")
    return await stores.storage.locate(found.name, source)


def _size(source: Path | IO[bytes] | bytes) -> int:
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, Path):
        return source.stat().st_size
    return size_of(source)
