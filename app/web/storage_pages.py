"""Storage health: what the start-up reconcile found, reconcile and sync-from-disk run as tasks
inside the server, and the missing images of every project, to locate again or delete; the
page, and its JSON twin under ``/api/v1``.

A missing image is located by uploading its file: it is matched by sha256 against the project's
images, never by name (a file renamed since, or one whose name another file now has, still
finds its row). Every form works without JavaScript; htmx swaps a project's block in place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from app.domain.errors import Conflict, Invalid, NotFound, NotMissing
from app.domain.models import ImageFilter, ImageInfo, ImageState, TaskInfo
from app.domain.reconcile import FOUND_TITLES, Found, Outcome, ReconcileReport, SyncReport
from app.domain.resources import InsufficientStorage
from app.domain.stores import Stores
from app.services import images as image_service
from app.services import projects as project_service
from app.services import storage as storage_service
from app.services.storage import StartupReconcile
from app.web.api_uploads import files_body, uploaded_files
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import is_htmx, redirect, render
from app.web.schemas import TaskOut
from app.web.schemas_storage import (
    LocateOut,
    LocateResultOut,
    LocateStatus,
    LocateTotals,
    MissingCountOut,
    ReconcileStart,
    StartupReconcileOut,
    StorageOut,
    SyncStart,
)

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["storage"], dependencies=[Depends(require_csrf)])

MISSING_SHOWN = 20  # missing images listed per project; the grid (state=missing) has them all
MISSING = ImageFilter(state=ImageState.MISSING)
PAGE = "pages/storage.html"
SYNC_KINDS = ("project", "class", "prompt", "image", "label", "model")
# What storage/_report.html's macros read besides the report.
REPORT_CONTEXT: dict[str, Any] = {
    "found_titles": FOUND_TITLES,
    "unknown_folder": Found.UNKNOWN_FOLDER,
}
FormText = Annotated[str, Form()]

LOCATE_BODY = files_body(
    "The files of missing images, as they were uploaded (matched by their bytes; the names "
    "do not matter)."
)


# --- what the page shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class LocateOutcome:
    """What became of one uploaded file."""

    original_name: str
    status: LocateStatus
    message: str
    filename: str | None = None
    split: str | None = None


@dataclass
class MissingBlock:
    """A project's missing images: the first few, how many in all, and what was just done."""

    project: str
    images: list[ImageInfo]
    count: int
    results: list[LocateOutcome] | None = None
    notice: str | None = None

    @property
    def grid_url(self) -> str:
        return f"{_project_url(self.project)}/images?state=missing"


@dataclass(frozen=True)
class SyncRow:
    """One line of a sync report's table: a project's kind of thing and what became of it."""

    project: str
    kind: str
    added: int = 0
    updated: int = 0
    skipped: int = 0


@dataclass
class Runs:
    """The newest reconcile and sync tasks with their reports (``None`` until finished)."""

    reconcile: TaskInfo | None = None
    reconcile_report: ReconcileReport | None = None
    sync: TaskInfo | None = None
    sync_report: SyncReport | None = None
    sync_rows: list[SyncRow] = field(default_factory=list)


def _project_url(name: str) -> str:
    # Project names are letters, digits, - and _: nothing to quote.
    return f"/projects/{name}"


def sync_rows(report: SyncReport) -> list[SyncRow]:
    """The report's exact counts, one row per project and kind (a project's kinds in the
    order sync registers them)."""
    table: dict[tuple[str, str], dict[str, int]] = {}
    for (project, kind, outcome), count in report.counts.items():
        table.setdefault((project, kind), {})[outcome] = count
    order = {kind: i for i, kind in enumerate(SYNC_KINDS)}
    rows = [
        SyncRow(
            project,
            kind,
            added=counts.get(Outcome.ADDED, 0),
            updated=counts.get(Outcome.UPDATED, 0),
            skipped=counts.get(Outcome.SKIPPED, 0),
        )
        for (project, kind), counts in table.items()
    ]
    return sorted(rows, key=lambda r: (r.project, order.get(r.kind, len(order)), r.kind))


async def _runs(stores: Stores) -> Runs:
    runs = Runs()
    latest = await storage_service.latest_reconcile(stores)
    if latest is not None:
        runs.reconcile, runs.reconcile_report = latest
    synced = await storage_service.latest_sync(stores)
    if synced is not None:
        runs.sync, runs.sync_report = synced
        if runs.sync_report is not None:
            runs.sync_rows = sync_rows(runs.sync_report)
    return runs


