"""Dataset health of a project: the section the project page loads lazily (htmx), a page of its
own without JavaScript, and its JSON twin under ``/api/v1``.

The section is not rendered with the project page because its near-duplicate grouping takes
about a second at 100,000 images the first time (the store keeps it while the images stay the
same); the page shows a placeholder that asks for it once loaded.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.services import health as health_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import render
from app.web.schemas import DatasetHealthOut

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["projects"], dependencies=[Depends(require_csrf)])


@router.get("/projects/{name}/health", response_class=HTMLResponse)
async def health_section(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The dataset health section for htmx; a page holding it for everyone else."""
    health = await health_service.dataset_health(stores, name)
    context = {
        "nav": "projects",
        "health": health,
        "max_class_boxes": max((c.boxes for c in health.classes), default=0),
    }
    return render(request, "pages/health.html", context, fragment="projects/_health.html")


@api_router.get("/projects/{name}/health", response_model=DatasetHealthOut)
async def get_health(name: str, stores: StoresDep) -> DatasetHealthOut:
    """Images per split and how far they are labelled, accepted boxes per class, missing files,
    exact duplicates, and near-duplicate groups (those spanning splits first: train/val
    leakage), the first 20 with up to 6 images each; the totals count them all."""
    return DatasetHealthOut.of(await health_service.dataset_health(stores, name))
