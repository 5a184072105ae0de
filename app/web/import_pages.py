"""Importing another tool's export: the forms (a new project from the projects page, or into a
project from its page), the import report page, and their JSON twins under ``/api/v1``.

A source is an uploaded zip or a folder on the server under ``YDC_IMPORT_ROOTS``; either way
the import runs as a task whose page shows its progress and then links to the report.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.domain.errors import Invalid
from app.domain.import_rules import Group, ImportReport
from app.domain.models import TaskInfo
from app.domain.stores import Stores
from app.services import imports as import_service
from app.web.api_uploads import large_upload_form
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import redirect, render
from app.web.schemas import TaskOut
from app.web.schemas_imports import IMPORT_BODY, ImportFindingOut, ImportReportOut
from app.web.system_pages import DISK_FULL
from app.web.task_pages import TaskId

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["import"], dependencies=[Depends(require_csrf)])

TRUE = {"1", "true", "on", "yes"}


def _import_form(request: Request) -> AbstractAsyncContextManager[FormData]:
    return large_upload_form(
        request,
        what="an uploaded dataset",
        advice=" Put it in a folder under YDC_IMPORT_ROOTS and import the folder instead.",
    )


async def _start(
    request: Request, stores: Stores, form: FormData, *, project: str | None, create: bool
) -> TaskInfo:
    """Queue the import a form asks for: its ``file`` (a zip) or its ``folder`` (a path on the
    server); a new project is named by ``project`` or after the zip or folder."""
    settings: Settings = request.app.state.settings
    upload = form.get("file")
    folder = str(form.get("folder") or "").strip()
    chosen = upload if isinstance(upload, UploadFile) and upload.filename else None
    if chosen is not None and folder:
        raise Invalid("Choose a zip or type a server folder, not both.")
    if chosen is None and not folder:
        raise Invalid("Choose the zip of the dataset, or type a folder on the server.")
    add_classes = str(form.get("add_classes") or "").lower() in TRUE or (
        create and "add_classes" not in form
    )
    if chosen is not None:
        filename = chosen.filename or "dataset.zip"
        name = project or import_service.project_name_for(filename)
        staged = await import_service.stage_upload(
            stores, chosen.file, filename, max_bytes=settings.max_import_bytes
        )
        return await import_service.start_import(
            stores,
            project=name,
            source=staged,
            create=create,
            add_classes=add_classes,
            label=filename,
        )
    source = import_service.server_folder(folder, settings.import_roots)
    return await import_service.start_import(
        stores,
        project=project or import_service.project_name_for(source.name),
        source=source,
        create=create,
        add_classes=add_classes,
        label=str(source),
    )


# --- pages ------------------------------------------------------------------------------------


@router.post("/imports")
async def import_new_project(request: Request, stores: StoresDep) -> Response:
    """A new project from an export (the projects page's form); on to the task's page."""
    async with _import_form(request) as form:
        name = str(form.get("name") or "").strip() or None
        task = await _start(request, stores, form, project=name, create=True)
    return redirect(request, f"/tasks/{task.id}")


@router.post("/projects/{name}/import")
async def import_into_project(request: Request, name: str, stores: StoresDep) -> Response:
    """An export merged into the project (its page's form); on to the task's page."""
    async with _import_form(request) as form:
        task = await _start(request, stores, form, project=name, create=False)
    return redirect(request, f"/tasks/{task.id}")


@router.get("/imports/{task_id}", response_class=HTMLResponse)
async def import_report_page(request: Request, task_id: TaskId, stores: StoresDep) -> Response:
    """What an import brought in, changed and left out, with examples for each reason."""
    task, report = await import_service.import_report(stores, task_id)
    if report is None:
        return redirect(request, f"/tasks/{task.id}")
    context: dict[str, Any] = {
        "nav": "projects",
        "task": task,
        "report": report,
        "groups": [
            (Group.IMPORTED, "Imported"),
            (Group.CHANGED, "Changed on the way in"),
            (Group.SKIPPED, "Left out"),
        ],
    }
    return render(request, "pages/import_report.html", context)


# --- API --------------------------------------------------------------------------------------


@api_router.post(
    "/imports",
    response_model=TaskOut,
    status_code=202,
    openapi_extra=IMPORT_BODY,
    responses={**error_responses(413), **DISK_FULL},
)
async def api_import(request: Request, stores: StoresDep) -> TaskOut:
    """Queue an import (multipart: ``file`` a zip, or ``folder`` a server path; ``project``
    and ``mode`` ``new`` or ``merge``; ``add_classes``). Follow the task; its result is the
    report, also at ``GET /api/v1/imports/{task_id}``."""
    async with _import_form(request) as form:
        mode = str(form.get("mode") or "new")
        if mode not in ("new", "merge"):
            raise Invalid(f"mode must be 'new' or 'merge', not {mode!r}.")
        project = str(form.get("project") or "").strip() or None
        if mode == "merge" and project is None:
            raise Invalid("Name the project to merge into ('project').")
        task = await _start(request, stores, form, project=project, create=mode == "new")
    return TaskOut.of(task)


@api_router.get(
    "/imports/{task_id}", response_model=ImportReportOut, responses=error_responses(409)
)
async def api_import_report(task_id: TaskId, stores: StoresDep) -> ImportReportOut:
    """The report of a finished import (409 while it is still running or if it failed)."""
    task, report = await import_service.import_report(stores, task_id)
    if report is None:
        raise HTTPException(409, f"Import {task_id} has no report: it is {task.status}.")
    return _report_out(task, report)


def _report_out(task: TaskInfo, report: ImportReport) -> ImportReportOut:
    findings = [
        ImportFindingOut(
            reason=reason.name.lower(),
            group=group.value,
            title=reason.value,
            count=count,
            examples=examples,
        )
        for group in Group
        for reason, count, examples in report.rows(group)
    ]
    return ImportReportOut(
        task_id=task.id,
        project=report.project,
        format=report.format,
        source=report.source,
        classes=report.classes,
        summary=report.summary(),
        seconds=report.seconds,
        findings=findings,
    )
