"""The JSON API under ``/api/v1`` (OpenAPI at ``/docs``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse

from app.services import projects as project_service
from app.services import tasks as task_service
from app.web.csrf import csrf_token, require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.schemas import (
    ClassCreate,
    ClassesUpdate,
    ClassMerge,
    ClassOut,
    ClassUpdate,
    ClassUsageOut,
    ExportRequest,
    ProjectCreate,
    ProjectOut,
    TaskOut,
)
from app.web.system_pages import DISK_FULL

router = APIRouter(prefix="/api/v1", tags=["api"], dependencies=[Depends(require_csrf)])

# Bounded so an absurd id is a 422, not a database overflow.
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ClassId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/csrf")
async def get_csrf_token(request: Request) -> dict[str, str]:
    """The token to send in ``X-CSRF-Token`` with every state-changing request (the response
    also sets the cookie it is checked against)."""
    return {"token": csrf_token(request), "header": "X-CSRF-Token"}


@router.get("/projects", response_model=list[ProjectOut])
async def list_projects(stores: StoresDep) -> list[ProjectOut]:
    return [ProjectOut.of(p) for p in await stores.dataset.list()]


@router.post("/projects", response_model=ProjectOut, status_code=201)
async def create_project(body: ProjectCreate, stores: StoresDep) -> ProjectOut:
    given = body.split_ratios
    ratios = None if given is None else {str(k): v for k, v in given.items()}
    info = await project_service.create_project(
        stores, body.name, body.classes, body.description, ratios=ratios
    )
    return ProjectOut.of(info)


@router.get("/projects/{name}", response_model=ProjectOut)
async def get_project(name: str, stores: StoresDep) -> ProjectOut:
    return ProjectOut.of(await project_service.get_project(stores, name))


@router.delete("/projects/{name}", status_code=204)
async def delete_project(name: str, stores: StoresDep) -> Response:
    await project_service.delete_project(stores, name)
    return Response(status_code=204)


@router.get("/projects/{name}/classes", response_model=list[ClassOut])
async def get_classes(name: str, stores: StoresDep) -> list[ClassOut]:
    return [ClassOut.of(c) for c in await stores.dataset.get_classes(name)]


@router.put("/projects/{name}/classes", response_model=list[ClassOut])
async def put_classes(name: str, body: ClassesUpdate, stores: StoresDep) -> list[ClassOut]:
    return [ClassOut.of(c) for c in await project_service.set_classes(stores, name, body.classes)]


@router.post("/projects/{name}/classes", response_model=ClassOut, status_code=201)
async def add_class(name: str, body: ClassCreate, stores: StoresDep) -> ClassOut:
    """Append a class (last index)."""
    return ClassOut.of(await project_service.add_class(stores, name, body.name, body.colour))


@router.patch("/projects/{name}/classes/{class_id}", response_model=ClassOut)
async def update_class(
    name: str, class_id: ClassId, body: ClassUpdate, stores: StoresDep
) -> ClassOut:
    """Rename, recolour and/or move a class (all or nothing); answers the class as it ends up."""
    updated = await project_service.update_class(
        stores, name, class_id, new_name=body.name, colour=body.colour, position=body.index
    )
    return ClassOut.of(updated)


@router.get("/projects/{name}/classes/{class_id}/usage", response_model=ClassUsageOut)
async def get_class_usage(name: str, class_id: ClassId, stores: StoresDep) -> ClassUsageOut:
    """What deleting the class would take: its boxes, suggestions, and images left empty."""
    return ClassUsageOut.of(await project_service.class_usage(stores, name, class_id))


@router.post("/projects/{name}/classes/{class_id}/merge", response_model=ClassUsageOut)
async def merge_class(
    name: str, class_id: ClassId, body: ClassMerge, stores: StoresDep
) -> ClassUsageOut:
    """Move every box and suggestion of the class to ``into``, then delete it."""
    return ClassUsageOut.of(await project_service.merge_classes(stores, name, class_id, body.into))


@router.delete("/projects/{name}/classes/{class_id}", response_model=ClassUsageOut)
async def delete_class(name: str, class_id: ClassId, stores: StoresDep) -> ClassUsageOut:
    """Delete the class with its boxes and suggestions; answers what went with it."""
    return ClassUsageOut.of(await project_service.delete_class(stores, name, class_id))


@router.post(
    "/projects/{name}/export", response_model=TaskOut, status_code=202, responses=DISK_FULL
)
async def export_project(
    name: str, stores: StoresDep, body: Annotated[ExportRequest | None, Body()] = None
) -> TaskOut:
    """Queue an export; the body (optional) picks the splits and the format."""
    options = body or ExportRequest()
    task = await task_service.start_export(
        stores, name, splits=options.splits, format=options.format
    )
    return TaskOut.of(task)


@router.get("/tasks", response_model=list[TaskOut], responses=error_responses(404))
async def list_tasks(
    stores: StoresDep,
    project: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    before_id: int | None = Query(None, ge=1, le=2**63 - 1),
) -> list[TaskOut]:
    tasks = await stores.task.list(dataset=project, limit=limit, before_id=before_id)
    return [TaskOut.of(t) for t in tasks]


@router.get("/tasks/{task_id}", response_model=TaskOut)
async def get_task(task_id: TaskId, stores: StoresDep) -> TaskOut:
    return TaskOut.of(await stores.task.get(task_id))


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut)
async def cancel_task(task_id: TaskId, stores: StoresDep) -> TaskOut:
    return TaskOut.of(await task_service.cancel_task(stores, task_id))


@router.get(
    "/tasks/{task_id}/download", response_class=FileResponse, responses=error_responses(409)
)
async def download_export(task_id: TaskId, stores: StoresDep) -> FileResponse:
    path = await task_service.export_file(stores, task_id)
    return FileResponse(path, media_type="application/zip", filename=path.name)
