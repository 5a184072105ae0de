"""Storage use cases: the start-up reconcile, reconcile and sync-from-disk as tasks inside the
server, their latest reports, and missing images located again."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.domain.errors import Invalid
from app.domain.models import ImageInfo, TaskInfo
from app.domain.reconcile import FOUND_TITLES, ReconcileReport, SyncReport
from app.domain.stores import Stores
from app.services.projects import get_project

log = logging.getLogger("ydc.reconcile")

RECONCILE = "reconcile"
SYNC = "sync"
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
    """Queue a reconcile of every project (a worker runs it beside the server)."""
    return await stores.task.enqueue(RECONCILE, {"trigger": "page", "deep": deep})


async def start_sync(stores: Stores, *, prefer_disk: bool = False) -> TaskInfo:
    """Queue a sync-from-disk (adopts folders no project owns, registers files with no row)."""
    return await stores.task.enqueue(SYNC, {"prefer_disk": prefer_disk})


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


async def locate_image(
    stores: Stores, project: str, source: Path | IO[bytes] | bytes, *, filename: str = ""
) -> ImageInfo:
    """Put a missing image's bytes back (matched by sha256). ``NotFound`` when no missing image
    of the project has them; ``AlreadyExists`` when that image is not missing."""
    found = await get_project(stores, project)
    if source == b"":
        raise Invalid("The file is empty.")
    return await stores.storage.locate(found.name, source, filename=filename)
