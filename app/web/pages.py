"""Server-rendered pages."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from app.services.source import source_zip
from app.web.csrf import require_csrf
from app.web.deps import StoresDep, TemplatesDep

router = APIRouter(dependencies=[Depends(require_csrf)])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, stores: StoresDep, templates: TemplatesDep) -> HTMLResponse:
    projects = await stores.dataset.list()
    tasks = await stores.task.list(limit=10)
    return templates.TemplateResponse(
        request, "pages/index.html", {"projects": projects, "tasks": tasks}
    )


@router.get("/source", include_in_schema=False)
async def source() -> Response:
    """The source of this server, as the AGPL requires."""
    return Response(
        source_zip(),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="ydc-source.zip"'},
    )