async def _block(stores: Stores, project: str, **extra: Any) -> MissingBlock:
    page = await image_service.list_images(stores, project, MISSING, None, MISSING_SHOWN)
    return MissingBlock(project, page.items, page.count, **extra)


async def _missing(stores: Stores, *, keep: MissingBlock | None = None) -> list[MissingBlock]:
    """The projects with missing images (and ``keep``, whose results must show even when it
    has none left)."""
    blocks = []
    for project in await stores.dataset.list():
        if keep is not None and project.name == keep.project:
            blocks.append(keep)
            continue
        block = await _block(stores, project.name)
        if block.count:
            blocks.append(block)
    return blocks


def _startup(request: Request) -> StartupReconcile | None:
    return getattr(request.app.state, "reconcile_at_start", None)


async def _context(
    request: Request, stores: Stores, *, keep: MissingBlock | None = None
) -> dict[str, Any]:
    missing = await _missing(stores, keep=keep)
    return {
        "nav": "storage",
        "data_dir": str(stores.data_dir),
        "startup": _startup(request),
        "runs": await _runs(stores),
        "missing": missing,
        "missing_total": sum(b.count for b in missing),
        **REPORT_CONTEXT,
    }


# --- locating files --------------------------------------------------------------------------


@asynccontextmanager
async def _uploads(request: Request) -> AsyncIterator[list[UploadFile]]:
    """The files to locate, read with the image upload's limits."""
    async with uploaded_files(request, purpose="locate") as (uploads, _):
        yield uploads


async def locate_files(
    stores: Stores, project: str, uploads: list[UploadFile]
) -> list[LocateOutcome]:
    """Match each uploaded file against the project's missing images by its bytes; one file
    that matches nothing never stops the others."""
    outcomes = []
    for upload in uploads:
        name = upload.filename or "upload"
        if upload.size == 0:
            outcomes.append(LocateOutcome(name, "refused", "the file is empty"))
            continue
        try:
            info = await storage_service.locate_image(stores, project, upload.file)
        except NotMissing as error:
            outcomes.append(LocateOutcome(name, "not_missing", error.message, error.filename))
        except NotFound:
            outcomes.append(LocateOutcome(name, "no_match", "no missing image has these bytes"))
        except (Invalid, InsufficientStorage) as error:
            outcomes.append(LocateOutcome(name, "refused", error.message))
        else:
            outcomes.append(
                LocateOutcome(
                    name,
                    "restored",
                    f"restored {info.filename} ({info.split})",
                    info.filename,
                    info.split,
                )
            )
    return outcomes


# --- the page --------------------------------------------------------------------------------


@router.get("/storage", response_class=HTMLResponse)
async def storage_page(request: Request, stores: StoresDep) -> HTMLResponse:
    """The start-up reconcile's findings, reconcile and sync with their latest runs, and the
    missing images of every project."""
    context = await _context(request, stores)
    return render(request, PAGE, context, fragment="storage/_content.html")


@router.get("/storage/runs/{kind}", response_class=HTMLResponse)
async def latest_run(
    request: Request, kind: Literal["reconcile", "sync"], stores: StoresDep
) -> HTMLResponse:
    """The newest run of ``kind`` with its report: what it asks for again while unfinished
    (the forms beside it are not redrawn, so a ticked box stays ticked)."""
    if is_htmx(request):
        # Polled every two seconds: only what the fragment draws, not every project's images.
        context = {**REPORT_CONTEXT, "runs": await _runs(stores), "kind": kind}
    else:
        context = {**await _context(request, stores), "kind": kind}
    response = render(request, PAGE, context, fragment="storage/_run.html")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/storage/reconcile")
async def run_reconcile(request: Request, stores: StoresDep, deep: FormText = "") -> Response:
    """Queue a reconcile of every project; its task's page follows it."""
    task = await storage_service.start_reconcile(stores, deep=bool(deep))
    return redirect(request, f"/tasks/{task.id}")


@router.post("/storage/sync")
async def run_sync(request: Request, stores: StoresDep, prefer_disk: FormText = "") -> Response:
    """Queue a sync-from-disk; its task's page follows it."""
    task = await storage_service.start_sync(stores, prefer_disk=bool(prefer_disk))
    return redirect(request, f"/tasks/{task.id}")


@router.get("/storage/projects/{name}", response_class=HTMLResponse)
async def missing_block(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """One project's missing images (what Cancel on a delete confirmation swaps back)."""
    project = await project_service.get_project(stores, name)
    block = await _block(stores, project.name)
    context = {**await _context(request, stores, keep=block), "block": block}
    return render(request, PAGE, context, fragment="storage/_project.html")


@router.post("/storage/projects/{name}/locate")
async def locate(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """Put uploaded files back where their missing images' rows say; shows what became of
    each file in the project's block."""
    project = await project_service.get_project(stores, name)
    async with _uploads(request) as uploads:
        results = await locate_files(stores, project.name, uploads)
    block = await _block(stores, project.name, results=results)
    # htmx swaps only the block: the page's total comes along out of band.
    context = {
        **await _context(request, stores, keep=block),
        "block": block,
        "oob_total": is_htmx(request),
    }
    return render(request, PAGE, context, fragment="storage/_project.html")


@router.post("/storage/projects/{name}/delete")
async def delete_missing(
    request: Request, name: str, stores: StoresDep, filename: FormText = "", confirm: FormText = ""
) -> Response:
    """Delete a missing image with its labels once confirmed; without ``confirm=yes`` show
    what would go."""
    if not filename:
        raise Invalid("Choose the image to delete.")
    image = await image_service.get_image(stores, name, filename)
    if not image.missing:
        # Found again since the page was drawn: this page never deletes an image with a file.
        raise Conflict(
            f"{image.filename} is not missing any more: its file is back. Delete it from the "
            "project's images if you want it gone."
        )
    if confirm != "yes":
        context = {"nav": "storage", "image": image}
        return render(
            request,
            "pages/confirm_delete_missing.html",
            context,
            fragment="storage/_confirm_delete.html",
        )
    await image_service.delete_images(stores, image.dataset, [image.filename])
    if not is_htmx(request):
        return redirect(request, f"/storage#missing-{image.dataset}")
    block = await _block(stores, image.dataset, notice=f"Deleted {image.filename}.")
    context = {**await _context(request, stores, keep=block), "block": block, "oob_total": True}
    return render(request, PAGE, context, fragment="storage/_project.html")


# --- the JSON API ----------------------------------------------------------------------------


@api_router.get("/storage", response_model=StorageOut)
async def get_storage(request: Request, stores: StoresDep) -> StorageOut:
    """The reconcile the server ran as it started, the newest reconcile and sync tasks (their
    ``result`` is their report), and the projects with missing images."""
    startup = _startup(request)
    runs = await _runs(stores)
    missing = await _missing(stores)
    return StorageOut(
        startup=StartupReconcileOut.of(startup) if startup else None,
        reconcile_task=TaskOut.of(runs.reconcile) if runs.reconcile else None,
        sync_task=TaskOut.of(runs.sync) if runs.sync else None,
        missing=[MissingCountOut(project=b.project, missing=b.count) for b in missing],
    )


@api_router.post(
    "/storage/reconcile", response_model=TaskOut, status_code=202, responses=error_responses(409)
)
async def start_reconcile(stores: StoresDep, body: ReconcileStart | None = None) -> TaskOut:
    """Queue a reconcile of every project (``GET /api/v1/tasks/{id}`` follows it; its result
    is the report)."""
    deep = body.deep if body is not None else False
    return TaskOut.of(await storage_service.start_reconcile(stores, deep=deep))


@api_router.post(
    "/storage/sync", response_model=TaskOut, status_code=202, responses=error_responses(409)
)
async def start_sync(stores: StoresDep, body: SyncStart | None = None) -> TaskOut:
    """Queue a sync-from-disk: registers folders no project owns, and files of registered
    projects that have no row. Its result says what was added, updated and skipped."""
    prefer_disk = body.prefer_disk if body is not None else False
    return TaskOut.of(await storage_service.start_sync(stores, prefer_disk=prefer_disk))


@api_router.post(
    "/projects/{name}/locate",
    response_model=LocateOut,
    openapi_extra=LOCATE_BODY,
    responses=error_responses(413),
)
async def locate_missing(name: str, request: Request, stores: StoresDep) -> LocateOut:
    """Put the files of missing images back, matched by their bytes (sha256): each file is
    ``restored``, ``no_match`` (no missing image has these bytes), ``not_missing`` or
    ``refused``."""
    project = await project_service.get_project(stores, name)
    async with _uploads(request) as uploads:
        outcomes = await locate_files(stores, project.name, uploads)
    counted = Counter(o.status for o in outcomes)
    return LocateOut(
        results=[
            LocateResultOut(
                original_name=o.original_name,
                status=o.status,
                filename=o.filename,
                split=o.split,
                message=o.message,
            )
            for o in outcomes
        ],
        totals=LocateTotals(**{status: counted[status] for status in get_args(LocateStatus)}),
    )
